using System.Net.Http.Headers;
using Microsoft.AspNetCore.Http;

namespace MigrationFabric.Rpc.Framing;

/// <summary>Moves custom metadata between <see cref="Metadata"/> and HTTP headers ("-bin" values as unpadded base64).</summary>
public static class MetadataHeaders
{
    /// <summary>Custom metadata from a server request's headers.</summary>
    public static Metadata FromRequest(IHeaderDictionary headers)
    {
        ArgumentNullException.ThrowIfNull(headers);
        var metadata = new Metadata();
        foreach (var header in headers)
        {
            if (GrpcProtocol.IsReservedHeader(header.Key))
            {
                continue;
            }

            foreach (var value in header.Value)
            {
                if (value is not null)
                {
                    TryAdd(metadata, header.Key, value);
                }
            }
        }

        return metadata;
    }

    /// <summary>Custom metadata from client response headers or trailers.</summary>
    public static Metadata FromResponse(HttpHeaders headers, HttpHeaders? more = null)
    {
        ArgumentNullException.ThrowIfNull(headers);
        var metadata = new Metadata();
        AddFrom(metadata, headers);
        if (more is not null)
        {
            AddFrom(metadata, more);
        }

        return metadata;
    }

    /// <summary>Adds metadata to server response headers or trailers.</summary>
    public static void AddTo(IHeaderDictionary headers, Metadata metadata)
    {
        ArgumentNullException.ThrowIfNull(headers);
        ArgumentNullException.ThrowIfNull(metadata);
        foreach (var entry in metadata)
        {
            var value = entry.IsBinary ? ToUnpaddedBase64(entry.ValueBytes) : entry.Value;
            headers.Append(entry.Key, value);
        }
    }

    /// <summary>Adds metadata to a client request's headers.</summary>
    public static void AddTo(HttpHeaders headers, Metadata metadata)
    {
        ArgumentNullException.ThrowIfNull(headers);
        ArgumentNullException.ThrowIfNull(metadata);
        foreach (var entry in metadata)
        {
            var value = entry.IsBinary ? ToUnpaddedBase64(entry.ValueBytes) : entry.Value;
            headers.TryAddWithoutValidation(entry.Key, value);
        }
    }

    private static void AddFrom(Metadata metadata, HttpHeaders headers)
    {
        foreach (var header in headers.NonValidated)
        {
            if (GrpcProtocol.IsReservedHeader(header.Key))
            {
                continue;
            }

            foreach (var value in header.Value)
            {
                TryAdd(metadata, header.Key, value);
            }
        }
    }

    private static void TryAdd(Metadata metadata, string key, string value)
    {
        try
        {
            metadata.Add(key, value);
        }
        catch (ArgumentException)
        {
            // A header that is not valid gRPC metadata (odd key or value) is HTTP's business, not the call's.
        }
    }

    private static string ToUnpaddedBase64(byte[] value) => Convert.ToBase64String(value).TrimEnd('=');
}
