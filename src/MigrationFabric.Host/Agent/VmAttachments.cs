namespace MigrationFabric.Host.Agent;

using System.Collections.Concurrent;
using MigrationFabric.Host.Hypervisor;

/// <summary>What a migration left attached to a VM here (a split main's remote pager, a gatherer): disposed after the VM's vCPUs stopped and before its memory is unmapped.</summary>
/// <remarks>An attachment's Dispose must return only once nothing of it touches the VM's memory any more (a page install in flight finishes or is abandoned first): the memory is unmapped right after.</remarks>
public sealed class VmAttachments
{
    private readonly ConcurrentDictionary<LocalVm, List<IDisposable>> _attached = new();

    /// <summary>Attaches <paramref name="item"/> to <paramref name="vm"/>.</summary>
    public void Attach(LocalVm vm, IDisposable item) => _attached.AddOrUpdate(vm, _ => [item], (_, list) => { lock (list) list.Add(item); return list; });

    /// <summary>The first attachment of type <typeparamref name="T"/>, if any.</summary>
    public T? Find<T>(LocalVm vm) where T : class
    {
        if (!_attached.TryGetValue(vm, out var list)) return null;
        lock (list) return list.OfType<T>().FirstOrDefault();
    }

    /// <summary>Disposes what is attached to <paramref name="vm"/> (call once its vCPUs are stopped and while its memory is mapped: LocalHypervisor.BeforeUnmap).</summary>
    public void Detach(LocalVm vm)
    {
        if (!_attached.TryRemove(vm, out var list)) return;
        lock (list)
            foreach (var item in list)
            {
                try { item.Dispose(); }
                catch (Exception) { /* A half-torn attachment must not keep the others alive. */ }
            }
    }

    /// <summary>Disposes everything (the agent is stopping).</summary>
    public void DetachAll()
    {
        foreach (var vm in _attached.Keys.ToArray()) Detach(vm);
    }
}
