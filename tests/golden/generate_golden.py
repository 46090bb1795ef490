#!/usr/bin/env python3
"""Generate golden test fixtures for the managed tensor engine with PyTorch.

Usage (from the repository root):

    /usr/bin/python3 tests/golden/generate_golden.py [--out DIR] [--check]

Writes one ``<case>.safetensors`` file per case into
``tests/MlNetFineTune.Tensors.Tests/golden`` (or ``--out``).  See README.md in
this directory for the fixture format and the list of cases.

The script is deterministic: every case seeds torch with a CRC32 of its own
name (so adding/removing a case does not change the others), torch runs with a
single thread, and everything is float32 except int64 index/label tensors.
It depends only on torch (and torchvision for the ResNet BasicBlock); the
safetensors file format is written by hand below.
"""

import argparse
import json
import math
import os
import struct
import sys
import zlib
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)
torch.set_default_dtype(torch.float32)

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.normpath(os.path.join(HERE, "..", "MlNetFineTune.Tensors.Tests", "golden"))

NC = "transpose01"

# --------------------------------------------------------------------------------------
# Minimal safetensors writer / reader
# --------------------------------------------------------------------------------------

_DTYPES = {torch.float32: ("F32", "<f4"), torch.int64: ("I64", "<i8")}


def write_safetensors(path, tensors, metadata):
    """tensors: dict name -> torch tensor (float32 or int64). metadata: dict str -> str."""
    names = sorted(tensors)
    header = OrderedDict()
    header["__metadata__"] = OrderedDict((k, metadata[k]) for k in sorted(metadata))
    blobs = []
    offset = 0
    for name in names:
        t = tensors[name].detach().cpu().contiguous()
        if t.dtype not in _DTYPES:
            raise TypeError(f"{path}: tensor {name} has unsupported dtype {t.dtype}")
        dt, npdt = _DTYPES[t.dtype]
        data = t.numpy().astype(npdt, copy=False).tobytes(order="C")
        header[name] = OrderedDict(
            [("dtype", dt), ("shape", list(t.shape)), ("data_offsets", [offset, offset + len(data)])]
        )
        blobs.append(data)
        offset += len(data)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """Returns (metadata dict, dict name -> torch tensor). Validates offsets."""
    import numpy as np

    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0, "header not padded to 8"
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    data = raw[8 + n :]
    meta = header.pop("__metadata__")
    tensors = {}
    expected = 0
    for name in sorted(header):
        info = header[name]
        b, e = info["data_offsets"]
        assert b == expected, f"{path}: {name} offsets not contiguous/sorted"
        expected = e
        npdt = {"F32": "<f4", "I64": "<i8"}[info["dtype"]]
        arr = np.frombuffer(data[b:e], dtype=npdt).reshape(info["shape"])
        tensors[name] = torch.from_numpy(arr.copy())
    assert expected == len(data), f"{path}: trailing bytes"
    return meta, tensors


# --------------------------------------------------------------------------------------
# Case machinery
# --------------------------------------------------------------------------------------

CASES = []  # list of (name, builder)


def case(name):
    def deco(fn):
        CASES.append((name, fn))
        return fn

    return deco


def seed_for(name):
    torch.manual_seed(zlib.crc32(name.encode("utf-8")))


def randn(*shape):
    return torch.randn(tuple(shape), dtype=torch.float32)


def rand(*shape):
    return torch.rand(tuple(shape), dtype=torch.float32)


def positive(*shape, lo=0.2):
    return rand(*shape) * 2.0 + lo


def away_from_zero(*shape, margin=0.1):
    x = randn(*shape)
    return torch.sign(x) * (x.abs() + margin)


def distinct(*shape):
    """Random values that are pairwise distinct by a comfortable margin (no ties)."""
    n = 1
    for s in shape:
        n *= s
    perm = torch.randperm(n).float()
    x = (perm + rand(n) * 0.5) / n * 4.0 - 2.0
    return x.reshape(*shape)


def to_physical(logical):
    """Physical layout P for a logical tensor L such that L == P.transpose(0, 1)."""
    return logical.transpose(0, 1).contiguous()


class Case:
    """Collects inputs; runs forward/backward; produces the tensor dict + metadata."""

    def __init__(self, name, op, params=None, note=None):
        self.name = name
        self.op = op
        self.params = OrderedDict(params or {})
        self.note = note
        self.inputs = OrderedDict()  # name -> stored (physical) tensor
        self.diff = []
        self.nc_inputs = []
        self.extra = OrderedDict()  # extra stored tensors (full names)

    def input(self, name, value, diff=None, noncontig=False):
        """Register an input. For float tensors diff defaults to True, for int64 to False.
        If noncontig: `value` is the LOGICAL tensor; the PHYSICAL layout P (dims 0/1 swapped)
        is stored and the op sees P.transpose(0, 1)."""
        if diff is None:
            diff = value.dtype == torch.float32
        if noncontig:
            value = to_physical(value)
            self.nc_inputs.append(name)
        self.inputs[name] = value.detach().clone()
        if diff:
            self.diff.append(name)
        return self

    def run(self, fn, grad_outputs=None):
        """fn(**effective_inputs) -> tensor | dict key->tensor. Keys of a dict output: '' for the
        main output (stored as `out`), otherwise stored as `out.<key>`. grad_outputs: keys that get
        an upstream gradient (default: all float outputs that require grad)."""
        leaves = OrderedDict()
        eff = OrderedDict()
        for n, v in self.inputs.items():
            leaf = v.clone()
            if n in self.diff:
                leaf.requires_grad_(True)
            leaves[n] = leaf
            eff[n] = leaf.transpose(0, 1) if n in self.nc_inputs else leaf
        res = fn(**eff)
        if isinstance(res, torch.Tensor):
            res = OrderedDict([("", res)])
        tensors = OrderedDict()
        for n, v in self.inputs.items():
            tensors["in." + n] = v
        loss = None
        for k, v in res.items():
            key = "out" if k == "" else "out." + k
            tensors[key] = v.detach().clone()
            wants = v.requires_grad if grad_outputs is None else (k in grad_outputs)
            if wants:
                g = randn(*v.shape)
                tensors["gout" if k == "" else "gout." + k] = g
                term = (v * g).sum()
                loss = term if loss is None else loss + term
        if self.diff:
            assert loss is not None, self.name
            loss.backward()
            for n in self.diff:
                g = leaves[n].grad
                if g is None:
                    g = torch.zeros_like(leaves[n])
                tensors["grad." + n] = g.detach().clone()
        tensors.update(self.extra)
        return tensors

    def metadata(self):
        params = OrderedDict(self.params)
        if self.nc_inputs:
            params["noncontiguous"] = NC
            params["noncontiguous_inputs"] = list(self.nc_inputs)
        meta = OrderedDict()
        meta["op"] = self.op
        meta["params"] = json.dumps(params)
        meta["inputs"] = json.dumps(list(self.inputs))
        meta["differentiable"] = json.dumps(list(self.diff))
        if self.note:
            meta["note"] = self.note
        return meta


# --------------------------------------------------------------------------------------
# Elementwise binary
# --------------------------------------------------------------------------------------

_BIN = {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "div": torch.div,
}


def _denominator(*shape):
    """Divisors bounded away from zero: sign * (|N(0,1)| + 0.5)."""
    return away_from_zero(*shape, margin=0.5)


def _make_binary(op, suffix, a_shape, b_shape, nc_a=False):
    name = f"{op}_{suffix}"

    @case(name)
    def build():
        c = Case(name, op)
        a = randn(*a_shape)
        b = _denominator(*b_shape) if op == "div" else randn(*b_shape)
        c.input("a", a, noncontig=nc_a).input("b", b)
        return c, c.run(lambda a, b: _BIN[op](a, b))


for _op in _BIN:
    _make_binary(_op, "same", [3, 4], [3, 4])
    _make_binary(_op, "bcast_4x1", [3, 4, 5], [4, 1])
    _make_binary(_op, "bcast_1x5", [3, 4, 5], [1, 5])
    _make_binary(_op, "bcast_both", [3, 1, 5], [4, 1])
    _make_binary(_op, "noncontig", [4, 5], [5], nc_a=True)


@case("pow_tensor_same")
def _():
    c = Case("pow_tensor_same", "pow_tensor", note="positive base a")
    c.input("a", positive(3, 4)).input("b", randn(3, 4))
    return c, c.run(lambda a, b: torch.pow(a, b))


@case("pow_tensor_bcast")
def _():
    c = Case("pow_tensor_bcast", "pow_tensor", note="positive base a")
    c.input("a", positive(3, 4, 5)).input("b", randn(4, 1))
    return c, c.run(lambda a, b: torch.pow(a, b))


@case("pow_tensor_noncontig")
def _():
    c = Case("pow_tensor_noncontig", "pow_tensor", note="positive base a")
    c.input("a", positive(4, 5), noncontig=True).input("b", randn(4, 5))
    return c, c.run(lambda a, b: torch.pow(a, b))


# --------------------------------------------------------------------------------------
# Elementwise unary
# --------------------------------------------------------------------------------------


def _relu_input(*shape):
    x = rand(*shape) * 16.0 - 8.0
    # keep away from the kinks at 0 and 6 (and -0 / 6 exactly)
    x = torch.where((x.abs() < 0.05), x + torch.sign(x + 1e-3) * 0.1, x)
    x = torch.where(((x - 6.0).abs() < 0.05), x + 0.1, x)
    return x


_UNARY = OrderedDict(
    [
        ("neg", (lambda x: torch.neg(x), randn, {})),
        ("sqrt", (lambda x: torch.sqrt(x), positive, {})),
        ("rsqrt", (lambda x: torch.rsqrt(x), positive, {})),
        ("exp", (lambda x: torch.exp(x), randn, {})),
        ("log", (lambda x: torch.log(x), positive, {})),
        ("abs", (lambda x: torch.abs(x), away_from_zero, {})),
        ("tanh", (lambda x: torch.tanh(x), lambda *s: randn(*s) * 2.0, {})),
        ("sigmoid", (lambda x: torch.sigmoid(x), lambda *s: randn(*s) * 3.0, {})),
        ("relu", (lambda x: F.relu(x), _relu_input, {})),
        ("relu6", (lambda x: F.relu6(x), _relu_input, {})),
    ]
)


def _make_unary(op, suffix, shape, nc):
    name = f"{op}_{suffix}"
    fn, gen, params = _UNARY[op]

    @case(name)
    def build():
        c = Case(name, op, params)
        c.input("x", gen(*shape), noncontig=nc)
        return c, c.run(lambda x: fn(x))


for _op in _UNARY:
    _make_unary(_op, "basic", [3, 4, 5], False)
    _make_unary(_op, "noncontig", [4, 6], True)


def _make_param_unary(name, op, params, gen, fn, shape=(3, 4, 5), nc=False, note=None):
    @case(name)
    def build():
        c = Case(name, op, params, note=note)
        c.input("x", gen(*shape), noncontig=nc)
        return c, c.run(lambda x: fn(x))


for _approx in ("none", "tanh"):
    _make_param_unary(f"gelu_{_approx}", "gelu", {"approximate": _approx},
                      lambda *s: rand(*s) * 10.0 - 5.0, lambda x, a=_approx: F.gelu(x, approximate=a))
_make_param_unary("gelu_none_noncontig", "gelu", {"approximate": "none"}, randn,
                  lambda x: F.gelu(x, approximate="none"), shape=(4, 6), nc=True)

for _e, _gen, _tag in ((2.0, randn, "2"), (3.0, randn, "3"), (0.5, positive, "0_5"), (-1.5, positive, "neg1_5")):
    _make_param_unary(f"pow_scalar_{_tag}", "pow", {"exponent": _e}, _gen, lambda x, e=_e: torch.pow(x, e))
_make_param_unary("pow_scalar_2_noncontig", "pow", {"exponent": 2.0}, randn, lambda x: torch.pow(x, 2.0),
                  shape=(4, 6), nc=True)

_make_param_unary("clamp_both", "clamp", {"min": -0.5, "max": 0.5}, randn, lambda x: torch.clamp(x, -0.5, 0.5))
_make_param_unary("clamp_min", "clamp", {"min": -0.5, "max": None}, randn, lambda x: torch.clamp(x, min=-0.5))
_make_param_unary("clamp_max", "clamp", {"min": None, "max": 0.25}, randn, lambda x: torch.clamp(x, max=0.25))
_make_param_unary("clamp_noncontig", "clamp", {"min": -0.5, "max": 0.5}, randn,
                  lambda x: torch.clamp(x, -0.5, 0.5), shape=(4, 6), nc=True)

_make_param_unary("add_scalar", "add_scalar", {"scalar": 2.5}, randn, lambda x: x + 2.5)
_make_param_unary("add_scalar_noncontig", "add_scalar", {"scalar": -1.25}, randn, lambda x: x + (-1.25),
                  shape=(4, 6), nc=True)
_make_param_unary("mul_scalar", "mul_scalar", {"scalar": -1.5}, randn, lambda x: x * -1.5)
_make_param_unary("mul_scalar_noncontig", "mul_scalar", {"scalar": 0.75}, randn, lambda x: x * 0.75,
                  shape=(4, 6), nc=True)

# --------------------------------------------------------------------------------------
# Reductions
# --------------------------------------------------------------------------------------


def _reduce(op, x, dims, keepdim, unbiased):
    if op in ("sum", "mean"):
        f = torch.sum if op == "sum" else torch.mean
        return f(x) if dims is None else f(x, dim=tuple(dims), keepdim=keepdim)
    if op == "var":
        if dims is None:
            return torch.var(x, unbiased=unbiased)
        return torch.var(x, dim=tuple(dims), unbiased=unbiased, keepdim=keepdim)
    if op == "max":
        if dims is None:
            return torch.max(x)
        if len(dims) == 1:
            v, i = torch.max(x, dim=dims[0], keepdim=keepdim)
            return OrderedDict([("", v), ("indices", i)])
        return torch.amax(x, dim=tuple(dims), keepdim=keepdim)
    raise ValueError(op)


def _make_reduce(op, suffix, dims, keepdim, unbiased=None, shape=(3, 4, 5), nc=False):
    name = f"{op}_{suffix}"
    params = OrderedDict([("dims", dims), ("keepdim", keepdim)])
    if op == "var":
        params["unbiased"] = unbiased
    note = None
    if op == "max":
        note = "values are distinct (no ties); out.indices (I64) only when dims has exactly one entry"

    @case(name)
    def build():
        c = Case(name, op, params, note=note)
        c.input("x", distinct(*shape) if op == "max" else randn(*shape), noncontig=nc)
        return c, c.run(lambda x: _reduce(op, x, dims, keepdim, unbiased), grad_outputs=[""])


for _op in ("sum", "mean", "max", "var"):
    for _ub in ((True, False) if _op == "var" else (None,)):
        _sfx = "" if _ub is None else ("_unbiased" if _ub else "_biased")
        _make_reduce(_op, "all" + _sfx, None, False, _ub)
        _make_reduce(_op, "dim1" + _sfx, [1], False, _ub)
        _make_reduce(_op, "dim1_keepdim" + _sfx, [1], True, _ub)
        _make_reduce(_op, "dimlast" + _sfx, [-1], False, _ub)
        _make_reduce(_op, "dims02_keepdim" + _sfx, [0, 2], True, _ub)
        _make_reduce(_op, "dims01" + _sfx, [0, 1], False, _ub)
    _make_reduce(_op, "noncontig_dim1", [1], False, True if _op == "var" else None, shape=(4, 6), nc=True)

# --------------------------------------------------------------------------------------
# matmul / linear / embedding
# --------------------------------------------------------------------------------------


def _make_matmul(name, a_shape, b_shape, ta=False, tb=False):
    params = OrderedDict([("transpose_a", ta), ("transpose_b", tb)])

    @case(name)
    def build():
        c = Case(name, "matmul", params,
                 note="transpose_a/transpose_b: stored tensor is the physical layout; op uses x.transpose(-1,-2)")
        a = randn(*a_shape)
        b = randn(*b_shape)
        if ta:
            a = a.transpose(-1, -2).contiguous()
        if tb:
            b = b.transpose(-1, -2).contiguous()
        c.input("a", a).input("b", b)

        def f(a, b):
            if ta:
                a = a.transpose(-1, -2)
            if tb:
                b = b.transpose(-1, -2)
            return torch.matmul(a, b)

        return c, c.run(f)


# shapes given are LOGICAL shapes (before the transposed view)
_make_matmul("matmul_2d", [5, 7], [7, 3])
_make_matmul("matmul_batched", [2, 5, 7], [2, 7, 3])
_make_matmul("matmul_bcast_batch", [2, 5, 7], [7, 3])
_make_matmul("matmul_bcast_batch_4d", [2, 1, 5, 7], [3, 7, 4])
_make_matmul("matmul_transpose_a", [5, 7], [7, 3], ta=True)
_make_matmul("matmul_transpose_b", [5, 7], [7, 3], tb=True)
_make_matmul("matmul_transpose_ab", [5, 7], [7, 3], ta=True, tb=True)
_make_matmul("matmul_batched_transpose_b", [2, 5, 7], [2, 7, 6], tb=True)
_make_matmul("matmul_bcast_batch_transpose_a", [2, 5, 7], [7, 3], ta=True)


def _make_linear(name, x_shape, bias=True, nc=False):
    @case(name)
    def build():
        c = Case(name, "linear", {"bias": bias})
        c.input("x", randn(*x_shape), noncontig=nc)
        c.input("weight", randn(5, 6) * 0.5)
        if bias:
            c.input("bias", randn(5) * 0.5)
        return c, c.run(lambda x, weight, bias=None: F.linear(x, weight, bias))


_make_linear("linear_2d", [4, 6])
_make_linear("linear_3d", [2, 3, 6])
_make_linear("linear_nobias", [4, 6], bias=False)
_make_linear("linear_3d_nobias", [2, 3, 6], bias=False)
_make_linear("linear_noncontig", [4, 6], nc=True)


def _make_embedding(name, padding_idx):
    @case(name)
    def build():
        c = Case(name, "embedding", {"padding_idx": padding_idx},
                 note="F.embedding with a random weight: row padding_idx is NOT zeroed in the forward; "
                      "only its gradient is zero. ids contain repeats.")
        ids = torch.tensor([[1, 3, 3, 0, 9], [0, 0, 5, 1, 3], [7, 2, 9, 9, 0]], dtype=torch.int64)
        c.input("weight", randn(10, 4)).input("ids", ids)
        return c, c.run(lambda weight, ids: F.embedding(ids, weight, padding_idx=padding_idx))


_make_embedding("embedding", None)
_make_embedding("embedding_padding0", 0)

# --------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------


def _make_layer_norm(name, x_shape, normalized_shape, eps=1e-5, nc=False):
    @case(name)
    def build():
        c = Case(name, "layer_norm", OrderedDict([("normalized_shape", normalized_shape), ("eps", eps)]))
        c.input("x", randn(*x_shape) * 2.0 + 0.5, noncontig=nc)
        c.input("weight", 1.0 + 0.3 * randn(*normalized_shape))
        c.input("bias", 0.3 * randn(*normalized_shape))
        return c, c.run(lambda x, weight, bias: F.layer_norm(x, normalized_shape, weight, bias, eps))


_make_layer_norm("layer_norm_2d", [4, 8], [8])
_make_layer_norm("layer_norm_3d", [2, 3, 8], [8])
_make_layer_norm("layer_norm_3d_last2", [2, 3, 8], [3, 8])
_make_layer_norm("layer_norm_eps_1e12", [2, 3, 8], [8], eps=1e-12)
_make_layer_norm("layer_norm_noncontig", [4, 8], [8], nc=True)


def _make_batch_norm(name, training, nc=False):
    params = OrderedDict([("training", training), ("momentum", 0.1), ("eps", 1e-5)])

    @case(name)
    def build():
        c = Case(name, "batch_norm2d", params,
                 note="running stats update: new = (1-momentum)*old + momentum*batch_stat; "
                      "running_var uses the UNBIASED batch variance (n/(n-1)), normalisation uses the biased one")
        c.input("x", randn(4, 3, 5, 5) * 1.5 + 0.3, noncontig=nc)
        c.input("weight", 1.0 + 0.3 * randn(3)).input("bias", 0.3 * randn(3))
        c.input("running_mean", 0.2 * randn(3), diff=False)
        c.input("running_var", 0.5 + rand(3), diff=False)

        def f(x, weight, bias, running_mean, running_var):
            rm = running_mean.clone()
            rv = running_var.clone()
            y = F.batch_norm(x, rm, rv, weight, bias, training=training, momentum=0.1, eps=1e-5)
            return OrderedDict([("", y), ("running_mean", rm), ("running_var", rv)])

        return c, c.run(f, grad_outputs=[""])


_make_batch_norm("batch_norm2d_train", True)
_make_batch_norm("batch_norm2d_eval", False)
_make_batch_norm("batch_norm2d_train_noncontig", True, nc=True)

# --------------------------------------------------------------------------------------
# softmax / log_softmax
# --------------------------------------------------------------------------------------

for _op, _f in (("softmax", F.softmax), ("log_softmax", F.log_softmax)):
    for _d in (0, 1, -1):
        _make_param_unary(f"{_op}_dim{_d}".replace("-", "neg"), _op, {"dim": _d},
                          lambda *s: randn(*s) * 2.0, lambda x, d=_d, f=_f: f(x, dim=d))
    _make_param_unary(f"{_op}_noncontig_dimneg1", _op, {"dim": -1}, lambda *s: randn(*s) * 2.0,
                      lambda x, f=_f: f(x, dim=-1), shape=(4, 6), nc=True)
    _make_param_unary(f"{_op}_noncontig_dim0", _op, {"dim": 0}, lambda *s: randn(*s) * 2.0,
                      lambda x, f=_f: f(x, dim=0), shape=(4, 6), nc=True)



def _make_attention_softmax(name, shape, mask_shape, scale):
    """softmax(x * scale + mask, dim=-1): the fused attention step (mask has no gradient)."""
    @case(name)
    def build():
        c = Case(name, "attention_softmax", {"scale": scale},
                 note="softmax(x * scale + mask, dim=-1); mask 0 or -10000 (HF BERT's additive padding mask)")
        c.input("x", randn(*shape) * 2.0)
        if mask_shape is None:
            return c, c.run(lambda x: F.softmax(x * scale, dim=-1))
        c.input("mask", torch.where(rand(*mask_shape) < 0.3, torch.tensor(-10000.0), torch.tensor(0.0)), diff=False)
        return c, c.run(lambda x, mask: F.softmax(x * scale + mask, dim=-1))


_make_attention_softmax("attention_softmax_padmask", (2, 3, 4, 5), (2, 1, 1, 5), 0.125)
_make_attention_softmax("attention_softmax_fullmask", (2, 3, 4, 5), (2, 1, 4, 5), 0.5)
_make_attention_softmax("attention_softmax_rowmask", (2, 3, 4, 5), (4, 1), 1.0)
_make_attention_softmax("attention_softmax_nomask", (3, 4, 6), None, 0.25)

# --------------------------------------------------------------------------------------
# Convolution and pooling
# --------------------------------------------------------------------------------------


def _make_conv(name, x_shape, w_shape, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1, bias=True,
               nc=False):
    params = OrderedDict([("stride", list(stride)), ("padding", list(padding)), ("dilation", list(dilation)),
                          ("groups", groups), ("bias", bias)])

    @case(name)
    def build():
        c = Case(name, "conv2d", params)
        c.input("x", randn(*x_shape), noncontig=nc)
        fan_in = w_shape[1] * w_shape[2] * w_shape[3]
        c.input("weight", randn(*w_shape) / math.sqrt(fan_in))
        if bias:
            c.input("bias", 0.3 * randn(w_shape[0]))
        return c, c.run(lambda x, weight, bias=None: F.conv2d(x, weight, bias, tuple(stride), tuple(padding),
                                                              tuple(dilation), groups))


_make_conv("conv2d_3x3_pad1", [2, 3, 6, 6], [4, 3, 3, 3], padding=(1, 1))
_make_conv("conv2d_3x3_stride2_pad1", [2, 3, 7, 7], [4, 3, 3, 3], stride=(2, 2), padding=(1, 1))
_make_conv("conv2d_3x3_stride2_pad0_even", [1, 3, 8, 8], [4, 3, 3, 3], stride=(2, 2), bias=False)
_make_conv("conv2d_3x3_dilation2", [1, 2, 8, 8], [3, 2, 3, 3], padding=(2, 2), dilation=(2, 2))
_make_conv("conv2d_3x3_groups2", [2, 4, 5, 5], [6, 2, 3, 3], padding=(1, 1), groups=2)
_make_conv("conv2d_depthwise", [2, 4, 6, 6], [4, 1, 3, 3], padding=(1, 1), groups=4, bias=False)
_make_conv("conv2d_depthwise_stride2", [2, 4, 7, 7], [4, 1, 3, 3], stride=(2, 2), padding=(1, 1), groups=4)
_make_conv("conv2d_depthwise_mult2", [2, 4, 6, 6], [8, 1, 3, 3], padding=(1, 1), groups=4)
_make_conv("conv2d_1x1", [2, 4, 5, 5], [6, 4, 1, 1], bias=False)
_make_conv("conv2d_1x1_stride2", [2, 4, 6, 6], [6, 4, 1, 1], stride=(2, 2), bias=False)
_make_conv("conv2d_1x3_pad01", [2, 3, 5, 6], [4, 3, 1, 3], padding=(0, 1))
_make_conv("conv2d_stride21_asym", [1, 2, 7, 6], [3, 2, 3, 2], stride=(2, 1), padding=(1, 0))
_make_conv("conv2d_7x7_stride2_pad3_stem", [1, 3, 16, 16], [4, 3, 7, 7], stride=(2, 2), padding=(3, 3), bias=False)
_make_conv("conv2d_3x3_pad1_noncontig", [2, 3, 6, 6], [4, 3, 3, 3], padding=(1, 1), nc=True)


def _make_pool(name, op, x_shape, k, s, p, count_include_pad=None, nc=False):
    params = OrderedDict([("kernel_size", list(k)), ("stride", list(s)), ("padding", list(p))])
    if op == "avg_pool2d":
        params["count_include_pad"] = count_include_pad
    note = "ceil_mode=False, dilation=1"
    if op == "max_pool2d":
        note += "; values distinct (no ties); padding acts as -inf"
    else:
        note += "; divisor_override=None"

    @case(name)
    def build():
        c = Case(name, op, params, note=note)
        c.input("x", distinct(*x_shape) if op == "max_pool2d" else randn(*x_shape), noncontig=nc)
        if op == "max_pool2d":
            fn = lambda x: F.max_pool2d(x, tuple(k), tuple(s), tuple(p))
        else:
            fn = lambda x: F.avg_pool2d(x, tuple(k), tuple(s), tuple(p), count_include_pad=count_include_pad)
        return c, c.run(fn)


_make_pool("max_pool2d_3x3_s2_p1", "max_pool2d", [2, 3, 8, 8], (3, 3), (2, 2), (1, 1))
_make_pool("max_pool2d_3x3_s2_p1_odd", "max_pool2d", [1, 2, 7, 7], (3, 3), (2, 2), (1, 1))
_make_pool("max_pool2d_2x2_s2", "max_pool2d", [2, 3, 6, 6], (2, 2), (2, 2), (0, 0))
_make_pool("max_pool2d_2x2_s2_odd", "max_pool2d", [1, 2, 7, 7], (2, 2), (2, 2), (0, 0))
_make_pool("max_pool2d_3x3_s1_p1_noncontig", "max_pool2d", [2, 3, 5, 5], (3, 3), (1, 1), (1, 1), nc=True)
_make_pool("avg_pool2d_3x3_s2_p1_incpad", "avg_pool2d", [2, 3, 8, 8], (3, 3), (2, 2), (1, 1), True)
_make_pool("avg_pool2d_3x3_s2_p1_excpad", "avg_pool2d", [2, 3, 8, 8], (3, 3), (2, 2), (1, 1), False)
_make_pool("avg_pool2d_2x2_s2", "avg_pool2d", [2, 3, 6, 6], (2, 2), (2, 2), (0, 0), True)
_make_pool("avg_pool2d_3x3_s1_p1_excpad_noncontig", "avg_pool2d", [2, 3, 5, 5], (3, 3), (1, 1), (1, 1), False,
           nc=True)


def _make_gap(name, shape, nc=False):
    @case(name)
    def build():
        c = Case(name, "global_avg_pool2d", {}, note="adaptive_avg_pool2d(x, (1,1)); output keeps 4 dims [N,C,1,1]")
        c.input("x", randn(*shape), noncontig=nc)
        return c, c.run(lambda x: F.adaptive_avg_pool2d(x, (1, 1)))


_make_gap("global_avg_pool2d", [2, 3, 5, 5])
_make_gap("global_avg_pool2d_noncontig", [2, 3, 4, 4], nc=True)


def _make_zero_pad(name, shape, pad, nc=False):
    @case(name)
    def build():
        c = Case(name, "zero_pad2d", {"padding": list(pad)},
                 note="padding = [left, right, top, bottom] == F.pad(x, (left, right, top, bottom))")
        c.input("x", randn(*shape), noncontig=nc)
        return c, c.run(lambda x: F.pad(x, tuple(pad)))


_make_zero_pad("zero_pad2d_0101", [2, 3, 4, 5], [0, 1, 0, 1])
_make_zero_pad("zero_pad2d_1111", [2, 3, 4, 5], [1, 1, 1, 1])
_make_zero_pad("zero_pad2d_2013", [1, 2, 4, 5], [2, 0, 1, 3])
_make_zero_pad("zero_pad2d_0101_noncontig", [2, 3, 4, 5], [0, 1, 0, 1], nc=True)

# --------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------


def _make_ce(name, weight=False, label_smoothing=0.0, ignore=False, reduction="mean", nc=False):
    params = OrderedDict([("weight", weight), ("label_smoothing", label_smoothing), ("ignore_index", -100),
                          ("reduction", reduction)])

    @case(name)
    def build():
        c = Case(name, "cross_entropy", params)
        logits = randn(6, 5) * 2.0
        target = torch.tensor([1, 4, 0, 2, 4, 3], dtype=torch.int64)
        if ignore:
            target[1] = -100
            target[4] = -100
        c.input("logits", logits, noncontig=nc).input("target", target)
        if weight:
            c.input("weight", 0.5 + rand(5), diff=False)

        def f(logits, target, weight=None):
            return F.cross_entropy(logits, target, weight=weight, ignore_index=-100, reduction=reduction,
                                   label_smoothing=label_smoothing)

        return c, c.run(f)


_make_ce("cross_entropy_mean")
_make_ce("cross_entropy_sum", reduction="sum")
_make_ce("cross_entropy_weight_mean", weight=True)
_make_ce("cross_entropy_weight_sum", weight=True, reduction="sum")
_make_ce("cross_entropy_smoothing_mean", label_smoothing=0.1)
_make_ce("cross_entropy_ignore_mean", ignore=True)
_make_ce("cross_entropy_smoothing_ignore_mean", label_smoothing=0.1, ignore=True)
_make_ce("cross_entropy_weight_smoothing_mean", weight=True, label_smoothing=0.1)
_make_ce("cross_entropy_weight_smoothing_ignore_mean", weight=True, label_smoothing=0.1, ignore=True)
_make_ce("cross_entropy_weight_smoothing_ignore_sum", weight=True, label_smoothing=0.1, ignore=True,
         reduction="sum")
_make_ce("cross_entropy_noncontig", nc=True)


def _make_bce(name, shape, pos_weight_shape=None):
    params = OrderedDict([("pos_weight", pos_weight_shape is not None), ("reduction", "mean")])

    @case(name)
    def build():
        c = Case(name, "binary_cross_entropy_with_logits", params,
                 note="targets are float (F32) in [0,1]: mix of hard 0/1 and soft labels")
        t = rand(*shape)
        flat = t.view(-1)
        flat[0::3] = 0.0
        flat[1::3] = 1.0
        c.input("logits", randn(*shape) * 2.0).input("targets", t, diff=False)
        if pos_weight_shape is not None:
            c.input("pos_weight", 0.5 + 2.0 * rand(*pos_weight_shape), diff=False)

        def f(logits, targets, pos_weight=None):
            return F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight, reduction="mean")

        return c, c.run(f)


_make_bce("bce_with_logits_mean", [6])
_make_bce("bce_with_logits_pos_weight", [6], [6])
_make_bce("bce_with_logits_2d_pos_weight_bcast", [3, 4], [4])

# --------------------------------------------------------------------------------------
# Masking / selection / shape ops
# --------------------------------------------------------------------------------------


def _make_masked_fill(name, value, mask_shape=(2, 1, 4), nc=False, x_shape=(2, 3, 4)):
    @case(name)
    def build():
        c = Case(name, "masked_fill", {"value": value}, note="mask stored as I64 0/1 (1 = fill)")
        mask = (rand(*mask_shape) > 0.5).to(torch.int64)
        mask.view(-1)[0] = 1
        mask.view(-1)[-1] = 0
        c.input("x", randn(*x_shape), noncontig=nc).input("mask", mask)
        return c, c.run(lambda x, mask: x.masked_fill(mask.bool(), value))


_make_masked_fill("masked_fill_neg1e9", -1e9)
_make_masked_fill("masked_fill_zero", 0.0)
_make_masked_fill("masked_fill_noncontig", -1e9, mask_shape=(1, 4), nc=True, x_shape=(3, 4))


def _make_where(name, cond_shape, a_shape, b_shape, nc=False):
    @case(name)
    def build():
        c = Case(name, "where", {}, note="cond stored as I64 0/1 (1 = take a)")
        cond = (rand(*cond_shape) > 0.5).to(torch.int64)
        cond.view(-1)[0] = 1
        cond.view(-1)[-1] = 0
        c.input("cond", cond).input("a", randn(*a_shape), noncontig=nc).input("b", randn(*b_shape))
        return c, c.run(lambda cond, a, b: torch.where(cond.bool(), a, b))


_make_where("where_same", [3, 4], [3, 4], [3, 4])
_make_where("where_bcast", [3, 1], [3, 4], [4])
_make_where("where_bcast_all", [2, 1, 4], [3, 1], [1, 3, 4])
_make_where("where_noncontig", [4, 5], [4, 5], [5], nc=True)


def _make_concat(name, op, shapes, dim, nc=False):
    @case(name)
    def build():
        c = Case(name, op, {"dim": dim})
        for i, (n, s) in enumerate(zip("abc", shapes)):
            c.input(n, randn(*s), noncontig=(nc and i == 0))
        f = torch.cat if op == "concat" else torch.stack
        return c, c.run(lambda a, b, c: f([a, b, c], dim=dim))


_make_concat("concat_dim0", "concat", [[1, 3, 2], [2, 3, 2], [3, 3, 2]], 0)
_make_concat("concat_dim1", "concat", [[2, 3], [2, 4], [2, 1]], 1)
_make_concat("concat_dimneg1", "concat", [[2, 3, 2], [2, 3, 1], [2, 3, 3]], -1)
_make_concat("concat_noncontig", "concat", [[4, 3], [4, 2], [4, 1]], 1, nc=True)
_make_concat("stack_dim0", "stack", [[3, 4]] * 3, 0)
_make_concat("stack_dim1", "stack", [[3, 4]] * 3, 1)
_make_concat("stack_dimneg1", "stack", [[3, 4]] * 3, -1)
_make_concat("stack_noncontig", "stack", [[3, 4]] * 3, 1, nc=True)


def _make_split(name, shape, dim, split_size=None, sections=None, nc=False):
    params = OrderedDict([("split_size", split_size), ("sections", sections), ("dim", dim)])

    @case(name)
    def build():
        c = Case(name, "split", params, note="outputs out.0, out.1, ... with gout.0, gout.1, ...")
        c.input("x", randn(*shape), noncontig=nc)

        def f(x):
            parts = torch.split(x, split_size if split_size is not None else sections, dim=dim)
            return OrderedDict((str(i), p) for i, p in enumerate(parts))

        return c, c.run(f)


_make_split("split_size2_dim0", [5, 6], 0, split_size=2)
_make_split("split_size4_dim1", [5, 6], 1, split_size=4)
_make_split("split_sections_dim1", [5, 6], 1, sections=[1, 2, 3])
_make_split("split_sections_dimneg1_3d", [2, 3, 6], -1, sections=[2, 4])
_make_split("split_size2_noncontig_dim1", [4, 5], 1, split_size=2, nc=True)


def _make_gather(name, x_shape, index, dim, nc=False):
    @case(name)
    def build():
        c = Case(name, "gather", {"dim": dim}, note="torch.gather; index may repeat positions (grad accumulates)")
        c.input("x", randn(*x_shape), noncontig=nc).input("index", torch.tensor(index, dtype=torch.int64))
        return c, c.run(lambda x, index: torch.gather(x, dim, index))


_make_gather("gather_dim1", [3, 4], [[0, 3], [2, 2], [1, 0]], 1)
_make_gather("gather_dim0", [3, 4], [[0, 2, 2, 1], [1, 0, 2, 2]], 0)
_make_gather("gather_3d_dimneg1", [2, 3, 4], [[[3, 3, 0], [1, 2, 1], [0, 0, 0]], [[2, 1, 3], [3, 3, 3], [1, 0, 2]]], -1)
_make_gather("gather_noncontig_dim1", [3, 4], [[0, 3, 3], [2, 1, 2], [1, 0, 0]], 1, nc=True)


def _make_index_select(name, x_shape, index, dim, nc=False):
    @case(name)
    def build():
        c = Case(name, "index_select", {"dim": dim}, note="index is 1-D I64 with repeats")
        c.input("x", randn(*x_shape), noncontig=nc).input("index", torch.tensor(index, dtype=torch.int64))
        return c, c.run(lambda x, index: torch.index_select(x, dim, index))


_make_index_select("index_select_dim0", [5, 4], [4, 0, 4], 0)
_make_index_select("index_select_dim1", [5, 4], [1, 1, 3, 0, 2], 1)
_make_index_select("index_select_3d_dim1", [2, 5, 3], [2, 4, 2, 0], 1)
_make_index_select("index_select_noncontig_dim0", [4, 5], [3, 3, 1], 0, nc=True)

# --------------------------------------------------------------------------------------
# Composites
# --------------------------------------------------------------------------------------


class BertSelfAttention(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        self.num_heads = heads
        self.head_dim = hidden // heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)

    def forward(self, x, additive_mask):
        b, s, h = x.shape

        def split_heads(t):
            return t.view(b, s, self.num_heads, self.head_dim).permute(0, 2, 1, 3)  # [b, heads, s, d]

        q = split_heads(self.query(x))
        k = split_heads(self.key(x))
        v = split_heads(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        scores = scores + additive_mask  # [b, 1, 1, s] broadcast over heads and query positions
        probs = F.softmax(scores, dim=-1)  # dropout p=0 omitted
        ctx = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous().view(b, s, h)
        return ctx


class BertSelfOutput(nn.Module):
    def __init__(self, hidden, eps):
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, h, residual):
        return self.LayerNorm(self.dense(h) + residual)


class BertAttention(nn.Module):
    def __init__(self, hidden, heads, eps):
        super().__init__()
        self.self = BertSelfAttention(hidden, heads)
        self.output = BertSelfOutput(hidden, eps)

    def forward(self, x, additive_mask):
        return self.output(self.self(x, additive_mask), x)


class BertIntermediate(nn.Module):
    def __init__(self, hidden, inter):
        super().__init__()
        self.dense = nn.Linear(hidden, inter)

    def forward(self, x):
        return F.gelu(self.dense(x))  # exact (erf) GELU


class BertOutput(nn.Module):
    def __init__(self, hidden, inter, eps):
        super().__init__()
        self.dense = nn.Linear(inter, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, h, residual):
        return self.LayerNorm(self.dense(h) + residual)


class BertLayer(nn.Module):
    def __init__(self, hidden=64, heads=4, inter=128, eps=1e-12):
        super().__init__()
        self.attention = BertAttention(hidden, heads, eps)
        self.intermediate = BertIntermediate(hidden, inter)
        self.output = BertOutput(hidden, inter, eps)

    def forward(self, x, mask):
        additive = (1.0 - mask)[:, None, None, :] * -10000.0
        a = self.attention(x, additive)
        return self.output(self.intermediate(a), a)


def _randomize_norms(module):
    for m in module.modules():
        if isinstance(m, (nn.LayerNorm, nn.BatchNorm2d)):
            with torch.no_grad():
                m.weight.copy_(1.0 + 0.3 * randn(*m.weight.shape))
                m.bias.copy_(0.2 * randn(*m.bias.shape))
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.copy_(0.2 * randn(*m.running_mean.shape))
                m.running_var.copy_(0.5 + rand(*m.running_var.shape))


def _module_case(name, op, params, module, inputs, forward, note, record_running_stats):
    """inputs: OrderedDict of non-parameter inputs (x first). Parameters/buffers come from the module's
    state_dict (num_batches_tracked excluded). Grad for x and every parameter."""
    c = Case(name, op, params, note=note)
    for n, v in inputs.items():
        c.input(n, v, diff=(n == "x"))
    sd = module.state_dict()
    param_names = set(n for n, _ in module.named_parameters())
    for n, v in sd.items():
        if n.endswith("num_batches_tracked"):
            continue
        c.input(n, v, diff=(n in param_names))
    tensors = OrderedDict()
    for n, v in c.inputs.items():
        tensors["in." + n] = v
    x = inputs["x"].clone().requires_grad_(True)
    module.zero_grad(set_to_none=True)
    out = forward(module, x, *[v for n, v in inputs.items() if n != "x"])
    tensors["out"] = out.detach().clone()
    g = randn(*out.shape)
    tensors["gout"] = g
    (out * g).sum().backward()
    tensors["grad.x"] = x.grad.detach().clone()
    for n, p in module.named_parameters():
        tensors["grad." + n] = (p.grad if p.grad is not None else torch.zeros_like(p)).detach().clone()
    if record_running_stats:
        for n, v in module.state_dict().items():
            if n.endswith("running_mean") or n.endswith("running_var"):
                tensors["out." + n] = v.detach().clone()
    return c, tensors


@case("bert_layer")
def _():
    seed_for("bert_layer")
    layer = BertLayer()
    _randomize_norms(layer)
    layer.eval()  # no dropout anywhere (p=0 equivalent)
    x = randn(2, 6, 64)
    mask = torch.ones(2, 6)
    mask[1, 4:] = 0.0  # second sequence: last two positions are padding
    params = OrderedDict([("hidden_size", 64), ("num_attention_heads", 4), ("intermediate_size", 128),
                          ("hidden_act", "gelu"), ("layer_norm_eps", 1e-12), ("mask_value", -10000.0),
                          ("dropout", 0.0)])
    note = ("Hugging Face BertLayer (post-LN), dropout disabled. additive mask = (1-mask)[:,None,None,:]*-10000.0 "
            "added to scores/sqrt(head_dim) before softmax(dim=-1). mask is F32 [batch, seq], 1=keep, 0=pad.")
    return _module_case("bert_layer", "bert_layer", params, layer, OrderedDict([("x", x), ("mask", mask)]),
                        lambda m, x, mask: m(x, mask), note, False)


@case("resnet_basic_block")
def _():
    from torchvision.models.resnet import BasicBlock, conv1x1

    seed_for("resnet_basic_block")
    down = nn.Sequential(conv1x1(4, 8, 2), nn.BatchNorm2d(8))
    block = BasicBlock(4, 8, stride=2, downsample=down)
    _randomize_norms(block)
    block.train()
    x = randn(2, 4, 8, 8)
    params = OrderedDict([("inplanes", 4), ("planes", 8), ("stride", 2), ("downsample", True),
                          ("bn_training", True), ("bn_momentum", 0.1), ("bn_eps", 1e-5)])
    note = ("torchvision BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + downsample(x)); conv1 3x3 stride 2 pad 1, "
            "conv2 3x3 stride 1 pad 1, all convs bias-free; downsample = conv1x1 stride 2 + BN. BN in training mode; "
            "out.<bn>.running_mean/var are the buffers after the forward.")
    return _module_case("resnet_basic_block", "resnet_basic_block", params, block, OrderedDict([("x", x)]),
                        lambda m, x: m(x), note, True)


class InvertedResidual(nn.Module):
    def __init__(self, channels=8, expansion=6):
        super().__init__()
        hidden = channels * expansion
        self.expand = nn.Conv2d(channels, hidden, 1, bias=False)
        self.expand_bn = nn.BatchNorm2d(hidden)
        self.depthwise = nn.Conv2d(hidden, hidden, 3, stride=1, padding=1, groups=hidden, bias=False)
        self.depthwise_bn = nn.BatchNorm2d(hidden)
        self.project = nn.Conv2d(hidden, channels, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(channels)

    def forward(self, x):
        h = F.relu6(self.expand_bn(self.expand(x)))
        h = F.relu6(self.depthwise_bn(self.depthwise(h)))
        h = self.project_bn(self.project(h))
        return x + h


@case("mobilenetv2_inverted_residual")
def _():
    seed_for("mobilenetv2_inverted_residual")
    block = InvertedResidual()
    _randomize_norms(block)
    with torch.no_grad():  # widen the BN output range so that some activations exceed 6 (ReLU6 upper clamp)
        block.expand_bn.weight.mul_(4.0)
        block.depthwise_bn.weight.mul_(4.0)
    block.eval()
    x = randn(2, 8, 7, 7)
    params = OrderedDict([("in_channels", 8), ("out_channels", 8), ("expansion", 6), ("stride", 1),
                          ("bn_training", False), ("bn_eps", 1e-5)])
    note = ("x + project_bn(project(relu6(depthwise_bn(depthwise(relu6(expand_bn(expand(x)))))))); convs bias-free; "
            "depthwise 3x3 stride 1 pad 1 groups=48; BN in EVAL mode using the random running stats stored as inputs "
            "(running_mean ~ 0.2*N(0,1), running_var ~ 0.5+U(0,1)); running stats are not differentiable.")
    return _module_case("mobilenetv2_inverted_residual", "mobilenetv2_inverted_residual", params, block,
                        OrderedDict([("x", x)]), lambda m, x: m(x), note, False)


# --------------------------------------------------------------------------------------
# Optimizer trajectories
# --------------------------------------------------------------------------------------

NUM_STEPS = 10


def _lr_lambda(schedule, sp):
    if schedule == "linear_warmup_decay":
        w, t = sp["warmup_steps"], sp["total_steps"]

        def f(step):
            if step < w:
                return float(step) / float(max(1, w))
            return max(0.0, float(t - step) / float(max(1, t - w)))

        return f
    if schedule == "cosine":
        w, t, nc = sp["warmup_steps"], sp["total_steps"], sp["num_cycles"]

        def f(step):
            if step < w:
                return float(step) / float(max(1, w))
            progress = float(step - w) / float(max(1, t - w))
            return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(nc) * 2.0 * progress)))

        return f
    raise ValueError(schedule)


def _make_optim(name, optimizer, hyper, groups, schedule="constant", clip=None, grad_scale=1.0):
    sched_params = OrderedDict()
    if schedule == "linear_warmup_decay":
        sched_params = OrderedDict([("warmup_steps", 3), ("total_steps", 10)])
    elif schedule == "cosine":
        sched_params = OrderedDict([("warmup_steps", 2), ("total_steps", 10), ("num_cycles", 0.5)])
    elif schedule == "one_cycle":
        sched_params = OrderedDict([("total_steps", 10), ("pct_start", 0.3), ("anneal_strategy", "cos"),
                                    ("div_factor", 25.0), ("final_div_factor", 1e4), ("cycle_momentum", False),
                                    ("three_phase", False), ("max_lr", "group lr")])
    params = OrderedDict([("optimizer", optimizer)])
    params.update(hyper)
    params["groups"] = groups
    params["schedule"] = schedule
    params["schedule_params"] = sched_params
    params["clip_grad_norm"] = clip
    params["num_steps"] = NUM_STEPS

    @case(name)
    def build():
        c = Case(name, "optim", params,
                 note="lr[k,g] = param_groups[g]['lr'] read just before optimizer.step() of step k (0-based); "
                      "grad.step<k>.* are the raw grads for step k (before clipping); out.step<k>.* are the "
                      "parameters after step k; out.step<k>.total_norm is clip_grad_norm_'s return value.")
        p0 = torch.randn(4, 3)
        p1 = torch.randn(5)
        c.input("p0", p0, diff=False).input("p1", p1, diff=False)
        grads = [(torch.randn(4, 3) * grad_scale, torch.randn(5) * grad_scale) for _ in range(NUM_STEPS)]

        tp = OrderedDict([("p0", nn.Parameter(p0.clone())), ("p1", nn.Parameter(p1.clone()))])
        pgroups = []
        for g in groups:
            d = {"params": [tp[n] for n in g["params"]]}
            for k, v in g.items():
                if k != "params":
                    d[k] = tuple(v) if isinstance(v, list) else v
            pgroups.append(d)
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in hyper.items()}
        if optimizer == "sgd":
            opt = torch.optim.SGD(pgroups, **kw)
        elif optimizer == "adamw":
            opt = torch.optim.AdamW(pgroups, **kw)
        else:
            raise ValueError(optimizer)
        sched = None
        if schedule in ("linear_warmup_decay", "cosine"):
            sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(schedule, sched_params))
        elif schedule == "one_cycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=10, pct_start=0.3,
                anneal_strategy="cos", div_factor=25.0, final_div_factor=1e4, cycle_momentum=False)

        lrs = torch.zeros(NUM_STEPS, len(opt.param_groups))
        for k in range(NUM_STEPS):
            opt.zero_grad(set_to_none=True)
            tp["p0"].grad = grads[k][0].clone()
            tp["p1"].grad = grads[k][1].clone()
            c.extra[f"grad.step{k}.p0"] = grads[k][0].clone()
            c.extra[f"grad.step{k}.p1"] = grads[k][1].clone()
            if clip is not None:
                tn = torch.nn.utils.clip_grad_norm_(list(tp.values()), clip)
                c.extra[f"out.step{k}.total_norm"] = tn.detach().clone().to(torch.float32)
            for gi, g in enumerate(opt.param_groups):
                lrs[k, gi] = g["lr"]
            opt.step()
            if sched is not None:
                sched.step()
            c.extra[f"out.step{k}.p0"] = tp["p0"].detach().clone()
            c.extra[f"out.step{k}.p1"] = tp["p1"].detach().clone()
        c.extra["lr"] = lrs
        return c, c.run(lambda p0, p1: OrderedDict())


_ALL = [OrderedDict([("params", ["p0", "p1"])])]
_SGD = OrderedDict([("lr", 0.1), ("momentum", 0.0), ("dampening", 0.0), ("weight_decay", 0.0), ("nesterov", False)])
_ADAMW = OrderedDict([("lr", 1e-3), ("betas", [0.9, 0.999]), ("eps", 1e-8), ("weight_decay", 1e-2),
                      ("amsgrad", False)])


def _h(base, **kw):
    d = OrderedDict(base)
    d.update(kw)
    return d


_make_optim("optim_sgd_plain", "sgd", _SGD, _ALL)
_make_optim("optim_sgd_momentum_wd", "sgd", _h(_SGD, lr=0.05, momentum=0.9, weight_decay=0.01), _ALL)
_make_optim("optim_sgd_momentum_dampening", "sgd", _h(_SGD, lr=0.05, momentum=0.9, dampening=0.1), _ALL)
_make_optim("optim_sgd_nesterov", "sgd", _h(_SGD, lr=0.05, momentum=0.9, nesterov=True), _ALL)
_make_optim("optim_adamw_constant", "adamw", _ADAMW, _ALL)
_make_optim("optim_adamw_groups_linear_warmup_decay", "adamw", _h(_ADAMW, lr=0.05),
            [OrderedDict([("params", ["p0"]), ("lr", 0.1), ("weight_decay", 0.01)]),
             OrderedDict([("params", ["p1"]), ("lr", 0.01), ("weight_decay", 0.0)])],
            schedule="linear_warmup_decay")
_make_optim("optim_adamw_cosine", "adamw", _h(_ADAMW, lr=0.05), _ALL, schedule="cosine")
_make_optim("optim_adamw_one_cycle", "adamw", _h(_ADAMW, lr=0.05), _ALL, schedule="one_cycle")
_make_optim("optim_adamw_clip_grad_norm", "adamw", _h(_ADAMW, lr=0.01), _ALL, clip=1.0, grad_scale=10.0)
_make_optim("optim_sgd_momentum_clip_grad_norm", "sgd", _h(_SGD, lr=0.05, momentum=0.9), _ALL, clip=1.0,
            grad_scale=10.0)

# --------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------


def verify(path):
    meta, tensors = read_safetensors(path)
    for k in ("op", "params", "inputs", "differentiable"):
        assert k in meta, f"{path}: missing metadata {k}"
    params = json.loads(meta["params"])
    inputs = json.loads(meta["inputs"])
    diff = json.loads(meta["differentiable"])
    assert isinstance(params, dict) and isinstance(inputs, list) and isinstance(diff, list)
    for n in inputs:
        assert "in." + n in tensors, f"{path}: missing in.{n}"
    for n in diff:
        assert "grad." + n in tensors, f"{path}: missing grad.{n}"
        assert tensors["grad." + n].shape == tensors["in." + n].shape, f"{path}: grad.{n} shape"
    for k, v in tensors.items():
        if v.dtype == torch.float32:
            assert torch.isfinite(v).all(), f"{path}: non-finite values in {k}"
        if k.startswith("gout"):
            ok = "out" + k[4:]
            assert ok in tensors and tensors[ok].shape == v.shape, f"{path}: {k} shape"
    return meta, tensors


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT, help="output directory (default: %(default)s)")
    ap.add_argument("--only", default=None, help="comma separated case names to (re)generate")
    ap.add_argument("--check", action="store_true", help="only read back and verify the existing files")
    args = ap.parse_args()

    names = [n for n, _ in CASES]
    dup = set(n for n in names if names.count(n) > 1)
    assert not dup, f"duplicate case names: {dup}"
    os.makedirs(args.out, exist_ok=True)
    selected = CASES
    if args.only:
        want = set(args.only.split(","))
        selected = [(n, b) for n, b in CASES if n in want]

    if not args.check:
        if not args.only:
            # remove stale fixtures from earlier runs
            for f in os.listdir(args.out):
                if f.endswith(".safetensors") and f[: -len(".safetensors")] not in names:
                    os.remove(os.path.join(args.out, f))
        for n, build in selected:
            seed_for(n)
            c, tensors = build()
            write_safetensors(os.path.join(args.out, n + ".safetensors"), tensors, c.metadata())

    total = 0
    ops = {}
    for n, _ in selected:
        path = os.path.join(args.out, n + ".safetensors")
        meta, tensors = verify(path)
        size = os.path.getsize(path)
        total += size
        ops.setdefault(meta["op"], []).append(n)
        print(f"{n:48s} op={meta['op']:34s} tensors={len(tensors):3d} bytes={size}")
    print(f"\n{len(selected)} files, {len(ops)} ops, {total} bytes total in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
