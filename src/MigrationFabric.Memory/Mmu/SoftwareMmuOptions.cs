namespace MigrationFabric.Memory.Mmu;

/// <summary>Knobs of the software MMU.</summary>
public sealed class SoftwareMmuOptions
{
    /// <summary>Period over which a throttled vCPU runs then sleeps (run (1 - t), sleep t of it). Default 10 ms, as QEMU's CPU throttle timeslice.</summary>
    public TimeSpan ThrottleSlice { get; set; } = TimeSpan.FromMilliseconds(10);

    /// <summary>Times one access may call the fault handler and still find its page absent before the vCPU stops with an error. Default 16.</summary>
    public int MaxFaultRetries { get; set; } = 16;

    /// <summary>Throws an exception naming the first invalid option.</summary>
    public void Validate()
    {
        if (ThrottleSlice <= TimeSpan.Zero || ThrottleSlice > TimeSpan.FromSeconds(1))
            throw new ArgumentException($"SoftwareMmuOptions.ThrottleSlice must be within (0, 1 s], was {ThrottleSlice}.", nameof(ThrottleSlice));
        if (MaxFaultRetries < 1)
            throw new ArgumentException($"SoftwareMmuOptions.MaxFaultRetries must be at least 1, was {MaxFaultRetries}.", nameof(MaxFaultRetries));
    }
}
