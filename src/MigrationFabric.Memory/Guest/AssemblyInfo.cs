using System.Runtime.CompilerServices;

// The tests reach the mmap wrapper directly to prove its failure path (a size GuestMemoryOptions would refuse).
[assembly: InternalsVisibleTo("MigrationFabric.Memory.Tests")]
