using System.Data;
using System.Data.Common;
using System.Globalization;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace MlNetFineTune.AutoML;

/// <summary>A storage that cannot be opened or used (unreachable server, newer schema, not a database).</summary>
public sealed class StorageException(string message, Exception? inner = null) : IOException(message, inner);

/// <summary>What <see cref="StudyStorage.Claim"/> found.</summary>
public enum ClaimKind
{
    /// <summary>A trial to run now.</summary>
    Trial,
    /// <summary>Nothing to start, but other workers still run (or queued) trials: poll again.</summary>
    Wait,
    /// <summary>The budget is used and no trial is running or queued.</summary>
    Done,
}

/// <summary>The result of a claim.</summary>
public sealed record Claim(ClaimKind Kind, TrialRecord? Trial = null);

/// <summary>
/// Study storage with one schema in SQLite and PostgreSQL. Every state change is one transaction holding the
/// study's lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: the study row FOR UPDATE), and finishing or beating
/// checks that the trial is still running under the same worker, so two workers never run the same trial and a
/// worker that was declared dead cannot overwrite the re-queued copy's result.
/// </summary>
public sealed class StudyStorage
{
    /// <summary>The schema this build reads and writes.</summary>
    public const int SchemaVersion = 1;

    private readonly Func<DbConnection> _open;
    private readonly bool _postgres;
    private readonly string _describe;

    private StudyStorage(Func<DbConnection> open, bool postgres, string describe)
    {
        (_open, _postgres, _describe) = (open, postgres, describe);
    }

    /// <summary>Where the storage lives (no password).</summary>
    public string Description => _describe;

    /// <summary>Whether this is PostgreSQL.</summary>
    public bool IsPostgres => _postgres;

    /// <summary>
    /// Opens <c>sqlite:PATH</c> (or a path ending in .db/.sqlite) or <c>postgres://user:pass@host:port/db[?timeout=S]</c>
    /// and creates or checks the schema.
    /// </summary>
    public static StudyStorage Open(string spec, int connectTimeoutSeconds = 10)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(spec);
        StudyStorage storage;
        if (spec.StartsWith("postgres://", StringComparison.OrdinalIgnoreCase) || spec.StartsWith("postgresql://", StringComparison.OrdinalIgnoreCase))
            storage = Postgres(spec, connectTimeoutSeconds);
        else if (spec.StartsWith("Host=", StringComparison.OrdinalIgnoreCase))
            storage = PostgresConnectionString(spec, connectTimeoutSeconds, describe: "PostgreSQL " + new NpgsqlConnectionStringBuilder(spec).Host);
        else
        {
            var path = spec.StartsWith("sqlite:", StringComparison.OrdinalIgnoreCase) ? spec["sqlite:".Length..] : spec;
            if (path.Length == 0) throw new ArgumentException("--storage sqlite: needs a file path (sqlite:PATH).");
            storage = Sqlite(path);
        }
        storage.EnsureSchema();
        return storage;
    }

    private static StudyStorage Sqlite(string path)
    {
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full);
        if (dir is not null && !Directory.Exists(dir)) throw new DirectoryNotFoundException($"sqlite:{path}: folder {dir} does not exist.");
        var cs = new SqliteConnectionStringBuilder { DataSource = full, DefaultTimeout = 60, Pooling = true }.ToString();
        return new StudyStorage(() => new SqliteConnection(cs), postgres: false, $"sqlite:{path}");
    }

    private static StudyStorage Postgres(string url, int timeout)
    {
        Uri uri;
        try { uri = new Uri(url); }
        catch (UriFormatException ex) { throw new ArgumentException($"--storage {Redact(url)}: not a valid postgres:// URL ({ex.Message}).", ex); }
        var b = new NpgsqlConnectionStringBuilder
        {
            Host = uri.Host,
            Port = uri.IsDefaultPort || uri.Port <= 0 ? 5432 : uri.Port,
            Database = uri.AbsolutePath.Trim('/') is { Length: > 0 } db ? Uri.UnescapeDataString(db) : "postgres",
        };
        if (uri.UserInfo.Length > 0)
        {
            var parts = uri.UserInfo.Split(':', 2);
            b.Username = Uri.UnescapeDataString(parts[0]);
            if (parts.Length > 1) b.Password = Uri.UnescapeDataString(parts[1]);
        }
        foreach (var kv in uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var (k, v) = (kv.Split('=', 2)[0], kv.Contains('=') ? Uri.UnescapeDataString(kv.Split('=', 2)[1]) : "");
            if (k is "timeout" or "connect_timeout" && int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var t)) timeout = t;
            else if (k is "sslmode") b.SslMode = Enum.Parse<SslMode>(v, ignoreCase: true);
        }
        return PostgresConnectionString(b.ConnectionString, timeout, $"postgres://{b.Host}:{b.Port}/{b.Database}");
    }

    private static StudyStorage PostgresConnectionString(string cs, int timeout, string describe)
    {
        var b = new NpgsqlConnectionStringBuilder(cs) { Timeout = Math.Max(1, timeout), CommandTimeout = 60, Pooling = true };
        var final = b.ConnectionString;
        return new StudyStorage(() => new NpgsqlConnection(final), postgres: true, describe);
    }

    private static string Redact(string url) => System.Text.RegularExpressions.Regex.Replace(url, "//([^:/@]+):[^@]*@", "//$1:***@");

    private DbConnection Connect()
    {
        var c = _open();
        try
        {
            c.Open();
            if (!_postgres)
            {
                using var cmd = c.CreateCommand();
                cmd.CommandText = "PRAGMA busy_timeout = 60000;";
                cmd.ExecuteNonQuery();
            }
            return c;
        }
        catch (Exception ex) when (ex is NpgsqlException or SqliteException or TimeoutException or System.Net.Sockets.SocketException)
        {
            c.Dispose();
            throw new StorageException($"{_describe}: cannot connect ({ex.Message.TrimEnd('.')}).", ex);
        }
    }

    private T InTransaction<T>(Func<DbConnection, DbTransaction, T> body, string? lockStudy = null)
    {
        using var c = Connect();
        try
        {
            using var tx = _postgres ? c.BeginTransaction(IsolationLevel.ReadCommitted) : ((SqliteConnection)c).BeginTransaction(deferred: false);
            if (lockStudy is not null && _postgres) Exec(c, tx, "SELECT name FROM mlft_studies WHERE name = @s FOR UPDATE", ("s", lockStudy));
            var result = body(c, tx);
            tx.Commit();
            return result;
        }
        catch (SqliteException ex) when (ex.SqliteErrorCode == 26)
        {
            throw new StorageException($"{_describe}: the file is not an SQLite database.", ex);
        }
    }

    private static DbCommand Cmd(DbConnection c, DbTransaction? tx, string sql, params (string Name, object? Value)[] args)
    {
        var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        foreach (var (name, value) in args)
        {
            var p = cmd.CreateParameter();
            p.ParameterName = name;
            p.Value = value ?? DBNull.Value;
            cmd.Parameters.Add(p);
        }
        return cmd;
    }

    private static int Exec(DbConnection c, DbTransaction? tx, string sql, params (string, object?)[] args)
    {
        using var cmd = Cmd(c, tx, sql, args);
        return cmd.ExecuteNonQuery();
    }

    private static object? Scalar(DbConnection c, DbTransaction? tx, string sql, params (string, object?)[] args)
    {
        using var cmd = Cmd(c, tx, sql, args);
        var v = cmd.ExecuteScalar();
        return v is DBNull ? null : v;
    }

    private string Now => _postgres ? "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)" : "((julianday('now') - 2440587.5) * 86400.0)";

    /// <summary>The tables, identical in both databases.</summary>
    internal static readonly string[] Ddl =
    [
        "CREATE TABLE IF NOT EXISTS mlft_studies (name TEXT PRIMARY KEY, direction TEXT NOT NULL, space TEXT NOT NULL, created DOUBLE PRECISION NOT NULL)",
        "CREATE TABLE IF NOT EXISTS mlft_trials (study TEXT NOT NULL, number INTEGER NOT NULL, logical INTEGER NOT NULL, state TEXT NOT NULL, " +
            "value DOUBLE PRECISION, cost DOUBLE PRECISION NOT NULL DEFAULT 0, worker TEXT, started DOUBLE PRECISION, finished DOUBLE PRECISION, " +
            "heartbeat DOUBLE PRECISION, message TEXT, PRIMARY KEY (study, number))",
        "CREATE TABLE IF NOT EXISTS mlft_params (study TEXT NOT NULL, number INTEGER NOT NULL, name TEXT NOT NULL, value DOUBLE PRECISION NOT NULL, PRIMARY KEY (study, number, name))",
        "CREATE TABLE IF NOT EXISTS mlft_values (study TEXT NOT NULL, number INTEGER NOT NULL, step INTEGER NOT NULL, value DOUBLE PRECISION NOT NULL, PRIMARY KEY (study, number, step))",
        "CREATE TABLE IF NOT EXISTS mlft_heartbeats (worker TEXT PRIMARY KEY, study TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL, trial INTEGER, beat DOUBLE PRECISION NOT NULL)",
    ];

    private void EnsureSchema()
    {
        if (!_postgres)
        {
            try
            {
                using var c = Connect();
                Exec(c, null, "PRAGMA journal_mode = WAL");
            }
            catch (SqliteException ex) when (ex.SqliteErrorCode == 26)
            {
                throw new StorageException($"{_describe}: the file is not an SQLite database.", ex);
            }
        }
        InTransaction((c, tx) =>
        {
            if (_postgres) Exec(c, tx, "SELECT pg_advisory_xact_lock(734900117)");
            Exec(c, tx, "CREATE TABLE IF NOT EXISTS mlft_schema (version INTEGER NOT NULL)");
            var version = Scalar(c, tx, "SELECT MAX(version) FROM mlft_schema");
            if (version is not null && Convert.ToInt32(version, CultureInfo.InvariantCulture) > SchemaVersion)
                throw new StorageException($"{_describe}: written by a newer mlft (schema version {version}; this build reads up to {SchemaVersion}). Upgrade mlft or use another storage.");
            foreach (var ddl in Ddl) Exec(c, tx, ddl);
            if (version is null) Exec(c, tx, "INSERT INTO mlft_schema (version) VALUES (@v)", ("v", SchemaVersion));
            return 0;
        });
    }

    /// <summary>Creates the study, or checks that the stored one has the same direction and search space.</summary>
    public void EnsureStudy(string study, bool maximize, SearchSpace space)
    {
        var json = space.ToJson();
        var direction = maximize ? "maximize" : "minimize";
        InTransaction((c, tx) =>
        {
            Exec(c, tx, $"INSERT INTO mlft_studies (name, direction, space, created) VALUES (@n, @d, @s, {Now}) ON CONFLICT (name) DO NOTHING",
                ("n", study), ("d", direction), ("s", json));
            using var cmd = Cmd(c, tx, "SELECT direction, space FROM mlft_studies WHERE name = @n", ("n", study));
            using var r = cmd.ExecuteReader();
            r.Read();
            var (d, s) = (r.GetString(0), r.GetString(1));
            if (d != direction) throw new StorageException($"{_describe}: study '{study}' exists and is to {d} its metric, not {direction}.");
            if (s != json) throw new StorageException($"{_describe}: study '{study}' exists with another search space ({s}); use a new --study name.");
            return 0;
        });
    }

    /// <summary>
    /// Marks trials whose worker stopped beating failed (and queues a copy, at most <paramref name="maxRetries"/> per
    /// trial), then claims the oldest queued trial, or creates trial number <c>count</c> from <paramref name="suggest"/>
    /// while fewer than <paramref name="maxTrials"/> trials exist.
    /// </summary>
    public Claim Claim(string study, string worker, int maxTrials, double staleSeconds, int maxRetries,
        Func<int, IReadOnlyList<TrialRecord>, IReadOnlyDictionary<string, double>?> suggest)
    {
        return InTransaction((c, tx) =>
        {
            ReapStale(c, tx, study, staleSeconds, maxRetries);
            var waiting = Scalar(c, tx, "SELECT MIN(number) FROM mlft_trials WHERE study = @s AND state = 'waiting'", ("s", study));
            if (waiting is not null)
            {
                int number = Convert.ToInt32(waiting, CultureInfo.InvariantCulture);
                int n = Exec(c, tx, $"UPDATE mlft_trials SET state = 'running', worker = @w, started = {Now}, heartbeat = {Now} WHERE study = @s AND number = @n AND state = 'waiting'",
                    ("w", worker), ("s", study), ("n", number));
                if (n == 1) return new Claim(ClaimKind.Trial, LoadTrials(c, tx, study, number).Single());
            }
            int logical = Convert.ToInt32(Scalar(c, tx, "SELECT COUNT(DISTINCT logical) FROM mlft_trials WHERE study = @s", ("s", study)), CultureInfo.InvariantCulture);
            if (logical < maxTrials)
            {
                var history = LoadTrials(c, tx, study, null);
                var values = suggest(logical, history);
                if (values is not null)
                {
                    int number = Convert.ToInt32(Scalar(c, tx, "SELECT COALESCE(MAX(number), -1) + 1 FROM mlft_trials WHERE study = @s", ("s", study)), CultureInfo.InvariantCulture);
                    Exec(c, tx, $"INSERT INTO mlft_trials (study, number, logical, state, cost, worker, started, heartbeat) VALUES (@s, @n, @l, 'running', 0, @w, {Now}, {Now})",
                        ("s", study), ("n", number), ("l", logical), ("w", worker));
                    foreach (var (name, v) in values)
                        Exec(c, tx, "INSERT INTO mlft_params (study, number, name, value) VALUES (@s, @n, @p, @v)", ("s", study), ("n", number), ("p", name), ("v", v));
                    return new Claim(ClaimKind.Trial, LoadTrials(c, tx, study, number).Single());
                }
            }
            var open = Convert.ToInt32(Scalar(c, tx, "SELECT COUNT(*) FROM mlft_trials WHERE study = @s AND state IN ('running', 'waiting')", ("s", study)), CultureInfo.InvariantCulture);
            return new Claim(open > 0 ? ClaimKind.Wait : ClaimKind.Done);
        }, lockStudy: study);
    }

    private void ReapStale(DbConnection c, DbTransaction tx, string study, double staleSeconds, int maxRetries)
    {
        var stale = new List<(int Number, int Logical, string? Worker)>();
        using (var cmd = Cmd(c, tx, $"SELECT number, logical, worker FROM mlft_trials WHERE study = @s AND state = 'running' AND heartbeat < {Now} - @stale ORDER BY number",
            ("s", study), ("stale", staleSeconds)))
        using (var r = cmd.ExecuteReader())
            while (r.Read()) stale.Add((r.GetInt32(0), r.GetInt32(1), r.IsDBNull(2) ? null : r.GetString(2)));
        foreach (var (number, logical, w) in stale)
        {
            Exec(c, tx, $"UPDATE mlft_trials SET state = 'failed', finished = {Now}, message = @m WHERE study = @s AND number = @n AND state = 'running'",
                ("m", $"worker {w} stopped beating for over {staleSeconds:0.#} s"), ("s", study), ("n", number));
            int copies = Convert.ToInt32(Scalar(c, tx, "SELECT COUNT(*) - 1 FROM mlft_trials WHERE study = @s AND logical = @l", ("s", study), ("l", logical)), CultureInfo.InvariantCulture);
            bool done = Convert.ToInt32(Scalar(c, tx, "SELECT COUNT(*) FROM mlft_trials WHERE study = @s AND logical = @l AND state IN ('complete', 'pruned', 'waiting', 'running')", ("s", study), ("l", logical)), CultureInfo.InvariantCulture) > 0;
            if (copies >= maxRetries || done) continue;
            int next = Convert.ToInt32(Scalar(c, tx, "SELECT MAX(number) + 1 FROM mlft_trials WHERE study = @s", ("s", study)), CultureInfo.InvariantCulture);
            Exec(c, tx, "INSERT INTO mlft_trials (study, number, logical, state, cost) VALUES (@s, @n, @l, 'waiting', 0)", ("s", study), ("n", next), ("l", logical));
            Exec(c, tx, "INSERT INTO mlft_params (study, number, name, value) SELECT study, @n, name, value FROM mlft_params WHERE study = @s AND number = @o",
                ("n", next), ("s", study), ("o", number));
        }
    }

    /// <summary>Keeps the trial's heartbeat fresh; false when the trial is no longer this worker's (declared dead).</summary>
    public bool Heartbeat(string study, int number, string worker)
    {
        return InTransaction((c, tx) =>
        {
            int n = Exec(c, tx, $"UPDATE mlft_trials SET heartbeat = {Now} WHERE study = @s AND number = @n AND state = 'running' AND worker = @w",
                ("s", study), ("n", number), ("w", worker));
            Exec(c, tx, $"INSERT INTO mlft_heartbeats (worker, study, host, pid, trial, beat) VALUES (@w, @s, @h, @p, @n, {Now}) " +
                $"ON CONFLICT (worker) DO UPDATE SET trial = excluded.trial, beat = excluded.beat",
                ("w", worker), ("s", study), ("h", Environment.MachineName), ("p", Environment.ProcessId), ("n", number));
            return n == 1;
        });
    }

    /// <summary>Records a per-epoch value.</summary>
    public void Report(string study, int number, int step, double value)
    {
        InTransaction((c, tx) => Exec(c, tx, "INSERT INTO mlft_values (study, number, step, value) VALUES (@s, @n, @t, @v) ON CONFLICT (study, number, step) DO UPDATE SET value = excluded.value",
            ("s", study), ("n", number), ("t", step), ("v", value)));
    }

    /// <summary>Ends a running trial of this worker; false when it was no longer this worker's (its result is dropped).</summary>
    public bool Finish(string study, int number, string worker, TrialState state, double? value, double cost, string? message)
    {
        if (state is not (TrialState.Complete or TrialState.Pruned or TrialState.Failed)) throw new ArgumentOutOfRangeException(nameof(state));
        return InTransaction((c, tx) => Exec(c, tx,
            $"UPDATE mlft_trials SET state = @st, value = @v, cost = @c, finished = {Now}, heartbeat = {Now}, message = @m WHERE study = @s AND number = @n AND state = 'running' AND worker = @w",
            ("st", StateName(state)), ("v", value is double d && double.IsFinite(d) ? d : null), ("c", cost), ("m", message), ("s", study), ("n", number), ("w", worker)) == 1, lockStudy: study);
    }

    /// <summary>Puts a running trial of this worker back in the queue (the sweep was cancelled mid-trial).</summary>
    public bool Release(string study, int number, string worker)
    {
        return InTransaction((c, tx) =>
        {
            Exec(c, tx, "DELETE FROM mlft_values WHERE study = @s AND number = @n", ("s", study), ("n", number));
            return Exec(c, tx, "UPDATE mlft_trials SET state = 'waiting', worker = NULL, started = NULL, heartbeat = NULL WHERE study = @s AND number = @n AND state = 'running' AND worker = @w",
                ("s", study), ("n", number), ("w", worker)) == 1;
        }, lockStudy: study);
    }

    /// <summary>Every trial of the study, by number, with parameters and per-epoch values.</summary>
    public IReadOnlyList<TrialRecord> Trials(string study) => InTransaction((c, tx) => LoadTrials(c, tx, study, null));

    /// <summary>When the study was created (seconds since 1970), or null.</summary>
    public double? StudyCreated(string study) => InTransaction((c, tx) =>
        Scalar(c, tx, "SELECT created FROM mlft_studies WHERE name = @s", ("s", study)) is { } v ? Convert.ToDouble(v, CultureInfo.InvariantCulture) : (double?)null);

    private static IReadOnlyList<TrialRecord> LoadTrials(DbConnection c, DbTransaction tx, string study, int? only)
    {
        string filter = only is null ? "" : " AND number = @n";
        var args = only is null ? new (string, object?)[] { ("s", study) } : [("s", study), ("n", only.Value)];
        var pars = new Dictionary<int, Dictionary<string, double>>();
        using (var cmd = Cmd(c, tx, "SELECT number, name, value FROM mlft_params WHERE study = @s" + filter, args))
        using (var r = cmd.ExecuteReader())
            while (r.Read())
            {
                if (!pars.TryGetValue(r.GetInt32(0), out var d)) pars[r.GetInt32(0)] = d = [];
                d[r.GetString(1)] = r.GetDouble(2);
            }
        var vals = new Dictionary<int, SortedDictionary<int, double>>();
        using (var cmd = Cmd(c, tx, "SELECT number, step, value FROM mlft_values WHERE study = @s" + filter, args))
        using (var r = cmd.ExecuteReader())
            while (r.Read())
            {
                if (!vals.TryGetValue(r.GetInt32(0), out var d)) vals[r.GetInt32(0)] = d = [];
                d[r.GetInt32(1)] = r.GetDouble(2);
            }
        var list = new List<TrialRecord>();
        using (var cmd = Cmd(c, tx, "SELECT number, logical, state, value, cost, worker, started, finished, message FROM mlft_trials WHERE study = @s" + filter + " ORDER BY number", args))
        using (var r = cmd.ExecuteReader())
            while (r.Read())
            {
                int n = r.GetInt32(0);
                list.Add(new TrialRecord(n, r.GetInt32(1), ParseState(r.GetString(2)),
                    pars.TryGetValue(n, out var p) ? p : new Dictionary<string, double>(),
                    r.IsDBNull(3) ? null : r.GetDouble(3),
                    vals.TryGetValue(n, out var v) ? v : new SortedDictionary<int, double>(),
                    r.GetDouble(4), r.IsDBNull(5) ? null : r.GetString(5), r.IsDBNull(6) ? null : r.GetDouble(6),
                    r.IsDBNull(7) ? null : r.GetDouble(7), r.IsDBNull(8) ? null : r.GetString(8)));
            }
        return list;
    }

    /// <summary>The lower-case name stored for a state.</summary>
    public static string StateName(TrialState s) => s.ToString().ToLowerInvariant();

    private static TrialState ParseState(string s) => Enum.Parse<TrialState>(s, ignoreCase: true);

    /// <summary>Test hook: stamps the schema table with another version.</summary>
    internal void SetSchemaVersionForTests(int version) =>
        InTransaction((c, tx) => Exec(c, tx, "UPDATE mlft_schema SET version = @v", ("v", version)));

    /// <summary>Removes a study and its trials (tests and `--fresh` runs).</summary>
    public void DeleteStudy(string study) => InTransaction((c, tx) =>
    {
        foreach (var t in new[] { "mlft_values", "mlft_params", "mlft_trials" }) Exec(c, tx, $"DELETE FROM {t} WHERE study = @s", ("s", study));
        Exec(c, tx, "DELETE FROM mlft_heartbeats WHERE study = @s", ("s", study));
        return Exec(c, tx, "DELETE FROM mlft_studies WHERE name = @s", ("s", study));
    });
}
