namespace MigrationFabric.Grains;

/// <summary>On a grain class: its requests may interleave at await points (still one thread at a time).</summary>
[AttributeUsage(AttributeTargets.Class, Inherited = true)]
public sealed class ReentrantAttribute : Attribute;

/// <summary>On a grain interface method: calls to it interleave with any other request, even on a non-reentrant grain.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class AlwaysInterleaveAttribute : Attribute;

/// <summary>On a grain interface method: overrides the request timeout (a TimeSpan text, e.g. "00:00:05").</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class ResponseTimeoutAttribute(string timeout) : Attribute
{
    /// <summary>The timeout, parsed at build time by the source generator.</summary>
    public TimeSpan Timeout { get; } = TimeSpan.Parse(timeout, System.Globalization.CultureInfo.InvariantCulture);
}
