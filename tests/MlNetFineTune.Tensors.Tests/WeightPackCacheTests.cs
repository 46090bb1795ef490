using MlNetFineTune.Tensors.Cpu;
using MlNetFineTune.Tensors.Optim;
using Xunit;

namespace MlNetFineTune.Tensors.Tests;

/// <summary>Inference-time weight packs (<see cref="WeightPackCache"/>): used, reused, and dropped when the weight is written.</summary>
[Collection("GlobalKernelState")]
public sealed class WeightPackCacheTests
{
    private static (Tensor X, Tensor W, Tensor B) Layer(int rows = 32, int outF = 70, int inF = 64)
    {
        var rng = new Rng(3);
        var x = Tensor.RandN(rng, 2, rows / 2, inF);
        var w = Tensor.RandN(rng, 0f, 0.2f, outF, inF).RequireGrad();
        var b = Tensor.RandN(rng, outF).RequireGrad();
        return (x, w, b);
    }

    // The layer computed with the cache off: what the cached call must equal bitwise.
    private static float[] Uncached(Func<Tensor> f)
    {
        bool saved = WeightPackCache.Enabled;
        WeightPackCache.Enabled = false;
        try { using (Tensor.NoGrad()) return f().ToArray(); }
        finally { WeightPackCache.Enabled = saved; }
    }

    private static float[] Cached(Func<Tensor> f)
    {
        using (Tensor.NoGrad()) return f().ToArray();
    }

    [Fact]
    public void NoGradLinear_PacksTheWeightOnce_AndEqualsTheUncachedResultBitwise()
    {
        var (x, w, b) = Layer();
        var want = Uncached(() => Ops.Linear(x, w, b));
        var wantGelu = Uncached(() => Ops.LinearGelu(x, w, b));
        int before = WeightPackCache.PacksBuilt;
        for (int rep = 0; rep < 3; rep++)
        {
            Assert.Equal(want, Cached(() => Ops.Linear(x, w, b)));
            Assert.Equal(wantGelu, Cached(() => Ops.LinearGelu(x, w, b)));
        }
        Assert.Equal(before + 1, WeightPackCache.PacksBuilt);
        Assert.NotNull(w.PackCache);
    }

    [Fact]
    public void WritingTheWeight_DropsThePack_SoTheNextCallSeesTheNewValues()
    {
        var (x, w, b) = Layer();
        _ = Cached(() => Ops.Linear(x, w, b));

        // An optimizer step writes the weight in place (through AsSpan).
        var loss = Ops.Sum(Ops.Linear(x, w, b));
        loss.Backward();
        new AdamW([w, b], learningRate: 0.1).Step();
        int before = WeightPackCache.PacksBuilt;
        var after = Cached(() => Ops.Linear(x, w, b));
        Assert.Equal(Uncached(() => Ops.Linear(x, w, b)), after);
        Assert.Equal(before + 1, WeightPackCache.PacksBuilt);

        // A write through another tensor over the same storage (a detached view) also drops it.
        _ = Cached(() => Ops.Linear(x, w, b));
        w.Detach().AsSpan()[5] += 3f;
        Assert.Equal(Uncached(() => Ops.Linear(x, w, b)), Cached(() => Ops.Linear(x, w, b)));
    }

    [Fact]
    public void NoPack_WithGradients_TooManyRows_NonParameters_SmallProducts_OrWhenDisabled()
    {
        var (x, w, b) = Layer();
        int before = WeightPackCache.PacksBuilt;

        _ = Ops.Linear(x, w, b);                                        // gradients on: training packs per call
        var frozen = w.Detach();                                        // not a parameter (could be a pooled buffer)
        _ = Cached(() => Ops.Linear(x, frozen, b));
        var (small, ws, bs) = Layer(rows: 2, outF: 8, inF: 8);          // direct (unpacked) path
        _ = Cached(() => Ops.Linear(small, ws, bs));
        int savedRows = WeightPackCache.MaxRows;
        WeightPackCache.MaxRows = 16;
        try { _ = Cached(() => Ops.Linear(x, w, b)); }
        finally { WeightPackCache.MaxRows = savedRows; }
        _ = Uncached(() => Ops.Linear(x, w, b));

        Assert.Equal(before, WeightPackCache.PacksBuilt);
        Assert.Null(w.PackCache);
        Assert.Throws<ArgumentOutOfRangeException>(() => WeightPackCache.MaxRows = -1);
        Assert.Equal(savedRows, WeightPackCache.MaxRows);
    }

    [Fact]
    public void APackForOtherKernelSettings_IsRebuilt()
    {
        var (x, w, b) = Layer();
        _ = Cached(() => Ops.Linear(x, w, b));
        int before = WeightPackCache.PacksBuilt;
        var saved = Gemm.BlockingOverride;
        Gemm.BlockingOverride = (16, 12, 32);
        try
        {
            Assert.Equal(Uncached(() => Ops.Linear(x, w, b)), Cached(() => Ops.Linear(x, w, b)));
        }
        finally { Gemm.BlockingOverride = saved; }
        Assert.Equal(before + 1, WeightPackCache.PacksBuilt);
    }
}
