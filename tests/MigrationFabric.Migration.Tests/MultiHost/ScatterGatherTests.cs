using MigrationFabric.Memory.Guest;
using MigrationFabric.Memory.Workloads;
using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.MultiHost;
using MigrationFabric.Migration.Strategies;
using MigrationFabric.Migration.Tests.Support;
using MigrationFabric.Rpc.Client;

namespace MigrationFabric.Migration.Tests.MultiHost;

public class ScatterGatherTests
{
    private const long Mib = 1 << 20;
    private const long VmBytes = 32 * Mib;
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(60);
    private static int s_next;

    private sealed class Cluster : IAsyncDisposable
    {
        public required Agent Source { get; init; }
        public required Agent Destination { get; init; }
        public required Agent[] Intermediates { get; init; }
        public required GuestMemory[] Held { get; init; }
        public required IncomingMigration[] Parts { get; init; }
        public required TestVm Vm { get; init; }
        public required TestVm Target { get; init; }
        public required GatherDestination Gather { get; init; }
        public required string Id { get; init; }

        public MigrationJob Job() => new() { MigrationId = Id, Vm = "vm-1", Memory = Vm.Memory, Mmu = Vm.Mmu, Destination = Destination.Address, DestinationName = "destination" };

        public ScatterGatherOptions Options() => new() { Intermediates = [.. Intermediates.Select(i => i.Address)] };

        public async ValueTask DisposeAsync()
        {
            Gather.Dispose();
            Vm.Dispose();
            Target.Dispose();
            await Source.DisposeAsync();
            await Destination.DisposeAsync();
            foreach (var i in Intermediates) await i.DisposeAsync();
            foreach (var m in Held) m.Dispose();
        }
    }

    private static async Task<Cluster> CreateAsync(Func<ReadOnlyMemory<byte>, CancellationToken, Task>? resume = null, RpcChannelOptions? gatherChannel = null)
    {
        string id = $"sg-{Interlocked.Increment(ref s_next)}";
        var intermediates = new[] { await Agent.StartAsync(), await Agent.StartAsync() };
        var held = intermediates.Select(_ => new GuestMemory(VmBytes)).ToArray();
        var parts = intermediates.Select((a, k) => SplitSubHost.Accept(a.Pages, id, "vm-1", held[k])).ToArray();
        var destination = await Agent.StartAsync();
        var target = new TestVm(VmBytes);
        var gather = new GatherDestination(id, "vm-1", target.Memory, target.Mmu, [.. intermediates.Select(i => i.Address)], new IncomingMigrationOptions { Resume = resume, RemotePagesChannel = gatherChannel });
        destination.Pages.Accept(gather.Incoming);
        return new Cluster
        {
            Source = await Agent.StartAsync(), Destination = destination, Intermediates = intermediates, Held = held, Parts = parts,
            Vm = new TestVm(VmBytes), Target = target, Gather = gather, Id = id,
        };
    }

    [Fact]
    public async Task Scatter_to_two_intermediates_and_gather_at_the_destination_under_a_running_workload()
    {
        await using var c = await CreateAsync();
        c.Vm.Fill(stride: 1);
        c.Vm.Start(new HotSetWorkload(new HotSetOptions { WorkingSetFraction = 0.2, TargetDirtyPagesPerSecond = 20_000 }));
        await c.Vm.WaitForProgressAsync(2_000, Long);
        var strategy = new ScatterGather(c.Options());

        var report = await strategy.RunAsync(c.Job()).WaitAsync(Long);

        await c.Gather.Incoming.Completion.WaitAsync(Long);
        await c.Gather.Gathered.WaitAsync(Long);
        foreach (var part in c.Parts) await part.Completion.WaitAsync(Long);
        Assert.Equal("scatter-gather", report.Strategy);
        Assert.Equal(c.Vm.Memory.PageCount, report.PagesVerified);
        Assert.Equal(c.Vm.Memory.PageCount, report.PostCopyPages);
        foreach (var i in c.Intermediates) Assert.True(report.BytesSentPerDestination[i.Address.Authority] > 8 * Mib, $"bytes to {i.Address}");
        Assert.True(strategy.EvictionTime > TimeSpan.Zero && strategy.EvictionTime <= report.TotalTime, $"eviction {strategy.EvictionTime}, total {report.TotalTime}");
        Assert.True(c.Held.All(m => m.ResidentPages > c.Vm.Memory.PageCount / 3), "each intermediate held its share");
        Assert.Equal(c.Vm.Digest(), c.Target.Digest());
        await c.Vm.StopWorkloadAsync();
    }

    [Fact]
    public async Task An_intermediate_killed_mid_scatter_fails_the_migration_by_name_and_the_vm_stays_at_the_source()
    {
        await using var c = await CreateAsync();
        c.Vm.Fill(stride: 1);
        ulong digest = c.Vm.Digest();
        var snapshot = new TaskCompletionSource<MigrationFabric.Migration.Reporting.MigrationProgress>(TaskCreationOptions.RunContinuationsAsynchronously);
        var options = c.Options();
        options.BandwidthCap = 8 * Mib;
        options.ProgressInterval = TimeSpan.FromMilliseconds(20);
        var job = new MigrationJob
        {
            MigrationId = c.Id, Vm = "vm-1", Memory = c.Vm.Memory, Mmu = c.Vm.Mmu, Destination = c.Destination.Address,
            Progress = new Progress(p =>
            {
                // Progress per intermediate: both are being scattered to.
                if (p.Phase == MigrationFabric.Migration.Reporting.MigrationPhase.PreCopy && p.Elapsed > TimeSpan.FromMilliseconds(300)
                    && p.Destinations.Count == 3 && p.Destinations[1].BytesSent > 0 && p.Destinations[2].BytesSent > 0) snapshot.TrySetResult(p);
            }),
        };
        var run = new ScatterGather(options).RunAsync(job);
        var seen = await snapshot.Task.WaitAsync(Long);
        await c.Intermediates[1].KillAsync();
        Assert.Equal(MigrationFabric.Migration.Reporting.DestinationRole.Intermediate, seen.Destinations[2].Role);
        Assert.Equal(c.Intermediates[1].Address.Authority, seen.Destinations[2].Host);
        Assert.Equal(seen.Destinations.Sum(d => d.BytesSent), seen.BytesSent);

        var e = await Assert.ThrowsAsync<MigrationFailedException>(() => run.WaitAsync(Long));

        Assert.Contains("intermediate", e.Message);
        Assert.False(c.Vm.Mmu.IsPaused, "the VM keeps running at the source");
        Assert.Equal(digest, c.Vm.Digest());
        await Assert.ThrowsAsync<MigrationAbortedException>(() => c.Parts[0].Completion.WaitAsync(Long));
    }

    [Fact]
    public async Task An_intermediate_lost_during_the_gather_is_reported_as_lost_pages_at_the_destination()
    {
        Agent? victim = null;
        await using var c = await CreateAsync(async (_, _) => await victim!.KillAsync());
        victim = c.Intermediates[1];
        c.Vm.Fill(stride: 1);

        var run = new ScatterGather(c.Options()).RunAsync(c.Job());

        var lost = await Assert.ThrowsAsync<MigrationSourceLostException>(() => c.Gather.Incoming.Completion.WaitAsync(Long));
        Assert.True(lost.PagesLost > 0, $"pages lost: {lost.PagesLost}");
        Assert.Contains(victim.Address.ToString().TrimEnd('/'), lost.InnerException!.Message);
        await Assert.ThrowsAnyAsync<Exception>(() => run.WaitAsync(Long));
    }

    [Fact]
    public async Task An_intermediate_lost_during_the_gather_is_named_even_when_the_sources_streams_break_first()
    {
        // The order seen once in CI, forced: the gather's calls to the dead intermediate are held until the source's run
        // has failed on it and the source's streams to the destination have broken.
        Agent? victim = null;
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var gate = new HoldingHandler(() => victim!.Address.Authority, release.Task);
        await using var c = await CreateAsync(async (_, _) => await victim!.KillAsync(), new RpcChannelOptions { HttpHandler = gate, DisposeHttpHandler = false });
        victim = c.Intermediates[1];
        c.Vm.Fill(stride: 1);

        var run = new ScatterGather(c.Options()).RunAsync(c.Job());
        await Assert.ThrowsAnyAsync<Exception>(() => run.WaitAsync(Long));
        await Task.WhenAny(c.Gather.SourceLost, c.Gather.Incoming.Completion).WaitAsync(Long);
        Assert.False(c.Gather.Incoming.Completion.IsCompleted, $"the broken source stream decided the outcome: {c.Gather.Incoming.Completion.Exception?.InnerException?.Message}");
        Assert.True(gate.Held > 0, "the gather's call to the dead intermediate was held");
        release.SetResult();

        var lost = await Assert.ThrowsAsync<MigrationSourceLostException>(() => c.Gather.Incoming.Completion.WaitAsync(Long));
        Assert.True(lost.PagesLost > 0, $"pages lost: {lost.PagesLost}");
        Assert.Contains(victim.Address.ToString().TrimEnd('/'), lost.InnerException!.Message);
        await c.Gather.Gathered.WaitAsync(Long);
    }

    [Fact]
    public async Task A_source_lost_after_switch_over_fails_the_gather_destination_once_every_page_is_gathered()
    {
        // Only the source is lost (its sockets to the destination are cut when it starts the integrity check): the gather
        // ends with every page, and only then does the migration fail, for the check that nobody is left to run.
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var gate = new HoldingHandler(() => "*", release.Task);
        await using var c = await CreateAsync(gatherChannel: new RpcChannelOptions { HttpHandler = gate, DisposeHttpHandler = false });
        c.Vm.Fill(stride: 1);
        using var source = new CuttableSource(c.Destination.Address);
        var options = c.Options();
        options.Channel = new RpcChannelOptions { HttpHandler = source, DisposeHttpHandler = false };

        var run = new ScatterGather(options).RunAsync(c.Job());
        var brokeWith = await c.Gather.SourceLost.WaitAsync(Long);
        Assert.True(source.IsCut, "the source's sockets were cut at its integrity check");
        Assert.False(c.Gather.Incoming.Completion.IsCompleted, $"the migration waits for the gather: {c.Gather.Incoming.Completion.Exception?.InnerException?.Message}");
        release.SetResult();

        var e = await Assert.ThrowsAsync<IOException>(() => c.Gather.Incoming.Completion.WaitAsync(Long));
        Assert.Contains("every page was gathered", e.Message);
        Assert.Same(brokeWith, e.InnerException);
        Assert.Equal(0, c.Gather.Incoming.PagesRemaining);
        Assert.Equal(c.Vm.Digest(), c.Target.Digest());
        await Assert.ThrowsAnyAsync<Exception>(() => run.WaitAsync(Long));
    }

    /// <summary>The source's channels over real sockets; its first VerifyPages to the destination resets every socket to the destination and refuses new ones, as if the source's host died then.</summary>
    private sealed class CuttableSource : DelegatingHandler
    {
        private readonly Uri _destination;
        private readonly System.Collections.Concurrent.ConcurrentQueue<System.Net.Sockets.Socket> _toDestination = new();
        private int _cut;

        public CuttableSource(Uri destination)
        {
            _destination = destination;
            InnerHandler = new SocketsHttpHandler { UseProxy = false, EnableMultipleHttp2Connections = true, ConnectCallback = ConnectAsync };
        }

        public bool IsCut => Volatile.Read(ref _cut) != 0;

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (request.RequestUri!.Port == _destination.Port && request.RequestUri.AbsolutePath.EndsWith("/VerifyPages", StringComparison.Ordinal)) Cut();
            return base.SendAsync(request, cancellationToken);
        }

        private void Cut()
        {
            Volatile.Write(ref _cut, 1);
            while (_toDestination.TryDequeue(out var socket))
            {
                socket.LingerState = new System.Net.Sockets.LingerOption(true, 0);
                socket.Dispose();
            }
        }

        private async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
        {
            bool toDestination = context.DnsEndPoint.Port == _destination.Port;
            if (toDestination && IsCut) throw new IOException("the source's host is gone (test)");
            var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp) { NoDelay = true };
            try { await socket.ConnectAsync(context.DnsEndPoint, cancellationToken); }
            catch { socket.Dispose(); throw; }
            if (toDestination) _toDestination.Enqueue(socket);
            if (toDestination && IsCut) Cut();
            return new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
        }
    }

    /// <summary>Holds requests to one authority ("*": all) until released; real sockets underneath.</summary>
    private sealed class HoldingHandler(Func<string> authority, Task release) : DelegatingHandler(new SocketsHttpHandler { UseProxy = false })
    {
        private int _held;

        public int Held => Volatile.Read(ref _held);

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            string held = authority();
            if (held == "*" || request.RequestUri!.Authority == held)
            {
                Interlocked.Increment(ref _held);
                await release.WaitAsync(cancellationToken);
            }
            return await base.SendAsync(request, cancellationToken);
        }
    }

    private sealed class Progress(Action<MigrationFabric.Migration.Reporting.MigrationProgress> action) : IProgress<MigrationFabric.Migration.Reporting.MigrationProgress>
    {
        public void Report(MigrationFabric.Migration.Reporting.MigrationProgress value) => action(value);
    }

    [Fact]
    public void Scatter_gather_without_intermediates_is_refused_by_name()
    {
        var e = Assert.Throws<ArgumentException>(() => new ScatterGather(new ScatterGatherOptions()));
        Assert.Contains("Intermediates", e.Message);
        using var vm = new TestVm(4 * Mib);
        Assert.Throws<ArgumentException>(() => new GatherDestination("m", "vm", vm.Memory, vm.Mmu, []));
    }
}
