using MlNetFineTune.Tensors.Cpu;
using Xunit;

namespace MlNetFineTune.Tensors.Tests;

/// <summary>Bad input names the op and the shapes at fault; the same seed and thread count give the same bits.</summary>
public class ErrorTests
{
    private static void ThrowsNaming<TEx>(Action act, params string[] parts) where TEx : Exception
    {
        var ex = Assert.ThrowsAny<TEx>(act);
        foreach (var p in parts) Assert.Contains(p, ex.Message);
    }

    [Fact]
    public void ShapeMismatchesNameTheOpAndBothShapes()
    {
        var a = Tensor.Zeros(2, 3);
        var b = Tensor.Zeros(4, 5);
        ThrowsNaming<ArgumentException>(() => Ops.Add(a, b), "add", "[2, 3]", "[4, 5]");
        ThrowsNaming<ArgumentException>(() => Ops.Mul(a, Tensor.Zeros(3, 3)), "mul", "[2, 3]", "[3, 3]");
        ThrowsNaming<ArgumentException>(() => Ops.MatMul(a, b), "matmul", "[2, 3]", "[4, 5]");
        ThrowsNaming<ArgumentException>(() => Ops.MatMul(Tensor.Zeros(2, 2, 3), Tensor.Zeros(3, 3, 4)), "matmul", "[2, 2, 3]", "[3, 3, 4]");
        ThrowsNaming<ArgumentException>(() => Ops.Linear(a, Tensor.Zeros(4, 5)), "linear", "[2, 3]", "[4, 5]");
        ThrowsNaming<ArgumentException>(() => Ops.Where(Tensor.Zeros(2, 3), a, b), "where", "[2, 3]", "[4, 5]");
        ThrowsNaming<ArgumentException>(() => Ops.Concat([a, Tensor.Zeros(3, 4)], 0), "concat", "[2, 3]", "[3, 4]");
        ThrowsNaming<ArgumentException>(() => Ops.Stack([a, Tensor.Zeros(3, 2)], 0), "stack", "[2, 3]", "[3, 2]");
        ThrowsNaming<ArgumentException>(() => a.Reshape(4, 2), "reshape", "[2, 3]", "[4, 2]");
        ThrowsNaming<ArgumentException>(() => a.Expand(4, 4), "expand", "[2, 3]", "[4, 4]");
        ThrowsNaming<ArgumentException>(() => Ops.LayerNorm(a, [4], null, null), "layer_norm", "[2, 3]", "[4]");
        ThrowsNaming<ArgumentException>(() => Ops.CrossEntropy(a, Tensor.FromArray(new long[] { 0, 1, 2 })), "cross_entropy", "[3]", "[2, 3]");
        ThrowsNaming<ArgumentException>(() => Ops.Conv2d(Tensor.Zeros(1, 3, 5, 5), Tensor.Zeros(4, 2, 3, 3)), "conv2d", "[1, 3, 5, 5]", "[4, 2, 3, 3]");
        ThrowsNaming<ArgumentException>(() => Ops.BatchNorm2d(Tensor.Zeros(2, 3, 2, 2), null, null, Tensor.Zeros(4), Tensor.Ones(4), true), "batch_norm2d", "[4]");
        ThrowsNaming<ArgumentException>(() => Ops.MaskedFill(a, Tensor.Zeros(4, 3), 0f), "masked_fill", "[2, 3]", "[4, 3]");
        ThrowsNaming<ArgumentException>(() => Ops.Gather(a, 1, Tensor.FromArray(new long[] { 0 })), "gather", "[2, 3]");
    }

    [Fact]
    public void IndexErrorsNameTheValue()
    {
        var w = Tensor.Zeros(10, 4);
        w.Name = "word_embeddings";
        ThrowsNaming<ArgumentOutOfRangeException>(() => Ops.Embedding(Tensor.FromArray(new long[] { 3, 12 }), w), "12", "10", "word_embeddings");
        ThrowsNaming<ArgumentOutOfRangeException>(() => Ops.CrossEntropy(Tensor.Zeros(2, 3), Tensor.FromArray(new long[] { 0, 5 })), "5", "row 1");
        ThrowsNaming<ArgumentOutOfRangeException>(() => Ops.IndexSelect(w, 0, Tensor.FromArray(new long[] { -1 })), "-1", "index_select");
        ThrowsNaming<ArgumentOutOfRangeException>(() => Ops.Narrow(w, 1, 3, 2), "narrow", "size 4");
        ThrowsNaming<ArgumentOutOfRangeException>(() => Ops.Sum(w, [2]), "sum", "2");
        ThrowsNaming<ArgumentException>(() => Ops.Embedding(Tensor.FromArray(new float[] { 1 }), w), "Float32");
    }
}

[Collection("GlobalKernelState")]
public class DeterminismTests
{
    // A small training-like computation touching the threaded kernels (GEMM, conv, norms, softmax, reductions).
    private static float[] Run(ulong seed)
    {
        var rng = new Rng(seed);
        var x = Tensor.RandN(rng, 4, 8, 12, 12);
        var w = Tensor.RandN(rng, 0, 0.2f, 16, 8, 3, 3).RequireGrad();
        var dw = Tensor.RandN(rng, 0, 0.2f, 16, 1, 3, 3).RequireGrad();
        var fc = Tensor.RandN(rng, 0, 0.1f, 10, 16).RequireGrad();
        var rm = Tensor.Zeros(16);
        var rv = Tensor.Ones(16);
        var h = Ops.Relu(Ops.BatchNorm2d(Ops.Conv2d(x, w, padding: (1, 1)), null, null, rm, rv, training: true));
        h = Ops.Relu6(Ops.Conv2d(h, dw, padding: (1, 1), groups: 16));
        h = Ops.Dropout(Ops.GlobalAvgPool2d(h), 0.1f, rng);
        var seq = Tensor.RandN(rng, 4, 64, 96);
        var proj = Tensor.RandN(rng, 0, 0.1f, 96, 96).RequireGrad();
        var attn = Ops.Softmax(Ops.MatMul(Ops.Linear(seq, proj), seq.Transpose(1, 2)), -1);
        var pooled = Ops.Mean(Ops.LayerNorm(Ops.MatMul(attn, seq), [96], null, null), [1, 2]);
        var logits = Ops.Linear(h, fc) + pooled.Unsqueeze(1);
        var loss = Ops.CrossEntropy(logits, Tensor.FromArray(new long[] { 1, 3, 5, 7 }), labelSmoothing: 0.1f);
        loss.Backward();
        return [loss.Item(), .. w.Grad!.ToArray(), .. dw.Grad!.ToArray(), .. fc.Grad!.ToArray(), .. proj.Grad!.ToArray(), .. rm.ToArray()];
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void SameSeedAndThreadsGiveIdenticalBits(int threads)
    {
        int before = WorkerPool.Threads;
        WorkerPool.SetThreads(threads);
        try
        {
            var a = Run(123);
            var b = Run(123);
            Assert.Equal(a.Length, b.Length);
            for (int i = 0; i < a.Length; i++)
                Assert.True(BitConverter.SingleToInt32Bits(a[i]) == BitConverter.SingleToInt32Bits(b[i]), $"element {i}: {a[i]:R} vs {b[i]:R}");
            var c = Run(124);
            Assert.NotEqual(a[0], c[0]);
        }
        finally
        {
            WorkerPool.SetThreads(before);
        }
    }

    [Theory]
    [InlineData(0.1f)]
    [InlineData(0.5f)]
    public void DropoutMaskHasTheRightRateAndDependsOnTheSeedNotTheThreads(float p)
    {
        var x = Tensor.Ones(300, 1001);                      // not a multiple of the chunk size or of 2
        int before = WorkerPool.Threads;
        try
        {
            WorkerPool.SetThreads(1);
            var one = Ops.Dropout(x, p, new Rng(5)).ToArray();
            WorkerPool.SetThreads(2);
            var two = Ops.Dropout(x, p, new Rng(5)).ToArray();
            Assert.Equal(one, two);
            var other = Ops.Dropout(x, p, new Rng(6)).ToArray();
            Assert.NotEqual(one, other);
            int zeros = one.Count(v => v == 0f);
            double rate = (double)zeros / one.Length;
            Assert.InRange(rate, p - 0.005, p + 0.005);
            Assert.All(one, v => Assert.True(v == 0f || Math.Abs(v - 1f / (1f - p)) < 1e-6f));
            // Neighbouring elements are not correlated (each 64-bit draw feeds two elements).
            int both = 0;
            for (int i = 0; i + 1 < one.Length; i += 2) if (one[i] == 0f && one[i + 1] == 0f) both++;
            Assert.InRange(both / (one.Length / 2.0), p * p - 0.01, p * p + 0.01);
        }
        finally
        {
            WorkerPool.SetThreads(before);
        }
    }

    [Fact]
    public void DropoutAdd_IsAddOfDropout_BitwiseWithTheSameDraws_ForwardAndGradients()
    {
        var rng = new Rng(11);
        var x0 = Tensor.RandN(rng, 7, 3001);                  // chunks with a ragged end
        var r0 = Tensor.RandN(rng, 7, 3001);
        var g = Tensor.RandN(rng, 7, 3001);
        (float[] Y, float[] Gx, float[] Gr, ulong Next) Run(Func<Tensor, Tensor, Rng, Tensor> f)
        {
            var x = x0.Detach().RequireGrad();
            var r = r0.Detach().RequireGrad();
            var draws = new Rng(5);
            var y = f(x, r, draws);
            Ops.Sum(Ops.Mul(y, g)).Backward();
            return (y.ToArray(), x.Grad!.ToArray(), r.Grad!.ToArray(), draws.NextUInt64());
        }
        var fused = Run((x, r, d) => Ops.DropoutAdd(x, r, 0.3f, d));
        var plain = Run((x, r, d) => Ops.Add(Ops.Dropout(x, 0.3f, d), r));
        Assert.Equal(plain.Y, fused.Y);
        Assert.Equal(plain.Gx, fused.Gx);
        Assert.Equal(plain.Gr, fused.Gr);
        Assert.Equal(plain.Next, fused.Next);                 // the generator advanced the same way
        Assert.Contains(fused.Y, v => v != 0f);

        // Eval mode and p = 0 are the plain sum; a broadcast residual takes the two ops; a bad p is refused.
        Assert.Equal(Ops.Add(x0, r0).ToArray(), Ops.DropoutAdd(x0, r0, 0.3f, new Rng(1), training: false).ToArray());
        Assert.Equal(Ops.Add(x0, r0).ToArray(), Ops.DropoutAdd(x0, r0, 0f, new Rng(1)).ToArray());
        var row = Tensor.RandN(rng, 3001);
        Assert.Equal(Ops.Add(Ops.Dropout(x0, 0.3f, new Rng(2)), row).ToArray(), Ops.DropoutAdd(x0, row, 0.3f, new Rng(2)).ToArray());
        Assert.Throws<ArgumentOutOfRangeException>(() => Ops.DropoutAdd(x0, r0, 1f, new Rng(1)));
    }
}
