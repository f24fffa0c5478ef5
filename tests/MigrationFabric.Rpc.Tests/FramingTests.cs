using System.IO.Pipelines;
using Google.Protobuf;
using MigrationFabric.Rpc.Framing;
using MigrationFabric.Tests.Echo.V1;

namespace MigrationFabric.Rpc.Tests;

public sealed class FramingTests
{
    [Theory]
    [InlineData("1H", 36_000_000_000L)]
    [InlineData("2M", 1_200_000_000L)]
    [InlineData("3S", 30_000_000L)]
    [InlineData("250m", 2_500_000L)]
    [InlineData("7u", 70L)]
    [InlineData("1000n", 10L)]
    [InlineData("99999999S", 999_999_990_000_000L)]
    public void Grpc_timeout_parses_every_unit(string text, long ticks)
    {
        Assert.True(GrpcTimeout.TryParse(text, out var timeout));
        Assert.Equal(ticks, timeout.Ticks);
    }

    [Theory]
    [InlineData("")]
    [InlineData("m")]
    [InlineData("10")]
    [InlineData("10x")]
    [InlineData("-5m")]
    [InlineData("123456789m")]
    [InlineData(null)]
    public void Grpc_timeout_rejects_malformed_values(string? text) => Assert.False(GrpcTimeout.TryParse(text, out _));

    [Fact]
    public void Grpc_timeout_format_fits_eight_digits_and_never_shortens()
    {
        foreach (var timeout in new[] { TimeSpan.FromTicks(1), TimeSpan.FromMilliseconds(1.5), TimeSpan.FromSeconds(5), TimeSpan.FromHours(30), TimeSpan.FromDays(50_000) })
        {
            var text = GrpcTimeout.Format(timeout);
            Assert.InRange(text.Length, 2, 9);
            Assert.True(GrpcTimeout.TryParse(text, out var back));
            Assert.True(back >= timeout, $"{timeout} formatted as {text} reads back as {back}");
        }
    }

    [Theory]
    [InlineData("plain text", "plain text")]
    [InlineData("100%", "100%25")]
    [InlineData("é", "%C3%A9")]
    [InlineData("a\nb", "a%0Ab")]
    public void Percent_encoding_matches_the_spec_and_round_trips(string value, string encoded)
    {
        Assert.Equal(encoded, PercentEncoding.Encode(value));
        Assert.Equal(value, PercentEncoding.Decode(encoded));
    }

    [Fact]
    public void Percent_decoding_keeps_malformed_escapes()
    {
        Assert.Equal("50%", PercentEncoding.Decode("50%"));
        Assert.Equal("%zz", PercentEncoding.Decode("%zz"));
    }

    [Fact]
    public void Metadata_validates_keys_and_values()
    {
        Assert.Throws<ArgumentException>(() => new Metadata().Add("bad key", "v"));
        Assert.Throws<ArgumentException>(() => new Metadata().Add("grpc-status", "0"));
        Assert.Throws<ArgumentException>(() => new Metadata().Add("k", "caf\u00e9"));
        Assert.Throws<ArgumentException>(() => new Metadata().Add("k", new byte[] { 1 }));
        var metadata = new Metadata().Add("UPPER", "x").Add("b-bin", "AAE");
        Assert.Equal("upper", metadata[0].Key);
        Assert.Equal(new byte[] { 0, 1 }, metadata.GetValueBytes("b-bin"));
    }

    [Fact]
    public async Task Frame_reader_waits_for_a_message_split_across_many_writes()
    {
        var pipe = new Pipe();
        var message = new EchoRequest { Message = "split", Payload = ByteString.CopyFrom(new byte[10_000]) };
        var frame = RawHttp.Frame(message);
        var reading = MessageFrameReader.ReadMessageAsync(pipe.Reader, EchoRequest.Parser, null, CancellationToken.None).AsTask();
        for (var offset = 0; offset < frame.Length; offset += 777)
        {
            await pipe.Writer.WriteAsync(frame.AsMemory(offset, Math.Min(777, frame.Length - offset)));
        }

        Assert.Equal(message, await reading);
        await pipe.Writer.CompleteAsync();
        Assert.Null(await MessageFrameReader.ReadMessageAsync(pipe.Reader, EchoRequest.Parser, null, CancellationToken.None));
    }

    [Fact]
    public async Task Frame_writer_and_reader_round_trip_through_a_pipe()
    {
        var pipe = new Pipe();
        var messages = Enumerable.Range(0, 10).Select(i => new EchoRequest { Message = "m" + i, Count = i }).ToList();
        foreach (var m in messages)
        {
            MessageFrameWriter.WriteMessage(pipe.Writer, m, MessageFrameWriter.MeasureMessage(m, null));
        }

        await pipe.Writer.CompleteAsync();
        foreach (var m in messages)
        {
            Assert.Equal(m, await MessageFrameReader.ReadMessageAsync(pipe.Reader, EchoRequest.Parser, null, CancellationToken.None));
        }

        Assert.Null(await MessageFrameReader.ReadMessageAsync(pipe.Reader, EchoRequest.Parser, null, CancellationToken.None));
    }

    [Fact]
    public async Task Frame_reader_turns_any_mutated_or_random_input_into_messages_or_RpcException_only()
    {
        var random = new Random(20261122);
        var valid = RawHttp.Frame(new EchoRequest { Message = "seed", Payload = ByteString.CopyFrom(new byte[300]), Count = 7 });
        for (var round = 0; round < 400; round++)
        {
            byte[] input;
            if (round % 2 == 0)
            {
                input = (byte[])valid.Clone();
                for (var flips = random.Next(1, 6); flips > 0; flips--)
                {
                    input[random.Next(input.Length)] = (byte)random.Next(256);
                }

                input = input.AsSpan(0, random.Next(input.Length + 1)).ToArray();
            }
            else
            {
                input = new byte[random.Next(0, 64)];
                random.NextBytes(input);
            }

            var pipe = new Pipe();
            var offset = 0;
            while (offset < input.Length)
            {
                var chunk = Math.Min(random.Next(1, 50), input.Length - offset);
                await pipe.Writer.WriteAsync(input.AsMemory(offset, chunk));
                offset += chunk;
            }

            await pipe.Writer.CompleteAsync();
            try
            {
                while (await MessageFrameReader.ReadMessageAsync(pipe.Reader, EchoRequest.Parser, 4096, CancellationToken.None) is not null)
                {
                }
            }
            catch (RpcException e)
            {
                Assert.True(e.StatusCode is StatusCode.Internal or StatusCode.ResourceExhausted, $"round {round}: {e.Status}");
                Assert.False(string.IsNullOrWhiteSpace(e.Status.Detail));
            }
        }
    }
}
