using MlNetFineTune.Tensors.Optim;
using Xunit;

namespace MlNetFineTune.Tensors.Tests;

/// <summary>The README's example, verbatim apart from the final check.</summary>
public class ReadmeExampleTests
{
    [Fact]
    public void FitsALine()
    {
        var rng = new Rng(seed: 0);                                  // every random thing takes an explicit RNG
        var x = Tensor.RandN(rng, 64, 1);
        var y = x * 3f + 0.5f;

        var w = Tensor.Zeros(1, 1).RequireGrad();
        var b = Tensor.Zeros(1).RequireGrad();
        var optimizer = new AdamW([w, b], learningRate: 0.1, weightDecay: 0);

        for (int step = 0; step < 200; step++)
        {
            optimizer.ZeroGrad();
            var loss = Ops.Mean(Ops.Pow(Ops.Linear(x, w, b) - y, 2f));
            loss.Backward();
            optimizer.Step();
        }
        Assert.Equal("w=3.000 b=0.500", $"w={w.Item():F3} b={b.Item():F3}");
    }
}
