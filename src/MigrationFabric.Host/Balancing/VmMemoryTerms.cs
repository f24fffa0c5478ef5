namespace MigrationFabric.Host.Balancing;

using MigrationFabric.Contracts.V1;
using MigrationFabric.Host.Errors;
using MigrationFabric.Host.Hypervisor;
using MigrationFabric.Memory.Pages;
using MigrationFabric.Memory.Swap;

/// <summary>A new VM's memory terms from CreateVmRequest: its private share (over-commit), reservation and weight (VMMB), checked.</summary>
public static class VmMemoryTerms
{
    /// <summary>Largest weight a VM may have.</summary>
    public const uint MaxWeight = 10_000;

    /// <summary>Throws INVALID_ARGUMENT naming the field when share_bytes, reservation_bytes or weight cannot hold for the VM's memory_bytes.</summary>
    public static void Validate(CreateVmRequest request, long minimumShareBytes)
    {
        ulong size = request.MemoryBytes;
        if (request.ShareBytes != 0)
        {
            if (request.ShareBytes % Page.Size != 0 || request.ShareBytes > size || (long)request.ShareBytes < Math.Min(minimumShareBytes, (long)size))
                throw FabricException.Invalid(
                    $"share_bytes must be a multiple of {Page.Size} within {minimumShareBytes >> 20} MiB..memory_bytes ({size}), was {request.ShareBytes} (0: no over-commit).");
        }
        if (request.ReservationBytes > size)
            throw FabricException.Invalid($"reservation_bytes {request.ReservationBytes} exceeds the VM's memory_bytes {size}.");
        if (request.Weight > MaxWeight)
            throw FabricException.Invalid($"weight must be within 1..{MaxWeight} (0: the default 1), was {request.Weight}.");
    }

    /// <summary>Private memory for an over-committed VM (share_bytes set): its share, and its swap file in <paramref name="dataDirectory"/>; null when share_bytes is 0.</summary>
    public static PrivateVirtualMemoryOptions? PrivateMemory(CreateVmRequest request, string dataDirectory)
    {
        if (request.ShareBytes == 0) return null;
        Directory.CreateDirectory(dataDirectory);
        return new PrivateVirtualMemoryOptions
        {
            SharePages = (long)request.ShareBytes / Page.Size,
            SwapFilePath = Path.Combine(dataDirectory, $"{request.Name}-{Guid.NewGuid():N}.swap"),
        };
    }

    /// <summary>Gives <paramref name="vm"/> the request's reservation and weight.</summary>
    public static void Apply(CreateVmRequest request, LocalVm vm) => Apply((long)request.ReservationBytes, request.Weight, vm);

    /// <summary>Gives <paramref name="vm"/> a reservation and weight (0 = the default 1): at creation, and at a migration's destination, which must keep them.</summary>
    public static void Apply(long reservationBytes, uint weight, LocalVm vm)
    {
        vm.ReservationBytes = Math.Clamp(reservationBytes, 0, vm.MemoryBytes);
        vm.Weight = weight == 0 ? 1 : Math.Min(weight, MaxWeight);
    }
}
