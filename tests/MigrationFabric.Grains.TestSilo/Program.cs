using MigrationFabric.Grains.Membership;
using MigrationFabric.Grains.Messaging;
using MigrationFabric.Grains.Runtime;
using MigrationFabric.Grains.Storage;
using MigrationFabric.Grains.TestSilo;

// Usage: MigrationFabric.Grains.TestSilo <membership.db> <storage.db> <silo-name>
// Prints "READY <silo address>" once Active; stops gracefully when stdin closes.
if (args.Length != 3)
{
    Console.Error.WriteLine("usage: MigrationFabric.Grains.TestSilo <membership.db> <storage.db> <silo-name>");
    return 2;
}

await using var silo = SiloFactory.Create(new SqliteMembershipTable(args[0], "test"), new SqliteGrainStorage(args[1]), new RpcSiloTransport(), args[2]);
await silo.StartAsync(CancellationToken.None);
Console.WriteLine($"READY {silo.Address}");
await Console.In.ReadToEndAsync();
await silo.StopAsync(CancellationToken.None);
return 0;
