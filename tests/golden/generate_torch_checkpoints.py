#!/usr/bin/env python3
"""Generate the PyTorch checkpoint fixtures for TorchCheckpoint (MlNetFineTune.Models.Formats).

Usage (from the repository root):

    /usr/bin/python3 tests/golden/generate_torch_checkpoints.py [--out DIR] [--check]

Writes into ``tests/MlNetFineTune.Models.Tests/fixtures/torch`` (or ``--out``):

* valid checkpoints written by ``torch.save`` (zip format, default pickle protocol 2, plus one with
  protocol 4), a legacy (non-zip) checkpoint, a DEFLATED re-zip, a big-endian re-zip;
* for each valid checkpoint ``<name>.expected.safetensors``: every tensor the C# reader must return,
  under its flattened state-dict name, converted exactly as the reader converts it (float16, bfloat16 and
  float64 -> F32; int64 -> I64; int32/int16/int8/uint8/bool -> I32). Its ``__metadata__`` holds
  ``order`` (JSON list of the names in checkpoint order) and ``torch_dtypes`` (JSON map name -> torch dtype);
* hostile files: pickles calling ``os.system`` / ``posix.system`` / ``builtins.eval`` through
  ``__reduce__`` (in genuine torch.save zips), a zip with a ``../evil`` entry and a truncated checkpoint.
  The payloads would create ``/tmp/mlnetfinetune_torch_pwned``; the C# tests assert it never appears.
  This script never unpickles those files except with ``torch.load(weights_only=True)``, which must refuse them.

Determinism: each fixture seeds torch with ``zlib.crc32(name)``, torch.save zips carry fixed timestamps,
hand-built zips use a fixed date, and the legacy writer below numbers storages 0, 1, ... instead of using
memory addresses (torch's ``_legacy_save`` uses ``str(storage._cdata)``). Two runs give identical bytes.
Needs only torch (1.13.x; Debian ``python3-torch``) and torchvision (for ``BasicBlock``).
"""

import argparse
import collections
import hashlib
import io
import json
import os
import pickle
import struct
import sys
import zipfile
import zlib

import torch
import torch.nn as nn

torch.set_num_threads(1)

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.normpath(os.path.join(HERE, "..", "MlNetFineTune.Models.Tests", "fixtures", "torch"))
MARKER = "/tmp/mlnetfinetune_torch_pwned"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def seed(name):
    torch.manual_seed(zlib.crc32(name.encode()))


# --------------------------------------------------------------------------------------
# Sidecar: minimal safetensors writer (F32 / I64 / I32) and reader
# --------------------------------------------------------------------------------------

def expected_of(t):
    """The value the C# reader must produce for tensor t: (safetensors dtype, numpy-free bytes, shape)."""
    t = t.detach().contiguous()
    if t.dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
        return "F32", t.to(torch.float32).contiguous()
    if t.dtype == torch.int64:
        return "I64", t
    if t.dtype in (torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool):
        return "I32", t.to(torch.int32).contiguous()
    raise TypeError(f"unsupported dtype {t.dtype}")


def tensor_bytes(t):
    t = t.contiguous()
    if t.numel() == 0:
        return b""
    return t.view(torch.uint8).numpy().tobytes() if t.dim() > 0 else t.reshape(1).view(torch.uint8).numpy().tobytes()


def write_safetensors(path, named, metadata):
    """named: list of (name, torch tensor) -> converted with expected_of; metadata: dict str -> str."""
    entries = {}
    for name, t in named:
        dt, conv = expected_of(t)
        entries[name] = (dt, list(conv.shape), tensor_bytes(conv))
    header = collections.OrderedDict()
    header["__metadata__"] = metadata
    offset = 0
    blobs = []
    for name in sorted(entries):
        dt, shape, data = entries[name]
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    out = {}
    dtypes = {"F32": torch.float32, "I64": torch.int64, "I32": torch.int32}
    for name, info in header.items():
        b, e = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[b:e]), dtype=dtypes[info["dtype"]]) if e > b else torch.empty(0, dtype=dtypes[info["dtype"]])
        out[name] = t.reshape(info["shape"])
    return out, meta


# --------------------------------------------------------------------------------------
# Flattening rule (mirrors TorchCheckpoint: dict keys joined by '.', list/tuple indices,
# int keys as decimals, non-tensors skipped)
# --------------------------------------------------------------------------------------

def flatten(obj, prefix=""):
    out = []

    def join(k):
        return k if prefix == "" else prefix + "." + k

    if isinstance(obj, torch.Tensor):
        out.append((prefix, obj))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(k, bool):
                ks = "True" if k else "False"
            elif isinstance(k, (str, int)):
                ks = str(k)
            elif k is None:
                ks = "None"
            else:
                continue
            out.extend(flatten(v, join(ks)))
    elif isinstance(obj, (list, tuple)) and not isinstance(obj, torch.Size):
        for i, v in enumerate(obj):
            out.extend(flatten(v, join(str(i))))
    return out


def write_expected(out_dir, name, obj):
    named = flatten(obj)
    meta = {
        "order": json.dumps([n for n, _ in named]),
        "torch_dtypes": json.dumps({n: str(t.dtype).replace("torch.", "") for n, t in named}),
    }
    write_safetensors(os.path.join(out_dir, name + ".expected.safetensors"), named, meta)


# --------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------

def legacy_save(obj, path):
    """torch.serialization._legacy_save, except that storage keys are 0, 1, ... (deterministic)."""
    id_map = {}
    storages = {}

    def persistent_id(o):
        if isinstance(o, torch.storage.TypedStorage):
            key = id_map.setdefault(o._storage._cdata, str(len(id_map)))
            storages.setdefault(key, (o._storage, o.dtype))
            storage_type = getattr(torch, o.pickle_storage_type())
            return ("storage", storage_type, key, "cpu", o.size(), None)
        return None

    ser = torch.serialization
    sys_info = dict(protocol_version=ser.PROTOCOL_VERSION, little_endian=sys.byteorder == "little",
                    type_sizes=dict(short=ser.SHORT_SIZE, int=ser.INT_SIZE, long=ser.LONG_SIZE))
    with open(path, "wb") as f:
        pickle.dump(ser.MAGIC_NUMBER, f, protocol=2)
        pickle.dump(ser.PROTOCOL_VERSION, f, protocol=2)
        pickle.dump(sys_info, f, protocol=2)
        p = pickle.Pickler(f, protocol=2)
        p.persistent_id = persistent_id
        p.dump(obj)
        keys = sorted(storages)
        pickle.dump(keys, f, protocol=2)
        f.flush()
        for k in keys:
            st, dtype = storages[k]
            st._write_file(f, True, True, torch._utils._element_size(dtype))


def read_zip(path):
    with zipfile.ZipFile(path) as z:
        return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def write_zip(path, records, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in records:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = compression
            info.external_attr = 0o644 << 16
            z.writestr(info, data, compress_type=compression, compresslevel=9 if compression == zipfile.ZIP_DEFLATED else None)


def rename_top(records, new_top):
    return [(new_top + "/" + n.split("/", 1)[1], d) for n, d in records]


def torch_writer_save(path, records):
    """Writes records with torch's own zip writer (same alignment/layout as torch.save)."""
    w = torch._C.PyTorchFileWriter(path)
    for name, data in records:
        w.write_record(name, data, len(data))
    w.write_end_of_file()
    del w


# --------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------

def tiny_state_dict():
    seed("tiny_state_dict")
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 6), nn.LayerNorm(6), nn.Linear(6, 3))
    with torch.no_grad():
        model[2].weight.copy_(1 + 0.3 * torch.randn(6))
        model[2].bias.copy_(0.2 * torch.randn(6))
    return model.state_dict()


def dtypes_obj():
    seed("dtypes")
    d = collections.OrderedDict()
    d["f32"] = torch.randn(2, 3)
    f16 = torch.randn(3, 5).half()
    f16[0, 0] = float("inf")
    f16[0, 1] = float("-inf")
    f16[0, 2] = -0.0
    f16[0, 3] = 6.0e-8  # float16 subnormal
    f16[0, 4] = 65504.0
    d["f16"] = f16
    bf = torch.randn(4, 3).bfloat16()
    bf[0, 0] = 3.0e38
    bf[0, 1] = -1.0e-38
    d["bf16"] = bf
    f64 = torch.randn(2, 3, dtype=torch.float64)
    f64[0, 0] = 0.1
    f64[0, 1] = 1.0 / 3.0
    f64[0, 2] = 1e-300  # underflows to 0 in float32
    d["f64"] = f64
    d["position_ids"] = torch.arange(7, dtype=torch.int64).unsqueeze(0)
    d["i64_extremes"] = torch.tensor([-(2 ** 63), 2 ** 63 - 1, -1, 0], dtype=torch.int64)
    d["i32"] = torch.tensor([[-2147483648, 2147483647], [-5, 7]], dtype=torch.int32)
    d["i16"] = torch.tensor([-32768, 32767, 3], dtype=torch.int16)
    d["i8"] = torch.tensor([-128, 127, -1], dtype=torch.int8)
    d["u8"] = torch.tensor([0, 255, 128, 7], dtype=torch.uint8)
    d["mask"] = torch.tensor([[True, False, True], [False, False, True]])
    d["scalar_f32"] = torch.tensor(2.5)
    d["num_batches_tracked"] = torch.tensor(42, dtype=torch.int64)
    d["empty"] = torch.zeros(0, 3)
    return d


def views_obj():
    seed("views")
    base = torch.arange(20, dtype=torch.float32) * 0.5 - 3.0
    w = torch.randn(3, 5)
    m = torch.randn(4, 5)
    d = collections.OrderedDict()
    d["transposed"] = w.t()                    # [5,3] stride (1,5)
    d["shared_a"] = base[2:8].view(2, 3)       # offset 2 into base's storage
    d["shared_b"] = base[10:16]                # offset 10, same storage
    d["full_base"] = base                      # offset 0, same storage
    d["every_third"] = base[1::3]              # stride 3
    d["expanded"] = torch.randn(3).expand(4, 3)  # stride (0,1)
    d["narrow_cols"] = m[:, 1:4]               # [4,3] stride (5,1) offset 1
    d["permuted"] = torch.randn(2, 3, 4).permute(2, 0, 1)
    d["half_transposed"] = torch.randn(3, 4).half().t()
    d["long_transposed"] = torch.arange(12, dtype=torch.int64).view(3, 4).t()
    return d


def wrapped_obj():
    seed("wrapped")
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss = model(torch.randn(5, 3)).pow(2).mean()
    loss.backward()
    opt.step()
    return collections.OrderedDict([
        ("epoch", 3),
        ("arch", "tiny_mlp"),
        ("state_dict", model.state_dict()),
        ("optimizer", opt.state_dict()),
        ("best_acc", 0.75),
    ])


class TinyResNet(nn.Module):
    """torchvision-style names (conv1, bn1, layer1.0.conv1, layer2.0.downsample.0, fc) at toy widths."""

    def __init__(self, num_classes=10):
        super().__init__()
        from torchvision.models.resnet import BasicBlock, conv1x1
        self.conv1 = nn.Conv2d(3, 4, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = nn.Sequential(BasicBlock(4, 4))
        self.layer2 = nn.Sequential(BasicBlock(4, 8, stride=2, downsample=nn.Sequential(conv1x1(4, 8, 2), nn.BatchNorm2d(8))))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet_obj():
    seed("resnet_tiny")
    model = TinyResNet()
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 3, 32, 32))  # non-trivial running stats, num_batches_tracked = 1
    return model.state_dict()


def misc_obj():
    seed("misc")
    return collections.OrderedDict([
        ("param", nn.Parameter(torch.randn(2, 2))),
        ("size", torch.Size([2, 3])),
        ("blob", b"\x00\x01abc\xff"),
        ("tags", {3, 1, 2}),
        ("frozen", frozenset(["a"])),
        ("big", 2 ** 70),
        ("neg", -123456789012),
        ("ratio", 0.25),
        ("nothing", None),
        ("flag", True),
        ("text", "h\u00e9llo \u2603"),
        ("nested_list", [torch.randn(3), (torch.randn(2, 1), {"deep": torch.randn(1)})]),
        ("int_keys", {0: torch.randn(2), 1: torch.randn(1, 2)}),
    ])


class Evil:
    def __init__(self, fn, arg):
        self.fn = fn
        self.arg = arg

    def __reduce__(self):
        return (self.fn, (self.arg,))


def generate(out):
    os.makedirs(out, exist_ok=True)
    written = []

    def path(name):
        written.append(name)
        return os.path.join(out, name)

    # -- valid zip checkpoints (torch.save, default protocol 2)
    sd = tiny_state_dict()
    torch.save(sd, path("tiny_state_dict.pt"))
    write_expected(out, "tiny_state_dict", sd)
    written.append("tiny_state_dict.expected.safetensors")
    torch.save(sd, path("tiny_state_dict_proto4.pt"), pickle_protocol=4)

    for name, obj in [("dtypes", dtypes_obj()), ("views", views_obj()), ("wrapped", wrapped_obj()),
                      ("misc", misc_obj())]:
        torch.save(obj, path(name + ".pt"))
        write_expected(out, name, obj)
        written.append(name + ".expected.safetensors")

    rn = resnet_obj()
    torch.save(rn, path("resnet_tiny.pth"))
    write_expected(out, "resnet_tiny", rn)
    written.append("resnet_tiny.expected.safetensors")

    seed("bare_tensor")
    torch.save(torch.arange(6, dtype=torch.float32).view(2, 3) * 1.5, path("bare_tensor.pt"))

    # -- legacy (non-zip) format
    seed("legacy")
    legacy = collections.OrderedDict()
    legacy["weight"] = torch.randn(3, 4)
    legacy["bias"] = torch.randn(3)
    legacy["half"] = torch.randn(2, 2).half()
    legacy["steps"] = torch.tensor([1, 2, 3], dtype=torch.int64)
    base = torch.randn(10)
    legacy["view_a"] = base[1:4]
    legacy["view_b"] = base[5:10].view(5, 1).t()
    legacy["nested"] = {"inner": torch.randn(2)}
    legacy_save(legacy, path("legacy_format.pt"))
    write_expected(out, "legacy_format", legacy)
    written.append("legacy_format.expected.safetensors")

    # -- re-zips of tiny_state_dict: DEFLATED entries, big-endian data
    recs = read_zip(os.path.join(out, "tiny_state_dict.pt"))
    write_zip(path("tiny_deflated.pt"), rename_top(recs, "tiny_deflated"), zipfile.ZIP_DEFLATED)
    be = []
    for n, d in rename_top(recs, "tiny_big_endian"):
        if "/data/" in n:  # every tiny storage is float32
            d = b"".join(d[i:i + 4][::-1] for i in range(0, len(d), 4))
        be.append((n, d))
        if n.endswith("/data.pkl"):
            be.append(("tiny_big_endian/byteorder", b"big"))
    write_zip(path("tiny_big_endian.pt"), be)

    # -- hostile files
    seed("malicious")
    weight = torch.randn(2, 2)
    cmd = "touch " + MARKER
    # posix.system: what pickle really writes for os.system on Linux, in a genuine torch.save zip
    torch.save(collections.OrderedDict([("weight", weight), ("payload", Evil(os.system, cmd))]),
               path("malicious_posix_system.pt"))
    # os.system: same file with the GLOBAL opcode spelled 'os system' (as a hand-written exploit would)
    recs = read_zip(os.path.join(out, "malicious_posix_system.pt"))
    patched = []
    for n, d in recs:
        if n.endswith("/data.pkl"):
            assert d.count(b"cposix\nsystem\n") == 1
            d = d.replace(b"cposix\nsystem\n", b"cos\nsystem\n")
        patched.append((n.split("/", 1)[1], d))
    torch_writer_save(path("malicious_os_system.pt"), patched)
    # builtins.eval through STACK_GLOBAL (pickle protocol 4)
    torch.save(collections.OrderedDict([("weight", weight),
                                        ("payload", Evil(eval, "__import__('os').system('%s')" % cmd))]),
               path("malicious_eval.pt"), pickle_protocol=4)
    # zip-slip entry name
    slip = read_zip(os.path.join(out, "tiny_state_dict.pt"))
    slip = rename_top(slip, "zip_slip") + [("../evil", b"evil")]
    write_zip(path("zip_slip.pt"), slip)
    # truncated checkpoint (60% of a valid file)
    with open(os.path.join(out, "tiny_state_dict.pt"), "rb") as f:
        raw = f.read()
    with open(path("truncated.pt"), "wb") as f:
        f.write(raw[: len(raw) * 6 // 10])

    # remove stale files
    keep = set(written)
    for f in os.listdir(out):
        if f not in keep:
            os.remove(os.path.join(out, f))
    return sorted(keep)


# --------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------

def check(out):
    def compare(name, obj, sidecar):
        expected, meta = read_safetensors(os.path.join(out, sidecar + ".expected.safetensors"))
        named = flatten(obj)
        order = json.loads(meta["order"])
        assert [n for n, _ in named] == order, (name, order)
        dtypes = json.loads(meta["torch_dtypes"])
        for n, t in named:
            dt, conv = expected_of(t)
            e = expected[n]
            assert list(e.shape) == list(conv.shape), (name, n)
            assert dtypes[n] == str(t.dtype).replace("torch.", ""), (name, n)
            assert tensor_bytes(conv) == tensor_bytes(e), (name, n)
        assert set(expected) == set(order), name

    weights_only = ["tiny_state_dict", "dtypes", "views", "resnet_tiny"]
    for name in weights_only:
        obj = torch.load(os.path.join(out, name + (".pth" if name == "resnet_tiny" else ".pt")), weights_only=True)
        compare(name, obj, "tiny_state_dict" if name.startswith("tiny") else name)
    # trusted files written by this script that use globals (or, for protocol 4, the FRAME opcode) that
    # torch 1.13's weights_only=True loader does not allow
    for name in ["wrapped", "misc", "legacy_format", "tiny_state_dict_proto4"]:
        obj = torch.load(os.path.join(out, name + ".pt"))
        compare(name, obj, "tiny_state_dict" if name.startswith("tiny") else name)
    bare = torch.load(os.path.join(out, "bare_tensor.pt"), weights_only=True)
    assert torch.equal(bare, torch.arange(6, dtype=torch.float32).view(2, 3) * 1.5)
    deflated = torch.load(os.path.join(out, "tiny_deflated.pt"), weights_only=True)
    compare("tiny_deflated", deflated, "tiny_state_dict")
    with zipfile.ZipFile(os.path.join(out, "tiny_deflated.pt")) as z:
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in z.infolist())
    # hostile files: torch's own safe loader must refuse the pickles (never load them without weights_only)
    for name in ["malicious_os_system", "malicious_posix_system", "malicious_eval"]:
        try:
            torch.load(os.path.join(out, name + ".pt"), weights_only=True)
        except pickle.UnpicklingError:
            pass
        else:
            raise AssertionError(name + " was accepted by weights_only=True")
    assert not os.path.exists(MARKER)
    total = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    assert total < 1_000_000, total
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true", help="only verify the existing files")
    args = ap.parse_args()
    if not args.check:
        files = generate(args.out)
        print(f"wrote {len(files)} files to {args.out}")
    total = check(args.out)
    digest = hashlib.sha256()
    for f in sorted(os.listdir(args.out)):
        with open(os.path.join(args.out, f), "rb") as fh:
            digest.update(f.encode() + b"\0" + fh.read())
    print(f"verified; {total} bytes; sha256 {digest.hexdigest()[:16]}")


if __name__ == "__main__":
    main()
