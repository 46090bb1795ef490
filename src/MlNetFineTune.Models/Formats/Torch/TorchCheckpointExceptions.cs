namespace MlNetFineTune.Models.Formats;

/// <summary>
/// A PyTorch checkpoint could not be read: the zip container, a pickle, a storage record or a tensor's
/// geometry is corrupt, truncated or outside the supported subset. The message names the file and, where known,
/// the zip entry and the byte offset (for pickles: the offset of the opcode at fault inside that pickle).
/// </summary>
/// <remarks>
/// Derives from <see cref="FormatException"/>, like SafeTensorsFormatException; lower-level causes (for example the
/// <see cref="InvalidDataException"/> of a corrupt zip) are kept as the inner exception. <see cref="UnsafeCheckpointException"/> and
/// <see cref="UnsafePickleException"/> derive from it, so catching this type catches every reason a checkpoint
/// was refused; catch those first to tell security refusals apart.
/// </remarks>
public class TorchCheckpointFormatException : FormatException
{
    /// <summary>Creates the exception.</summary>
    public TorchCheckpointFormatException(string message) : base(message) { }

    /// <summary>Creates the exception with the underlying cause.</summary>
    public TorchCheckpointFormatException(string message, Exception? innerException) : base(message, innerException) { }

    /// <summary>Creates the exception with location details.</summary>
    public TorchCheckpointFormatException(string message, string? filePath, string? entry, long? offset, Exception? innerException = null)
        : base(message, innerException)
    {
        FilePath = filePath;
        Entry = entry;
        Offset = offset;
    }

    /// <summary>The checkpoint file (or stream name) being read, when known.</summary>
    public string? FilePath { get; }

    /// <summary>The zip entry (or legacy-file section) at fault, e.g. <c>archive/data.pkl</c>, when known.</summary>
    public string? Entry { get; }

    /// <summary>The byte offset inside <see cref="Entry"/> (for pickles: of the opcode at fault), when known.</summary>
    public long? Offset { get; }
}

/// <summary>
/// A checkpoint was refused for a security reason: a zip entry name that could escape a directory
/// (<c>..</c> segments, absolute paths, drive letters, backslashes), or (see <see cref="UnsafePickleException"/>)
/// a pickle that references a global outside the allow-list. Nothing from the file is ever executed or extracted.
/// </summary>
public class UnsafeCheckpointException : TorchCheckpointFormatException
{
    /// <summary>Creates the exception with location details.</summary>
    public UnsafeCheckpointException(string message, string? filePath, string? entry, long? offset)
        : base(message, filePath, entry, offset) { }
}

/// <summary>
/// A pickle references a global (a class or function, e.g. <c>os.system</c>, <c>builtins.eval</c>) that is not
/// on the reader's allow-list of tensor-rebuild functions, storage types and plain containers. Raised at the
/// GLOBAL / STACK_GLOBAL / INST opcode itself, before anything could be called; nothing is executed.
/// </summary>
public sealed class UnsafePickleException : UnsafeCheckpointException
{
    /// <summary>Creates the exception.</summary>
    public UnsafePickleException(string message, string? filePath, string? entry, long? offset, string globalName)
        : base(message, filePath, entry, offset)
    {
        GlobalName = globalName;
    }

    /// <summary>The refused global as <c>module.name</c> (e.g. <c>os.system</c>), or a description for extension codes.</summary>
    public string GlobalName { get; }
}
