namespace MigrationFabric.Migration.Strategies;

/// <summary>Post-copy: switch at once; the destination faults pages from the source (with pre-paging) while the source pushes the rest.</summary>
public sealed class PostCopy(PostCopyOptions? options = null) : MigrationStrategy(options ?? new PostCopyOptions())
{
    private PostCopyOptions Options => (PostCopyOptions)BaseOptions;

    /// <inheritdoc/>
    public override string Name => "post-copy";

    private protected override bool NeedsLocalPages => true;

    private protected override Task BeforeSwitchOverAsync(MigrationSession session, CancellationToken cancellationToken)
        => PostCopyFaultChannel.SwitchOverAsync(session, SwitchOverMode.PostCopyAll, Options.Prefetch, Options.FaultTransport, cancellationToken);

    private protected override Task AfterSwitchOverAsync(MigrationSession session, CancellationToken cancellationToken)
        => BackgroundPush.RunAsync(session, cancellationToken);
}
