using FsCheck;
using FsCheck.Fluent;
using MigrationFabric.Memory.Balancing;
using Xunit;

namespace MigrationFabric.Memory.Tests.Balancing;

public sealed class LruStackDistanceTests
{
    /// <summary>The textbook LRU stack: a list, most recent first; the distance is the item's index.</summary>
    private static int[] ReferenceDistances(int items, int[] accesses)
    {
        var stack = new List<int>();
        var result = new int[accesses.Length];
        for (var i = 0; i < accesses.Length; i++)
        {
            var at = stack.IndexOf(accesses[i]);
            result[i] = at;
            if (at >= 0) stack.RemoveAt(at);
            stack.Insert(0, accesses[i]);
        }
        return result;
    }

    [Fact]
    public void Distances_match_a_list_based_LRU_stack_over_random_access_sequences()
    {
        // Long sequences over few items force many renumberings of the stamps.
        var gen =
            from items in Gen.Choose(1, 40)
            from accesses in Gen.ArrayOf(Gen.Choose(0, items - 1))
            select (items, accesses);
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(300).WithEndSize(2000),
            Prop.ForAll(Arb.From(gen), t =>
            {
                var sut = new LruStackDistance(t.items);
                var expected = ReferenceDistances(t.items, t.accesses);
                for (var i = 0; i < t.accesses.Length; i++)
                {
                    if (sut.Access(t.accesses[i]) != expected[i]) return false;
                }
                return true;
            }));
    }

    [Fact]
    public void Cyclic_access_over_k_items_has_distance_k_minus_one_and_reset_forgets()
    {
        var sut = new LruStackDistance(100);
        for (var round = 0; round < 50; round++)
        {
            for (var i = 0; i < 10; i++)
                Assert.Equal(round == 0 ? -1 : 9, sut.Access(i));
        }
        Assert.Equal(10, sut.LiveItems);
        sut.Reset();
        Assert.Equal(-1, sut.Access(3));
        Assert.Throws<ArgumentOutOfRangeException>(() => sut.Access(100));
        Assert.Throws<ArgumentOutOfRangeException>(() => new LruStackDistance(0));
    }
}
