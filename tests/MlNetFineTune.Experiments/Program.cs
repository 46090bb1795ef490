using MlNetFineTune.Experiments;

// Experiment dispatcher: the first argument picks an experiment; the rest go to it.
//   dotnet run -c Release --project tests/MlNetFineTune.Experiments -- imdb [options]      (see scripts/imdb-benchmark.sh)
//   dotnet run -c Release --project tests/MlNetFineTune.Experiments -- fashion [options]   (see scripts/fashion-mnist-benchmark.sh)
var experiments = new Dictionary<string, Func<string[], int>>(StringComparer.OrdinalIgnoreCase)
{
    ["imdb"] = ImdbSuite.Run,
    ["fashion"] = FashionSuite.Run,
};

if (args.Length == 0 || !experiments.TryGetValue(args[0], out var experiment))
{
    Console.Error.WriteLine($"Usage: MlNetFineTune.Experiments <experiment> [options]. Experiments: {string.Join(", ", experiments.Keys)}");
    return 2;
}
return experiment(args[1..]);
