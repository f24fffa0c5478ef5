using System.Globalization;

namespace MigrationFabric.Grains.Membership;

/// <summary>A silo's identity: the endpoint it listens on plus the generation of this incarnation.</summary>
/// <remarks>
/// A restarted silo on the same endpoint gets a new (larger) generation, so an identity that was
/// declared dead never comes back. The text form is <c>host:port@generation</c>.
/// </remarks>
public sealed record SiloAddress : IComparable<SiloAddress>
{
    /// <summary>Creates an identity; <paramref name="generation"/> must be positive.</summary>
    public SiloAddress(string host, int port, long generation)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(host);
        if (host.Contains('@', StringComparison.Ordinal))
            throw new ArgumentException($"Silo host '{host}' must not contain '@'.", nameof(host));
        if (port is < 0 or > 65535)
            throw new ArgumentOutOfRangeException(nameof(port), port, "Silo port must be in 0..65535.");
        if (generation <= 0)
            throw new ArgumentOutOfRangeException(nameof(generation), generation, "Silo generation must be positive.");
        Host = host;
        Port = port;
        Generation = generation;
    }

    /// <summary>Host name or IP address the silo listens on.</summary>
    public string Host { get; }

    /// <summary>TCP port the silo listens on.</summary>
    public int Port { get; }

    /// <summary>Incarnation number: larger for a later start of a silo on the same endpoint.</summary>
    public long Generation { get; }

    /// <summary><c>host:port</c>, without the generation.</summary>
    public string Endpoint => Host.Contains(':', StringComparison.Ordinal) ? $"[{Host}]:{Port}" : $"{Host}:{Port}";

    /// <summary>An identity for a silo starting now on this endpoint (generation = UTC ticks of now).</summary>
    public static SiloAddress NewGeneration(string host, int port, TimeProvider? time = null) =>
        new(host, port, (time ?? TimeProvider.System).GetUtcNow().UtcTicks);

    /// <summary>True when both identities name the same endpoint (any generation).</summary>
    public bool IsSameEndpoint(SiloAddress other) =>
        other is not null && Port == other.Port && string.Equals(Host, other.Host, StringComparison.OrdinalIgnoreCase);

    /// <summary>Parses the <c>host:port@generation</c> form produced by <see cref="ToString"/>.</summary>
    public static SiloAddress Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        int at = text.LastIndexOf('@');
        int colon = at < 0 ? -1 : text.LastIndexOf(':', at);
        if (at < 0 || colon <= 0)
            throw new FormatException($"Silo address '{text}' is not of the form host:port@generation.");
        string host = text[..colon];
        if (host.StartsWith('[') && host.EndsWith(']'))
            host = host[1..^1];
        if (!int.TryParse(text.AsSpan(colon + 1, at - colon - 1), NumberStyles.None, CultureInfo.InvariantCulture, out int port)
            || !long.TryParse(text.AsSpan(at + 1), NumberStyles.None, CultureInfo.InvariantCulture, out long generation))
            throw new FormatException($"Silo address '{text}' has a port or generation that is not a number.");
        try
        {
            return new SiloAddress(host, port, generation);
        }
        catch (ArgumentException e)
        {
            throw new FormatException($"Silo address '{text}' is invalid: {e.Message}", e);
        }
    }

    /// <summary>Orders by endpoint, then generation (a stable order every silo agrees on).</summary>
    public int CompareTo(SiloAddress? other)
    {
        if (other is null) return 1;
        int c = string.Compare(Host, other.Host, StringComparison.OrdinalIgnoreCase);
        if (c != 0) return c;
        c = Port.CompareTo(other.Port);
        return c != 0 ? c : Generation.CompareTo(other.Generation);
    }

    /// <summary>Equality ignores host case, as DNS does.</summary>
    public bool Equals(SiloAddress? other) =>
        other is not null && Generation == other.Generation && IsSameEndpoint(other);

    /// <inheritdoc />
    public override int GetHashCode() =>
        HashCode.Combine(StringComparer.OrdinalIgnoreCase.GetHashCode(Host), Port, Generation);

    /// <summary><c>host:port@generation</c>.</summary>
    public override string ToString() => $"{Endpoint}@{Generation.ToString(CultureInfo.InvariantCulture)}";
}
