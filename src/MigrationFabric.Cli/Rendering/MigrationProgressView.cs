namespace MigrationFabric.Cli.Rendering;

using MigrationFabric.Cli.Client;
using MigrationFabric.Contracts.V1;
using Spectre.Console;
using Migration = MigrationFabric.Contracts.V1.Migration;

/// <summary>One migration's progress display, fed by WatchMigration events.</summary>
public interface IMigrationBar
{
    /// <summary>Shows an event.</summary>
    void Update(MigrationEvent e);
}

/// <summary>Where migration bars are added.</summary>
public interface IMigrationBars
{
    /// <summary>A new bar labelled <paramref name="label"/>.</summary>
    IMigrationBar Add(string label);
}

/// <summary>Live Spectre progress bars on a terminal; one line per phase or round change when there is none (CI, pipes).</summary>
public sealed class MigrationProgressView(IAnsiConsole console)
{
    /// <summary>Runs <paramref name="body"/> with a place to add bars.</summary>
    public async Task<T> RunAsync<T>(Func<IMigrationBars, Task<T>> body)
    {
        if (!console.Profile.Capabilities.Interactive || !console.Profile.Capabilities.Ansi)
            return await body(new LineBars(console)).ConfigureAwait(false);
        T result = default!;
        await console.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new SpinnerColumn())
            .StartAsync(async ctx => result = await body(new LiveBars(ctx)).ConfigureAwait(false))
            .ConfigureAwait(false);
        return result;
    }

    /// <summary>Watches migration <paramref name="id"/> to its end, feeding <paramref name="bar"/>; returns the final migration.</summary>
    public static async Task<Migration> WatchToEndAsync(FabricClient client, string id, IMigrationBar bar, CancellationToken ct)
    {
        await foreach (var e in client.WatchAsync(id, 100, ct).ConfigureAwait(false))
        {
            bar.Update(e);
            if (e.Final is not null) return e.Final;
        }
        // The stream ended without a final event (the serving agent went away): ask once more.
        var m = await client.DescribeMigrationAsync(id, ct).ConfigureAwait(false);
        bar.Update(new MigrationEvent { MigrationId = id, Phase = m.Phase, Final = m });
        return m;
    }

    /// <summary>Short phase name ("pre-copy", "completed").</summary>
    public static string Phase(MigrationPhase p) => p switch
    {
        MigrationPhase.Planning => "planning",
        MigrationPhase.PreCopy => "pre-copy",
        MigrationPhase.Switchover => "switch-over",
        MigrationPhase.PostCopy => "post-copy",
        MigrationPhase.Verifying => "verifying",
        MigrationPhase.Completed => "completed",
        MigrationPhase.Failed => "FAILED",
        MigrationPhase.Cancelled => "cancelled",
        _ => "?",
    };

    private static string Status(MigrationEvent e)
    {
        string s = Phase(e.Phase);
        if (e.Round > 0 && e.Phase == MigrationPhase.PreCopy) s += $" round {e.Round}";
        s += $", sent {Units.Bytes(e.BytesSent)}";
        if (e.BytesRemaining > 0 && e.Final is null) s += $", {Units.Bytes(e.BytesRemaining)} left";
        if (e.RemoteFaults > 0) s += $", {e.RemoteFaults} faults";
        if (e.ThrottlePercent > 0) s += $", throttle {e.ThrottlePercent}%";
        if (e.Final is { Error.Length: > 0 } f) s += $": {f.Error}";
        return s;
    }

    private static double Percent(MigrationEvent e, double before)
    {
        if (e.Final is not null) return 100;
        ulong pages = e.Destinations.Count > 0 ? e.Destinations[0].Pages : 0;
        double remaining = e.BytesRemaining / 4096.0;
        double pct = pages + remaining > 0 ? 100.0 * pages / (pages + remaining) : 0;
        return Math.Max(before, Math.Min(pct, 99));
    }

    private sealed class LiveBars(ProgressContext ctx) : IMigrationBars
    {
        public IMigrationBar Add(string label) => new LiveBar(ctx.AddTask(Markup.Escape(label), autoStart: false, maxValue: 100), label);
    }

    private sealed class LiveBar(ProgressTask task, string label) : IMigrationBar
    {
        public void Update(MigrationEvent e)
        {
            if (!task.IsStarted) task.StartTask();
            task.Value = Percent(e, task.Value);
            string color = e.Phase == MigrationPhase.Failed ? "red" : e.Phase == MigrationPhase.Completed ? "green" : "grey";
            task.Description = $"{Markup.Escape(label)} [{color}]{Markup.Escape(Status(e))}[/]";
            if (e.Final is not null) task.StopTask();
        }
    }

    private sealed class LineBars(IAnsiConsole console) : IMigrationBars
    {
        public IMigrationBar Add(string label) => new LineBar(console, label);
    }

    private sealed class LineBar(IAnsiConsole console, string label) : IMigrationBar
    {
        private MigrationPhase _phase;
        private uint _round;

        public void Update(MigrationEvent e)
        {
            if (e.Final is null && e.Phase == _phase && e.Round == _round) return;
            _phase = e.Phase;
            _round = e.Round;
            console.WriteLine($"{label}: {Status(e)}");
        }
    }
}
