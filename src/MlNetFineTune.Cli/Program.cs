using System.CommandLine;
using MlNetFineTune.Cli;

// mlft: each command is a thin call into the library.
// Exit codes: 0 success, 2 bad input (the message names file, line and column), 1 anything else.
var root = Commands.Build(Console.Out, Console.Error);
return await root.Parse(args).InvokeAsync();
