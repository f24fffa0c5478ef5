using FsCheck;
using FsCheck.Fluent;
using MigrationFabric.Memory.Swap;
using Xunit;

namespace MigrationFabric.Memory.Tests.Swap;

public sealed class ChunkQueueLruTests
{
    public enum OpKind { Append, Touch, Age, TakeVictim, Remove }

    public readonly record struct Op(OpKind Kind, int Chunk)
    {
        public override string ToString() => Kind is OpKind.Age or OpKind.TakeVictim ? Kind.ToString() : $"{Kind}({Chunk})";
    }

    public sealed record Scenario(int QueueBits, int ChunkCount, Op[] Ops)
    {
        public override string ToString() => $"m={QueueBits} chunks={ChunkCount} ops=[{string.Join(", ", Ops)}]";
    }

    /// <summary>The LRU as the paper states it, written as plainly as possible: a list of lists.</summary>
    private sealed class ReferenceLru(int queueBits)
    {
        private readonly List<List<int>> _queues = Enumerable.Range(0, 1 << queueBits).Select(_ => new List<int>()).ToList();

        public IReadOnlyList<List<int>> Queues => _queues;

        public int Count => _queues.Sum(q => q.Count);

        public int QueueOf(int chunk) => _queues.FindIndex(q => q.Contains(chunk));

        public bool Append(int chunk)
        {
            if (QueueOf(chunk) >= 0) return false;
            _queues[^1].Add(chunk);
            return true;
        }

        public bool Touch(int chunk)
        {
            var i = QueueOf(chunk);
            if (i < 0) return false;
            _queues[i].Remove(chunk);
            _queues[Math.Min(i + _queues.Count / 2, _queues.Count - 1)].Add(chunk);
            return true;
        }

        public void Age()
        {
            var half = _queues.Count / 2;
            var merged = new List<List<int>>();
            for (var k = 0; k < half; k++)
                merged.Add([.. _queues[2 * k], .. _queues[2 * k + 1]]);
            for (var k = half; k < _queues.Count; k++)
                merged.Add([]);
            _queues.Clear();
            _queues.AddRange(merged);
        }

        public int TakeVictim()
        {
            foreach (var q in _queues)
            {
                if (q.Count > 0)
                {
                    var c = q[0];
                    q.RemoveAt(0);
                    return c;
                }
            }
            return -1;
        }

        public bool Remove(int chunk)
        {
            var i = QueueOf(chunk);
            if (i < 0) return false;
            _queues[i].Remove(chunk);
            return true;
        }
    }

    private static Gen<Scenario> ScenarioGen(int minBits, int maxBits) =>
        from bits in Gen.Choose(minBits, maxBits)
        from chunks in Gen.Choose(1, 24)
        from ops in Gen.ListOf(OpGen(chunks))
        select new Scenario(bits, chunks, ops.ToArray());

    private static Gen<Op> OpGen(int chunks) =>
        Gen.Frequency(
            (5, Gen.Choose(0, chunks - 1).Select(c => new Op(OpKind.Append, c))),
            (6, Gen.Choose(0, chunks - 1).Select(c => new Op(OpKind.Touch, c))),
            (2, Gen.Constant(new Op(OpKind.Age, 0))),
            (3, Gen.Constant(new Op(OpKind.TakeVictim, 0))),
            (1, Gen.Choose(0, chunks - 1).Select(c => new Op(OpKind.Remove, c))));

    private static bool MatchesReference(Scenario s)
    {
        var lru = new ChunkQueueLru(s.ChunkCount, s.QueueBits);
        var model = new ReferenceLru(s.QueueBits);
        var buffer = new int[s.ChunkCount];
        foreach (var op in s.Ops)
        {
            switch (op.Kind)
            {
                case OpKind.Append:
                    if (model.Append(op.Chunk)) lru.Append(op.Chunk);
                    else Assert.Throws<InvalidOperationException>(() => lru.Append(op.Chunk));
                    break;
                case OpKind.Touch:
                    if (model.Touch(op.Chunk)) lru.Touch(op.Chunk);
                    else Assert.Throws<InvalidOperationException>(() => lru.Touch(op.Chunk));
                    break;
                case OpKind.Age:
                    model.Age();
                    lru.Age();
                    break;
                case OpKind.TakeVictim:
                    var expected = model.TakeVictim();
                    var peeked = lru.TryPeekVictim(out var peek);
                    var took = lru.TryTakeVictim(out var victim);
                    if (expected < 0 ? took || peeked : !took || victim != expected || peek != expected)
                        return false;
                    break;
                case OpKind.Remove:
                    if (model.Remove(op.Chunk) != lru.Remove(op.Chunk))
                        return false;
                    break;
            }

            if (lru.Count != model.Count)
                return false;
            for (var q = 0; q < lru.QueueCount; q++)
            {
                var n = lru.CopyQueue(q, buffer);
                if (n != lru.QueueLength(q) || !buffer.AsSpan(0, n).SequenceEqual(model.Queues[q].ToArray()))
                    return false;
            }
            for (var c = 0; c < s.ChunkCount; c++)
            {
                if (lru.QueueOf(c) != model.QueueOf(c) || lru.Contains(c) != model.QueueOf(c) >= 0)
                    return false;
            }
        }
        return true;
    }

    [Fact]
    public void Random_op_sequences_match_the_reference_model_with_few_queues()
    {
        // Few queues make the cap at the last queue and repeated aging frequent.
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(400).WithEndSize(200),
            Prop.ForAll(Arb.From(ScenarioGen(1, 4)), MatchesReference));
    }

    [Fact]
    public void Random_op_sequences_match_the_reference_model_with_the_default_256_queues()
    {
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(100).WithEndSize(300),
            Prop.ForAll(Arb.From(ScenarioGen(8, 8)), MatchesReference));
    }

    [Fact]
    public void The_property_check_fails_loudly_on_a_wrong_model()
    {
        // Guards the harness itself: a property that is false must make the check throw.
        Assert.ThrowsAny<Exception>(() =>
            Check.One(Config.QuickThrowOnFailure.WithMaxTest(200),
                Prop.ForAll(Arb.From(ScenarioGen(1, 2)), s => s.Ops.Length < 3)));
    }

    [Fact]
    public void Accessed_chunk_moves_half_the_queues_up_and_is_capped_at_the_last()
    {
        var lru = new ChunkQueueLru(4, queueBits: 3);
        lru.Append(0);
        lru.Append(1);
        Assert.Equal(7, lru.QueueOf(0));
        lru.Age();
        Assert.Equal(3, lru.QueueOf(0));
        lru.Touch(0);
        Assert.Equal(7, lru.QueueOf(0));
        lru.Age();
        lru.Age();
        Assert.Equal(1, lru.QueueOf(0));
        Assert.Equal(0, lru.QueueOf(1));
        lru.Touch(1);
        Assert.Equal(4, lru.QueueOf(1));
        Assert.True(lru.TryTakeVictim(out var victim));
        Assert.Equal(0, victim);
    }

    [Fact]
    public void Aging_keeps_the_lower_queue_first()
    {
        var lru = new ChunkQueueLru(4, queueBits: 2);
        lru.Append(0);            // queue 3
        lru.Age();                // 0 -> queue 1
        lru.Append(1);            // queue 3
        lru.Append(2);            // queue 3
        lru.Age();                // queue 0 = [0], queue 1 = [1, 2]
        lru.Age();                // queue 0 = [0, 1, 2]
        var order = new int[4];
        Assert.Equal(3, lru.CopyQueue(0, order));
        Assert.Equal([0, 1, 2], order[..3]);
    }

    [Fact]
    public void Bad_arguments_name_what_was_wrong()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ChunkQueueLru(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ChunkQueueLru(8, queueBits: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ChunkQueueLru(8, queueBits: 17));
        var lru = new ChunkQueueLru(8);
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => lru.Append(8));
        Assert.Contains("0..7", ex.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => lru.Touch(-1));
        Assert.Throws<InvalidOperationException>(() => lru.Touch(3));
        lru.Append(3);
        Assert.Contains("already", Assert.Throws<InvalidOperationException>(() => lru.Append(3)).Message);
        Assert.True(lru.TryTakeVictim(out var only));
        Assert.Equal(3, only);
        Assert.False(lru.TryTakeVictim(out _));
    }
}
