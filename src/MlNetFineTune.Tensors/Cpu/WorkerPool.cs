namespace MlNetFineTune.Tensors.Cpu;

/// <summary>
/// A small fixed pool of worker threads for the CPU kernels. Work is split statically: task i of n always
/// runs the same index range, so results are deterministic at a fixed thread count. Idle workers park on a
/// semaphore after a short bounded spin instead of spinning forever, so a busy shared machine costs us
/// proportionally instead of collapsing us (OpenMP-style unbounded spinning was measured 50x slower there).
/// </summary>
/// <remarks>
/// The thread count comes from <c>MLFT_NUM_THREADS</c>, else <see cref="Environment.ProcessorCount"/>.
/// Calls from inside a running parallel region (nested) run serially on the calling thread.
/// </remarks>
public static class WorkerPool
{
    private static readonly object Gate = new();
    private static Worker[] _workers = [];
    private static int _threads = InitialThreads();

    [ThreadStatic] private static bool _insideRegion;

    private static Action<int>? _job;
    private static int _jobCount;
    private static int _remaining;
    private static Exception? _failure;
    private static readonly ManualResetEventSlim Done = new(false, spinCount: 64);

    /// <summary>Number of threads (including the caller) kernels use.</summary>
    public static int Threads => _threads;

    private static int InitialThreads()
    {
        var env = Environment.GetEnvironmentVariable("MLFT_NUM_THREADS");
        if (!string.IsNullOrWhiteSpace(env))
        {
            if (!int.TryParse(env, out var n) || n < 1)
                throw new InvalidOperationException($"MLFT_NUM_THREADS='{env}' must be a positive integer.");
            return n;
        }
        return Math.Max(1, Environment.ProcessorCount);
    }

    /// <summary>Sets the number of threads kernels use (1 = everything on the calling thread).</summary>
    public static void SetThreads(int threads)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        lock (Gate) _threads = threads;
    }

    /// <summary>
    /// Runs <paramref name="body"/>(t) for t in [0, <paramref name="tasks"/>), spread over the pool; the
    /// calling thread takes part. Task t runs on worker t % Threads, so the assignment never changes.
    /// Exceptions from any task are rethrown on the caller after all tasks finish.
    /// </summary>
    public static void Run(int tasks, Action<int> body)
    {
        if (tasks <= 0) return;
        int threads = Math.Min(_threads, tasks);
        if (threads <= 1 || _insideRegion)
        {
            for (int t = 0; t < tasks; t++) body(t);
            return;
        }

        lock (Gate)
        {
            EnsureWorkers(threads - 1);
            _insideRegion = true;
            try
            {
                _job = t =>
                {
                    for (int i = t; i < tasks; i += threads) body(i);
                };
                _jobCount = threads;
                _failure = null;
                Done.Reset();
                Volatile.Write(ref _remaining, threads - 1);
                for (int w = 0; w < threads - 1; w++) _workers[w].Signal.Release();
                Exception? mine = null;
                try { _job(0); }
                catch (Exception ex) { mine = ex; }
                if (threads > 1) Done.Wait();
                _job = null;
                var failure = mine ?? _failure;
                if (failure != null)
                    System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
            }
            finally
            {
                _insideRegion = false;
            }
        }
    }

    /// <summary>
    /// Splits [0, <paramref name="count"/>) into at most Threads contiguous chunks of at least
    /// <paramref name="minChunk"/> items and runs <paramref name="body"/>(start, end) on each.
    /// </summary>
    public static void For(int count, int minChunk, Action<int, int> body)
    {
        if (count <= 0) return;
        minChunk = Math.Max(1, minChunk);
        int chunks = Math.Min(_threads, Math.Max(1, count / minChunk));
        if (chunks <= 1 || _insideRegion)
        {
            body(0, count);
            return;
        }
        Run(chunks, c =>
        {
            long start = (long)count * c / chunks;
            long end = (long)count * (c + 1) / chunks;
            if (end > start) body((int)start, (int)end);
        });
    }

    private static void EnsureWorkers(int needed)
    {
        if (_workers.Length >= needed) return;
        var grown = new Worker[needed];
        Array.Copy(_workers, grown, _workers.Length);
        for (int i = _workers.Length; i < needed; i++) grown[i] = new Worker(i + 1);
        _workers = grown;
    }

    private sealed class Worker
    {
        public readonly SemaphoreSlim Signal = new(0);
        private readonly int _index;

        public Worker(int index)
        {
            _index = index;
            var thread = new Thread(Loop) { IsBackground = true, Name = $"mlft-worker-{index}" };
            thread.Start();
        }

        private void Loop()
        {
            _insideRegion = true;
            while (true)
            {
                // SemaphoreSlim spins briefly, then blocks: bounded spin, then park.
                Signal.Wait();
                var job = _job;
                try
                {
                    if (job != null && _index < _jobCount) job(_index);
                }
                catch (Exception ex)
                {
                    Interlocked.CompareExchange(ref _failure, ex, null);
                }
                if (Interlocked.Decrement(ref _remaining) == 0) Done.Set();
            }
        }
    }
}
