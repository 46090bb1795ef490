using MlNetFineTune.Tensors.Cpu;
using System.Numerics.Tensors;

namespace MlNetFineTune.Tensors;

public static partial class Ops
{
    private static void RequireFloat(Tensor t, string op, string arg)
    {
        if (t.DType != DType.Float32)
            throw new ArgumentException($"{op}: {arg}{t.Describe()} is {t.DType}; expected Float32.");
    }

    private static Tensor BinaryOp<TK>(Tensor a, Tensor b, string op) where TK : struct, IBinaryKernel
    {
        RequireFloat(a, op, "a"); RequireFloat(b, op, "b");
        var shape = ShapeUtil.Broadcast(a.ShapeArr, b.ShapeArr, op);
        return new Tensor(Broadcasting.Binary<TK>(a, b, shape), shape);
    }

    /// <summary>a + b with broadcasting.</summary>
    public static Tensor Add(Tensor a, Tensor b)
    {
        var r = BinaryOp<AddK>(a, b, "add");
        int[] sa = a.ShapeArr, sb = b.ShapeArr;
        return Tensor.Record(r, "add", [a, b], g => [SumTo(g, sa), SumTo(g, sb)]);
    }

    /// <summary>a - b with broadcasting.</summary>
    public static Tensor Sub(Tensor a, Tensor b)
    {
        var r = BinaryOp<SubK>(a, b, "sub");
        int[] sa = a.ShapeArr, sb = b.ShapeArr;
        return Tensor.Record(r, "sub", [a, b], g => [SumTo(g, sa), b.RequiresGrad ? SumTo(Neg(g), sb) : null]);
    }

    /// <summary>a * b with broadcasting.</summary>
    public static Tensor Mul(Tensor a, Tensor b)
    {
        var r = BinaryOp<MulK>(a, b, "mul");
        int[] sa = a.ShapeArr, sb = b.ShapeArr;
        return Tensor.Record(r, "mul", [a, b], g => [
            a.RequiresGrad ? SumTo(Mul(g, b), sa) : null,
            b.RequiresGrad ? SumTo(Mul(g, a), sb) : null]);
    }

    /// <summary>a / b with broadcasting.</summary>
    public static Tensor Div(Tensor a, Tensor b)
    {
        var r = BinaryOp<DivK>(a, b, "div");
        int[] sa = a.ShapeArr, sb = b.ShapeArr;
        return Tensor.Record(r, "div", [a, b], g => [
            a.RequiresGrad ? SumTo(Div(g, b), sa) : null,
            b.RequiresGrad ? SumTo(Neg(Div(Mul(g, r), b)), sb) : null]);
    }

    /// <summary>a ** b elementwise with broadcasting.</summary>
    public static Tensor Pow(Tensor a, Tensor b)
    {
        var r = BinaryOp<PowK>(a, b, "pow");
        int[] sa = a.ShapeArr, sb = b.ShapeArr;
        return Tensor.Record(r, "pow", [a, b], g => [
            a.RequiresGrad ? SumTo(Mul(g, Mul(b, Pow(a, AddScalar(b, -1f)))), sa) : null,
            b.RequiresGrad ? SumTo(Mul(g, Mul(r, Log(a))), sb) : null]);
    }

    // ------------------------------------------------------------------ unary

    private static Tensor Unary(Tensor x, string op, Action<ReadOnlySpan<float>, Span<float>> f)
    {
        RequireFloat(x, op, "x");
        var src = x.Dense<float>();
        var dst = TensorBuffers.Rent(src.Length);
        Broadcasting.Chunked(src.Length, (s, e) => f(src.AsSpan(s, e - s), dst.AsSpan(s, e - s)));
        return new Tensor(dst, (int[])x.ShapeArr.Clone());
    }

    /// <summary>-x.</summary>
    public static Tensor Neg(Tensor x) =>
        Tensor.Record(Unary(x, "neg", TensorPrimitives.Negate), "neg", [x], g => [Neg(g)]);

    /// <summary>x + scalar.</summary>
    public static Tensor AddScalar(Tensor x, float s) =>
        Tensor.Record(Unary(x, "add_scalar", (a, d) => TensorPrimitives.Add(a, s, d)), "add_scalar", [x], g => [g]);

    /// <summary>x * scalar.</summary>
    public static Tensor MulScalar(Tensor x, float s) =>
        Tensor.Record(Unary(x, "mul_scalar", (a, d) => TensorPrimitives.Multiply(a, s, d)), "mul_scalar", [x], g => [MulScalar(g, s)]);

    /// <summary>x ** exponent.</summary>
    public static Tensor Pow(Tensor x, float exponent)
    {
        Tensor r;
        if (exponent == 2f) r = Unary(x, "pow", (a, d) => TensorPrimitives.Multiply(a, a, d));
        else if (exponent == 0.5f) r = Unary(x, "pow", TensorPrimitives.Sqrt);
        else r = Unary(x, "pow", (a, d) => { for (int i = 0; i < d.Length; i++) d[i] = MathF.Pow(a[i], exponent); });
        return Tensor.Record(r, "pow", [x], g => [Mul(g, MulScalar(Pow(x, exponent - 1f), exponent))]);
    }

    /// <summary>Square root.</summary>
    public static Tensor Sqrt(Tensor x)
    {
        var r = Unary(x, "sqrt", TensorPrimitives.Sqrt);
        return Tensor.Record(r, "sqrt", [x], g => [Div(MulScalar(g, 0.5f), r)]);
    }

    /// <summary>1 / sqrt(x).</summary>
    public static Tensor Rsqrt(Tensor x)
    {
        var r = Unary(x, "rsqrt", (a, d) => { TensorPrimitives.Sqrt(a, d); TensorPrimitives.Reciprocal(d, d); });
        // d/dx x^-1/2 = -1/2 x^-3/2 = -1/2 r^3
        return Tensor.Record(r, "rsqrt", [x], g => [Mul(g, MulScalar(Pow(r, 3f), -0.5f))]);
    }

    /// <summary>e^x.</summary>
    public static Tensor Exp(Tensor x)
    {
        var r = Unary(x, "exp", TensorPrimitives.Exp);
        return Tensor.Record(r, "exp", [x], g => [Mul(g, r)]);
    }

    /// <summary>Natural logarithm.</summary>
    public static Tensor Log(Tensor x) =>
        Tensor.Record(Unary(x, "log", TensorPrimitives.Log), "log", [x], g => [Div(g, x)]);

    /// <summary>|x| (gradient sign(x), 0 at 0).</summary>
    public static Tensor Abs(Tensor x) =>
        Tensor.Record(Unary(x, "abs", TensorPrimitives.Abs), "abs", [x], g => [Mul(g, Sign(x))]);

    /// <summary>-1, 0 or 1 (not differentiable).</summary>
    public static Tensor Sign(Tensor x) =>
        Unary(x, "sign", (a, d) => { for (int i = 0; i < d.Length; i++) d[i] = a[i] > 0 ? 1f : a[i] < 0 ? -1f : 0f; });

    /// <summary>Clamps into [min, max] (either bound optional); gradient passes where the input is inside.</summary>
    public static Tensor Clamp(Tensor x, float? min = null, float? max = null)
    {
        float lo = min ?? float.NegativeInfinity, hi = max ?? float.PositiveInfinity;
        if (lo > hi) throw new ArgumentException($"clamp: min {lo} is greater than max {hi}.");
        var r = Unary(x, "clamp", (a, d) => { for (int i = 0; i < d.Length; i++) d[i] = Math.Min(Math.Max(a[i], lo), hi); });
        return Tensor.Record(r, "clamp", [x], g => [Mul(g, Unary(x, "clamp", (a, d) =>
        {
            for (int i = 0; i < d.Length; i++) d[i] = a[i] >= lo && a[i] <= hi ? 1f : 0f;
        }))]);
    }

    /// <summary>Hyperbolic tangent.</summary>
    public static Tensor Tanh(Tensor x)
    {
        var r = Unary(x, "tanh", TensorPrimitives.Tanh);
        return Tensor.Record(r, "tanh", [x], g => [Mul(g, Unary(r, "tanh", (y, d) =>
        {
            for (int i = 0; i < d.Length; i++) d[i] = 1f - y[i] * y[i];
        }))]);
    }

    /// <summary>Logistic sigmoid.</summary>
    public static Tensor Sigmoid(Tensor x)
    {
        var r = Unary(x, "sigmoid", TensorPrimitives.Sigmoid);
        return Tensor.Record(r, "sigmoid", [x], g => [Mul(g, Unary(r, "sigmoid", (y, d) =>
        {
            for (int i = 0; i < d.Length; i++) d[i] = y[i] * (1f - y[i]);
        }))]);
    }

    /// <summary>max(x, 0).</summary>
    public static Tensor Relu(Tensor x)
    {
        var r = Unary(x, "relu", (a, d) => TensorPrimitives.Max(a, 0f, d));
        return Tensor.Record(r, "relu", [x], g => [ClampGrad(x, g, float.PositiveInfinity)]);
    }

    // The gradient of a clamp to (0, hi): g where 0 < x < hi, else 0, in one fused pass.
    private static Tensor ClampGrad(Tensor x, Tensor g, float hi)
    {
        var xd = x.Dense<float>();
        var gd = g.Dense<float>();
        var gx = TensorBuffers.Rent(xd.Length);
        Broadcasting.Chunked(xd.Length, (s, e) => Cpu.VecKernels.ClampGrad(xd.AsSpan(s, e - s), gd.AsSpan(s, e - s), gx.AsSpan(s, e - s), hi));
        return new Tensor(gx, (int[])x.ShapeArr.Clone());
    }

    /// <summary>min(max(x, 0), 6).</summary>
    public static Tensor Relu6(Tensor x)
    {
        var r = Unary(x, "relu6", (a, d) => { TensorPrimitives.Max(a, 0f, d); TensorPrimitives.Min(d, 6f, d); });
        return Tensor.Record(r, "relu6", [x], g => [ClampGrad(x, g, 6f)]);
    }

    // ------------------------------------------------------------------ operators on Tensor

    /// <summary>Materialises a float copy of an integer tensor (or a copy of a float one).</summary>
    public static Tensor ToFloat(Tensor x) => Tensor.Wrap(x.ToArray(), x.ShapeArr);
}

public sealed partial class Tensor
{
    /// <summary>a + b with broadcasting.</summary>
    public static Tensor operator +(Tensor a, Tensor b) => Ops.Add(a, b);
    /// <summary>a - b with broadcasting.</summary>
    public static Tensor operator -(Tensor a, Tensor b) => Ops.Sub(a, b);
    /// <summary>a * b with broadcasting.</summary>
    public static Tensor operator *(Tensor a, Tensor b) => Ops.Mul(a, b);
    /// <summary>a / b with broadcasting.</summary>
    public static Tensor operator /(Tensor a, Tensor b) => Ops.Div(a, b);
    /// <summary>-a.</summary>
    public static Tensor operator -(Tensor a) => Ops.Neg(a);
    /// <summary>a + s.</summary>
    public static Tensor operator +(Tensor a, float s) => Ops.AddScalar(a, s);
    /// <summary>a - s.</summary>
    public static Tensor operator -(Tensor a, float s) => Ops.AddScalar(a, -s);
    /// <summary>a * s.</summary>
    public static Tensor operator *(Tensor a, float s) => Ops.MulScalar(a, s);
    /// <summary>s * a.</summary>
    public static Tensor operator *(float s, Tensor a) => Ops.MulScalar(a, s);
    /// <summary>a / s.</summary>
    public static Tensor operator /(Tensor a, float s) => Ops.MulScalar(a, 1f / s);

    /// <summary>Same elements, new shape (view when possible).</summary>
    public Tensor Reshape(params int[] shape) => Ops.Reshape(this, shape);
    /// <summary>View with a new shape (throws when a copy would be needed).</summary>
    public Tensor View(params int[] shape) => Ops.ViewAs(this, shape);
    /// <summary>Reorders dimensions (view).</summary>
    public Tensor Permute(params int[] dims) => Ops.Permute(this, dims);
    /// <summary>Swaps two dimensions (view).</summary>
    public Tensor Transpose(int dim0, int dim1) => Ops.Transpose(this, dim0, dim1);
    /// <summary>Transpose of the last two dimensions (view).</summary>
    public Tensor T => Ops.Transpose(this, -2, -1);
    /// <summary>Range along a dimension (view).</summary>
    public Tensor Narrow(int dim, int start, int length) => Ops.Narrow(this, dim, start, length);
    /// <summary>Broadcast to a shape (view).</summary>
    public Tensor Expand(params int[] shape) => Ops.Expand(this, shape);
    /// <summary>Insert a size-1 dimension (view).</summary>
    public Tensor Unsqueeze(int dim) => Ops.Unsqueeze(this, dim);
    /// <summary>Drop size-1 dimensions (view).</summary>
    public Tensor Squeeze(int? dim = null) => Ops.Squeeze(this, dim);
    /// <summary>Contiguous copy (or this).</summary>
    public Tensor Contiguous() => Ops.Contiguous(this);
    /// <summary>Sum over dims (all when none given).</summary>
    public Tensor Sum(int[]? dims = null, bool keepDim = false) => Ops.Sum(this, dims, keepDim);
    /// <summary>Mean over dims (all when none given).</summary>
    public Tensor Mean(int[]? dims = null, bool keepDim = false) => Ops.Mean(this, dims, keepDim);
    /// <summary>Matrix product.</summary>
    public Tensor MatMul(Tensor other) => Ops.MatMul(this, other);
}
