using MlNetFineTune.Tensors.IO;
using Xunit;

namespace MlNetFineTune.Tensors.Tests;

/// <summary>The Tensor-level safetensors API on top of the format reader and writer.</summary>
public class SafeTensorsTensorTests
{
    [Fact]
    public void TensorsRoundTripWithDtypesShapesAndMetadata()
    {
        var dir = Directory.CreateTempSubdirectory("mlft-st-");
        try
        {
            var path = Path.Combine(dir.FullName, "model.safetensors");
            var w = Tensor.RandN(new Rng(3), 3, 4);
            var ids = Tensor.FromArray(new long[] { 1, -2, 3 });
            var view = w.T; // non-contiguous tensors are written in logical order
            SafeTensors.Save(path, new Dictionary<string, Tensor> { ["w"] = w, ["ids"] = ids, ["wt"] = view },
                new Dictionary<string, string> { ["format"] = "pt" });
            var back = SafeTensors.Load(path, out var meta);
            Assert.Equal("pt", meta["format"]);
            Assert.Equal(w.ToArray(), back["w"].ToArray());
            Assert.Equal(new[] { 4, 3 }, back["wt"].Shape);
            Assert.Equal(view.ToArray(), back["wt"].ToArray());
            Assert.Equal(DType.Int64, back["ids"].DType);
            Assert.Equal(ids.ToInt64Array(), back["ids"].ToInt64Array());
            Assert.Equal("w", back["w"].Name);

            SafeTensors.Save(path, new Dictionary<string, Tensor> { ["w"] = w }, halfPrecision: true);
            var half = SafeTensors.Load(path)["w"].ToArray();
            var full = w.ToArray();
            for (int i = 0; i < full.Length; i++) Assert.Equal((float)(Half)full[i], half[i]);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void CorruptFileNamesTheFile()
    {
        var path = Path.Combine(Path.GetTempPath(), $"mlft-corrupt-{Guid.NewGuid():N}.safetensors");
        File.WriteAllBytes(path, [8, 0, 0, 0, 0, 0, 0, 0, (byte)'{', (byte)'"', (byte)'a', (byte)'"', (byte)':', (byte)'1', (byte)'}', (byte)' ']);
        try
        {
            var ex = Assert.Throws<SafeTensorsFormatException>(() => SafeTensors.Load(path));
            Assert.Contains(Path.GetFileName(path), ex.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
