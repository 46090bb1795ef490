using MlNetFineTune.Benchmarks;

// Benchmark dispatcher: the first argument picks a suite (default "gemm"); the rest go to the suite.
//   dotnet run -c Release --project tests/MlNetFineTune.Benchmarks -- gemm [options]
//   dotnet run -c Release --project tests/MlNetFineTune.Benchmarks -- side-by-side [--only NAME,...] [--json FILE]   (ours vs PyTorch)
var suites = new Dictionary<string, Func<string[], int>>(StringComparer.OrdinalIgnoreCase)
{
    ["gemm"] = GemmBench.Run,
    ["side-by-side"] = SideBySideSuite.Run,
};

string name = args.Length > 0 && !args[0].StartsWith('-') ? args[0] : "gemm";
string[] rest = args.Length > 0 && !args[0].StartsWith('-') ? args[1..] : args;
if (!suites.TryGetValue(name, out var suite))
{
    Console.Error.WriteLine($"Unknown suite '{name}'. Suites: {string.Join(", ", suites.Keys)}");
    return 2;
}
return suite(rest);
