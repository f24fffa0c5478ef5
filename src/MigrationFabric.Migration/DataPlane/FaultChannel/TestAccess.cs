// The fault channel's two ends are internal; their tests drive them over real loopback sockets directly.
[assembly: System.Runtime.CompilerServices.InternalsVisibleTo("MigrationFabric.Migration.Tests")]
