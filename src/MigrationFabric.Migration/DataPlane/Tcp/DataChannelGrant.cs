using MigrationFabric.Contracts.V1;

namespace MigrationFabric.Migration.DataPlane.Tcp;

/// <summary>What a data-channel token was issued for.</summary>
/// <param name="MigrationId">The migration.</param>
/// <param name="StreamIndex">The stream of that migration.</param>
/// <param name="Purpose">What the channel carries.</param>
/// <param name="ExpiresAt">When the token stops being accepted unused.</param>
public sealed record DataChannelGrant(string MigrationId, uint StreamIndex, DataChannelPurpose Purpose, DateTimeOffset ExpiresAt);
