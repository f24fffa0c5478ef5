using MigrationFabric.Migration.DataPlane;
using MigrationFabric.Migration.Strategies;
using MigrationFabric.Migration.Reporting;

namespace MigrationFabric.Migration.Tests.Support;

/// <summary>Two agents on loopback and a VM at the first, ready to migrate to the second.</summary>
public sealed class MigrationPair : IAsyncDisposable
{
    private static int s_next;

    private MigrationPair(Agent source, Agent destination, TestVm vm, TestVm target, string id)
    {
        Source = source;
        Destination = destination;
        Vm = vm;
        Target = target;
        MigrationId = id;
    }

    public Agent Source { get; }
    public Agent Destination { get; }
    public TestVm Vm { get; }
    public TestVm Target { get; }
    public string MigrationId { get; }
    public IncomingMigration Incoming { get; private set; } = null!;
    public List<MigrationProgress> Progress { get; } = [];

    public static async Task<MigrationPair> CreateAsync(long bytes)
    {
        var source = await Agent.StartAsync();
        var destination = await Agent.StartAsync();
        return new MigrationPair(source, destination, new TestVm(bytes), new TestVm(bytes), $"m-{Interlocked.Increment(ref s_next)}");
    }

    /// <summary>The destination expects the migration; <paramref name="resume"/> runs at switch-over.</summary>
    public IncomingMigration Accept(Func<ReadOnlyMemory<byte>, CancellationToken, Task>? resume = null, IncomingMigrationOptions? options = null)
    {
        options ??= new IncomingMigrationOptions();
        options.Resume ??= resume;
        Incoming = Destination.Pages.Accept(new IncomingMigration(MigrationId, "vm-1", Target.Memory, Target.Mmu, options));
        return Incoming;
    }

    public MigrationJob Job(Action<MigrationProgress>? onProgress = null, Func<ReadOnlyMemory<byte>>? deviceState = null) => new()
    {
        MigrationId = MigrationId,
        Vm = "vm-1",
        Memory = Vm.Memory,
        Mmu = Vm.Mmu,
        Destination = Destination.Address,
        LocalPages = Source.Pages,
        LocalAddress = Source.Address,
        CaptureDeviceState = deviceState,
        Progress = new Callback(p =>
        {
            lock (Progress) Progress.Add(p);
            onProgress?.Invoke(p);
        }),
    };

    private sealed class Callback(Action<MigrationProgress> action) : IProgress<MigrationProgress>
    {
        public void Report(MigrationProgress value) => action(value);
    }

    public async ValueTask DisposeAsync()
    {
        Vm.Dispose();
        Target.Dispose();
        await Source.DisposeAsync();
        await Destination.DisposeAsync();
    }
}
