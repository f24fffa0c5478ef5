namespace MigrationFabric.Grains.Invocation;

/// <summary>Used by generated dispatchers: turns any grain-method return type into a ValueTask of the boxed result.</summary>
public static class GrainInvokeHelpers
{
    /// <summary>Task -> null result.</summary>
    public static ValueTask<object?> Box(Task task)
    {
        if (task.IsCompletedSuccessfully) return new ValueTask<object?>((object?)null);
        return Await(task);
        static async ValueTask<object?> Await(Task t) { await t.ConfigureAwait(false); return null; }
    }

    /// <summary>Task&lt;T&gt; -> boxed T.</summary>
    public static ValueTask<object?> Box<T>(Task<T> task)
    {
        if (task.IsCompletedSuccessfully) return new ValueTask<object?>(task.Result);
        return Await(task);
        static async ValueTask<object?> Await(Task<T> t) => await t.ConfigureAwait(false);
    }

    /// <summary>ValueTask -> null result.</summary>
    public static ValueTask<object?> Box(ValueTask task)
    {
        if (task.IsCompletedSuccessfully) { task.GetAwaiter().GetResult(); return new ValueTask<object?>((object?)null); }
        return Await(task);
        static async ValueTask<object?> Await(ValueTask t) { await t.ConfigureAwait(false); return null; }
    }

    /// <summary>ValueTask&lt;T&gt; -> boxed T.</summary>
    public static ValueTask<object?> Box<T>(ValueTask<T> task)
    {
        if (task.IsCompletedSuccessfully) return new ValueTask<object?>(task.Result);
        return Await(task);
        static async ValueTask<object?> Await(ValueTask<T> t) => await t.ConfigureAwait(false);
    }
}
