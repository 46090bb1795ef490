using MlNetFineTune.AutoML;
using Xunit;

namespace MlNetFineTune.AutoML.Tests;

public class SpaceTunerTests
{
    [Fact]
    public void Placeholder() => Assert.Equal(3, new SearchSpace([new ChoiceParam("k", ["a", "b", "c"])]).GridSize);
}
