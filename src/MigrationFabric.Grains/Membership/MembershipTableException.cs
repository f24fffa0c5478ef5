namespace MigrationFabric.Grains.Membership;

/// <summary>A membership table operation failed for a reason other than losing a compare-and-swap.</summary>
public sealed class MembershipTableException : Exception
{
    /// <summary>Creates the exception.</summary>
    public MembershipTableException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>This silo identity has been declared dead (or was dead before it started); it must stop.</summary>
public sealed class SiloDeclaredDeadException : Exception
{
    /// <summary>Creates the exception.</summary>
    public SiloDeclaredDeadException(SiloAddress silo, string message) : base(message) => Silo = silo;

    /// <summary>The dead identity.</summary>
    public SiloAddress Silo { get; }
}
