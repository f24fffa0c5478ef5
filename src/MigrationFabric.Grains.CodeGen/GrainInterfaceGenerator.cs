using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Text;

namespace MigrationFabric.Grains.CodeGen;

/// <summary>Emits a proxy and a dispatcher (a GrainInterfaceDescriptor) for every grain interface of the compilation.</summary>
[Generator(LanguageNames.CSharp)]
public sealed class GrainInterfaceGenerator : IIncrementalGenerator
{
    private const string GrainInterfaceName = "MigrationFabric.Grains.IGrain";
    private const string TimeoutAttributeName = "MigrationFabric.Grains.ResponseTimeoutAttribute";
    private const string InterleaveAttributeName = "MigrationFabric.Grains.AlwaysInterleaveAttribute";

    private static readonly SymbolDisplayFormat TypeFormat = SymbolDisplayFormat.FullyQualifiedFormat
        .WithMiscellaneousOptions(SymbolDisplayMiscellaneousOptions.UseSpecialTypes | SymbolDisplayMiscellaneousOptions.EscapeKeywordIdentifiers | SymbolDisplayMiscellaneousOptions.IncludeNullableReferenceTypeModifier);

    private static readonly DiagnosticDescriptor Unsupported = new(
        "MFG001", "Unsupported grain interface", "Grain interface '{0}': {1}", "MigrationFabric.Grains",
        DiagnosticSeverity.Error, isEnabledByDefault: true);

    /// <inheritdoc />
    public void Initialize(IncrementalGeneratorInitializationContext context)
    {
        var outputs = context.SyntaxProvider.CreateSyntaxProvider(
                static (node, _) => node is InterfaceDeclarationSyntax { BaseList: not null },
                static (ctx, ct) => Build(ctx, ct))
            .Where(static r => r is not null);
        context.RegisterSourceOutput(outputs, static (spc, result) =>
        {
            if (result!.Error is not null)
            {
                spc.ReportDiagnostic(Diagnostic.Create(Unsupported, result.Location, result.Name, result.Error));
                return;
            }
            spc.AddSource(result.HintName, SourceText.From(result.Source!, Encoding.UTF8));
        });
    }

    private sealed class Output
    {
        public string Name = "";
        public string HintName = "";
        public string? Source;
        public string? Error;
        public Location? Location;
    }

    private enum ReturnKind { Task, TaskOfT, ValueTask, ValueTaskOfT }

    private sealed class MethodModel
    {
        public string Name = "";
        public string Declaring = "";
        public ReturnKind Kind;
        public string ReturnType = "";
        public string? ResultType;
        public List<(string Name, string Type)> Parameters = new();
        public string? Timeout;
        public bool AlwaysInterleave;
    }

    private static Output? Build(GeneratorSyntaxContext ctx, System.Threading.CancellationToken ct)
    {
        if (ctx.SemanticModel.GetDeclaredSymbol(ctx.Node, ct) is not INamedTypeSymbol symbol) return null;
        if (!symbol.AllInterfaces.Any(i => i.ToDisplayString() == GrainInterfaceName)) return null;
        // Partial interfaces have several declarations: emit once, for the first one.
        if (symbol.DeclaringSyntaxReferences.Length > 1 && symbol.DeclaringSyntaxReferences[0].GetSyntax(ct) != ctx.Node) return null;
        var wireName = symbol.ToDisplayString();
        if (wireName.StartsWith("MigrationFabric.Grains.IGrain", StringComparison.Ordinal) && symbol.ContainingNamespace.ToDisplayString() == "MigrationFabric.Grains") return null;
        var output = new Output { Name = wireName, Location = ctx.Node.GetLocation() };
        if (symbol.IsGenericType) { output.Error = "generic grain interfaces are not supported"; return output; }
        for (ISymbol? s = symbol; s is INamedTypeSymbol; s = s.ContainingType)
        {
            if (s.DeclaredAccessibility is Accessibility.Private or Accessibility.Protected or Accessibility.ProtectedAndInternal)
            { output.Error = "a grain interface and its containing types must be public or internal"; return output; }
        }

        var methods = new List<MethodModel>();
        var interfaces = new List<INamedTypeSymbol> { symbol };
        interfaces.AddRange(symbol.AllInterfaces.Where(i => i.AllInterfaces.Any(b => b.ToDisplayString() == GrainInterfaceName)));
        foreach (var iface in interfaces)
        {
            foreach (var m in iface.GetMembers().OfType<IMethodSymbol>())
            {
                if (m.MethodKind != MethodKind.Ordinary || !m.IsAbstract) continue;
                var model = new MethodModel { Name = m.Name, Declaring = iface.ToDisplayString(TypeFormat), ReturnType = m.ReturnType.ToDisplayString(TypeFormat) };
                if (m.IsGenericMethod) { output.Error = $"method '{m.Name}' is generic; generic grain methods are not supported"; return output; }
                var rt = m.ReturnType as INamedTypeSymbol;
                var rtName = rt?.ConstructedFrom.ToDisplayString();
                switch (rtName)
                {
                    case "System.Threading.Tasks.Task": model.Kind = ReturnKind.Task; break;
                    case "System.Threading.Tasks.ValueTask": model.Kind = ReturnKind.ValueTask; break;
                    case "System.Threading.Tasks.Task<TResult>": model.Kind = ReturnKind.TaskOfT; model.ResultType = rt!.TypeArguments[0].ToDisplayString(TypeFormat); break;
                    case "System.Threading.Tasks.ValueTask<TResult>": model.Kind = ReturnKind.ValueTaskOfT; model.ResultType = rt!.TypeArguments[0].ToDisplayString(TypeFormat); break;
                    default: output.Error = $"method '{m.Name}' must return Task, Task<T>, ValueTask or ValueTask<T>"; return output;
                }
                foreach (var p in m.Parameters)
                {
                    if (p.RefKind != RefKind.None) { output.Error = $"parameter '{p.Name}' of '{m.Name}' is ref/out/in; grain calls are by value"; return output; }
                    model.Parameters.Add(("@" + p.Name, p.Type.ToDisplayString(TypeFormat)));
                }
                foreach (var a in m.GetAttributes())
                {
                    var an = a.AttributeClass?.ToDisplayString();
                    if (an == TimeoutAttributeName && a.ConstructorArguments.Length == 1 && a.ConstructorArguments[0].Value is string t)
                    {
                        if (!TimeSpan.TryParse(t, System.Globalization.CultureInfo.InvariantCulture, out var ts) || ts <= TimeSpan.Zero)
                        { output.Error = $"[ResponseTimeout(\"{t}\")] on '{m.Name}' is not a positive TimeSpan (format hh:mm:ss.fff)"; return output; }
                        model.Timeout = ts.Ticks.ToString(System.Globalization.CultureInfo.InvariantCulture);
                    }
                    else if (an == InterleaveAttributeName) model.AlwaysInterleave = true;
                }
                methods.Add(model);
            }
        }

        var safe = new StringBuilder();
        foreach (var c in wireName) safe.Append(char.IsLetterOrDigit(c) ? c : '_');
        var proxy = safe + "_Proxy";
        var descriptor = safe + "_Descriptor";
        var full = symbol.ToDisplayString(TypeFormat);
        output.HintName = safe + ".g.cs";
        output.Source = Emit(full, wireName, proxy, descriptor, methods);
        return output;
    }

    private static string Emit(string full, string wireName, string proxy, string descriptor, List<MethodModel> methods)
    {
        var sb = new StringBuilder();
        sb.AppendLine("// <auto-generated> by MigrationFabric.Grains.CodeGen </auto-generated>");
        sb.AppendLine("#nullable enable");
        sb.AppendLine("#pragma warning disable CS1591");
        sb.AppendLine($"[assembly: global::MigrationFabric.Grains.Invocation.GrainInterfaceDescriptorAttribute(typeof({full}), typeof(global::MigrationFabric.Grains.Generated.{descriptor}))]");
        sb.AppendLine("namespace MigrationFabric.Grains.Generated");
        sb.AppendLine("{");
        // Proxy
        sb.AppendLine($"    internal sealed class {proxy} : global::MigrationFabric.Grains.Invocation.GrainReference, {full}");
        sb.AppendLine("    {");
        sb.AppendLine($"        public {proxy}(global::MigrationFabric.Grains.GrainId id, global::MigrationFabric.Grains.Invocation.GrainInterfaceDescriptor descriptor, global::MigrationFabric.Grains.Invocation.IGrainCallInvoker invoker) : base(id, descriptor, invoker) {{ }}");
        for (var i = 0; i < methods.Count; i++)
        {
            var m = methods[i];
            var ps = string.Join(", ", m.Parameters.Select(p => p.Type + " " + p.Name));
            var args = m.Parameters.Count == 0 ? "global::System.Array.Empty<object?>()" : "new object?[] { " + string.Join(", ", m.Parameters.Select(p => p.Name)) + " }";
            var body = m.Kind switch
            {
                ReturnKind.Task => $"InvokeVoidAsync({i}, {args})",
                ReturnKind.TaskOfT => $"InvokeAsync<{m.ResultType}>({i}, {args})",
                ReturnKind.ValueTask => $"new global::System.Threading.Tasks.ValueTask(InvokeVoidAsync({i}, {args}))",
                _ => $"new global::System.Threading.Tasks.ValueTask<{m.ResultType}>(InvokeAsync<{m.ResultType}>({i}, {args}))",
            };
            sb.AppendLine($"        {m.ReturnType} {m.Declaring}.{m.Name}({ps}) => {body};");
        }
        sb.AppendLine("    }");
        // Descriptor
        sb.AppendLine($"    internal sealed class {descriptor} : global::MigrationFabric.Grains.Invocation.GrainInterfaceDescriptor");
        sb.AppendLine("    {");
        sb.AppendLine($"        public {descriptor}() : base(typeof({full}), \"{wireName}\", new global::MigrationFabric.Grains.Invocation.GrainMethodDescriptor[]");
        sb.AppendLine("        {");
        for (var i = 0; i < methods.Count; i++)
        {
            var m = methods[i];
            var timeout = m.Timeout is null ? "null" : $"global::System.TimeSpan.FromTicks({m.Timeout}L)";
            sb.AppendLine($"            new(\"{m.Name}\", {i}, {timeout}, {(m.AlwaysInterleave ? "true" : "false")}, {(m.ResultType is null ? "false" : "true")}),");
        }
        sb.AppendLine("        }) { }");
        sb.AppendLine();
        sb.AppendLine($"        public override global::MigrationFabric.Grains.Invocation.GrainReference CreateReference(global::MigrationFabric.Grains.GrainId id, global::MigrationFabric.Grains.Invocation.IGrainCallInvoker invoker) => new {proxy}(id, this, invoker);");
        sb.AppendLine();
        sb.AppendLine("        public override global::System.Threading.Tasks.ValueTask<object?> Invoke(object grain, int methodId, object?[] args)");
        sb.AppendLine("        {");
        sb.AppendLine("            switch (methodId)");
        sb.AppendLine("            {");
        for (var i = 0; i < methods.Count; i++)
        {
            var m = methods[i];
            var call = $"(({m.Declaring})grain).{m.Name}({string.Join(", ", m.Parameters.Select((p, k) => $"({p.Type})args[{k}]!"))})";
            sb.AppendLine($"                case {i}: return global::MigrationFabric.Grains.Invocation.GrainInvokeHelpers.Box({call});");
        }
        sb.AppendLine("                default: throw UnknownMethod(methodId);");
        sb.AppendLine("            }");
        sb.AppendLine("        }");
        sb.AppendLine();
        sb.AppendLine("        public override void WriteArguments(int methodId, object?[] args, global::MigrationFabric.Grains.Serialization.GrainWriter writer)");
        sb.AppendLine("        {");
        sb.AppendLine("            switch (methodId)");
        sb.AppendLine("            {");
        for (var i = 0; i < methods.Count; i++)
        {
            var m = methods[i];
            sb.Append($"                case {i}:");
            for (var k = 0; k < m.Parameters.Count; k++)
                sb.Append($" global::MigrationFabric.Grains.Serialization.GrainCodec.Write<{m.Parameters[k].Type}>(writer, ({m.Parameters[k].Type})args[{k}]!);");
            sb.AppendLine(" return;");
        }
        sb.AppendLine("                default: throw UnknownMethod(methodId);");
        sb.AppendLine("            }");
        sb.AppendLine("        }");
        sb.AppendLine();
        sb.AppendLine("        public override object?[] ReadArguments(int methodId, ref global::MigrationFabric.Grains.Serialization.GrainReader reader)");
        sb.AppendLine("        {");
        sb.AppendLine("            switch (methodId)");
        sb.AppendLine("            {");
        for (var i = 0; i < methods.Count; i++)
        {
            var m = methods[i];
            if (m.Parameters.Count == 0) { sb.AppendLine($"                case {i}: return global::System.Array.Empty<object?>();"); continue; }
            sb.AppendLine($"                case {i}:");
            sb.AppendLine("                {");
            sb.AppendLine($"                    var a = new object?[{m.Parameters.Count}];");
            for (var k = 0; k < m.Parameters.Count; k++)
                sb.AppendLine($"                    a[{k}] = global::MigrationFabric.Grains.Serialization.GrainCodec.Read<{m.Parameters[k].Type}>(ref reader);");
            sb.AppendLine("                    return a;");
            sb.AppendLine("                }");
        }
        sb.AppendLine("                default: throw UnknownMethod(methodId);");
        sb.AppendLine("            }");
        sb.AppendLine("        }");
        sb.AppendLine();
        sb.AppendLine("        public override void WriteResult(int methodId, object? result, global::MigrationFabric.Grains.Serialization.GrainWriter writer)");
        sb.AppendLine("        {");
        sb.AppendLine("            switch (methodId)");
        sb.AppendLine("            {");
        for (var i = 0; i < methods.Count; i++)
        {
            var m = methods[i];
            sb.AppendLine(m.ResultType is null
                ? $"                case {i}: return;"
                : $"                case {i}: global::MigrationFabric.Grains.Serialization.GrainCodec.Write<{m.ResultType}>(writer, ({m.ResultType})result!); return;");
        }
        sb.AppendLine("                default: throw UnknownMethod(methodId);");
        sb.AppendLine("            }");
        sb.AppendLine("        }");
        sb.AppendLine();
        sb.AppendLine("        public override object? ReadResult(int methodId, ref global::MigrationFabric.Grains.Serialization.GrainReader reader)");
        sb.AppendLine("        {");
        sb.AppendLine("            switch (methodId)");
        sb.AppendLine("            {");
        for (var i = 0; i < methods.Count; i++)
        {
            var m = methods[i];
            sb.AppendLine(m.ResultType is null
                ? $"                case {i}: return null;"
                : $"                case {i}: return global::MigrationFabric.Grains.Serialization.GrainCodec.Read<{m.ResultType}>(ref reader);");
        }
        sb.AppendLine("                default: throw UnknownMethod(methodId);");
        sb.AppendLine("            }");
        sb.AppendLine("        }");
        sb.AppendLine("    }");
        sb.AppendLine("}");
        return sb.ToString();
    }
}
