using System.Buffers.Binary;

namespace MigrationFabric.Migration.MultiHost;

/// <summary>What a split source hands its main host at switch-over: the memory map of the plan, then the VM's device state (both through the SwitchOver call's device-state bytes).</summary>
/// <remarks>The main needs the map before its first fault, and SwitchOver is the one call that reaches it after the last page and before the resume.</remarks>
internal static class SplitSwitchOverState
{
    private static ReadOnlySpan<byte> Magic => "MFSPLIT1"u8;

    /// <summary>The map (serialized) followed by the device state.</summary>
    public static byte[] Wrap(ReadOnlySpan<byte> map, ReadOnlySpan<byte> deviceState)
    {
        var result = new byte[Magic.Length + 4 + map.Length + deviceState.Length];
        Magic.CopyTo(result);
        BinaryPrimitives.WriteInt32LittleEndian(result.AsSpan(Magic.Length), map.Length);
        map.CopyTo(result.AsSpan(Magic.Length + 4));
        deviceState.CopyTo(result.AsSpan(Magic.Length + 4 + map.Length));
        return result;
    }

    /// <summary>Splits what <see cref="Wrap"/> made.</summary>
    /// <exception cref="InvalidDataException">The bytes do not come from a split source (or are truncated).</exception>
    public static (MemoryMap Map, ReadOnlyMemory<byte> DeviceState) Unwrap(ReadOnlyMemory<byte> state)
    {
        var span = state.Span;
        if (span.Length < Magic.Length + 4 || !span[..Magic.Length].SequenceEqual(Magic))
            throw new InvalidDataException("the switch-over carries no split memory map: the source did not run a split migration to this main host.");
        int length = BinaryPrimitives.ReadInt32LittleEndian(span[Magic.Length..]);
        if (length <= 0 || length > span.Length - Magic.Length - 4) throw new InvalidDataException($"the split switch-over's memory map length {length} does not fit its {span.Length} bytes.");
        var map = MemoryMap.Deserialize(span.Slice(Magic.Length + 4, length));
        return (map, state[(Magic.Length + 4 + length)..]);
    }
}
