namespace MigrationFabric.Cli.Rendering;

using MigrationFabric.Contracts.V1;

/// <summary>How mf names the channel that carried a migration's pages (MigrationReport.data_channel).</summary>
public static class DataChannelText
{
    /// <summary>"TCP", "gRPC", or "not reported" (an agent older than the field).</summary>
    public static string Of(MigrationReport? report) => report?.DataChannel switch
    {
        DataChannelKind.Tcp => "TCP",
        DataChannelKind.Grpc => "gRPC",
        _ => "not reported",
    };
}
