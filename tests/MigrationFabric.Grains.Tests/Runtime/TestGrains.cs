using System.Collections.Concurrent;
using System.Diagnostics;
using MigrationFabric.Grains.Placement;
using MigrationFabric.Grains.Storage;

namespace MigrationFabric.Grains.Tests.Runtime;

public interface ICounterGrain : IGrainWithStringKey
{
    Task<int> Add(int delta);
    Task<int> Get();
    Task<string> WhereAmI();
    Task Deactivate();
}

public interface IPersistentCounterGrain : IGrainWithStringKey
{
    Task<int> Add(int delta);
    Task<int> Get();
    Task<string> WhereAmI();
}

public interface ISlowGrain : IGrainWithStringKey
{
    /// <summary>Records enter/exit around a delay so tests can see whether turns overlapped.</summary>
    Task<int> Work(int id, int delayMs);

    [ResponseTimeout("00:00:00.200")]
    Task SleepShortTimeout(int delayMs);

    Task Sleep(int delayMs);

    [AlwaysInterleave]
    Task<int> Peek();

    Task<int> MaxConcurrency();
}

public interface IReentrantGrain : IGrainWithStringKey
{
    Task<int> Work(int id, int delayMs);
    Task<int> MaxConcurrency();
}

public interface ITraceGrain : IGrainWithStringKey
{
    Task<string?> ParentOfMyTurn();
    Task<string?> TraceIdSeenByCallee(string calleeKey);
}

public interface IEchoGrain : IGrainWithStringKey
{
    Task<byte[]> Bytes(byte[] data);
    Task<EchoRecord> Record(EchoRecord record);
    Task<string?> NullableString(string? s);
    ValueTask<long> Sum(long a, long b, double c);
    ValueTask Nothing();
    Task Throw(string message);
}

public sealed record EchoRecord(string Name, int[] Values, Guid Id);

public interface IPreferLocalGrain : IGrainWithStringKey
{
    Task<string> WhereAmI();
    Task<int> ActivationNumber();
}

public interface IHostGrain : IGrainWithStringKey
{
    Task<string> WhereAmI();
}

public interface ICallerGrain : IGrainWithStringKey
{
    Task<int> CallCounter(string key, int delta);
}

/// <summary>Counts constructions per grain id, shared by the silos of one test.</summary>
public sealed class ActivationLedger
{
    public ConcurrentDictionary<string, int> Activations { get; } = new();
    public ConcurrentQueue<string> Events { get; } = new();

    public int Count(string key) => Activations.TryGetValue(key, out var n) ? n : 0;
}

public sealed class CounterGrain(ActivationLedger ledger) : Grain, ICounterGrain
{
    private int _value;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        ledger.Activations.AddOrUpdate(GetPrimaryKeyString(), 1, (_, n) => n + 1);
        ledger.Events.Enqueue($"activate {GetPrimaryKeyString()}");
        return Task.CompletedTask;
    }

    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        ledger.Events.Enqueue($"deactivate {GetPrimaryKeyString()} {reason}");
        return Task.CompletedTask;
    }

    public async Task<int> Add(int delta)
    {
        int before = _value;
        await Task.Yield();
        _value = before + delta; // a lost update here would show two turns interleaving
        return _value;
    }

    public Task<int> Get() => Task.FromResult(_value);
    public Task<string> WhereAmI() => Task.FromResult(GrainContext.Silo.ToString());

    public Task Deactivate()
    {
        DeactivateOnIdle();
        return Task.CompletedTask;
    }
}

public sealed class CounterState
{
    public int Value { get; set; }
}

[RandomPlacement]
public sealed class PersistentCounterGrain(IPersistentState<CounterState> state) : Grain, IPersistentCounterGrain
{
    public override Task OnActivateAsync(CancellationToken cancellationToken) => state.ReadStateAsync(cancellationToken);

    public async Task<int> Add(int delta)
    {
        state.State.Value += delta;
        await state.WriteStateAsync();
        return state.State.Value;
    }

    public Task<int> Get() => Task.FromResult(state.State.Value);
    public Task<string> WhereAmI() => Task.FromResult(GrainContext.Silo.ToString());
}

public sealed class SlowGrain : Grain, ISlowGrain
{
    private int _running;
    private int _max;
    private int _last;

    public async Task<int> Work(int id, int delayMs)
    {
        _max = Math.Max(_max, ++_running);
        await Task.Delay(delayMs);
        _running--;
        _last = id;
        return id;
    }

    public Task SleepShortTimeout(int delayMs) => Task.Delay(delayMs);
    public Task Sleep(int delayMs) => Task.Delay(delayMs);
    public Task<int> Peek() => Task.FromResult(_last);
    public Task<int> MaxConcurrency() => Task.FromResult(_max);
}

[Reentrant]
public sealed class ReentrantGrain : Grain, IReentrantGrain
{
    private int _running;
    private int _max;
    private int _threadsInside;

    public async Task<int> Work(int id, int delayMs)
    {
        // Interleaving is allowed at awaits, but never two threads inside grain code at once.
        if (Interlocked.Increment(ref _threadsInside) != 1) throw new InvalidOperationException("two threads inside a reentrant grain");
        _max = Math.Max(_max, ++_running);
        Interlocked.Decrement(ref _threadsInside);
        await Task.Delay(delayMs);
        if (Interlocked.Increment(ref _threadsInside) != 1) throw new InvalidOperationException("two threads inside a reentrant grain");
        _running--;
        Interlocked.Decrement(ref _threadsInside);
        return id;
    }

    public Task<int> MaxConcurrency() => Task.FromResult(_max);
}

public sealed class TraceGrain : Grain, ITraceGrain
{
    public Task<string?> ParentOfMyTurn() => Task.FromResult(Activity.Current?.ParentId);

    public async Task<string?> TraceIdSeenByCallee(string calleeKey)
    {
        var parent = await GrainFactory.GetGrain<ITraceGrain>(calleeKey).ParentOfMyTurn();
        return parent;
    }
}

public sealed class EchoGrain : Grain, IEchoGrain
{
    public Task<byte[]> Bytes(byte[] data) => Task.FromResult(data);
    public Task<EchoRecord> Record(EchoRecord record) => Task.FromResult(record with { Name = record.Name + "!" });
    public Task<string?> NullableString(string? s) => Task.FromResult(s);
    public ValueTask<long> Sum(long a, long b, double c) => ValueTask.FromResult(a + b + (long)c);
    public ValueTask Nothing() => ValueTask.CompletedTask;
    public Task Throw(string message) => throw new ArgumentException(message);
}

[PreferLocalPlacement]
public sealed class PreferLocalGrain(ActivationLedger ledger) : Grain, IPreferLocalGrain
{
    private int _number;

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _number = ledger.Activations.AddOrUpdate(GetPrimaryKeyString(), 1, (_, n) => n + 1);
        await Task.Delay(20, cancellationToken); // widen the window in which racing activations overlap
    }

    public Task<string> WhereAmI() => Task.FromResult(GrainContext.Silo.ToString());
    public Task<int> ActivationNumber() => Task.FromResult(_number);
}

public interface IMovableGrain : IGrainWithStringKey
{
    Task<string> WhereAmI();
    Task Leave();
}

/// <summary>Activates on the calling silo and leaves when told: a test moves it between silos with it.</summary>
[PreferLocalPlacement]
public sealed class MovableGrain : Grain, IMovableGrain
{
    public Task<string> WhereAmI() => Task.FromResult(GrainContext.Silo.ToString());

    public Task Leave()
    {
        DeactivateOnIdle();
        return Task.CompletedTask;
    }
}

[SiloNamePlacement]
public sealed class HostGrain : Grain, IHostGrain
{
    public Task<string> WhereAmI() => Task.FromResult(GrainContext.Silo.ToString());
}

public sealed class CallerGrain : Grain, ICallerGrain
{
    public Task<int> CallCounter(string key, int delta) => GrainFactory.GetGrain<ICounterGrain>(key).Add(delta);
}
