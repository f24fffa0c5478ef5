namespace MigrationFabric.Grains.Filters;

/// <summary>What a call filter sees of a grain call.</summary>
public interface IGrainCallContext
{
    /// <summary>The target grain.</summary>
    GrainId TargetId { get; }

    /// <summary>The grain interface's wire name.</summary>
    string InterfaceName { get; }

    /// <summary>The method called.</summary>
    string MethodName { get; }

    /// <summary>The call's arguments (filters may read or replace them before <see cref="Invoke"/>).</summary>
    object?[] Arguments { get; }

    /// <summary>The result after <see cref="Invoke"/> (filters may replace it).</summary>
    object? Result { get; set; }

    /// <summary>Runs the next filter, or the call itself after the last one.</summary>
    Task Invoke();
}

/// <summary>Context of a call arriving at an activation.</summary>
public interface IIncomingGrainCallContext : IGrainCallContext
{
    /// <summary>The grain instance being called.</summary>
    object Grain { get; }
}

/// <summary>Context of a call leaving a silo or cluster client.</summary>
public interface IOutgoingGrainCallContext : IGrainCallContext;

/// <summary>Runs around every call an activation receives (the tracing and logging hook).</summary>
public interface IIncomingGrainCallFilter
{
    /// <summary>Must call <c>context.Invoke()</c> for the call to happen.</summary>
    Task Invoke(IIncomingGrainCallContext context);
}

/// <summary>Runs around every call that leaves this process's runtime.</summary>
public interface IOutgoingGrainCallFilter
{
    /// <summary>Must call <c>context.Invoke()</c> for the call to happen.</summary>
    Task Invoke(IOutgoingGrainCallContext context);
}
