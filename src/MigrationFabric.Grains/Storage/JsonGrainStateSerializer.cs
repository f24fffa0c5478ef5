using System.Text.Json;

namespace MigrationFabric.Grains.Storage;

/// <summary>The default state serializer: UTF-8 JSON (System.Text.Json), readable in the database.</summary>
public sealed class JsonGrainStateSerializer : IGrainStateSerializer
{
    private readonly JsonSerializerOptions _options;

    /// <summary>Creates the serializer; <paramref name="options"/> defaults to web defaults with fields included.</summary>
    public JsonGrainStateSerializer(JsonSerializerOptions? options = null) =>
        _options = options ?? new JsonSerializerOptions(JsonSerializerDefaults.Web) { IncludeFields = true };

    /// <inheritdoc />
    public byte[] Serialize<T>(T state) => JsonSerializer.SerializeToUtf8Bytes(state, _options);

    /// <inheritdoc />
    public T Deserialize<T>(ReadOnlySpan<byte> data)
    {
        try
        {
            return JsonSerializer.Deserialize<T>(data, _options)
                ?? throw new InvalidDataException($"Stored grain state of type {typeof(T).Name} is JSON null.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"Stored grain state is not valid JSON for {typeof(T).Name}: {e.Message}", e);
        }
    }
}
