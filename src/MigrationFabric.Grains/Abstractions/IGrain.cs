namespace MigrationFabric.Grains;

/// <summary>Marker for grain interfaces; the source generator emits a proxy and a dispatcher for each one.</summary>
public interface IGrain;

/// <summary>A grain addressed by a string key (the only key kind this runtime has, as the fabric names hosts and VMs by string).</summary>
public interface IGrainWithStringKey : IGrain;
