using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Text;

namespace MlNetFineTune.Models.Formats;

/// <summary>A problem found while decoding; the unpickler / loader adds the file, entry and offset.</summary>
internal sealed class TorchPickleError : Exception
{
    public TorchPickleError(string message) : base(message) { }
}

/// <summary>
/// A pickle reader that never executes anything. It understands the data opcodes of protocols 0-5 that
/// torch.save emits (plus a few harmless extras), builds plain container objects, and constructs only an
/// allow-list of globals, interpreted by this class itself: <c>collections.OrderedDict</c>, the
/// <c>torch._utils._rebuild_*</c> tensor/parameter functions and <c>torch._tensor._rebuild_from_type_v2</c> (with
/// <c>torch.Tensor</c> / <c>torch.nn.Parameter</c> as the type), the <c>torch.*Storage</c> types (only as
/// persistent-id tags), <c>torch.Size</c>, <c>set</c>/<c>frozenset</c> and <c>_codecs.encode</c> (protocol-2
/// bytes). Any other global raises <see cref="UnsafePickleException"/> at the opcode that names it.
/// </summary>
internal sealed class TorchRestrictedUnpickler
{
    private enum GlobalKind
    {
        OrderedDict, RebuildTensor, RebuildTensorV2, RebuildParameter, RebuildParameterWithState,
        RebuildFromTypeV2, TensorType, ParameterType, Storage, TorchSize, Set, FrozenSet, CodecsEncode,
    }

    internal static readonly Dictionary<string, TorchDType> StorageTypes = new(StringComparer.Ordinal)
    {
        ["FloatStorage"] = TorchDType.Float32,
        ["DoubleStorage"] = TorchDType.Float64,
        ["HalfStorage"] = TorchDType.Float16,
        ["BFloat16Storage"] = TorchDType.BFloat16,
        ["LongStorage"] = TorchDType.Int64,
        ["IntStorage"] = TorchDType.Int32,
        ["ShortStorage"] = TorchDType.Int16,
        ["CharStorage"] = TorchDType.Int8,
        ["ByteStorage"] = TorchDType.UInt8,
        ["BoolStorage"] = TorchDType.Bool,
        ["ComplexFloatStorage"] = TorchDType.Complex64,
        ["ComplexDoubleStorage"] = TorchDType.Complex128,
    };

    // Declared after StorageTypes: static fields initialise in textual order.
    private static readonly Dictionary<(string Module, string Name), GlobalKind> Allowed = BuildAllowList();

    private static Dictionary<(string, string), GlobalKind> BuildAllowList()
    {
        var d = new Dictionary<(string, string), GlobalKind>
        {
            [("collections", "OrderedDict")] = GlobalKind.OrderedDict,
            [("torch._utils", "_rebuild_tensor")] = GlobalKind.RebuildTensor,
            [("torch._utils", "_rebuild_tensor_v2")] = GlobalKind.RebuildTensorV2,
            [("torch._utils", "_rebuild_parameter")] = GlobalKind.RebuildParameter,
            [("torch._utils", "_rebuild_parameter_with_state")] = GlobalKind.RebuildParameterWithState,
            [("torch._tensor", "_rebuild_from_type_v2")] = GlobalKind.RebuildFromTypeV2,
            [("torch", "Tensor")] = GlobalKind.TensorType,
            [("torch._tensor", "Tensor")] = GlobalKind.TensorType,
            [("torch.nn.parameter", "Parameter")] = GlobalKind.ParameterType,
            [("torch.nn", "Parameter")] = GlobalKind.ParameterType,
            [("torch", "Size")] = GlobalKind.TorchSize,
            [("builtins", "set")] = GlobalKind.Set,
            [("__builtin__", "set")] = GlobalKind.Set,
            [("builtins", "frozenset")] = GlobalKind.FrozenSet,
            [("__builtin__", "frozenset")] = GlobalKind.FrozenSet,
            [("_codecs", "encode")] = GlobalKind.CodecsEncode,
        };
        foreach (var name in StorageTypes.Keys) d[("torch", name)] = GlobalKind.Storage;
        return d;
    }

    /// <summary>True when <paramref name="g"/> is one of the torch.*Storage type tags.</summary>
    internal static bool IsStorageType(PickleGlobal g, out TorchDType dtype)
    {
        dtype = default;
        return g.Module == "torch" && StorageTypes.TryGetValue(g.Name, out dtype);
    }

    private const int MaxLineBytes = 4096;
    private const int MaxLongBytes = 4096;
    private const int MaxTensorRank = 64;
    private const int HighestProtocol = 5;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly Stream _s;
    private readonly long _start;
    private readonly string _file;
    private readonly string _entry;
    private readonly TorchLoadOptions _opt;
    private readonly Func<PickleTuple, TorchStorage>? _persistentLoad;
    private readonly List<TorchTensorValue>? _tensors;

    private readonly List<object?> _stack = new();
    private readonly List<int> _marks = new();
    private readonly Dictionary<long, object?> _memo = new();
    private long _opOffset;
    private int _op;

    /// <param name="stream">Positioned at the first byte of the pickle; read up to and including STOP.</param>
    /// <param name="file">File or stream name for messages.</param>
    /// <param name="entry">Zip entry / section name for messages.</param>
    /// <param name="options">Limits.</param>
    /// <param name="persistentLoad">Resolves BINPERSID ids to storages; null forbids persistent ids.</param>
    /// <param name="tensors">Receives every tensor built, in pickle order; null forbids tensors.</param>
    public TorchRestrictedUnpickler(Stream stream, string file, string entry, TorchLoadOptions options,
        Func<PickleTuple, TorchStorage>? persistentLoad, List<TorchTensorValue>? tensors)
    {
        _s = stream;
        _start = stream.Position;
        _file = file;
        _entry = entry;
        _opt = options;
        _persistentLoad = persistentLoad;
        _tensors = tensors;
    }

    /// <summary>Reads one pickle (up to STOP) and returns its object.</summary>
    public object? Load()
    {
        try
        {
            return Run();
        }
        catch (TorchPickleError e)
        {
            throw Error(e.Message);
        }
        catch (Exception e) when (e is not TorchCheckpointFormatException
            && e is EndOfStreamException or IOException or DecoderFallbackException or OverflowException or FormatException)
        {
            throw Error(e.Message, e);
        }
    }

    private TorchCheckpointFormatException Error(string message, Exception? inner = null) =>
        new($"{_file}: {_entry} at offset {_opOffset} (opcode {OpName(_op)}): {message}", _file, _entry, _opOffset, inner);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // one long-running loop per pickle: skip tier-0
    private object? Run()
    {
        while (true)
        {
            _opOffset = _s.Position - _start;
            if (_opOffset > _opt.MaxPickleBytes)
                throw new TorchPickleError($"pickle is larger than the {_opt.MaxPickleBytes}-byte limit (TorchLoadOptions.MaxPickleBytes).");
            _op = -1;
            int op = _s.ReadByte();
            if (op < 0) throw new TorchPickleError("unexpected end of data before the STOP opcode (truncated pickle).");
            _op = op;
            switch (op)
            {
                case 0x80: // PROTO
                {
                    int v = ReadU8();
                    if (v > HighestProtocol) throw new TorchPickleError($"unsupported pickle protocol {v} (0-{HighestProtocol} are supported).");
                    break;
                }
                case 0x95: // FRAME (framing is only a buffering hint)
                {
                    ulong n = ReadU64();
                    if (n > (ulong)Remaining) throw new TorchPickleError($"frame length {n} exceeds the {Remaining} bytes left.");
                    break;
                }
                case '.': // STOP
                    if (_marks.Count != 0) throw new TorchPickleError("STOP inside an unclosed MARK.");
                    if (_stack.Count != 1) throw new TorchPickleError($"STOP with {_stack.Count} items on the stack (expected 1).");
                    return _stack[0];

                // ---- constants and numbers
                case 'N': Push(null); break;
                case 0x88: Push(true); break;
                case 0x89: Push(false); break;
                case 'J': Push((long)ReadI32()); break;
                case 'K': Push((long)ReadU8()); break;
                case 'M': Push((long)ReadU16()); break;
                case 0x8a: Push(ReadLong(ReadU8())); break; // LONG1
                case 0x8b: // LONG4
                {
                    int n = ReadI32();
                    if (n < 0) throw new TorchPickleError($"negative LONG4 length {n}.");
                    if (n > MaxLongBytes) throw new TorchPickleError($"LONG4 integer of {n} bytes is larger than the {MaxLongBytes}-byte limit.");
                    Push(ReadLong(n));
                    break;
                }
                case 'G': Push(BinaryPrimitives.ReadDoubleBigEndian(ReadBytes(8))); break;
                case 'I': // INT (text)
                {
                    string line = ReadLine();
                    if (line == "01") Push(true);
                    else if (line == "00") Push(false);
                    else Push(ParseTextInt(line));
                    break;
                }
                case 'L': // LONG (text)
                {
                    string line = ReadLine();
                    if (line.EndsWith('L')) line = line[..^1];
                    Push(ParseTextInt(line));
                    break;
                }
                case 'F': Push(ParseTextFloat(ReadLine())); break;

                // ---- strings and bytes
                case 'X': Push(ReadString(ReadU32())); break;
                case 0x8c: Push(ReadString((ulong)ReadU8())); break;
                case 0x8d: Push(ReadString(ReadU64())); break;
                case 'T': // BINSTRING (Python 2 str, decoded as UTF-8 like torch.load)
                {
                    int n = ReadI32();
                    if (n < 0) throw new TorchPickleError($"negative BINSTRING length {n}.");
                    Push(ReadString((ulong)n));
                    break;
                }
                case 'U': Push(ReadString((ulong)ReadU8())); break;
                case 'B': Push(ReadBytes(ReadU32())); break;
                case 'C': Push(ReadBytes((ulong)ReadU8())); break;
                case 0x8e: Push(ReadBytes(ReadU64())); break;
                case 0x96: Push(ReadBytes(ReadU64())); break; // BYTEARRAY8

                // ---- containers
                case '(': // MARK
                    if (_marks.Count >= _opt.MaxMarkDepth)
                        throw new TorchPickleError($"more than {_opt.MaxMarkDepth} nested MARKs (TorchLoadOptions.MaxMarkDepth).");
                    _marks.Add(_stack.Count);
                    break;
                case ')': Push(PickleTuple.Empty); break;
                case ']': Push(new List<object?>()); break;
                case '}': Push(new PickleDict(isOrderedDict: false)); break;
                case 0x8f: Push(new PickleSet(isFrozen: false)); break;
                case 't': Push(new PickleTuple(PopMark())); break;
                case 0x85: Push(new PickleTuple([Pop()])); break;
                case 0x86: { var b = Pop(); var a = Pop(); Push(new PickleTuple([a, b])); break; }
                case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); Push(new PickleTuple([a, b, c])); break; }
                case 'l': Push(new List<object?>(PopMark())); break;
                case 'd':
                {
                    var items = PopMark();
                    var d = new PickleDict(isOrderedDict: false);
                    SetItems(d, items);
                    Push(d);
                    break;
                }
                case 0x91: // FROZENSET
                {
                    var set = new PickleSet(isFrozen: true);
                    foreach (var item in PopMark()) set.Add(item);
                    Push(set);
                    break;
                }
                case 'a': // APPEND
                {
                    var v = Pop();
                    AsList(Top(), "APPEND").Add(v);
                    break;
                }
                case 'e': // APPENDS
                {
                    var items = PopMark();
                    AsList(Top(), "APPENDS").AddRange(items);
                    break;
                }
                case 's': // SETITEM
                {
                    var v = Pop();
                    var k = Pop();
                    SetItem(AsDict(Top(), "SETITEM"), k, v);
                    break;
                }
                case 'u': // SETITEMS
                {
                    var items = PopMark();
                    SetItems(AsDict(Top(), "SETITEMS"), items);
                    break;
                }
                case 0x90: // ADDITEMS
                {
                    var items = PopMark();
                    if (Top() is not PickleSet set || set.IsFrozen) throw new TorchPickleError($"ADDITEMS needs a set, found {Describe(Top())}.");
                    foreach (var item in items) set.Add(item);
                    break;
                }

                // ---- stack manipulation and memo
                case '0': // POP
                    if (_stack.Count > 0 && (_marks.Count == 0 || _marks[^1] < _stack.Count)) _stack.RemoveAt(_stack.Count - 1);
                    else PopMark();
                    break;
                case '1': PopMark(); break;
                case '2': Push(Top()); break;
                case 'q': Put(ReadU8()); break;
                case 'r': Put(ReadU32()); break;
                case 'p': Put(ParseIndex(ReadLine())); break;
                case 0x94: Put(_memo.Count); break; // MEMOIZE
                case 'h': Push(Get(ReadU8())); break;
                case 'j': Push(Get(ReadU32())); break;
                case 'g': Push(Get(ParseIndex(ReadLine()))); break;

                // ---- globals and object construction (allow-listed only)
                case 'c': // GLOBAL
                {
                    string module = ReadLine();
                    string name = ReadLine();
                    Push(ResolveGlobal(module, name));
                    break;
                }
                case 0x93: // STACK_GLOBAL
                {
                    var name = Pop();
                    var module = Pop();
                    if (module is not string m || name is not string n)
                        throw new TorchPickleError($"STACK_GLOBAL needs two strings, found {Describe(module)} and {Describe(name)}.");
                    Push(ResolveGlobal(m, n));
                    break;
                }
                case 'i': // INST
                {
                    string module = ReadLine();
                    string name = ReadLine();
                    var g = ResolveGlobal(module, name);
                    Push(Call(g, new PickleTuple(PopMark())));
                    break;
                }
                case 'o': // OBJ
                {
                    var items = PopMark();
                    if (items.Length == 0 || items[0] is not PickleGlobal g) throw new TorchPickleError("OBJ needs a class after the MARK.");
                    Push(Call(g, new PickleTuple(items[1..])));
                    break;
                }
                case 'R': // REDUCE
                {
                    var args = Pop();
                    var callable = Pop();
                    if (callable is not PickleGlobal g) throw new TorchPickleError($"REDUCE on {Describe(callable)}, which is not callable.");
                    if (args is not PickleTuple t) throw new TorchPickleError($"REDUCE arguments must be a tuple, found {Describe(args)}.");
                    Push(Call(g, t));
                    break;
                }
                case 0x81: // NEWOBJ
                {
                    var args = Pop();
                    var cls = Pop();
                    Push(NewObj(cls, args));
                    break;
                }
                case 0x92: // NEWOBJ_EX
                {
                    var kwargs = Pop();
                    var args = Pop();
                    var cls = Pop();
                    if (kwargs is not PickleDict kw || kw.Count != 0) throw new TorchPickleError("NEWOBJ_EX with keyword arguments is not supported.");
                    Push(NewObj(cls, args));
                    break;
                }
                case 'b': // BUILD
                {
                    var state = Pop();
                    Build(Top(), state);
                    break;
                }
                case 'Q': // BINPERSID
                {
                    var pid = Pop();
                    if (_persistentLoad is null) throw new TorchPickleError("persistent ids are not allowed in this pickle.");
                    if (pid is not PickleTuple t) throw new TorchPickleError($"persistent id must be a tuple, found {Describe(pid)}.");
                    Push(_persistentLoad(t));
                    break;
                }
                case 0x82: case 0x83: case 0x84: // EXT1/2/4
                {
                    long code = op == 0x82 ? ReadU8() : op == 0x83 ? ReadU16() : ReadI32();
                    string what = $"copyreg extension code {code}";
                    throw new UnsafePickleException(
                        $"{_file}: refused to load {_entry}: at offset {_opOffset} the pickle references a global through {what} (opcode {OpName(op)}), "
                        + "which is not on the allow-list. Nothing was executed.", _file, _entry, _opOffset, what);
                }
                case 'P': case 'S': case 'V': case 0x97: case 0x98:
                    throw new TorchPickleError($"opcode {OpName(op)} is not supported by this reader.");
                default:
                    throw new TorchPickleError($"invalid opcode 0x{op:x2}.");
            }
        }
    }

    // ------------------------------------------------------------------ globals and calls

    private PickleGlobal ResolveGlobal(string module, string name)
    {
        if (!Allowed.ContainsKey((module, name)))
        {
            string full = module + "." + name;
            throw new UnsafePickleException(
                $"{_file}: refused to load {_entry}: at offset {_opOffset} (opcode {OpName(_op)}) the pickle references the global '{full}', "
                + "which is not on the allow-list (tensor rebuild functions, torch storage types, OrderedDict, plain containers). "
                + "Unpickling it with torch.load would import and possibly execute it; nothing was executed here. "
                + "If the file is trusted, re-save just its state dict: torch.save(model.state_dict(), path).",
                _file, _entry, _opOffset, full);
        }
        return new PickleGlobal(module, name);
    }

    private object? Call(PickleGlobal g, PickleTuple args)
    {
        var kind = Allowed[(g.Module, g.Name)];
        switch (kind)
        {
            case GlobalKind.OrderedDict:
            {
                var d = new PickleDict(isOrderedDict: true);
                if (args.Count == 0) return d;
                if (args.Count != 1) throw new TorchPickleError($"OrderedDict() takes at most 1 argument, got {args.Count}.");
                switch (args[0])
                {
                    case PickleDict src:
                        foreach (var kv in src) SetItem(d, kv.Key, kv.Value);
                        return d;
                    case IReadOnlyList<object?> pairs:
                        foreach (var p in pairs)
                        {
                            if (p is not IReadOnlyList<object?> pair || pair.Count != 2 || p is PickleDict)
                                throw new TorchPickleError("OrderedDict(items) needs (key, value) pairs.");
                            SetItem(d, pair[0], pair[1]);
                        }
                        return d;
                    default:
                        throw new TorchPickleError($"OrderedDict() argument must be a dict or a list of pairs, found {Describe(args[0])}.");
                }
            }
            case GlobalKind.Set:
            case GlobalKind.FrozenSet:
            {
                var set = new PickleSet(kind == GlobalKind.FrozenSet);
                if (args.Count == 0) return set;
                if (args.Count != 1 || args[0] is not IReadOnlyList<object?> items)
                    throw new TorchPickleError($"{g.FullName}() needs one list/tuple argument.");
                foreach (var item in items) set.Add(item);
                return set;
            }
            case GlobalKind.TorchSize:
            {
                if (args.Count == 0) return PickleTuple.Empty;
                if (args.Count != 1 || args[0] is not IReadOnlyList<object?> dims || args[0] is PickleSet)
                    throw new TorchPickleError("torch.Size() needs one tuple/list argument.");
                var arr = new object?[dims.Count];
                for (int i = 0; i < arr.Length; i++) arr[i] = AsLong(dims[i], "torch.Size dimension");
                return new PickleTuple(arr);
            }
            case GlobalKind.CodecsEncode:
            {
                if (args.Count is < 1 or > 2 || args[0] is not string s) throw new TorchPickleError("_codecs.encode() needs (str, encoding).");
                string enc = args.Count == 2 ? args[1] as string ?? throw new TorchPickleError("_codecs.encode() encoding must be a str.") : "utf-8";
                switch (enc.ToLowerInvariant())
                {
                    case "latin1": case "latin-1": case "iso-8859-1": case "iso8859-1":
                    {
                        var bytes = new byte[s.Length];
                        for (int i = 0; i < s.Length; i++)
                        {
                            if (s[i] > 0xFF) throw new TorchPickleError("_codecs.encode(latin1): character outside latin-1.");
                            bytes[i] = (byte)s[i];
                        }
                        return bytes;
                    }
                    case "utf-8": case "utf8":
                        return StrictUtf8.GetBytes(s);
                    case "ascii":
                        foreach (char ch in s) if (ch > 0x7F) throw new TorchPickleError("_codecs.encode(ascii): non-ASCII character.");
                        return Encoding.ASCII.GetBytes(s);
                    default:
                        throw new TorchPickleError($"_codecs.encode(): encoding '{enc}' is not supported.");
                }
            }
            case GlobalKind.RebuildTensorV2:
                // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
                if (args.Count is not (6 or 7)) throw new TorchPickleError($"_rebuild_tensor_v2 takes 6 or 7 arguments, got {args.Count}.");
                if (args[5] is not (null or PickleDict)) throw new TorchPickleError($"_rebuild_tensor_v2: backward_hooks must be a dict, found {Describe(args[5])}.");
                return RebuildTensor(args[0], args[1], args[2], args[3], AsBool(args[4], "requires_grad"));
            case GlobalKind.RebuildTensor:
                if (args.Count != 4) throw new TorchPickleError($"_rebuild_tensor takes 4 arguments, got {args.Count}.");
                return RebuildTensor(args[0], args[1], args[2], args[3], false);
            case GlobalKind.RebuildParameter:
            case GlobalKind.RebuildParameterWithState:
            {
                int expected = kind == GlobalKind.RebuildParameter ? 3 : 4;
                if (args.Count != expected) throw new TorchPickleError($"{g.Name} takes {expected} arguments, got {args.Count}.");
                if (args[0] is not TorchTensorValue t) throw new TorchPickleError($"{g.Name}: data must be a tensor, found {Describe(args[0])}.");
                t.RequiresGrad = AsBool(args[1], "requires_grad");
                t.IsParameter = true;
                return t;
            }
            case GlobalKind.RebuildFromTypeV2:
            {
                // torch >= 1.12 for tensors with Python attributes: (func, type, args, state); the state is ignored.
                if (args.Count != 4) throw new TorchPickleError($"_rebuild_from_type_v2 takes 4 arguments, got {args.Count}.");
                if (args[0] is not PickleGlobal func || Allowed[(func.Module, func.Name)] is not
                        (GlobalKind.RebuildTensorV2 or GlobalKind.RebuildTensor or GlobalKind.RebuildParameter or GlobalKind.RebuildParameterWithState))
                    throw new TorchPickleError($"_rebuild_from_type_v2: the rebuild function must be a torch._utils._rebuild_* function, found {Describe(args[0])}.");
                if (args[1] is not PickleGlobal type || Allowed[(type.Module, type.Name)] is not (GlobalKind.TensorType or GlobalKind.ParameterType))
                    throw new TorchPickleError($"_rebuild_from_type_v2: the type must be torch.Tensor or torch.nn.Parameter, found {Describe(args[1])}.");
                if (args[2] is not PickleTuple inner) throw new TorchPickleError("_rebuild_from_type_v2: arguments must be a tuple.");
                if (Call(func, inner) is not TorchTensorValue t) throw new TorchPickleError("_rebuild_from_type_v2 did not rebuild a tensor.");
                if (Allowed[(type.Module, type.Name)] == GlobalKind.ParameterType) t.IsParameter = true;
                return t;
            }
            case GlobalKind.Storage:
                throw new TorchPickleError($"{g.FullName} can only appear as a persistent-id tag; constructing it is not supported.");
            default:
                throw new TorchPickleError($"{g.FullName} cannot be called.");
        }
    }

    private object? NewObj(object? cls, object? args)
    {
        if (cls is not PickleGlobal g) throw new TorchPickleError($"NEWOBJ on {Describe(cls)}, which is not a class.");
        if (args is not PickleTuple t) throw new TorchPickleError($"NEWOBJ arguments must be a tuple, found {Describe(args)}.");
        return Allowed[(g.Module, g.Name)] switch
        {
            GlobalKind.OrderedDict => new PickleDict(isOrderedDict: true), // __new__ ignores its arguments
            GlobalKind.Set => new PickleSet(isFrozen: false),
            GlobalKind.FrozenSet or GlobalKind.TorchSize => Call(g, t),
            _ => throw new TorchPickleError($"{g.FullName} cannot be instantiated with NEWOBJ."),
        };
    }

    private static void Build(object? obj, object? state)
    {
        switch (obj)
        {
            case PickleDict d:
            {
                // BUILD on an object without __setstate__: state is a dict of attributes, or (dict, slots).
                object? dictState = state;
                if (state is PickleTuple t)
                {
                    if (t.Count != 2) throw new TorchPickleError("BUILD state tuple must be (state, slotstate).");
                    dictState = t[0];
                    if (t[1] is not (null or PickleDict)) throw new TorchPickleError("BUILD slot state must be a dict.");
                    if (t[1] is PickleDict slots) CopyAttributes(d, slots);
                }
                if (dictState is null) return;
                if (dictState is not PickleDict attrs) throw new TorchPickleError($"BUILD state must be a dict, found {Describe(dictState)}.");
                CopyAttributes(d, attrs);
                return;
            }
            case TorchTensorValue:
                return; // tensor attributes (e.g. from torch.Tensor.__setstate__) carry no data we use
            default:
                throw new TorchPickleError($"BUILD on {Describe(obj)} is not supported.");
        }

        static void CopyAttributes(PickleDict target, PickleDict attrs)
        {
            foreach (var kv in attrs)
            {
                if (kv.Key is not string name) throw new TorchPickleError("BUILD attribute names must be strings.");
                target.SetAttribute(name, kv.Value);
            }
        }
    }

    private TorchTensorValue RebuildTensor(object? storageObj, object? offsetObj, object? sizeObj, object? strideObj, bool requiresGrad)
    {
        if (_tensors is null) throw new TorchPickleError("tensors are not allowed in this pickle.");
        if (storageObj is not TorchStorage storage) throw new TorchPickleError($"tensor storage must come from a persistent id, found {Describe(storageObj)}.");
        long offset = AsLong(offsetObj, "storage_offset");
        var size = AsLongTuple(sizeObj, "size");
        var stride = AsLongTuple(strideObj, "stride");
        if (size.Length > MaxTensorRank) throw new TorchPickleError($"tensor rank {size.Length} exceeds {MaxTensorRank}.");
        if (size.Length != stride.Length) throw new TorchPickleError($"tensor size has {size.Length} dims but stride has {stride.Length}.");
        if (storage.DType is TorchDType.Complex64 or TorchDType.Complex128)
            throw new TorchPickleError($"tensors of dtype {storage.DType} are not supported.");
        TorchTensorGeometry.Validate(size, stride, offset, storage.Numel);
        var t = new TorchTensorValue(storage, offset, size, stride, requiresGrad);
        _tensors.Add(t);
        return t;
    }

    // ------------------------------------------------------------------ containers

    private void SetItems(PickleDict d, object?[] items)
    {
        if ((items.Length & 1) != 0) throw new TorchPickleError("odd number of items for a dict.");
        for (int i = 0; i < items.Length; i += 2) SetItem(d, items[i], items[i + 1]);
    }

    private static void SetItem(PickleDict d, object? key, object? value)
    {
        if (!TorchPickleKey.IsHashable(key, 0)) throw new TorchPickleError($"unhashable dict key {Describe(key)}.");
        d.Set(new TorchPickleKey(key), value);
    }

    private static List<object?> AsList(object? o, string opName) =>
        o as List<object?> ?? throw new TorchPickleError($"{opName} needs a list, found {Describe(o)}.");

    private static PickleDict AsDict(object? o, string opName) =>
        o as PickleDict ?? throw new TorchPickleError($"{opName} needs a dict, found {Describe(o)}.");

    private static long AsLong(object? o, string what) => o switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        _ => throw new TorchPickleError($"{what} must be an int, found {Describe(o)}."),
    };

    private static bool AsBool(object? o, string what) => o switch
    {
        bool b => b,
        long l when l is 0 or 1 => l == 1,
        _ => throw new TorchPickleError($"{what} must be a bool, found {Describe(o)}."),
    };

    private static long[] AsLongTuple(object? o, string what)
    {
        if (o is not PickleTuple t) throw new TorchPickleError($"tensor {what} must be a tuple, found {Describe(o)}.");
        if (t.Count > MaxTensorRank) throw new TorchPickleError($"tensor {what} has {t.Count} dims (limit {MaxTensorRank}).");
        var r = new long[t.Count];
        for (int i = 0; i < r.Length; i++) r[i] = AsLong(t[i], $"tensor {what}[{i}]");
        return r;
    }

    internal static string Describe(object? o) => o switch
    {
        null => "None",
        bool => "a bool",
        long or BigInteger => "an int",
        double => "a float",
        string => "a str",
        byte[] => "bytes",
        List<object?> => "a list",
        PickleTuple => "a tuple",
        PickleDict => "a dict",
        PickleSet => "a set",
        PickleGlobal g => $"'{g.FullName}'",
        TorchStorage => "a storage",
        TorchTensorValue => "a tensor",
        _ => o.GetType().Name,
    };

    // ------------------------------------------------------------------ stack and memo

    private void Push(object? o)
    {
        if (_stack.Count >= _opt.MaxStackItems)
            throw new TorchPickleError($"more than {_opt.MaxStackItems} items on the stack (TorchLoadOptions.MaxStackItems).");
        _stack.Add(o);
    }

    private object? Pop()
    {
        int floor = _marks.Count == 0 ? 0 : _marks[^1];
        if (_stack.Count <= floor) throw new TorchPickleError("stack underflow.");
        var o = _stack[^1];
        _stack.RemoveAt(_stack.Count - 1);
        return o;
    }

    private object? Top()
    {
        int floor = _marks.Count == 0 ? 0 : _marks[^1];
        if (_stack.Count <= floor) throw new TorchPickleError("stack underflow.");
        return _stack[^1];
    }

    private object?[] PopMark()
    {
        if (_marks.Count == 0) throw new TorchPickleError("no MARK to pop to.");
        int mark = _marks[^1];
        _marks.RemoveAt(_marks.Count - 1);
        var items = _stack.GetRange(mark, _stack.Count - mark).ToArray();
        _stack.RemoveRange(mark, _stack.Count - mark);
        return items;
    }

    private void Put(long index)
    {
        if (index < 0) throw new TorchPickleError($"negative memo index {index}.");
        if (!_memo.ContainsKey(index) && _memo.Count >= _opt.MaxMemoEntries)
            throw new TorchPickleError($"more than {_opt.MaxMemoEntries} memo entries (TorchLoadOptions.MaxMemoEntries).");
        _memo[index] = Top();
    }

    private object? Get(long index) =>
        _memo.TryGetValue(index, out var v) ? v : throw new TorchPickleError($"memo index {index} was never stored.");

    // ------------------------------------------------------------------ raw reads

    private long Remaining => _s.Length - _s.Position;

    private int ReadU8()
    {
        int b = _s.ReadByte();
        if (b < 0) throw new TorchPickleError("unexpected end of data (truncated pickle).");
        return b;
    }

    private byte[] ReadBytes(ulong n)
    {
        long left = Remaining;
        if (n > (ulong)left) throw new TorchPickleError($"length {n} exceeds the {left} bytes left (truncated or corrupt pickle).");
        if (n > (ulong)_opt.MaxPickleBytes) throw new TorchPickleError($"length {n} exceeds TorchLoadOptions.MaxPickleBytes.");
        var buf = new byte[(int)n];
        _s.ReadExactly(buf);
        return buf;
    }

    private int ReadU16() => BinaryPrimitives.ReadUInt16LittleEndian(ReadBytes(2));

    private int ReadI32() => BinaryPrimitives.ReadInt32LittleEndian(ReadBytes(4));

    private uint ReadU32() => BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(4));

    private ulong ReadU64() => BinaryPrimitives.ReadUInt64LittleEndian(ReadBytes(8));

    private string ReadString(ulong n)
    {
        var bytes = ReadBytes(n);
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw new TorchPickleError("string is not valid UTF-8.");
        }
    }

    private string ReadLine()
    {
        var buf = new List<byte>();
        while (true)
        {
            int b = _s.ReadByte();
            if (b < 0) throw new TorchPickleError("unexpected end of data inside a text line.");
            if (b == '\n') break;
            if (buf.Count >= MaxLineBytes) throw new TorchPickleError($"text line longer than {MaxLineBytes} bytes.");
            buf.Add((byte)b);
        }
        try
        {
            return StrictUtf8.GetString(buf.ToArray());
        }
        catch (DecoderFallbackException)
        {
            throw new TorchPickleError("text line is not valid UTF-8.");
        }
    }

    private object ReadLong(int n)
    {
        if (n == 0) return 0L;
        var bytes = ReadBytes((ulong)n);
        var v = new BigInteger(bytes, isUnsigned: false, isBigEndian: false);
        return v >= long.MinValue && v <= long.MaxValue ? (object)(long)v : v;
    }

    private static object ParseTextInt(string s)
    {
        if (s.Length == 0 || s.Length > 1000) throw new TorchPickleError("invalid integer literal.");
        int i = s[0] is '-' or '+' ? 1 : 0;
        if (i == s.Length) throw new TorchPickleError("invalid integer literal.");
        for (int j = i; j < s.Length; j++) if (s[j] is < '0' or > '9') throw new TorchPickleError($"invalid integer literal '{Clip(s)}'.");
        var v = BigInteger.Parse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
        return v >= long.MinValue && v <= long.MaxValue ? (object)(long)v : v;
    }

    private static double ParseTextFloat(string s)
    {
        switch (s)
        {
            case "inf": return double.PositiveInfinity;
            case "-inf": return double.NegativeInfinity;
            case "nan": return double.NaN;
        }
        if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var d))
            throw new TorchPickleError($"invalid float literal '{Clip(s)}'.");
        return d;
    }

    private static long ParseIndex(string s) =>
        long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : throw new TorchPickleError($"invalid memo index '{Clip(s)}'.");

    private static string Clip(string s) => s.Length <= 40 ? s : s[..40] + "...";

    internal static string OpName(int op) => op switch
    {
        -1 => "none (end of data)",
        0x80 => "PROTO", 0x81 => "NEWOBJ", 0x82 => "EXT1", 0x83 => "EXT2", 0x84 => "EXT4", 0x85 => "TUPLE1",
        0x86 => "TUPLE2", 0x87 => "TUPLE3", 0x88 => "NEWTRUE", 0x89 => "NEWFALSE", 0x8a => "LONG1", 0x8b => "LONG4",
        0x8c => "SHORT_BINUNICODE", 0x8d => "BINUNICODE8", 0x8e => "BINBYTES8", 0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS", 0x91 => "FROZENSET", 0x92 => "NEWOBJ_EX", 0x93 => "STACK_GLOBAL", 0x94 => "MEMOIZE",
        0x95 => "FRAME", 0x96 => "BYTEARRAY8", 0x97 => "NEXT_BUFFER", 0x98 => "READONLY_BUFFER",
        '(' => "MARK", '.' => "STOP", '0' => "POP", '1' => "POP_MARK", '2' => "DUP", 'F' => "FLOAT", 'I' => "INT",
        'J' => "BININT", 'K' => "BININT1", 'L' => "LONG", 'M' => "BININT2", 'N' => "NONE", 'P' => "PERSID",
        'Q' => "BINPERSID", 'R' => "REDUCE", 'S' => "STRING", 'T' => "BINSTRING", 'U' => "SHORT_BINSTRING",
        'V' => "UNICODE", 'X' => "BINUNICODE", 'a' => "APPEND", 'b' => "BUILD", 'c' => "GLOBAL", 'd' => "DICT",
        '}' => "EMPTY_DICT", 'e' => "APPENDS", 'g' => "GET", 'h' => "BINGET", 'i' => "INST", 'j' => "LONG_BINGET",
        'l' => "LIST", ']' => "EMPTY_LIST", 'o' => "OBJ", 'p' => "PUT", 'q' => "BINPUT", 'r' => "LONG_BINPUT",
        's' => "SETITEM", 't' => "TUPLE", ')' => "EMPTY_TUPLE", 'u' => "SETITEMS", 'G' => "BINFLOAT",
        'B' => "BINBYTES", 'C' => "SHORT_BINBYTES",
        _ => $"0x{op:x2}",
    };
}
