namespace MigrationFabric.Memory.Ballooning;

/// <summary>Limits of a VM's balloon.</summary>
public sealed class BalloonOptions
{
    /// <summary>Most of the VM's pages the balloon may hold, as a fraction. Default 0.9, so the guest always keeps 10%.</summary>
    public double MaxFraction { get; set; } = 0.9;

    /// <summary>Throws an exception naming the first invalid option.</summary>
    public void Validate()
    {
        if (double.IsNaN(MaxFraction) || MaxFraction <= 0 || MaxFraction > 1)
            throw new ArgumentException($"BalloonOptions.MaxFraction must be within (0, 1], was {MaxFraction}.", nameof(MaxFraction));
    }
}
