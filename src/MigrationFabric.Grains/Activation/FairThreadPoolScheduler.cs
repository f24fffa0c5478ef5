namespace MigrationFabric.Grains.Activation;

/// <summary>Runs activation turns from the thread pool's global FIFO queue, never a worker's local LIFO queue.</summary>
/// <remarks>
/// The default scheduler queues work started on a pool thread to that thread's local queue, newest
/// first; under load the activations most recently called keep the CPU and the others wait for
/// seconds. Grain turns are short and many, so fairness across activations matters more than the
/// cache locality the local queues buy.
/// </remarks>
internal sealed class FairThreadPoolScheduler : TaskScheduler
{
    protected override void QueueTask(Task task) =>
        ThreadPool.UnsafeQueueUserWorkItem(static t => t.Scheduler.TryExecute(t.Task), (Scheduler: this, Task: task), preferLocal: false);

    protected override bool TryExecuteTaskInline(Task task, bool taskWasPreviouslyQueued) => false;

    protected override IEnumerable<Task>? GetScheduledTasks() => null;

    private bool TryExecute(Task task) => TryExecuteTask(task);
}
