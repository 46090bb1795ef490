namespace MlNetFineTune.Baselines;

/// <summary>
/// A read-only sparse matrix in compressed sparse row (CSR) form: row <c>i</c> holds the entries
/// <c>RowPointers[i] .. RowPointers[i + 1] - 1</c> of <see cref="ColumnIndices"/> and <see cref="Values"/>,
/// columns strictly increasing within a row.
/// </summary>
public sealed class SparseMatrix
{
    private readonly int[] _rowPointers;
    private readonly int[] _columns;
    private readonly double[] _values;

    /// <summary>A dense row-major matrix (every entry stored, zeros included) in CSR form; <paramref name="values"/> is taken, not copied.</summary>
    public static SparseMatrix FromDense(int rows, int columns, double[] values)
    {
        ArgumentNullException.ThrowIfNull(values);
        if ((long)rows * columns != values.Length)
            throw new ArgumentException($"A {rows} x {columns} dense matrix needs {(long)rows * columns} values, got {values.Length}.", nameof(values));
        var pointers = new int[rows + 1];
        var cols = new int[values.Length];
        for (int i = 0; i < rows; i++)
        {
            for (int j = 0; j < columns; j++) cols[i * columns + j] = j;
            pointers[i + 1] = (i + 1) * columns;
        }
        return new SparseMatrix(rows, columns, pointers, cols, values);
    }

    /// <summary>Wraps CSR arrays after checking them (lengths, bounds, strictly increasing columns, finite values).</summary>
    /// <param name="rows">Number of rows.</param>
    /// <param name="columns">Number of columns.</param>
    /// <param name="rowPointers"><c>rows + 1</c> offsets, starting at 0, non-decreasing, ending at the entry count.</param>
    /// <param name="columnIndices">Column of each entry.</param>
    /// <param name="values">Value of each entry.</param>
    /// <exception cref="ArgumentException">The arrays do not form a valid CSR matrix.</exception>
    public SparseMatrix(int rows, int columns, int[] rowPointers, int[] columnIndices, double[] values)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(columns);
        ArgumentNullException.ThrowIfNull(rowPointers);
        ArgumentNullException.ThrowIfNull(columnIndices);
        ArgumentNullException.ThrowIfNull(values);
        if (rowPointers.Length != rows + 1)
            throw new ArgumentException($"{rows} rows need {rows + 1} row pointers, got {rowPointers.Length}.", nameof(rowPointers));
        if (columnIndices.Length != values.Length)
            throw new ArgumentException($"{columnIndices.Length} column indices but {values.Length} values.", nameof(values));
        if (rowPointers[0] != 0 || rowPointers[rows] != values.Length)
            throw new ArgumentException($"Row pointers must run from 0 to {values.Length}.", nameof(rowPointers));
        for (int i = 0; i < rows; i++)
        {
            int start = rowPointers[i], end = rowPointers[i + 1];
            if (end < start) throw new ArgumentException($"Row pointer {i + 1} is below row pointer {i}.", nameof(rowPointers));
            for (int k = start; k < end; k++)
            {
                int c = columnIndices[k];
                if ((uint)c >= (uint)columns)
                    throw new ArgumentException($"Row {i} has column {c}, outside [0, {columns}).", nameof(columnIndices));
                if (k > start && c <= columnIndices[k - 1])
                    throw new ArgumentException($"Row {i}: columns must be strictly increasing.", nameof(columnIndices));
                if (!double.IsFinite(values[k]))
                    throw new ArgumentException($"Row {i}, column {c} is {values[k]}; values must be finite.", nameof(values));
            }
        }
        RowCount = rows;
        ColumnCount = columns;
        _rowPointers = rowPointers;
        _columns = columnIndices;
        _values = values;
    }

    /// <summary>Number of rows.</summary>
    public int RowCount { get; }

    /// <summary>Number of columns.</summary>
    public int ColumnCount { get; }

    /// <summary>Number of stored entries.</summary>
    public int NonZeroCount => _values.Length;

    /// <summary>Row offsets, <see cref="RowCount"/> + 1 of them.</summary>
    public ReadOnlySpan<int> RowPointers => _rowPointers;

    /// <summary>Column of every stored entry.</summary>
    public ReadOnlySpan<int> ColumnIndices => _columns;

    /// <summary>Value of every stored entry.</summary>
    public ReadOnlySpan<double> Values => _values;

    /// <summary>The column indices of row <paramref name="row"/>.</summary>
    public ReadOnlySpan<int> RowColumns(int row) => _columns.AsSpan(_rowPointers[row], _rowPointers[row + 1] - _rowPointers[row]);

    /// <summary>The values of row <paramref name="row"/>.</summary>
    public ReadOnlySpan<double> RowValues(int row) => _values.AsSpan(_rowPointers[row], _rowPointers[row + 1] - _rowPointers[row]);

    /// <summary>Entry <c>(row, column)</c>, 0 when not stored.</summary>
    public double this[int row, int column]
    {
        get
        {
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)row, (uint)RowCount, nameof(row));
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)column, (uint)ColumnCount, nameof(column));
            int k = RowColumns(row).BinarySearch(column);
            return k >= 0 ? _values[_rowPointers[row] + k] : 0;
        }
    }

    /// <summary>Builds a matrix from rows of (sorted, distinct) column indices and values, without copying checks twice.</summary>
    internal static SparseMatrix FromRows(int columns, IReadOnlyList<(int[] Columns, double[] Values)> rows)
    {
        var pointers = new int[rows.Count + 1];
        long total = 0;
        for (int i = 0; i < rows.Count; i++)
        {
            total += rows[i].Columns.Length;
            if (total > Array.MaxLength) throw new InvalidOperationException("Too many non-zero entries for one sparse matrix.");
            pointers[i + 1] = (int)total;
        }
        var cols = new int[total];
        var vals = new double[total];
        for (int i = 0; i < rows.Count; i++)
        {
            rows[i].Columns.CopyTo(cols, pointers[i]);
            rows[i].Values.CopyTo(vals, pointers[i]);
        }
        return new SparseMatrix(rows.Count, columns, pointers, cols, vals);
    }
}
