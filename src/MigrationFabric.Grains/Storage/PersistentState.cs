namespace MigrationFabric.Grains.Storage;

/// <summary>The <see cref="IPersistentState{T}"/> a grain gets: one key in one <see cref="IGrainStorage"/>.</summary>
public sealed class PersistentState<T> : IPersistentState<T>
{
    private readonly GrainStateKey _key;
    private readonly IGrainStorage _storage;
    private readonly IGrainStateSerializer _serializer;
    private readonly Func<T> _create;

    /// <summary>Creates the state; <paramref name="create"/> makes the fresh value (default: <c>new T()</c> via Activator).</summary>
    public PersistentState(GrainStateKey key, IGrainStorage storage, IGrainStateSerializer? serializer = null, Func<T>? create = null)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(storage);
        _key = key;
        _storage = storage;
        _serializer = serializer ?? new JsonGrainStateSerializer();
        _create = create ?? CreateDefault;
        State = _create();
    }

    /// <inheritdoc />
    public T State { get; set; }

    /// <inheritdoc />
    public string? Etag { get; private set; }

    /// <inheritdoc />
    public bool RecordExists => Etag is not null;

    /// <summary>The key this state is stored under.</summary>
    public GrainStateKey Key => _key;

    /// <inheritdoc />
    public async Task ReadStateAsync(CancellationToken cancellationToken = default)
    {
        var record = await _storage.ReadAsync(_key, cancellationToken).ConfigureAwait(false);
        State = record.Exists ? _serializer.Deserialize<T>(record.Data.Span) : _create();
        Etag = record.Etag;
    }

    /// <inheritdoc />
    public async Task WriteStateAsync(CancellationToken cancellationToken = default)
    {
        byte[] data = _serializer.Serialize(State);
        Etag = await _storage.WriteAsync(_key, data, Etag, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task ClearStateAsync(CancellationToken cancellationToken = default)
    {
        await _storage.ClearAsync(_key, Etag, cancellationToken).ConfigureAwait(false);
        Etag = null;
        State = _create();
    }

    private static T CreateDefault()
    {
        if (typeof(T).IsValueType || typeof(T).GetConstructor(Type.EmptyTypes) is not null)
            return Activator.CreateInstance<T>();
        if (typeof(T) == typeof(string))
            return (T)(object)string.Empty;
        throw new InvalidOperationException(
            $"Grain state type {typeof(T).Name} has no parameterless constructor; pass a factory to PersistentState.");
    }
}
