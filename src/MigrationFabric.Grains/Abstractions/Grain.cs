namespace MigrationFabric.Grains;

/// <summary>Why an activation is going away.</summary>
public enum DeactivationReason
{
    /// <summary>Idle longer than the collection age.</summary>
    IdleCollection,

    /// <summary>The grain asked for it (DeactivateOnIdle).</summary>
    ApplicationRequested,

    /// <summary>The silo is shutting down.</summary>
    ShuttingDown,

    /// <summary>Another activation of the same grain won the directory registration.</summary>
    DuplicateActivation,

    /// <summary>OnActivateAsync threw.</summary>
    ActivationFailed,
}

/// <summary>Base class of grain implementations (Orleans' Grain shape): lifecycle hooks plus access to the runtime.</summary>
public abstract class Grain
{
    private IGrainContext? _context;

    /// <summary>The runtime context; set before <see cref="OnActivateAsync"/> runs.</summary>
    public IGrainContext GrainContext
    {
        get => _context ?? throw new InvalidOperationException($"{GetType().Name} is not activated by a silo yet (its context is set after construction).");
        internal set => _context = value;
    }

    /// <summary>This grain's id.</summary>
    public GrainId GrainId => GrainContext.GrainId;

    /// <summary>Makes references to other grains.</summary>
    public IGrainFactory GrainFactory => GrainContext.GrainFactory;

    /// <summary>The grain's string key.</summary>
    public string GetPrimaryKeyString() => GrainContext.GrainId.Key;

    /// <summary>Runs as the activation's first turn, before any request.</summary>
    public virtual Task OnActivateAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Runs as the activation's last turn, after the last request.</summary>
    public virtual Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Deactivates this activation once the current request completes.</summary>
    protected void DeactivateOnIdle() => GrainContext.DeactivateOnIdle();
}
