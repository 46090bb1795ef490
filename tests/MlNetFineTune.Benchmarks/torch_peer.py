#!/usr/bin/python3
"""PyTorch peer of the side-by-side benchmark (issue 3).

Runs the same workloads as tests/MlNetFineTune.Benchmarks/Workloads.cs, same shapes, same thread count,
same method (warm-up: at least --warmup calls and 300 ms, also for calls of over a second; then
--runs timed runs of enough calls to last --min-run-ms each, a gc.collect() before each run; the median ms per
call is reported), and prints ONE JSON object on the last line of stdout:

    {"ok": true, "torch": "...", "blas": "...", "results": {"NAME": {"ms": X, "runs": [...], "reps": N, ...}}}
    {"ok": false, "reason": "why nothing is reported"}

It refuses to report (ok=false, with the reason) unless torch's BLAS is OpenBLAS or MKL: Debian's torch is
built with BLAS_INFO=generic and takes whatever libblas.so.3 the alternatives system points at; the
reference BLAS is ~25x slower and would make any comparison meaningless.

Usage (the C# harness runs it with Debian's interpreter, which has torch):
    /usr/bin/python3 torch_peer.py --threads 2 --check
    /usr/bin/python3 torch_peer.py --threads 2 --only gemm-256,bert-mini-fwd-32x128 [--runs 5 --warmup 3]
    /usr/bin/python3 torch_peer.py --threads 2 --only bert-mini-train20-peak-rss     (alone: a fresh process)
    /usr/bin/python3 torch_peer.py --list
"""

import argparse
import gc
import json
import math
import os
import re
import resource
import sys
import time

MEMORY_WORKLOAD = "bert-mini-train20-peak-rss"


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------- BLAS check

def loaded_libraries(*needles):
    paths = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6 and any(n in parts[5].lower() for n in needles) and parts[5] not in paths:
                    paths.append(parts[5])
    except OSError:
        pass
    return paths


def blas_check(torch):
    """Returns (ok, description or reason)."""
    cfg = torch.__config__.show()
    m = re.search(r"BLAS_INFO=([\w-]+)", cfg)
    blas_info = m.group(1) if m else "unknown"
    # Make sure the BLAS is loaded and used once (torch.mm on float32 goes to sgemm).
    a = torch.ones(64, 64)
    _ = a @ a
    libs = loaded_libraries("blas", "mkl", "blis")
    if "mkl" in blas_info.lower() or any("libmkl" in p for p in libs):
        return True, f"MKL (BLAS_INFO={blas_info})"
    openblas = [p for p in libs if "openblas" in p.lower()]
    if openblas:
        desc = f"OpenBLAS {openblas[0]}"
        try:
            import ctypes
            lib = ctypes.CDLL(openblas[0])
            lib.openblas_get_config.restype = ctypes.c_char_p
            desc = f"{lib.openblas_get_config().decode()} ({openblas[0]})"
        except (OSError, AttributeError):
            pass
        return True, f"{desc}, BLAS_INFO={blas_info}"
    return False, (f"torch's BLAS is not OpenBLAS or MKL (BLAS_INFO={blas_info}; BLAS libraries loaded: "
                   f"{', '.join(libs) or 'none found'}); the reference BLAS is ~25x slower, so no torch figures "
                   f"are reported. Fix: apt-get install -y libopenblas0-openmp (or update-alternatives --config "
                   f"libblas.so.3-x86_64-linux-gnu)")


# --------------------------------------------------------------------------- timing

def time_call(call, args, phases=None):
    """Warm-up, then args.runs timed runs of `reps` calls; returns the result dict (median ms per call)."""
    t0 = time.perf_counter()
    warm = 0
    while True:
        call()
        warm += 1
        elapsed = (time.perf_counter() - t0) * 1e3
        if warm >= args.warmup and elapsed >= 300:
            break
    per_call = (time.perf_counter() - t0) * 1e3 / warm
    reps = max(1, int(math.ceil(args.min_run_ms / per_call)))
    if phases is not None:
        phases.clear()
    times = []
    for _ in range(args.runs):
        gc.collect()
        t = time.perf_counter()
        for _ in range(reps):
            call()
        times.append((time.perf_counter() - t) * 1e3 / reps)
    times.sort()
    n = len(times)
    median = times[n // 2] if n % 2 else 0.5 * (times[n // 2 - 1] + times[n // 2])
    out = {"ms": median, "runs": times, "reps": reps}
    if phases is not None:
        out["phases"] = {k: v / (args.runs * reps) for k, v in phases.items()}
    out["note"] = f"{warm} warm-up calls"
    return out


class PhaseClock:
    def __init__(self):
        self.ms = {}
        self.current = None
        self.t = 0.0

    def start(self, name):
        self.stop()
        self.current = name
        self.t = time.perf_counter()

    def stop(self):
        if self.current is not None:
            self.ms[self.current] = self.ms.get(self.current, 0.0) + (time.perf_counter() - self.t) * 1e3
            self.current = None

    def clear(self):
        self.ms.clear()

    def items(self):
        return self.ms.items()


# --------------------------------------------------------------------------- BERT-mini (plain torch, HF layout)

def build_bert_mini(torch, num_labels=2):
    nn = torch.nn
    F = torch.nn.functional

    class Cfg:
        vocab = 30522
        hidden = 256
        layers = 4
        heads = 4
        ffn = 1024
        max_pos = 512
        type_vocab = 2
        dropout = 0.1
        eps = 1e-12
        init_range = 0.02
        pad = 0

    c = Cfg()

    class Embeddings(nn.Module):
        def __init__(self):
            super().__init__()
            self.word_embeddings = nn.Embedding(c.vocab, c.hidden, padding_idx=c.pad)
            self.position_embeddings = nn.Embedding(c.max_pos, c.hidden)
            self.token_type_embeddings = nn.Embedding(c.type_vocab, c.hidden)
            self.LayerNorm = nn.LayerNorm(c.hidden, eps=c.eps)
            self.dropout = nn.Dropout(c.dropout)
            self.register_buffer("position_ids", torch.arange(c.max_pos).expand((1, -1)))

        def forward(self, ids, types):
            pos = self.position_ids[:, : ids.shape[1]]
            e = self.word_embeddings(ids) + self.token_type_embeddings(types)
            e = e + self.position_embeddings(pos)
            return self.dropout(self.LayerNorm(e))

    class SelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.dh = c.hidden // c.heads
            self.query = nn.Linear(c.hidden, c.hidden)
            self.key = nn.Linear(c.hidden, c.hidden)
            self.value = nn.Linear(c.hidden, c.hidden)
            self.dropout = nn.Dropout(c.dropout)

        def heads(self, x):
            b, s, _ = x.shape
            return x.view(b, s, c.heads, self.dh).permute(0, 2, 1, 3)

        def forward(self, h, ext_mask):
            q, k, v = self.heads(self.query(h)), self.heads(self.key(h)), self.heads(self.value(h))
            scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.dh)
            scores = scores + ext_mask
            probs = self.dropout(F.softmax(scores, dim=-1))
            ctx = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()
            return ctx.view(ctx.shape[0], ctx.shape[1], c.hidden)

    class DenseNorm(nn.Module):  # BertSelfOutput / BertOutput
        def __init__(self, n_in):
            super().__init__()
            self.dense = nn.Linear(n_in, c.hidden)
            self.LayerNorm = nn.LayerNorm(c.hidden, eps=c.eps)
            self.dropout = nn.Dropout(c.dropout)

        def forward(self, x, residual):
            return self.LayerNorm(self.dropout(self.dense(x)) + residual)

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.self = SelfAttention()
            self.output = DenseNorm(c.hidden)

        def forward(self, h, ext_mask):
            return self.output(self.self(h, ext_mask), h)

    class Intermediate(nn.Module):
        def __init__(self):
            super().__init__()
            self.dense = nn.Linear(c.hidden, c.ffn)

        def forward(self, x):
            return F.gelu(self.dense(x))  # exact (erf) GELU, as HF "gelu"

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention = Attention()
            self.intermediate = Intermediate()
            self.output = DenseNorm(c.ffn)

        def forward(self, h, ext_mask):
            a = self.attention(h, ext_mask)
            return self.output(self.intermediate(a), a)

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.ModuleList([Layer() for _ in range(c.layers)])

        def forward(self, h, ext_mask):
            for layer in self.layer:
                h = layer(h, ext_mask)
            return h

    class Pooler(nn.Module):
        def __init__(self):
            super().__init__()
            self.dense = nn.Linear(c.hidden, c.hidden)

        def forward(self, h):
            return torch.tanh(self.dense(h[:, 0]))

    class Bert(nn.Module):
        def __init__(self):
            super().__init__()
            self.embeddings = Embeddings()
            self.encoder = Encoder()
            self.pooler = Pooler()

        def forward(self, ids, mask, types):
            ext = (1.0 - mask[:, None, None, :].to(torch.float32)) * torch.finfo(torch.float32).min
            return self.pooler(self.encoder(self.embeddings(ids, types), ext))

    class BertForSequenceClassification(nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = Bert()
            self.dropout = nn.Dropout(c.dropout)
            self.classifier = nn.Linear(c.hidden, num_labels)
            self.apply(self._init)

        @staticmethod
        def _init(m):  # Hugging Face's BertPreTrainedModel._init_weights
            if isinstance(m, nn.Linear):
                m.weight.data.normal_(0.0, c.init_range)
                m.bias.data.zero_()
            elif isinstance(m, nn.Embedding):
                m.weight.data.normal_(0.0, c.init_range)
                if m.padding_idx is not None:
                    m.weight.data[m.padding_idx].zero_()
            elif isinstance(m, nn.LayerNorm):
                m.weight.data.fill_(1.0)
                m.bias.data.zero_()

        def forward(self, ids, mask, types):
            return self.classifier(self.dropout(self.bert(ids, mask, types)))

    return BertForSequenceClassification(), c


def bert_batch(torch, c, batch, seq):
    g = torch.Generator().manual_seed(42)
    ids = torch.randint(1, c.vocab, (batch, seq), generator=g)
    mask = torch.ones(batch, seq, dtype=torch.long)
    types = torch.zeros(batch, seq, dtype=torch.long)
    labels = torch.randint(0, 2, (batch,), generator=g)
    return ids, mask, types, labels


def bert_train(torch, args, batch, seq):
    model, c = build_bert_mini(torch)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)  # weight_decay 0.01 (default), as ours
    ids, mask, types, labels = bert_batch(torch, c, batch, seq)
    F = torch.nn.functional
    clock = PhaseClock()

    def step():
        clock.start("forward")
        loss = F.cross_entropy(model(ids, mask, types), labels)
        clock.start("backward")
        loss.backward()
        clock.start("optimizer")
        opt.step()
        opt.zero_grad(set_to_none=True)
        clock.stop()

    return time_call(step, args, clock)


def bert_forward(torch, args, batch, seq):
    model, c = build_bert_mini(torch)
    model.eval()
    ids, mask, types, _ = bert_batch(torch, c, batch, seq)

    def call():
        with torch.no_grad():
            model(ids, mask, types)

    return time_call(call, args)


def status_kb(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def bert_memory(torch, args):
    # Peak RSS is VmHWM (this process image's high-water mark), the figure Workloads.cs reads for ours.
    # ru_maxrss is also reported, but on Linux it survives fork+exec: a child spawned by a big parent (the .NET
    # harness) starts with the parent's RSS as its ru_maxrss, so it over-states a small child.
    base = status_kb("VmRSS")
    model, c = build_bert_mini(torch)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids, mask, types, labels = bert_batch(torch, c, 32, 128)
    F = torch.nn.functional
    t = time.perf_counter()
    for _ in range(20):
        loss = F.cross_entropy(model(ids, mask, types), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    loop_ms = (time.perf_counter() - t) * 1e3
    peak = status_kb("VmHWM")
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    if peak <= 0:
        peak = maxrss
    return {"peak_rss_mb": peak / 1024.0, "runs": [peak / 1024.0], "reps": 1, "ru_maxrss_mb": maxrss / 1024.0,
            "note": f"one fresh process; VmHWM; RSS after import torch, before the model {base / 1024.0:.0f} MiB; "
                    f"20 steps took {loop_ms / 1000:.1f} s; ru_maxrss {maxrss / 1024.0:.0f} MiB (inherits the "
                    f"spawning process's RSS across fork+exec, so VmHWM is reported)"}


# --------------------------------------------------------------------------- vision

def resnet_train(torch, args, batch, size):
    import torchvision
    torch.manual_seed(42)
    model = torchvision.models.resnet18(num_classes=1000)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 1000, (batch,))
    F = torch.nn.functional
    clock = PhaseClock()

    def step():
        clock.start("forward")
        loss = F.cross_entropy(model(x), y)
        clock.start("backward")
        loss.backward()
        clock.start("optimizer")
        opt.step()
        opt.zero_grad(set_to_none=True)
        clock.stop()

    return time_call(step, args, clock)


def mobilenet_forward(torch, args):
    import torchvision
    torch.manual_seed(42)
    model = torchvision.models.mobilenet_v2()
    model.eval()
    x = torch.rand(32, 3, 224, 224)
    F = torch.nn.functional

    def call():
        with torch.no_grad():
            F.adaptive_avg_pool2d(model.features(x), 1).flatten(1)  # [32, 1280], as ours (out_relu pooled)

    r = time_call(call, args)
    r["note"] = ("torchvision mobilenet_v2 .features + global average pool (ours: the Keras MobileNetV2 graph up to "
                 "out_relu, pooled). Same widths and block structure; Keras pads stride-2 convs with explicit "
                 "asymmetric ZeroPadding2D and uses BN eps 1e-3, torchvision pads symmetrically inside the conv; "
                 "FLOPs are the same to within the padding")
    return r


# --------------------------------------------------------------------------- GEMM

GEMMS = {}
for s in (128, 256, 512, 1024, 2048):
    GEMMS[f"gemm-{s}"] = (s, s, s, False, False)
GEMMS.update({
    "gemm-4096x1024x256-NN": (4096, 1024, 256, False, False),
    "gemm-4096x256x1024-NT": (4096, 256, 1024, False, True),
    "gemm-256x1024x4096-TN": (256, 1024, 4096, True, False),
    "gemm-4096x256x1024-NN": (4096, 256, 1024, False, False),
    "gemm-4096x1024x256-NT": (4096, 1024, 256, False, True),
    "gemm-1024x256x4096-TN": (1024, 256, 4096, True, False),
})


def gemm(torch, args, m, n, k, ta, tb):
    g = torch.Generator().manual_seed(42)
    # Stored as Workloads.cs stores them: A is m x k (k x m when transposed), B is k x n (n x k when transposed).
    a = torch.rand((k, m) if ta else (m, k), generator=g) * 2 - 1
    b = torch.rand((n, k) if tb else (k, n), generator=g) * 2 - 1
    a_op = a.t() if ta else a
    b_op = b.t() if tb else b
    c = torch.empty(m, n)
    r = time_call(lambda: torch.mm(a_op, b_op, out=c), args)
    r["gflops"] = 2.0 * m * n * k / (r["ms"] * 1e6)
    return r


# --------------------------------------------------------------------------- main

WORKLOADS = dict(
    {name: (lambda torch, args, sh=shape: gemm(torch, args, *sh)) for name, shape in GEMMS.items()},
    **{
        "bert-mini-train-32x128": lambda torch, args: bert_train(torch, args, 32, 128),
        "bert-mini-fwd-32x128": lambda torch, args: bert_forward(torch, args, 32, 128),
        "bert-mini-latency-1x32": lambda torch, args: bert_forward(torch, args, 1, 32),
        "resnet18-train-16x224": lambda torch, args: resnet_train(torch, args, 16, 224),
        "resnet18-train-64x64": lambda torch, args: resnet_train(torch, args, 64, 64),
        "mobilenetv2-fwd-32x224": lambda torch, args: mobilenet_forward(torch, args),
        MEMORY_WORKLOAD: lambda torch, args: bert_memory(torch, args),
    },
)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", default=None, help="comma-separated workload names (default: all but the memory one)")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--min-run-ms", type=float, default=30.0)
    p.add_argument("--check", action="store_true", help="only check torch and its BLAS")
    p.add_argument("--list", action="store_true")
    args = p.parse_args()

    if args.list:
        for name in WORKLOADS:
            print(name)
        return 0

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))  # before torch loads OpenMP / OpenBLAS
    try:
        import torch
    except ImportError as e:
        emit({"ok": False, "reason": f"{sys.executable} cannot import torch: {e}"})
        return 0
    torch.set_num_threads(args.threads)
    ok, blas = blas_check(torch)
    info = {"torch": torch.__version__, "threads": torch.get_num_threads(), "blas": blas if ok else None,
            "mkldnn": torch.backends.mkldnn.is_available()}
    if not ok:
        print(f"torch_peer: refusing to report: {blas}", file=sys.stderr)
        emit(dict(info, ok=False, reason=blas))
        return 0
    if args.check:
        emit(dict(info, ok=True))
        return 0

    names = [n.strip() for n in args.only.split(",")] if args.only else [n for n in WORKLOADS if n != MEMORY_WORKLOAD]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        emit(dict(info, ok=False, reason=f"unknown workload(s) {unknown}; known: {list(WORKLOADS)}"))
        return 0
    if MEMORY_WORKLOAD in names and len(names) > 1:
        emit(dict(info, ok=False, reason=f"{MEMORY_WORKLOAD} must run alone in a fresh process"))
        return 0
    if args.runs < 5:
        print(f"torch_peer: note: --runs {args.runs} is below the issue's minimum of 5", file=sys.stderr)

    results = {}
    for name in names:
        try:
            results[name] = WORKLOADS[name](torch, args)
        except Exception as e:  # report, keep going with the other workloads
            results[name] = {"error": f"{type(e).__name__}: {e}"}
        gc.collect()
    emit(dict(info, ok=True, results=results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
