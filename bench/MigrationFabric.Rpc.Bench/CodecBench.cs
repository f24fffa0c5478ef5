using System.Buffers;
using System.Globalization;
using Google.Protobuf;
using MigrationFabric.Contracts.V1;

namespace MigrationFabric.Rpc.Bench;

/// <summary>The protobuf share of a page stream, without any transport: serialize a batch into a contiguous buffer (client side) and parse it from 4 KiB segments (as Kestrel's pipe hands it over).</summary>
internal static class CodecBench
{
    public static async Task RunAsync(BenchArgs args, CancellationToken ct)
    {
        var message = PageStreamBench.CreateBatch(args.MessageBytes);
        var size = message.CalculateSize();
        var count = (int)(args.TotalBytes / args.MessageBytes);
        var buffer = new byte[size];
        message.WriteTo(buffer.AsSpan());
        var segmented = Segment(buffer, 4096);
        for (var i = 0; i < 64; i++)
        {
            message.WriteTo(buffer.AsSpan());
            _ = PageStreamMessage.Parser.ParseFrom(segmented);
        }

        for (var r = 0; r < args.Reps; r++)
        {
            ct.ThrowIfCancellationRequested();
            var write = await RunCost.MeasureAsync(() =>
            {
                for (var i = 0; i < count; i++)
                {
                    message.WriteTo(buffer.AsSpan());
                }

                return Task.CompletedTask;
            });
            var parse = await RunCost.MeasureAsync(() =>
            {
                for (var i = 0; i < count; i++)
                {
                    _ = PageStreamMessage.Parser.ParseFrom(segmented);
                }

                return Task.CompletedTask;
            });
            var gb = (double)count * size / 1e9;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"codec: {count} x {size} bytes: serialize {gb / write.Seconds:F2} GB/s ({write.CpuSeconds / gb:F3} CPU s/GB); parse from 4 KiB segments {gb / parse.Seconds:F2} GB/s ({parse.CpuSeconds / gb:F3} CPU s/GB, {parse.AllocatedBytes / gb / 1e6:F0} MB allocated per GB, GCs gen0/1/2 {parse.Gen0}/{parse.Gen1}/{parse.Gen2})"));
        }
    }

    private static ReadOnlySequence<byte> Segment(byte[] data, int segmentSize)
    {
        Chunk? first = null;
        Chunk? last = null;
        for (var offset = 0; offset < data.Length; offset += segmentSize)
        {
            var chunk = new Chunk(data.AsMemory(offset, Math.Min(segmentSize, data.Length - offset)));
            if (last is null)
            {
                first = chunk;
            }
            else
            {
                last.Append(chunk);
            }

            last = chunk;
        }

        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    private sealed class Chunk : ReadOnlySequenceSegment<byte>
    {
        public Chunk(ReadOnlyMemory<byte> memory) => Memory = memory;

        public void Append(Chunk next)
        {
            next.RunningIndex = RunningIndex + Memory.Length;
            Next = next;
        }
    }
}
