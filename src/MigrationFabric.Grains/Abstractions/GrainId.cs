namespace MigrationFabric.Grains;

/// <summary>Identity of a grain: its interface type name plus its key, e.g. <c>MyApp.ICounter/c-1</c>.</summary>
public readonly record struct GrainId
{
    /// <summary>Creates an id; both parts must be non-empty and the type must not contain '/'.</summary>
    public GrainId(string type, string key)
    {
        ArgumentException.ThrowIfNullOrEmpty(type);
        ArgumentNullException.ThrowIfNull(key);
        if (type.Contains('/', StringComparison.Ordinal))
            throw new ArgumentException($"Grain type '{type}' must not contain '/'.", nameof(type));
        Type = type;
        Key = key;
    }

    /// <summary>The grain interface's wire name (its full C# name).</summary>
    public string Type { get; }

    /// <summary>The grain's key.</summary>
    public string Key { get; }

    /// <summary>A hash that every process computes alike (string.GetHashCode is randomized per process).</summary>
    public uint StableHash => GrainDirectory.StableHash.Of(Type, Key);

    /// <summary><c>type/key</c>.</summary>
    public override string ToString() => $"{Type}/{Key}";

    /// <summary>Parses the <c>type/key</c> form.</summary>
    public static GrainId Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        int slash = text.IndexOf('/', StringComparison.Ordinal);
        if (slash <= 0)
            throw new FormatException($"Grain id '{text}' is not of the form type/key.");
        return new GrainId(text[..slash], text[(slash + 1)..]);
    }
}
