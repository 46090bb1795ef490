using Xunit;

namespace MlNetFineTune.Tensors.Tests;

/// <summary>Tensor creation, views, reading back, ToString and the autograd mechanics.</summary>
public class TensorTests
{
    private static Tensor Seq(params int[] shape) => Tensor.Arange(0, shape.Aggregate(1, (a, b) => a * b)).Reshape(shape);

    [Fact]
    public void Creation()
    {
        Assert.Equal(new float[6], Tensor.Zeros(2, 3).ToArray());
        Assert.All(Tensor.Ones(4).ToArray(), v => Assert.Equal(1f, v));
        Assert.All(Tensor.Full(2.5f, 2, 2).ToArray(), v => Assert.Equal(2.5f, v));
        Assert.Equal(new float[] { 1, 1.5f, 2, 2.5f }, Tensor.Arange(1, 3, 0.5f).ToArray());
        Assert.Equal(new long[] { 0, 1, 2 }, Tensor.ArangeInt64(3).ToInt64Array());
        var ids = Tensor.FromArray(new long[] { 5, 6, 7, 8 }, 2, 2);
        Assert.Equal(DType.Int64, ids.DType);
        Assert.Equal(new[] { 2, 2 }, ids.Shape);
        var i32 = Tensor.FromArray(new[] { 1, 2, 3 });
        Assert.Equal(DType.Int32, i32.DType);
        Assert.Equal(new long[] { 1, 2, 3 }, i32.ToInt64Array());
        Assert.Equal(3f, Tensor.Scalar(3f).Item());
        Assert.Equal(0, Tensor.Scalar(3f).Rank);
    }

    [Fact]
    public void FromArrayCopiesAndChecksLength()
    {
        var data = new float[] { 1, 2, 3, 4 };
        var t = Tensor.FromArray(data, 2, 2);
        data[0] = 99;
        Assert.Equal(1f, t.ToArray()[0]);
        var ex = Assert.Throws<ArgumentException>(() => Tensor.FromArray(new float[5], 2, 2));
        Assert.Contains("[2, 2]", ex.Message);
    }

    [Fact]
    public void RandomTensorsAreSeeded()
    {
        var a = Tensor.RandN(new Rng(42), 100).ToArray();
        var b = Tensor.RandN(new Rng(42), 100).ToArray();
        var c = Tensor.RandN(new Rng(43), 100).ToArray();
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        var u = Tensor.RandUniform(new Rng(1), -2, 3, 10000).ToArray();
        Assert.All(u, v => Assert.InRange(v, -2f, 3f));
        Assert.InRange(u.Average(), 0.4, 0.6);
        var n = Tensor.RandN(new Rng(7), 2f, 3f, 20000).ToArray();
        double mean = n.Average(), std = Math.Sqrt(n.Select(v => (v - mean) * (v - mean)).Average());
        Assert.InRange(mean, 1.9, 2.1);
        Assert.InRange(std, 2.9, 3.1);
    }

    [Fact]
    public void ViewsShareStorageWithoutCopying()
    {
        var x = Seq(2, 3, 4);
        var t = x.Transpose(0, 2);
        Assert.Equal(new[] { 4, 3, 2 }, t.Shape);
        Assert.False(t.IsContiguous);
        Assert.Same(x.Storage, t.Storage);
        Assert.Same(x.Storage, x.Reshape(6, 4).Storage);
        Assert.Same(x.Storage, x.Narrow(1, 1, 2).Storage);
        Assert.Same(x.Storage, x.Unsqueeze(0).Storage);
        Assert.Same(x.Storage, x.Reshape(1, 2, 3, 4).Squeeze().Storage);
        Assert.Same(x.Storage, x.Narrow(2, 0, 1).Expand(2, 3, 5).Storage);
        Assert.Same(x.Storage, x.Permute(1, 0, 2).Storage);
        // t[i,j,k] = x[k,j,i]
        Assert.Equal(x.ToArray()[1 * 12 + 2 * 4 + 3], t.Contiguous().ToArray()[3 * 6 + 2 * 2 + 1]);
    }

    [Fact]
    public void ViewSemanticsMatchPyTorch()
    {
        var x = Seq(3, 4);
        Assert.Equal(new float[] { 4, 5, 6, 7, 8, 9, 10, 11 }, x.Narrow(0, 1, 2).ToArray());
        Assert.Equal(new float[] { 1, 3, 5, 7, 9, 11 }, Ops.Slice(x, 1, 1, 4, 2).ToArray());
        Assert.Equal(new float[] { 0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11 }, x.T.ToArray());
        Assert.Equal(new float[] { 0, 1, 2, 3, 0, 1, 2, 3 }, x.Narrow(0, 0, 1).Expand(2, 4).ToArray());
        Assert.Equal(new[] { 3, 1, 4 }, x.Unsqueeze(1).Shape);
        Assert.Equal(new[] { 3, 4, 1 }, x.Unsqueeze(-1).Shape);
        Assert.Equal(new[] { 12 }, Ops.Flatten(x).Shape);
        Assert.Equal(new[] { 2, 6 }, x.Reshape(2, -1).Shape);
        // A transposed tensor cannot be viewed flat without a copy; Reshape copies, View refuses.
        Assert.Throws<InvalidOperationException>(() => x.T.View(12));
        Assert.Equal(new float[] { 0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11 }, x.T.Reshape(12).ToArray());
        // Non-contiguous views in ops: row slices of a transpose.
        var y = x.T.Narrow(0, 1, 2); // [[1,5,9],[2,6,10]]
        Assert.Equal(new float[] { 2, 10, 18, 4, 12, 20 }, (y * 2f).ToArray());
    }

    [Fact]
    public void ContiguousCopiesIntegerTensorsToo()
    {
        var ids = Tensor.FromArray(new long[] { 1, 2, 3, 4, 5, 6 }, 2, 3);
        var t = ids.T.Contiguous();
        Assert.True(t.IsContiguous);
        Assert.Equal(DType.Int64, t.DType);
        Assert.Equal(new long[] { 1, 4, 2, 5, 3, 6 }, t.ToInt64Array());
    }

    [Fact]
    public void ToStringIsReadable()
    {
        var s = Tensor.FromArray(new float[] { 1, 2.5f, -3, 4 }, 2, 2).ToString();
        Assert.Equal("tensor([[1.0000, 2.5000],\n        [-3.0000, 4.0000]], shape=[2, 2])", s);
        Assert.Equal("tensor([7, 8], shape=[2], dtype=Int64)", Tensor.FromArray(new long[] { 7, 8 }).ToString());
        Assert.Contains("requires_grad=True", Tensor.Ones(2).RequireGrad().ToString());
        Assert.Contains("grad_fn=mul_scalar", (Tensor.Ones(2).RequireGrad() * 2f).ToString());
        Assert.Contains("...", Tensor.Zeros(100, 100).ToString());
    }

    [Fact]
    public void BackwardFreesTheGraphUnlessRetained()
    {
        var x = Tensor.FromArray(new float[] { 1, 2, 3 }).RequireGrad();
        var y = Ops.Sum(x * x);
        y.Backward(retainGraph: true);
        y.Backward();                          // retained: a second pass works and accumulates
        Assert.Equal(new float[] { 4, 8, 12 }, x.Grad!.ToArray());
        var ex = Assert.Throws<InvalidOperationException>(() => y.Backward());
        Assert.Contains("freed by an earlier backward", ex.Message);
        Assert.Contains("retainGraph", ex.Message);
        Assert.Equal(new float[] { 4, 8, 12 }, x.Grad!.ToArray()); // the refused pass changed nothing
    }

    [Fact]
    public void BackwardReleasesSavedActivationsForCollection()
    {
        // A chain whose ops save their inputs: once Backward returns, nothing but the caller's locals may keep them.
        var x = Tensor.RandN(new Rng(1), 64, 64).RequireGrad();
        var (loss, weak) = TanhChain(x, 4);
        loss.Backward();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        Assert.All(weak, w => Assert.False(w.IsAlive));
        Assert.NotNull(x.Grad);
        GC.KeepAlive(loss);
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static (Tensor Loss, List<WeakReference> Weak) TanhChain(Tensor x, int depth)
    {
        var weak = new List<WeakReference>();
        Tensor h = x;
        for (int i = 0; i < depth; i++)
        {
            h = Ops.Tanh(h * 1.5f);
            weak.Add(new WeakReference(h));
        }
        return (Ops.Sum(h), weak);
    }

    [Fact]
    public void GradientsAccumulateWhenATensorIsUsedTwice()
    {
        var x = Tensor.FromArray(new float[] { 1, 2, 3 }).RequireGrad();
        var y = Ops.Sum(x * x + x);           // dy/dx = 2x + 1
        y.Backward();
        Assert.Equal(new float[] { 3, 5, 7 }, x.Grad!.ToArray());
        Ops.Sum(x * 3f).Backward();            // a second backward accumulates into Grad
        Assert.Equal(new float[] { 6, 8, 10 }, x.Grad!.ToArray());
        x.ZeroGrad();
        Assert.Null(x.Grad);
    }

    [Fact]
    public void BackwardWithAnOutputGradient()
    {
        var x = Tensor.FromArray(new float[] { 1, 2, 3 }).RequireGrad();
        var y = x * x;
        y.Backward(Tensor.FromArray(new float[] { 1, 0, -1 }));
        Assert.Equal(new float[] { 2, 0, -6 }, x.Grad!.ToArray());
        Assert.Throws<InvalidOperationException>(() => (x * x).Backward()); // not a scalar
        var ex = Assert.Throws<ArgumentException>(() => (x * x).Backward(Tensor.Ones(2)));
        Assert.Contains("[2]", ex.Message);
        Assert.Contains("[3]", ex.Message);
    }

    [Fact]
    public void NoGradAndDetachRecordNothing()
    {
        var x = Tensor.Ones(3).RequireGrad();
        using (Tensor.NoGrad())
        {
            var y = x * 2f;
            Assert.False(y.RequiresGrad);
            Assert.False(Tensor.IsGradEnabled);
        }
        Assert.True(Tensor.IsGradEnabled);
        var d = x.Detach();
        Assert.False(d.RequiresGrad);
        Assert.Same(x.Storage, d.Storage);
        var z = Ops.Sum(x * d.RequireGrad(false));
        z.Backward();
        Assert.Equal(new float[] { 1, 1, 1 }, x.Grad!.ToArray());
        Assert.Null(d.Grad);
    }

    [Fact]
    public void GradientFlowsThroughViewsIntoTheLeaf()
    {
        var x = Seq(2, 3).RequireGrad();
        var y = x.T.Narrow(0, 1, 2).Reshape(4);  // elements x[0,1], x[1,1], x[0,2], x[1,2]
        y.Backward(Tensor.FromArray(new float[] { 1, 2, 3, 4 }));
        Assert.Equal(new float[] { 0, 1, 3, 0, 2, 4 }, x.Grad!.ToArray());
    }

    [Fact]
    public void IntegerTensorsCannotRequireGrad()
    {
        Assert.Throws<InvalidOperationException>(() => Tensor.ArangeInt64(3).RequiresGrad = true);
    }
}
