using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;
using MigrationFabric.Grains.Invocation;
using MigrationFabric.Grains.Runtime;

namespace MigrationFabric.Grains.Activation;

/// <summary>The silo's activations by grain id: creates them on first call, delivers requests, collects idle ones.</summary>
internal sealed class Catalog(SiloRuntime runtime)
{
    private readonly ConcurrentDictionary<GrainId, ActivationData> _activations = new();

    /// <summary>Number of live activations.</summary>
    public int Count => _activations.Count;

    /// <summary>Delivers a call to the local activation of <paramref name="target"/>, creating it when missing.</summary>
    /// <exception cref="ActivationForwardedException">Another silo holds the activation.</exception>
    public async Task<object?> InvokeAsync(GrainId target, GrainInterfaceDescriptor descriptor, GrainMethodDescriptor method,
        object?[] args, string? traceParent, string? traceState)
    {
        while (true)
        {
            var activation = GetOrCreate(target, descriptor);
            var request = new ActivationRequest(target, descriptor, method, args, traceParent, traceState);
            if (!activation.TryEnqueue(request))
            {
                await activation.Deactivated.ConfigureAwait(false);
                // A failed activation answers a late request as it answered its queue. Retrying here would create, fail and
                // remove one activation after another; when this silo owns the grain's directory entry all of it completes
                // synchronously, so the loop spun on a pool thread and the caller waited out its request timeout.
                switch (activation.Failure)
                {
                    case ActivationForwardedException forwarded:
                        throw new ActivationForwardedException(target, forwarded.Winner);
                    case { } failure:
                        ExceptionDispatchInfo.Throw(failure);
                        break;
                }
                continue;
            }
            try
            {
                return await request.Completion.Task.ConfigureAwait(false);
            }
            catch (ActivationRetryException)
            {
                // The activation deactivated with this request still queued: go again on a fresh one.
            }
        }
    }

    /// <summary>The activation of <paramref name="id"/>, or null.</summary>
    public ActivationData? Find(GrainId id) => _activations.TryGetValue(id, out var a) ? a : null;

    /// <summary>Activations that completed their directory registration (what this silo reports to directory owners).</summary>
    public List<GrainId> RegisteredIds()
    {
        var ids = new List<GrainId>();
        foreach (var (id, a) in _activations)
            if (a.IsRegistered)
                ids.Add(id);
        return ids;
    }

    public void Remove(ActivationData activation) =>
        _activations.TryRemove(new KeyValuePair<GrainId, ActivationData>(activation.GrainId, activation));

    /// <summary>Deactivates activations idle since before <paramref name="idleSinceTimestamp"/>; returns how many.</summary>
    public int CollectIdle(long idleSinceTimestamp)
    {
        int n = 0;
        foreach (var a in _activations.Values)
        {
            if (a.IsIdleSince(idleSinceTimestamp))
            {
                a.RequestDeactivation(DeactivationReason.IdleCollection);
                n++;
            }
        }
        return n;
    }

    /// <summary>Deactivates every activation and waits for them (silo shutdown).</summary>
    public async Task DeactivateAllAsync(TimeSpan timeout)
    {
        var all = _activations.Values.ToArray();
        foreach (var a in all)
            a.RequestDeactivation(DeactivationReason.ShuttingDown);
        try
        {
            await Task.WhenAll(all.Select(a => a.Deactivated)).WaitAsync(timeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            runtime.Log.DeactivationTimedOut(all.Count(a => !a.Deactivated.IsCompleted), timeout);
        }
    }

    private ActivationData GetOrCreate(GrainId id, GrainInterfaceDescriptor descriptor)
    {
        while (true)
        {
            if (_activations.TryGetValue(id, out var existing))
                return existing;
            if (runtime.IsStopping)
                throw new GrainRoutingException($"Silo {runtime.Self} is shutting down and takes no new activation (grain {id}).");
            var type = runtime.GetGrainType(descriptor);
            var created = new ActivationData(runtime, id, type);
            if (_activations.TryAdd(id, created))
            {
                _ = created.ActivateAsync();
                return created;
            }
        }
    }
}
