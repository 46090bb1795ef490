namespace MlNetFineTune.Baselines;

/// <summary>
/// Options of <see cref="LogisticRegression"/>. The defaults match scikit-learn's
/// <c>LogisticRegression(C=1.0)</c> model (L2 penalty, intercept fitted and not penalised), solved to a
/// tighter tolerance than its 100-iteration default so the result is the optimum, not an early stop.
/// </summary>
public sealed record LogisticRegressionOptions
{
    /// <summary>Inverse regularisation strength, scikit-learn's <c>C</c> (default 1).</summary>
    public double C { get; init; } = 1.0;

    /// <summary>Fit an unpenalised intercept per class (default true).</summary>
    public bool FitIntercept { get; init; } = true;

    /// <summary>Most L-BFGS iterations (default 1,000).</summary>
    public int MaxIterations { get; init; } = 1000;

    /// <summary>
    /// Stop when the largest gradient component of the mean-scaled objective is at most this (default 1e-6).
    /// The objective is <c>mean log-loss + ||W||^2 / (2 C n)</c>, scikit-learn's (1.2+) scaling.
    /// </summary>
    public double GradientTolerance { get; init; } = 1e-6;

    /// <summary>Stop when one iteration lowers the objective by at most this, relative (default 1e-12).</summary>
    public double FunctionTolerance { get; init; } = 1e-12;

    /// <summary>Number of correction pairs L-BFGS keeps (default 10, as scipy's <c>maxcor</c>).</summary>
    public int HistorySize { get; init; } = 10;

    /// <summary>Checks the values, naming the first bad one.</summary>
    public void Validate()
    {
        if (!(C > 0) || double.IsInfinity(C)) throw new ArgumentOutOfRangeException(nameof(C), C, "C must be positive and finite.");
        if (MaxIterations < 1) throw new ArgumentOutOfRangeException(nameof(MaxIterations), MaxIterations, "MaxIterations must be at least 1.");
        if (!(GradientTolerance >= 0)) throw new ArgumentOutOfRangeException(nameof(GradientTolerance), GradientTolerance, "GradientTolerance must be >= 0.");
        if (!(FunctionTolerance >= 0)) throw new ArgumentOutOfRangeException(nameof(FunctionTolerance), FunctionTolerance, "FunctionTolerance must be >= 0.");
        if (HistorySize < 1) throw new ArgumentOutOfRangeException(nameof(HistorySize), HistorySize, "HistorySize must be at least 1.");
    }
}

/// <summary>
/// L2-regularised logistic regression on sparse rows: binary (one weight vector, <c>P(class 1) =
/// sigmoid(w.x + b)</c>) for two classes, multinomial (softmax over one weight vector per class) for more, as
/// scikit-learn's <c>lbfgs</c> solver. It minimises <c>(1/n) sum_i loss_i + ||W||^2 / (2 C n)</c> (the
/// intercepts are not penalised) with L-BFGS and a backtracking (Armijo) line search, in double precision,
/// single-threaded and deterministic.
/// </summary>
public sealed class LogisticRegression
{
    private readonly double[] _weights;     // rows x features, row-major (rows = 1 for binary, else classes)
    private readonly double[] _intercepts;  // rows

    private LogisticRegression(int classes, int features, double[] weights, double[] intercepts, int iterations, bool converged,
        double objective, double gradientNorm, int evaluations)
    {
        ClassCount = classes;
        FeatureCount = features;
        _weights = weights;
        _intercepts = intercepts;
        Iterations = iterations;
        Converged = converged;
        Objective = objective;
        GradientMaxNorm = gradientNorm;
        FunctionEvaluations = evaluations;
    }

    /// <summary>Number of classes (at least 2).</summary>
    public int ClassCount { get; }

    /// <summary>Number of input features.</summary>
    public int FeatureCount { get; }

    /// <summary>L-BFGS iterations run.</summary>
    public int Iterations { get; }

    /// <summary>Objective and gradient evaluations (line-search steps included).</summary>
    public int FunctionEvaluations { get; }

    /// <summary>Whether a tolerance was met before <see cref="LogisticRegressionOptions.MaxIterations"/>.</summary>
    public bool Converged { get; }

    /// <summary>The final value of the (mean-scaled) objective.</summary>
    public double Objective { get; }

    /// <summary>The largest gradient component at the end.</summary>
    public double GradientMaxNorm { get; }

    /// <summary>Weight rows, row-major: one row for a binary model (the class-1 direction), else one per class.</summary>
    public ReadOnlySpan<double> Weights => _weights;

    /// <summary>One intercept per weight row.</summary>
    public ReadOnlySpan<double> Intercepts => _intercepts;

    /// <summary>Fits the model.</summary>
    /// <param name="features">One row per example.</param>
    /// <param name="labels">Class id of every row, in <c>[0, classCount)</c>.</param>
    /// <param name="classCount">Number of classes, at least 2.</param>
    /// <param name="options">Solver options (null: the defaults).</param>
    /// <exception cref="ArgumentException">Shapes disagree or a label is out of range.</exception>
    public static LogisticRegression Fit(SparseMatrix features, ReadOnlySpan<int> labels, int classCount, LogisticRegressionOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(features);
        options ??= new LogisticRegressionOptions();
        options.Validate();
        if (classCount < 2) throw new ArgumentOutOfRangeException(nameof(classCount), classCount, "At least two classes are needed.");
        if (labels.Length != features.RowCount)
            throw new ArgumentException($"{features.RowCount} rows but {labels.Length} labels.", nameof(labels));
        if (labels.Length == 0) throw new ArgumentException("At least one row is needed.", nameof(labels));
        for (int i = 0; i < labels.Length; i++)
            if ((uint)labels[i] >= (uint)classCount)
                throw new ArgumentException($"Label {labels[i]} of row {i} is outside [0, {classCount}).", nameof(labels));

        var problem = new Problem(features, labels.ToArray(), classCount, options);
        var (theta, iterations, converged, f, gmax, evaluations) = Lbfgs(problem, options);
        int rows = problem.Rows, d = features.ColumnCount;
        var weights = theta.AsSpan(0, rows * d).ToArray();
        var intercepts = options.FitIntercept ? theta.AsSpan(rows * d, rows).ToArray() : new double[rows];
        return new LogisticRegression(classCount, d, weights, intercepts, iterations, converged, f, gmax, evaluations);
    }

    /// <summary>Class probabilities, row-major <c>N x ClassCount</c>.</summary>
    /// <exception cref="ArgumentException">The matrix has another number of columns.</exception>
    public float[] PredictProbabilities(SparseMatrix features)
    {
        ArgumentNullException.ThrowIfNull(features);
        if (features.ColumnCount != FeatureCount)
            throw new ArgumentException($"The model has {FeatureCount} features but the matrix {features.ColumnCount} columns.", nameof(features));
        int rows = ClassCount == 2 ? 1 : ClassCount;
        var scores = new double[features.RowCount * rows];
        Scores(features, _weights, _intercepts, rows, scores);
        var result = new float[features.RowCount * ClassCount];
        for (int i = 0; i < features.RowCount; i++)
        {
            if (ClassCount == 2)
            {
                double p = Sigmoid(scores[i]);
                result[2 * i] = (float)(1 - p);
                result[2 * i + 1] = (float)p;
            }
            else
            {
                var z = scores.AsSpan(i * rows, rows);
                double max = double.NegativeInfinity;
                foreach (var v in z) max = Math.Max(max, v);
                double sum = 0;
                foreach (var v in z) sum += Math.Exp(v - max);
                for (int k = 0; k < rows; k++) result[i * rows + k] = (float)(Math.Exp(z[k] - max) / sum);
            }
        }
        return result;
    }

    /// <summary>The raw decision values, row-major <c>N x R</c> (R = 1 for binary: the class-1 logit; else one per class).</summary>
    public double[] DecisionFunction(SparseMatrix features)
    {
        ArgumentNullException.ThrowIfNull(features);
        if (features.ColumnCount != FeatureCount)
            throw new ArgumentException($"The model has {FeatureCount} features but the matrix {features.ColumnCount} columns.", nameof(features));
        int rows = ClassCount == 2 ? 1 : ClassCount;
        var scores = new double[features.RowCount * rows];
        Scores(features, _weights, _intercepts, rows, scores);
        return scores;
    }

    private static void Scores(SparseMatrix x, ReadOnlySpan<double> w, ReadOnlySpan<double> b, int rows, Span<double> scores)
    {
        int d = x.ColumnCount;
        for (int i = 0; i < x.RowCount; i++)
        {
            var cols = x.RowColumns(i);
            var vals = x.RowValues(i);
            for (int k = 0; k < rows; k++)
            {
                var wk = w.Slice(k * d, d);
                double s = b.IsEmpty ? 0 : b[k];
                for (int j = 0; j < cols.Length; j++) s += wk[cols[j]] * vals[j];
                scores[i * rows + k] = s;
            }
        }
    }

    private static double Sigmoid(double z) => z >= 0 ? 1 / (1 + Math.Exp(-z)) : Math.Exp(z) / (1 + Math.Exp(z));

    /// <summary>log(1 + exp(z)) without overflow.</summary>
    private static double Softplus(double z) => z > 0 ? z + Math.Log(1 + Math.Exp(-z)) : Math.Log(1 + Math.Exp(z));

    private sealed class Problem
    {
        public readonly SparseMatrix X;
        public readonly int[] Y;
        public readonly int Classes, Rows, D, Size;
        public readonly bool Intercept;
        public readonly double L2; // 1 / (C n)
        private readonly double[] _scores;

        public Problem(SparseMatrix x, int[] y, int classes, LogisticRegressionOptions options)
        {
            X = x;
            Y = y;
            Classes = classes;
            Rows = classes == 2 ? 1 : classes;
            D = x.ColumnCount;
            Intercept = options.FitIntercept;
            Size = Rows * D + (Intercept ? Rows : 0);
            L2 = 1 / (options.C * x.RowCount);
            _scores = new double[x.RowCount * Rows];
        }

        /// <summary>Objective at theta; writes its gradient.</summary>
        public double Evaluate(double[] theta, double[] gradient)
        {
            int n = X.RowCount, rows = Rows, d = D;
            var w = theta.AsSpan(0, rows * d);
            var b = Intercept ? theta.AsSpan(rows * d, rows) : Span<double>.Empty;
            Scores(X, w, b, rows, _scores);
            Array.Clear(gradient);
            double loss = 0;
            var residual = new double[rows];
            for (int i = 0; i < n; i++)
            {
                var z = _scores.AsSpan(i * rows, rows);
                int y = Y[i];
                if (Classes == 2)
                {
                    loss += Softplus(z[0]) - (y == 1 ? z[0] : 0);
                    residual[0] = Sigmoid(z[0]) - (y == 1 ? 1 : 0);
                }
                else
                {
                    double max = double.NegativeInfinity;
                    foreach (var v in z) max = Math.Max(max, v);
                    double sum = 0;
                    foreach (var v in z) sum += Math.Exp(v - max);
                    double lse = max + Math.Log(sum);
                    loss += lse - z[y];
                    for (int k = 0; k < rows; k++) residual[k] = Math.Exp(z[k] - lse) - (k == y ? 1 : 0);
                }
                var cols = X.RowColumns(i);
                var vals = X.RowValues(i);
                for (int k = 0; k < rows; k++)
                {
                    double r = residual[k];
                    if (r == 0) continue;
                    var gk = gradient.AsSpan(k * d, d);
                    for (int j = 0; j < cols.Length; j++) gk[cols[j]] += r * vals[j];
                    if (Intercept) gradient[rows * d + k] += r;
                }
            }
            double inv = 1.0 / n;
            double penalty = 0;
            for (int p = 0; p < rows * d; p++)
            {
                penalty += theta[p] * theta[p];
                gradient[p] = gradient[p] * inv + L2 * theta[p];
            }
            for (int p = rows * d; p < Size; p++) gradient[p] *= inv;
            return loss * inv + 0.5 * L2 * penalty;
        }
    }

    private static (double[] Theta, int Iterations, bool Converged, double F, double GMax, int Evaluations) Lbfgs(Problem problem, LogisticRegressionOptions options)
    {
        int size = problem.Size, m = options.HistorySize;
        var x = new double[size];
        var g = new double[size];
        var xNew = new double[size];
        var gNew = new double[size];
        var direction = new double[size];
        var s = new double[m][];
        var y = new double[m][];
        var rho = new double[m];
        var alpha = new double[m];
        int stored = 0, head = 0, evaluations = 1;
        double f = problem.Evaluate(x, g);
        double gmax = MaxAbs(g);
        if (gmax <= options.GradientTolerance) return (x, 0, true, f, gmax, evaluations);

        int iteration = 0;
        bool converged = false;
        while (iteration < options.MaxIterations)
        {
            iteration++;
            // Two-loop recursion: direction = -H g.
            for (int p = 0; p < size; p++) direction[p] = -g[p];
            for (int k = 0; k < stored; k++)
            {
                int idx = (head - 1 - k + m) % m;
                alpha[idx] = rho[idx] * Dot(s[idx], direction);
                Axpy(-alpha[idx], y[idx], direction);
            }
            if (stored > 0)
            {
                int last = (head - 1 + m) % m;
                double gamma = Dot(s[last], y[last]) / Dot(y[last], y[last]);
                for (int p = 0; p < size; p++) direction[p] *= gamma;
            }
            for (int k = stored - 1; k >= 0; k--)
            {
                int idx = (head - 1 - k + m) % m;
                double beta = rho[idx] * Dot(y[idx], direction);
                Axpy(alpha[idx] - beta, s[idx], direction);
            }
            double slope = Dot(g, direction);
            if (!(slope < 0))
            {
                // Not a descent direction (numerical trouble): restart from steepest descent.
                stored = 0;
                for (int p = 0; p < size; p++) direction[p] = -g[p];
                slope = Dot(g, direction);
            }

            // Backtracking line search (Armijo, c1 = 1e-4) with safeguarded quadratic interpolation.
            double step = stored == 0 ? Math.Min(1.0, 1.0 / Math.Sqrt(Dot(g, g))) : 1.0;
            double fNew = 0;
            bool accepted = false;
            for (int tries = 0; tries < 60; tries++)
            {
                for (int p = 0; p < size; p++) xNew[p] = x[p] + step * direction[p];
                fNew = problem.Evaluate(xNew, gNew);
                evaluations++;
                if (double.IsFinite(fNew) && fNew <= f + 1e-4 * step * slope) { accepted = true; break; }
                double next = double.IsFinite(fNew) ? -slope * step * step / (2 * (fNew - f - slope * step)) : step * 0.1;
                step = Math.Clamp(next, 0.1 * step, 0.5 * step);
            }
            if (!accepted) { converged = gmax <= options.GradientTolerance; break; }

            var sk = s[head] ??= new double[size];
            var yk = y[head] ??= new double[size];
            for (int p = 0; p < size; p++) { sk[p] = xNew[p] - x[p]; yk[p] = gNew[p] - g[p]; }
            double sy = Dot(sk, yk);
            if (sy > 1e-12 * Math.Sqrt(Dot(yk, yk) * Dot(sk, sk)))
            {
                rho[head] = 1 / sy;
                head = (head + 1) % m;
                stored = Math.Min(stored + 1, m);
            }
            double fOld = f;
            (x, xNew) = (xNew, x);
            (g, gNew) = (gNew, g);
            f = fNew;
            gmax = MaxAbs(g);
            if (gmax <= options.GradientTolerance) { converged = true; break; }
            if (fOld - f <= options.FunctionTolerance * Math.Max(Math.Max(Math.Abs(fOld), Math.Abs(f)), 1)) { converged = true; break; }
        }
        return (x, iteration, converged, f, gmax, evaluations);
    }

    private static double Dot(double[] a, double[] b)
    {
        double sum = 0;
        for (int i = 0; i < a.Length; i++) sum += a[i] * b[i];
        return sum;
    }

    private static void Axpy(double a, double[] x, double[] y)
    {
        for (int i = 0; i < x.Length; i++) y[i] += a * x[i];
    }

    private static double MaxAbs(double[] a)
    {
        double max = 0;
        foreach (var v in a) max = Math.Max(max, Math.Abs(v));
        return max;
    }
}
