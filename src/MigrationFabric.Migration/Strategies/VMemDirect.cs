namespace MigrationFabric.Migration.Strategies;

/// <summary>Which memory-virtualizing migration <see cref="VMemDirect"/> runs; they differ in where the pages live at either end, not in how the source sends them.</summary>
public enum VirtualizationKind
{
    /// <summary>Memory-virtualizing (seed 004): into a destination's private virtual memory, each page directly to its share or its swap slot, retransfers in place.</summary>
    VMemDirect,

    /// <summary>Baseline: the destination uses plain swap (pages out when full, pages in to apply retransfers).</summary>
    NaiveSwap,

    /// <summary>Memory-devirtualizing: out of the source's private virtual memory, every page read directly from its share or its swap (<see cref="MigrationJob.PageReader"/>).</summary>
    Devirtualize,

    /// <summary>Baseline: a destination with enough memory for the whole VM.</summary>
    Ideal,
}

/// <summary>Options of <see cref="VMemDirect"/>.</summary>
public sealed class VMemDirectOptions : PreCopyOptions
{
    /// <summary>Which migration this is (it names the report). Default <see cref="VirtualizationKind.VMemDirect"/>.</summary>
    public VirtualizationKind Kind { get; set; } = VirtualizationKind.VMemDirect;

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        if (!Enum.IsDefined(Kind)) throw new ArgumentException($"{nameof(VMemDirectOptions)}.{nameof(Kind)} {(int)Kind} is not a virtualization kind.");
    }
}

/// <summary>Memory-virtualizing and -devirtualizing migration (VMemDirect, seed 004) and its baselines, run by one code path: pre-copy rounds whose pages the destination places through its private virtual memory (or plain swap, or RAM).</summary>
/// <remarks>
/// The source does the same in every kind: the destination decides where pages go (an
/// <see cref="DataPlane.IncomingMigrationOptions.Placement"/>), so the comparison between kinds is fair. Devirtualizing
/// needs the source's <see cref="MigrationJob.PageReader"/> so swapped pages are read from swap without a page-in.
/// </remarks>
public sealed class VMemDirect(VMemDirectOptions? options = null) : MigrationStrategy(options ?? new VMemDirectOptions())
{
    private VMemDirectOptions Options => (VMemDirectOptions)BaseOptions;

    /// <inheritdoc/>
    public override string Name => Options.Kind switch
    {
        VirtualizationKind.NaiveSwap => "naive-swap",
        VirtualizationKind.Devirtualize => "vmem-devirtualize",
        VirtualizationKind.Ideal => "ideal",
        _ => "vmem-direct",
    };

    private protected override async Task BeforeSwitchOverAsync(MigrationSession session, CancellationToken cancellationToken)
    {
        if (Options.Kind == VirtualizationKind.Devirtualize && session.Job.PageReader is null)
            throw new ArgumentException($"{nameof(MigrationJob)}.{nameof(MigrationJob.PageReader)} is required for memory-devirtualizing migration: swapped pages are read from the private swap through it.");
        session.Streams.PageReader = session.Job.PageReader;
        await RoundLoop.RunAsync(session, Options, Options.MaxRounds, cancellationToken).ConfigureAwait(false);
        await SwitchOver.RunAsync(session, SwitchOverMode.StopAndCopy, 0, cancellationToken).ConfigureAwait(false);
    }
}
