namespace MigrationFabric.Rpc.Tests.Interop;

/// <summary>Stock reflection and health clients (tests/interop/reflection.js) against our server: list, describe and call through reflected descriptors.</summary>
public sealed class ReflectionInteropTests(OurServerFixture fixture) : IClassFixture<OurServerFixture>
{
    public static readonly string[] Cases = ["reflection_v1alpha", "reflection_v1", "health", "stock_reflection_client"];

    public static TheoryData<string> CaseNames()
    {
        var data = new TheoryData<string>();
        foreach (var name in Cases)
        {
            data.Add(name);
        }

        return data;
    }

    [NodeTheory]
    [MemberData(nameof(CaseNames))]
    public async Task Stock_reflection_client_passes(string name)
    {
        var outcome = await NodeScript.RunAsync("reflection.js", ["--target", fixture.Target, "--case", name], TimeSpan.FromMinutes(2));
        NodeScript.AssertPassed(outcome, name);
    }

    [NodeFact]
    public async Task The_case_list_matches_reflection_js()
    {
        var offered = await NodeScript.ListAsync("reflection.js");
        Assert.Equal(offered.Order(StringComparer.Ordinal), Cases.Order(StringComparer.Ordinal));
    }
}
