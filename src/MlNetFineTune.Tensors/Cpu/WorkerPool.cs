using System.Diagnostics;

namespace MlNetFineTune.Tensors.Cpu;

/// <summary>
/// A small fixed pool of worker threads for the CPU kernels. Work is split statically: task i of n always
/// runs the same index range, so results are deterministic at a fixed thread count (a share whose worker is
/// late, e.g. descheduled on a busy machine, is run by the calling thread rather than waited for). Idle workers park on a
/// semaphore after a short bounded spin (about 50 us, so back-to-back kernel calls find them awake) instead
/// of spinning forever, so a busy shared machine costs us proportionally instead of collapsing us
/// (OpenMP-style unbounded spinning was measured 50x slower there).
/// </summary>
/// <remarks>
/// The thread count comes from <c>MLFT_NUM_THREADS</c>, else <see cref="Environment.ProcessorCount"/>.
/// Calls from inside a running parallel region (nested) run serially on the calling thread.
/// The generic overloads that take a state object allocate nothing per call when the body is a static lambda.
/// </remarks>
public static class WorkerPool
{
    private static readonly object Gate = new();
    private static Worker[] _workers = [];
    private static int _threads = InitialThreads();

    [ThreadStatic] private static bool _insideRegion;

    // The running job; written only under Gate by the caller before the workers are released.
    private static Job? _job;
    private static int _jobTasks;
    private static int _jobThreads;
    private static int _remaining;
    private static Exception? _failure;

    // How long idle threads (and a caller waiting for its workers) spin before they park: about 50 us.
    private static readonly long SpinTicks = Math.Max(1, Stopwatch.Frequency / 20_000);
    private static readonly ManualResetEventSlim Done = new(false, spinCount: 64);

    /// <summary>Tests only: runs on a worker between its last decrement of the job count and its completion signal (to widen that window).</summary>
    internal static Action? TestHookBeforeSignal;

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
    /// calling thread takes part. Tasks t, t + n, t + 2n, ... (n = min(Threads, tasks)) form thread t's
    /// share; a share whose worker has not started by the time the caller finished its own is run by the
    /// caller instead. The split never changes, so results do not depend on timing.
    /// Exceptions from any task are rethrown on the caller after all tasks finish.
    /// </summary>
    public static void Run(int tasks, Action<int> body)
    {
        ArgumentNullException.ThrowIfNull(body);
        Run(tasks, body, static (b, t) => b(t));
    }

    /// <summary>
    /// Allocation-free form of <see cref="Run(int, Action{int})"/>: runs <paramref name="body"/>(state, t)
    /// for t in [0, <paramref name="tasks"/>) with the same static assignment of tasks to threads.
    /// </summary>
    public static void Run<TState>(int tasks, TState state, Action<TState, int> body)
    {
        ArgumentNullException.ThrowIfNull(body);
        if (tasks <= 0) return;
        if (Math.Min(_threads, tasks) <= 1 || _insideRegion)
        {
            for (int t = 0; t < tasks; t++) body(state, t);
            return;
        }
        lock (Gate)
        {
            int threads = Math.Min(_threads, tasks);
            var job = RunJob<TState>.Instance;
            job.State = state;
            job.Body = body;
            try { Execute(job, tasks, threads); }
            finally { job.State = default!; job.Body = null; }
        }
    }

    /// <summary>
    /// Splits [0, <paramref name="count"/>) into at most Threads contiguous chunks of at least
    /// <paramref name="minChunk"/> items and runs <paramref name="body"/>(start, end) on each.
    /// </summary>
    public static void For(int count, int minChunk, Action<int, int> body)
    {
        ArgumentNullException.ThrowIfNull(body);
        For(count, minChunk, body, static (b, s, e) => b(s, e));
    }

    /// <summary>
    /// Allocation-free form of <see cref="For(int, int, Action{int, int})"/>: runs
    /// <paramref name="body"/>(state, start, end) on each chunk.
    /// </summary>
    public static void For<TState>(int count, int minChunk, TState state, Action<TState, int, int> body)
    {
        ArgumentNullException.ThrowIfNull(body);
        if (count <= 0) return;
        minChunk = Math.Max(1, minChunk);
        int chunks = Math.Min(_threads, Math.Max(1, count / minChunk));
        if (chunks <= 1 || _insideRegion)
        {
            body(state, 0, count);
            return;
        }
        lock (Gate)
        {
            // _threads may have changed since we looked; the chunking below is what runs.
            chunks = Math.Min(_threads, Math.Max(1, count / minChunk));
            if (chunks <= 1)
            {
                RunSerialInRegion(state, count, body);
                return;
            }
            var job = ForJob<TState>.Instance;
            job.State = state;
            job.Body = body;
            job.Count = count;
            job.Chunks = chunks;
            try { Execute(job, chunks, chunks); }
            finally { job.State = default!; job.Body = null; }
        }
    }

    private static void RunSerialInRegion<TState>(TState state, int count, Action<TState, int, int> body)
    {
        _insideRegion = true;
        try { body(state, 0, count); }
        finally { _insideRegion = false; }
    }

    /// <summary>
    /// Runs <paramref name="body"/>(state, member, teamSize) for the members of a team of
    /// min(<paramref name="maxTeam"/>, Threads) threads (1 when nested); member 0 is the calling thread and
    /// always runs, each other member on its own thread, concurrently with member 0. A member whose thread
    /// has not started by the time member 0 returns is skipped, so the body must share out its work
    /// dynamically (claiming it) and may only wait for work another member has already claimed.
    /// </summary>
    internal static void RunTeam<TState>(int maxTeam, TState state, Action<TState, int, int> body)
    {
        if (Math.Min(_threads, maxTeam) <= 1 || _insideRegion)
        {
            body(state, 0, 1);
            return;
        }
        lock (Gate)
        {
            int team = Math.Min(_threads, maxTeam);
            if (team <= 1)
            {
                _insideRegion = true;
                try { body(state, 0, 1); }
                finally { _insideRegion = false; }
                return;
            }
            var job = TeamJob<TState>.Instance;
            job.State = state;
            job.Body = body;
            job.Team = team;
            try { Execute(job, team, team); }
            finally { job.State = default!; job.Body = null; }
        }
    }

    // Caller holds Gate. Runs tasks [0, tasks) on `threads` threads: thread w runs w, w+threads, ...
    // A worker that has not picked its share up by the time the caller is done with its own (parked and
    // slow to wake, or descheduled on a busy machine) is not waited for: the caller takes the share back
    // and runs it itself (a team member's share is dropped instead; team bodies claim work dynamically).
    // Which thread runs a task never changes what the task computes.
    private static void Execute(Job job, int tasks, int threads)
    {
        EnsureWorkers(threads - 1);
        _insideRegion = true;
        try
        {
            _job = job;
            _jobTasks = tasks;
            _jobThreads = threads;
            _failure = null;
            Done.Reset();
            Volatile.Write(ref _remaining, threads - 1);
            for (int w = 0; w < threads - 1; w++) _workers[w].Post();
            Exception? mine = null;
            try
            {
                for (int i = 0; i < tasks; i += threads) job.Execute(i);
            }
            catch (Exception ex) { mine = ex; }
            for (int w = 0; w < threads - 1; w++)
            {
                if (!_workers[w].Revoke()) continue;
                if (!job.DropIfLate)
                {
                    try
                    {
                        for (int i = w + 1; i < tasks; i += threads) job.Execute(i);
                    }
                    catch (Exception ex) { mine ??= ex; }
                }
                Interlocked.Decrement(ref _remaining);
            }
            // Bounded spin for the workers that did start, then park.
            if (Volatile.Read(ref _remaining) != 0)
            {
                long until = Stopwatch.GetTimestamp() + SpinTicks;
                while (Volatile.Read(ref _remaining) != 0 && Stopwatch.GetTimestamp() < until) Thread.SpinWait(8);
                // Done may still carry a late signal from an earlier job (a worker descheduled between its final
                // decrement and its Set while the caller had already seen the count reach zero and moved on), so
                // the count, not the event, says when this job is over: a stale signal is cleared and waited past.
                while (Volatile.Read(ref _remaining) != 0)
                {
                    Done.Wait();
                    if (Volatile.Read(ref _remaining) == 0) break;
                    Done.Reset();
                }
            }
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

    private static void EnsureWorkers(int needed)
    {
        if (_workers.Length >= needed) return;
        var grown = new Worker[needed];
        Array.Copy(_workers, grown, _workers.Length);
        for (int i = _workers.Length; i < needed; i++) grown[i] = new Worker(i + 1);
        _workers = grown;
    }

    private abstract class Job
    {
        public abstract void Execute(int task);

        /// <summary>True when a share that no worker picked up in time is dropped rather than run by the caller.</summary>
        public virtual bool DropIfLate => false;
    }

    // One cached instance per state type; used only under Gate, so never shared by two running regions.
    private sealed class RunJob<TState> : Job
    {
        public static readonly RunJob<TState> Instance = new();
        public TState State = default!;
        public Action<TState, int>? Body;
        public override void Execute(int task) => Body!(State, task);
    }

    private sealed class ForJob<TState> : Job
    {
        public static readonly ForJob<TState> Instance = new();
        public TState State = default!;
        public Action<TState, int, int>? Body;
        public int Count, Chunks;

        public override void Execute(int task)
        {
            long start = (long)Count * task / Chunks;
            long end = (long)Count * (task + 1) / Chunks;
            if (end > start) Body!(State, (int)start, (int)end);
        }
    }

    private sealed class TeamJob<TState> : Job
    {
        public static readonly TeamJob<TState> Instance = new();
        public TState State = default!;
        public Action<TState, int, int>? Body;
        public int Team;
        public override void Execute(int task) => Body!(State, task, Team);
        public override bool DropIfLate => true;
    }

    private sealed class Worker
    {
        private readonly SemaphoreSlim _signal = new(0);
        private readonly int _index;
        private int _parked;
        private int _posted;   // jobs handed to this worker (written by callers, under Gate)
        private int _taken;    // posts it has consumed (written by the worker)
        private int _claim;    // 1: the current job's share is on offer; the worker takes it (2) or the caller revokes it (0)

        public Worker(int index)
        {
            _index = index;
            var thread = new Thread(Loop) { IsBackground = true, Name = $"mlft-worker-{index}" };
            thread.Start();
        }

        // Hands the current job to this worker (the job fields are already written).
        public void Post()
        {
            Volatile.Write(ref _claim, 1);
            Interlocked.Increment(ref _posted);
            if (Interlocked.Exchange(ref _parked, 0) == 1) _signal.Release();
        }

        // Called by the caller once it is done with its own share: true if this worker had not started its
        // share, which is then the caller's to run.
        public bool Revoke() => Interlocked.CompareExchange(ref _claim, 0, 1) == 1;

        private void WaitForJob()
        {
            // Bounded spin: back-to-back kernel calls find the worker awake.
            if (Volatile.Read(ref _posted) != _taken) return;
            long until = Stopwatch.GetTimestamp() + SpinTicks;
            while (Stopwatch.GetTimestamp() < until)
            {
                Thread.SpinWait(8);
                if (Volatile.Read(ref _posted) != _taken) return;
            }
            // Park. Announce it first; a caller that posts a job after this sees _parked == 1 and releases us.
            Interlocked.Exchange(ref _parked, 1);
            if (Volatile.Read(ref _posted) == _taken)
            {
                _signal.Wait();
            }
            else if (Interlocked.Exchange(ref _parked, 0) == 0)
            {
                // The caller already claimed our parked flag and releases the semaphore: consume that release.
                _signal.Wait();
            }
        }

        private void Loop()
        {
            _insideRegion = true;
            while (true)
            {
                WaitForJob();
                _taken++;
                // A post whose share the caller revoked (or a stale post whose job already ran): skip it.
                if (Interlocked.CompareExchange(ref _claim, 2, 1) != 1) continue;
                var job = _job;
                int tasks = _jobTasks, threads = _jobThreads;
                try
                {
                    if (job != null)
                        for (int i = _index; i < tasks; i += threads) job.Execute(i);
                }
                catch (Exception ex)
                {
                    Interlocked.CompareExchange(ref _failure, ex, null);
                }
                if (Interlocked.Decrement(ref _remaining) == 0)
                {
                    TestHookBeforeSignal?.Invoke();
                    Done.Set();
                }
            }
        }
    }
}
