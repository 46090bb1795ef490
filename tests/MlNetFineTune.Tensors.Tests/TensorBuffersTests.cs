using MlNetFineTune.Tensors.Cpu;
using Xunit;

namespace MlNetFineTune.Tensors.Tests;

/// <summary>Recycling of gradient buffers during backward (TensorBuffers): results must not change.</summary>
[Collection("GlobalKernelState")]
public sealed class TensorBuffersTests
{
    // Shapes large enough (>= MinPooledLength elements) that every intermediate gradient is pooled.
    private static (Tensor[] Leaves, Tensor Loss) Graph(int seed)
    {
        var rng = new Rng((ulong)seed);
        var x = Tensor.RandN(rng, 64, 16, 64).RequireGrad();                 // 65,536 elements
        var w1 = Tensor.RandN(rng, 0f, 0.1f, 128, 64).RequireGrad();
        var b1 = Tensor.RandN(rng, 128).RequireGrad();
        var w2 = Tensor.RandN(rng, 0f, 0.1f, 64, 128).RequireGrad();
        var ln = Tensor.RandN(rng, 64).RequireGrad();
        var h = Ops.Gelu(Ops.Linear(x, w1, b1));                               // [64, 16, 128]
        h = Ops.Dropout(h, 0.1f, new Rng(7));
        var y = Ops.Linear(h, w2);                                             // [64, 16, 64]
        y = Ops.Add(y, x);                                                     // residual: x used twice
        y = Ops.LayerNorm(y, [64], ln, null);
        var heads = y.Reshape(64, 16, 4, 16).Permute(0, 2, 1, 3);              // [64, 4, 16, 16] view
        var scores = Ops.MatMul(heads, heads.Transpose(-1, -2));               // same tensor on both sides
        var p = Ops.AttentionSoftmax(scores, 0.25f);
        var ctx = Ops.MatMul(p, heads).Permute(0, 2, 1, 3).Reshape(64, 16, 64);
        var z = Ops.Add(ctx, ctx);                                             // pass-through gradient twice
        z = Ops.Mul(z, Ops.Add(y, y));
        var loss = Ops.Sum(Ops.Mul(z, z));
        return ([x, w1, b1, w2, ln], loss);
    }

    private static float[][] Grads(int seed)
    {
        var (leaves, loss) = Graph(seed);
        loss.Backward();
        return leaves.Select(l => l.Grad!.ToArray()).ToArray();
    }

    [Fact]
    public void RecyclingDoesNotChangeAnyGradient()
    {
        bool before = TensorBuffers.Enabled;
        try
        {
            TensorBuffers.Enabled = false;
            var reference = Grads(3);
            TensorBuffers.Enabled = true;
            TensorBuffers.Trim();
            // The first pass fills the pool; the next ones compute their forward and backward in recycled buffers
            // (whose stale contents must never show).
            for (int pass = 0; pass < 3; pass++)
            {
                var got = Grads(3);
                for (int i = 0; i < reference.Length; i++) Assert.Equal(reference[i], got[i]);
            }
        }
        finally { TensorBuffers.Enabled = before; }
    }

    [Fact]
    public void BufferPoolCapacity_BoundsWhatIsKept_AndLoweringItEmptiesThePool()
    {
        long before = BufferPool.Capacity;
        try
        {
            TensorBuffers.Trim();
            var (_, loss) = Graph(5);
            loss.Backward();
            long held = BufferPool.PooledBytes;
            Assert.True(held > 0);
            Assert.True(held <= BufferPool.Capacity);

            BufferPool.Capacity = held - 1;          // below what is held: the pool empties
            Assert.Equal(0, BufferPool.PooledBytes);
            BufferPool.Capacity = 0;                 // nothing is kept at all
            var (_, loss2) = Graph(5);
            loss2.Backward();
            Assert.Equal(0, BufferPool.PooledBytes);
            Assert.Throws<ArgumentOutOfRangeException>(() => BufferPool.Capacity = -1);

            BufferPool.Capacity = before;
            var (_, loss3) = Graph(5);
            loss3.Backward();
            Assert.True(BufferPool.PooledBytes > 0);
            BufferPool.Trim();
            Assert.Equal(0, BufferPool.PooledBytes);
        }
        finally { BufferPool.Capacity = before; }
    }

    [Fact]
    public void RecycleIntermediates_HandsBackTheBlocksTemporariesAndAConsumedInput_NeverTheResult()
    {
        const int n = 1 << 16;
        var rng = new Rng(3);
        var w = Tensor.RandN(rng, n);
        Tensor Block(Tensor x) => Ops.Mul(Ops.Add(x, w), w);          // Add's output is a temporary
        using (Tensor.NoGrad())
        {
            TensorBuffers.Trim();
            var input = Ops.MulScalar(w, 2f);                          // made by the caller, read by the block only
            var want = Block(input).ToArray();
            var inputBuffer = (float[])input.Storage;
            var y = TensorBuffers.RecycleIntermediates(() => Block(input), consumedInput: input);
            Assert.Equal(want, y.ToArray());
            Assert.Equal(2L * n * sizeof(float), TensorBuffers.PooledBytes);   // the temporary and the input
            var a = TensorBuffers.Rent(n);
            var b = TensorBuffers.Rent(n);
            Assert.Contains(inputBuffer, new[] { a, b });
            Assert.DoesNotContain(y.Storage, new object[] { a, b });
            Assert.Equal(want, y.ToArray());                             // the result is untouched by the rentals
        }

        // With a graph nothing is handed back, the consumed input included.
        TensorBuffers.Trim();
        var leaf = Tensor.RandN(rng, n).RequireGrad();
        var withGraph = TensorBuffers.RecycleIntermediates(() => Ops.Mul(Ops.Add(leaf, w), w), consumedInput: leaf);
        Assert.True(withGraph.RequiresGrad);
        Assert.Equal(0, TensorBuffers.PooledBytes);

        // A result that is the consumed input itself keeps its buffer.
        using (Tensor.NoGrad())
        {
            TensorBuffers.Trim();
            var same = Ops.MulScalar(w, 3f);
            var r = TensorBuffers.RecycleIntermediates(() => same.Reshape(n), consumedInput: same);
            Assert.Same(same.Storage, r.Storage);
            Assert.Equal(0, TensorBuffers.PooledBytes);
        }
    }

    [Fact]
    public void ABackwardPassRecyclesItsIntermediateGradients()
    {
        TensorBuffers.Trim();
        var (_, loss) = Graph(5);
        loss.Backward();
        Assert.True(TensorBuffers.PooledBytes > 0);
        long held = TensorBuffers.PooledBytes;
        var reused = TensorBuffers.Rent(64 * 16 * 64);  // a size the pass used and gave back
        Assert.True(TensorBuffers.PooledBytes < held);
        Assert.Equal(64 * 16 * 64, reused.Length);
    }

    [Fact]
    public void AGradientPassedThroughToTwoInputsIsNotAccumulatedInPlace()
    {
        // w = (x + z) + x: the outer add hands one buffer G to (x + z) and to x; the inner add hands G on to x
        // (which already holds G) and to z. Accumulating x's gradient in place would double z's as well.
        var rng = new Rng(4);
        var x = Tensor.RandN(rng, 256, 256).RequireGrad();
        var z = Tensor.RandN(rng, 256, 256).RequireGrad();
        var c = Tensor.RandN(rng, 256, 256);
        Ops.Sum(Ops.Mul(Ops.Add(Ops.Add(x, z), x), c)).Backward();
        Assert.Equal(c.ToArray(), z.Grad!.ToArray());
        Assert.Equal(Ops.MulScalar(c, 2f).ToArray(), x.Grad!.ToArray());
    }

    [Fact]
    public void LeavesSharingAGradientGetSeparateBuffers()
    {
        var rng = new Rng(9);
        var a = Tensor.RandN(rng, 256, 256).RequireGrad();
        var b = Tensor.RandN(rng, 256, 256).RequireGrad();
        Ops.Sum(Ops.Mul(Ops.Add(a, b), Ops.Add(a, b))).Backward(); // add passes one gradient to both leaves
        Assert.False(ReferenceEquals(a.Grad!.Storage, b.Grad!.Storage));
        var bBefore = b.Grad.ToArray();
        a.Grad.AsSpan().Fill(123f);
        Assert.Equal(bBefore, b.Grad.ToArray());
        Assert.Equal(bBefore, Ops.MulScalar(Ops.Add(a, b), 2f).Detach().ToArray());
    }

    [Fact]
    public void TheCallersGradientAndTheActivationsAreNeverRecycled()
    {
        TensorBuffers.Trim();
        var rng = new Rng(2);
        var x = Tensor.RandN(rng, 256, 256).RequireGrad();
        var y = Ops.Gelu(x);
        var g = Tensor.RandN(rng, 256, 256);
        var gCopy = g.ToArray();
        var yCopy = y.Detach().ToArray();
        y.Backward(g);
        // Rent everything the pool holds and scribble on it: the caller's tensors must not change.
        var rented = new List<float[]>();
        while (TensorBuffers.PooledBytes > 0) { var r = TensorBuffers.Rent(256 * 256); r.AsSpan().Fill(float.NaN); rented.Add(r); if (rented.Count > 64) break; }
        Assert.Equal(gCopy, g.ToArray());
        Assert.Equal(yCopy, y.Detach().ToArray());
        Assert.DoesNotContain(rented, r => ReferenceEquals(r, x.Grad!.Storage));
    }

    [Fact]
    public void StepScope_HandsBackEverythingRentedInside_IncludingWhatANestedRecordingKept_NeverWhatCameFromOutside()
    {
        const int n = 1 << 16;
        var rng = new Rng(12);
        TensorBuffers.Trim();
        var outside = Ops.Gelu(Tensor.RandN(rng, n));                   // rented before the scope: never handed back
        var outsideCopy = outside.ToArray();
        var leaf = Tensor.RandN(rng, n).RequireGrad();
        var leafCopy = leaf.ToArray();
        float[] innerBuffer, tempBuffer;
        using (BufferPool.StepScope())
        {
            var temp = Ops.Mul(leaf, outside);                            // recorded by the scope itself
            tempBuffer = (float[])temp.Storage;
            // A block with a graph hands nothing back itself; its buffers stay recorded by the enclosing scope.
            var inner = TensorBuffers.RecycleIntermediates(() => Ops.Gelu(Ops.AddScalar(temp, 1f)));
            Assert.True(inner.RequiresGrad);
            innerBuffer = (float[])inner.Storage;
            Assert.Equal(0, TensorBuffers.PooledBytes);
            Ops.Sum(inner).Backward();
        }
        // temp, the block's AddScalar output and its result: three buffers of n floats (the backward pass hands its
        // own intermediates back as it goes, and the leaf adopted its gradient).
        Assert.True(TensorBuffers.PooledBytes >= 3L * n * sizeof(float), $"pooled {TensorBuffers.PooledBytes}");
        var rented = new List<float[]>();
        while (TensorBuffers.PooledBytes > 0 && rented.Count < 64) { var r = TensorBuffers.Rent(n); r.AsSpan().Fill(float.NaN); rented.Add(r); }
        Assert.Contains(rented, r => ReferenceEquals(r, innerBuffer));
        Assert.Contains(rented, r => ReferenceEquals(r, tempBuffer));
        Assert.DoesNotContain(rented, r => ReferenceEquals(r, outside.Storage) || ReferenceEquals(r, leaf.Storage) || ReferenceEquals(r, leaf.Grad!.Storage));
        Assert.Equal(outsideCopy, outside.ToArray());
        Assert.Equal(leafCopy, leaf.ToArray());
        Assert.True(leaf.Grad!.ToArray().All(float.IsFinite));
    }

    [Fact]
    public void MaxPool_ArgmaxComesFromThePool_AndTheGradientIsRightWhenItIsReused()
    {
        // The max-pool op keeps its argmax (ints) in a pooled float buffer, so a step allocates no argmax array once
        // the pool has warmed; the gradient must stay right when the buffer is the previous step's.
        var rng = new Rng(31);
        TensorBuffers.Trim();
        var x = Tensor.RandN(rng, 4, 16, 32, 32).RequireGrad();              // y: 4 x 16 x 16 x 16 = 16,384 elements
        float[] Step(ulong seed, out long allocatedInForward)
        {
            var g = Tensor.RandN(new Rng(seed), 4, 16, 16, 16);
            x.Grad = null;
            using (BufferPool.StepScope())
            {
                long before = GC.GetAllocatedBytesForCurrentThread();
                var y = Ops.MaxPool2d(x, (3, 3), (2, 2), (1, 1));
                allocatedInForward = GC.GetAllocatedBytesForCurrentThread() - before;
                Ops.Sum(Ops.Mul(y, g)).Backward();
            }
            return x.Grad!.ToArray();
        }
        float[] Reference(ulong seed)
        {
            // The kernel with a plain int[] argmax, outside any pool.
            var g = Tensor.RandN(new Rng(seed), 4, 16, 16, 16).ToArray();
            var xs = x.ToArray();
            var y = new float[g.Length];
            var arg = new int[g.Length];
            var gx = new float[xs.Length];
            PoolKernels.MaxPool2dForward(4, 16, 32, 32, 3, 3, 2, 2, 1, 1, xs, y, arg);
            PoolKernels.MaxPool2dBackward(4, 16, 32, 32, 3, 3, 2, 2, 1, 1, g, arg, gx);
            return gx;
        }
        for (ulong s = 1; s <= 3; s++)
        {
            var grad = Step(s, out long allocated);
            Assert.Equal(Reference(s), grad);
            // A fresh int[16384] would be 64 KB; from the second step on the argmax and y come from the pool.
            if (s > 1) Assert.True(allocated < 16 * 1024, $"step {s}: the forward allocated {allocated} bytes");
        }
    }

    [Fact]
    public void StepScope_WithRecyclingOff_HandsNothingBack()
    {
        bool before = TensorBuffers.Enabled;
        try
        {
            TensorBuffers.Enabled = false;
            TensorBuffers.Trim();
            using (BufferPool.StepScope())
                _ = Ops.Gelu(Tensor.RandN(new Rng(1), 1 << 16));
            Assert.Equal(0, TensorBuffers.PooledBytes);
        }
        finally { TensorBuffers.Enabled = before; }
    }

    [Fact]
    public void ZeroGradInPlace_KeepsEachGradientBuffer_AndTrainsAsSettingThemToNone()
    {
        float[][] Train(bool setToNone, out bool sameBuffers)
        {
            var rng = new Rng(21);
            var w = Tensor.RandN(rng, 0f, 0.1f, 128, 64).RequireGrad();
            var b = Tensor.RandN(rng, 128).RequireGrad();
            var opt = new Optim.AdamW([w, b], learningRate: 1e-2);
            object? first = null;
            sameBuffers = true;
            for (int s = 0; s < 3; s++)
            {
                var x = Tensor.RandN(new Rng((ulong)(100 + s)), 32, 64);
                Ops.Sum(Ops.Mul(Ops.Gelu(Ops.Linear(x, w, b)), Ops.Gelu(Ops.Linear(x, w, b)))).Backward();
                first ??= w.Grad!.Storage;
                sameBuffers &= ReferenceEquals(first, w.Grad!.Storage);
                opt.Step();
                opt.ZeroGrad(setToNone);
                if (setToNone) Assert.Null(w.Grad);
                else Assert.All(w.Grad!.ToArray(), v => Assert.Equal(0f, v));
            }
            return [w.ToArray(), b.ToArray()];
        }

        var none = Train(setToNone: true, out _);
        var inPlace = Train(setToNone: false, out bool kept);
        Assert.True(kept);
        Assert.Equal(none[0], inPlace[0]);
        Assert.Equal(none[1], inPlace[1]);
    }
}
