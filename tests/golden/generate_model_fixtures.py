#!/usr/bin/env python3
"""Generate tiny Hugging Face / torchvision model checkpoints plus PyTorch reference values.

Usage (from the repository root):

    /usr/bin/python3 tests/golden/generate_model_fixtures.py [--out DIR] [--check] [--only a,b]

Writes one directory per model into ``tests/MlNetFineTune.Models.Tests/fixtures/models`` (or
``--out``). Each directory holds the checkpoint in the upstream on-disk format (``config.json`` plus
``model.safetensors`` and/or ``pytorch_model.bin``, or a torchvision ``resnet.pth``) and a
``reference.safetensors`` file with inputs, eval-mode outputs and parameter gradients. The README.md
next to the fixtures describes every file.

The `transformers` and `safetensors` packages are not used. The models are written below in plain
torch and follow the Hugging Face modeling code (modeling_bert.py, modeling_roberta.py,
modeling_distilbert.py, transformers 4.30 to 4.44, eager attention). The module tree and parameter
names match upstream exactly. Both safetensors writers are defined in this file.

Determinism: torch.set_num_threads(1), and torch.manual_seed(crc32(model name)) before each model
is built. Two runs produce byte-identical files.
"""

import argparse
import copy
import json
import math
import os
import struct
import sys
import zipfile
import zlib
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)
torch.set_default_dtype(torch.float32)

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.normpath(
    os.path.join(HERE, "..", "MlNetFineTune.Models.Tests", "fixtures", "models")
)

SIZE_LIMIT = 4 * 1024 * 1024  # total bytes of all generated files

# Standard deviation for the random init of Linear weights and embeddings in the transformer
# fixtures. HF's _init_weights uses initializer_range (0.02). At hidden size 32, weights that small
# make the attention nearly uniform and keep the GELU inputs near 0, so a wrong attention scale or a
# tanh-approximate GELU would change the logits by less than the test tolerance. The fixtures
# therefore draw weights with a larger std (see the README, "Sensitivity"). config.json still
# records initializer_range 0.02, because that value only affects init.
WEIGHT_STD = 0.2
BIAS_STD = 0.1
LN_WEIGHT_STD = 0.1  # LayerNorm weight = 1 + LN_WEIGHT_STD * N(0,1)
LN_BIAS_STD = 0.1  # LayerNorm bias   = LN_BIAS_STD * N(0,1)


# ======================================================================================
# safetensors
# ======================================================================================

# Order of the safetensors Rust `Dtype` enum, which upstream files use to order the data.
_ST_RANK = {"BOOL": 0, "U8": 1, "I8": 2, "I16": 3, "U16": 4, "F16": 5, "BF16": 6, "I32": 7,
            "U32": 8, "F32": 9, "F64": 10, "I64": 11, "U64": 12}
_TORCH_TO_ST = {torch.float32: ("F32", "<f4"), torch.int64: ("I64", "<i8")}
_ST_TO_NP = {"F32": "<f4", "I64": "<i8"}


def write_safetensors(path, tensors, metadata=None, layout="upstream"):
    """Write a safetensors file.

    layout="upstream": the order produced by the Rust `safetensors` crate, which
    `safetensors.torch.save_file` and HF `save_pretrained` use. Tensors are sorted by dtype,
    larger alignment first (so I64 comes before F32), then by name. The JSON header lists
    `__metadata__` first, then the tensors in data order.
    layout="sorted": tensors sorted by name, the same as tests/golden/generate_golden.py.
    JSON is compact (no spaces) and padded with spaces to a multiple of 8.
    """
    entries = []
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        if t.dtype not in _TORCH_TO_ST:
            raise TypeError(f"{path}: {name}: unsupported dtype {t.dtype}")
        entries.append((name, t))
    if layout == "upstream":
        entries.sort(key=lambda e: (-_ST_RANK[_TORCH_TO_ST[e[1].dtype][0]], e[0]))
    elif layout == "sorted":
        entries.sort(key=lambda e: e[0])
    else:
        raise ValueError(layout)
    header = OrderedDict()
    if metadata is not None:
        header["__metadata__"] = OrderedDict((k, str(metadata[k])) for k in sorted(metadata))
    blobs = []
    offset = 0
    for name, t in entries:
        dt, npdt = _TORCH_TO_ST[t.dtype]
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
    """Returns (metadata or None, OrderedDict name -> tensor in header order). Checks that the
    offsets tile the data buffer exactly, in header order."""
    import numpy as np

    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0, f"{path}: header length {n} not a multiple of 8"
    header = json.loads(raw[8 : 8 + n].decode("utf-8"), object_pairs_hook=OrderedDict)
    data = raw[8 + n :]
    meta = header.pop("__metadata__", None)
    if meta is not None:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()), path
    tensors = OrderedDict()
    expected = 0
    for name, info in header.items():
        b, e = info["data_offsets"]
        assert b == expected, f"{path}: {name} offsets not contiguous in header order"
        expected = e
        arr = np.frombuffer(data[b:e], dtype=_ST_TO_NP[info["dtype"]]).reshape(info["shape"])
        tensors[name] = torch.from_numpy(arr.copy())
    assert expected == len(data), f"{path}: trailing bytes"
    return meta, tensors


# ======================================================================================
# config.json (PretrainedConfig.to_json_file(use_diff=True), as save_pretrained writes it)
# ======================================================================================


def write_config(path, cfg):
    # PretrainedConfig.to_json_string: json.dumps(d, indent=2, sort_keys=True) + "\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def labels(names):
    # id2label keys are ints in Python and become strings in JSON.
    return {str(i): n for i, n in enumerate(names)}, {n: i for i, n in enumerate(names)}


def bert_config(arch, label_names, version, extra=None):
    id2label, label2id = labels(label_names)
    cfg = {
        "architectures": [arch],
        "attention_probs_dropout_prob": 0.1,
        "classifier_dropout": None,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": 32,
        "id2label": id2label,
        "initializer_range": 0.02,
        "intermediate_size": 37,
        "label2id": label2id,
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": 64,
        "model_type": "bert",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
        "transformers_version": version,
        "type_vocab_size": 2,
        "use_cache": True,
        "vocab_size": 99,
    }
    cfg.update(extra or {})
    return cfg


def roberta_config():
    id2label, label2id = labels(["LABEL_0", "LABEL_1", "LABEL_2"])
    return {
        "architectures": ["RobertaForSequenceClassification"],
        "attention_probs_dropout_prob": 0.1,
        "bos_token_id": 0,
        "classifier_dropout": None,
        "eos_token_id": 2,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": 32,
        "id2label": id2label,
        "initializer_range": 0.02,
        "intermediate_size": 37,
        "label2id": label2id,
        "layer_norm_eps": 1e-05,
        "max_position_embeddings": 66,
        "model_type": "roberta",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "pad_token_id": 1,
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
        "transformers_version": "4.44.2",
        "type_vocab_size": 1,
        "use_cache": True,
        "vocab_size": 99,
    }


def distilbert_config():
    id2label, label2id = labels(["NEGATIVE", "NEUTRAL", "POSITIVE"])
    return {
        "activation": "gelu",
        "architectures": ["DistilBertForSequenceClassification"],
        "attention_dropout": 0.1,
        "dim": 32,
        "dropout": 0.1,
        "hidden_dim": 37,
        "id2label": id2label,
        "initializer_range": 0.02,
        "label2id": label2id,
        "max_position_embeddings": 64,
        "model_type": "distilbert",
        "n_heads": 4,
        "n_layers": 2,
        "pad_token_id": 0,
        "qa_dropout": 0.1,
        "seq_classif_dropout": 0.2,
        "sinusoidal_pos_embds": False,
        "torch_dtype": "float32",
        "transformers_version": "4.44.2",
        "vocab_size": 99,
    }


def legacy_bert_config():
    # Style of the original bert-base-uncased config.json on the Hub: no torch_dtype,
    # transformers_version, id2label or classifier_dropout.
    return {
        "architectures": ["BertForMaskedLM"],
        "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 37,
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": 64,
        "model_type": "bert",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "pad_token_id": 0,
        "type_vocab_size": 2,
        "vocab_size": 99,
    }


class Cfg:
    """Attribute view of a config dict (what the model classes below read)."""

    def __init__(self, d):
        self.__dict__.update(d)


# ======================================================================================
# Models in plain torch, mirroring the Hugging Face module tree (eager attention path)
# ======================================================================================


def gelu(x):
    # ACT2FN["gelu"] == GELUActivation == F.gelu (exact erf form)
    return F.gelu(x)


class BertEmbeddings(nn.Module):
    def __init__(self, c, persistent_position_ids):
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=c.pad_token_id)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)
        # arange(max_pos).expand((1, -1)): transformers <= 4.30 persisted it, later releases
        # register it with persistent=False.
        self.register_buffer(
            "position_ids",
            torch.arange(c.max_position_embeddings).expand((1, -1)),
            persistent=persistent_position_ids,
        )

    def forward(self, input_ids, token_type_ids=None):
        seq_length = input_ids.shape[1]
        position_ids = self.position_ids[:, :seq_length]
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        emb = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        emb = emb + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(emb))


class RobertaEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.padding_idx = c.pad_token_id
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=c.pad_token_id)
        self.position_embeddings = nn.Embedding(
            c.max_position_embeddings, c.hidden_size, padding_idx=c.pad_token_id
        )
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    @staticmethod
    def position_ids_from_input_ids(input_ids, padding_idx):
        # create_position_ids_from_input_ids: non-pad tokens get padding_idx+1, +2, ...; pads get
        # padding_idx.
        mask = input_ids.ne(padding_idx).int()
        incremental = torch.cumsum(mask, dim=1).type_as(mask) * mask
        return incremental.long() + padding_idx

    def forward(self, input_ids, token_type_ids=None):
        position_ids = self.position_ids_from_input_ids(input_ids, self.padding_idx)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        emb = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        emb = emb + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(emb))


class BertSelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.num_attention_heads = c.num_attention_heads
        self.attention_head_size = c.hidden_size // c.num_attention_heads
        self.all_head_size = self.num_attention_heads * self.attention_head_size
        self.query = nn.Linear(c.hidden_size, self.all_head_size)
        self.key = nn.Linear(c.hidden_size, self.all_head_size)
        self.value = nn.Linear(c.hidden_size, self.all_head_size)
        self.dropout = nn.Dropout(c.attention_probs_dropout_prob)

    def split_heads(self, x):
        b, s, _ = x.shape
        return x.view(b, s, self.num_attention_heads, self.attention_head_size).permute(0, 2, 1, 3)

    def forward(self, hidden, ext_mask):
        q = self.split_heads(self.query(hidden))
        k = self.split_heads(self.key(hidden))
        v = self.split_heads(self.value(hidden))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.attention_head_size)
        scores = scores + ext_mask
        probs = self.dropout(F.softmax(scores, dim=-1))
        ctx = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()
        return ctx.view(ctx.shape[0], ctx.shape[1], self.all_head_size)


class BertSelfOutput(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, hidden, input_tensor):
        return self.LayerNorm(self.dropout(self.dense(hidden)) + input_tensor)


class BertAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self = BertSelfAttention(c)
        self.output = BertSelfOutput(c)

    def forward(self, hidden, ext_mask):
        return self.output(self.self(hidden, ext_mask), hidden)


class BertIntermediate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)

    def forward(self, hidden):
        return gelu(self.dense(hidden))


class BertOutput(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c.intermediate_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, hidden, input_tensor):
        return self.LayerNorm(self.dropout(self.dense(hidden)) + input_tensor)


class BertLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = BertAttention(c)
        self.intermediate = BertIntermediate(c)
        self.output = BertOutput(c)

    def forward(self, hidden, ext_mask):
        attn = self.attention(hidden, ext_mask)
        return self.output(self.intermediate(attn), attn)


class BertEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(c) for _ in range(c.num_hidden_layers)])

    def forward(self, hidden, ext_mask):
        for layer in self.layer:
            hidden = layer(hidden, ext_mask)
        return hidden


class BertPooler(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, hidden):
        return torch.tanh(self.dense(hidden[:, 0]))


def extended_attention_mask(attention_mask, dtype):
    # get_extended_attention_mask: [b, s] -> [b, 1, 1, s]; (1 - m) * finfo.min
    m = attention_mask[:, None, None, :].to(dtype)
    return (1.0 - m) * torch.finfo(dtype).min


class BertModel(nn.Module):
    """BertModel (model_type "bert") and, with roberta=True, RobertaModel. Both have the same
    tree; only the embeddings differ."""

    def __init__(self, c, add_pooling_layer=True, persistent_position_ids=False, roberta=False):
        super().__init__()
        self.embeddings = RobertaEmbeddings(c) if roberta else BertEmbeddings(c, persistent_position_ids)
        self.encoder = BertEncoder(c)
        self.pooler = BertPooler(c) if add_pooling_layer else None

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        emb = self.embeddings(input_ids, token_type_ids)
        hidden = self.encoder(emb, extended_attention_mask(attention_mask, emb.dtype))
        pooled = self.pooler(hidden) if self.pooler is not None else None
        return hidden, pooled


class BertForSequenceClassification(nn.Module):
    def __init__(self, c, persistent_position_ids):
        super().__init__()
        self.num_labels = len(c.id2label)
        self.bert = BertModel(c, add_pooling_layer=True, persistent_position_ids=persistent_position_ids)
        p = c.classifier_dropout if c.classifier_dropout is not None else c.hidden_dropout_prob
        self.dropout = nn.Dropout(p)
        self.classifier = nn.Linear(c.hidden_size, self.num_labels)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        hidden, pooled = self.bert(input_ids, attention_mask, token_type_ids)
        return OrderedDict(last_hidden_state=hidden, pooler_output=pooled,
                           logits=self.classifier(self.dropout(pooled)))


class BertForTokenClassification(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.num_labels = len(c.id2label)
        self.bert = BertModel(c, add_pooling_layer=False)
        p = c.classifier_dropout if c.classifier_dropout is not None else c.hidden_dropout_prob
        self.dropout = nn.Dropout(p)
        self.classifier = nn.Linear(c.hidden_size, self.num_labels)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        hidden, _ = self.bert(input_ids, attention_mask, token_type_ids)
        return OrderedDict(last_hidden_state=hidden, logits=self.classifier(self.dropout(hidden)))


class RobertaClassificationHead(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)
        p = c.classifier_dropout if c.classifier_dropout is not None else c.hidden_dropout_prob
        self.dropout = nn.Dropout(p)
        self.out_proj = nn.Linear(c.hidden_size, len(c.id2label))

    def forward(self, features):
        x = self.dropout(features[:, 0, :])
        x = self.dropout(torch.tanh(self.dense(x)))
        return self.out_proj(x)


class RobertaForSequenceClassification(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.roberta = BertModel(c, add_pooling_layer=False, roberta=True)
        self.classifier = RobertaClassificationHead(c)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        hidden, _ = self.roberta(input_ids, attention_mask, token_type_ids)
        return OrderedDict(last_hidden_state=hidden, logits=self.classifier(hidden))


class DistilEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.dim, padding_idx=c.pad_token_id)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.dim)
        self.LayerNorm = nn.LayerNorm(c.dim, eps=1e-12)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, input_ids):
        pos = torch.arange(input_ids.shape[1], dtype=torch.long)[None, :]
        emb = self.word_embeddings(input_ids) + self.position_embeddings(pos)
        return self.dropout(self.LayerNorm(emb))


class MultiHeadSelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.n_heads = c.n_heads
        self.dim = c.dim
        self.dropout = nn.Dropout(c.attention_dropout)
        self.q_lin = nn.Linear(c.dim, c.dim)
        self.k_lin = nn.Linear(c.dim, c.dim)
        self.v_lin = nn.Linear(c.dim, c.dim)
        self.out_lin = nn.Linear(c.dim, c.dim)

    def forward(self, x, mask):
        bs, _, _ = x.shape
        dph = self.dim // self.n_heads

        def shape(t):
            return t.view(bs, -1, self.n_heads, dph).transpose(1, 2)

        q = shape(self.q_lin(x)) / math.sqrt(dph)  # DistilBERT scales q before the matmul
        k = shape(self.k_lin(x))
        v = shape(self.v_lin(x))
        scores = torch.matmul(q, k.transpose(2, 3))
        masked = (mask == 0).view(bs, 1, 1, -1).expand_as(scores)
        scores = scores.masked_fill(masked, torch.tensor(torch.finfo(scores.dtype).min))
        w = self.dropout(F.softmax(scores, dim=-1))
        ctx = torch.matmul(w, v).transpose(1, 2).contiguous().view(bs, -1, self.n_heads * dph)
        return self.out_lin(ctx)


class FFN(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dropout = nn.Dropout(c.dropout)
        self.lin1 = nn.Linear(c.dim, c.hidden_dim)
        self.lin2 = nn.Linear(c.hidden_dim, c.dim)

    def forward(self, x):
        return self.dropout(self.lin2(gelu(self.lin1(x))))


class TransformerBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = MultiHeadSelfAttention(c)
        self.sa_layer_norm = nn.LayerNorm(c.dim, eps=1e-12)
        self.ffn = FFN(c)
        self.output_layer_norm = nn.LayerNorm(c.dim, eps=1e-12)

    def forward(self, x, mask):
        sa = self.sa_layer_norm(self.attention(x, mask) + x)
        return self.output_layer_norm(self.ffn(sa) + sa)


class Transformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = nn.ModuleList([TransformerBlock(c) for _ in range(c.n_layers)])

    def forward(self, x, mask):
        for layer in self.layer:
            x = layer(x, mask)
        return x


class DistilBertModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = DistilEmbeddings(c)
        self.transformer = Transformer(c)

    def forward(self, input_ids, attention_mask):
        return self.transformer(self.embeddings(input_ids), attention_mask)


class DistilBertForSequenceClassification(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.distilbert = DistilBertModel(c)
        self.pre_classifier = nn.Linear(c.dim, c.dim)
        self.classifier = nn.Linear(c.dim, len(c.id2label))
        self.dropout = nn.Dropout(c.seq_classif_dropout)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        assert token_type_ids is None
        hidden = self.distilbert(input_ids, attention_mask)
        x = F.relu(self.pre_classifier(hidden[:, 0]))
        return OrderedDict(last_hidden_state=hidden, logits=self.classifier(self.dropout(x)))


class BareBertModel(nn.Module):
    """BertModel as its own top-level module (keys without the "bert." prefix)."""

    def __init__(self, c):
        super().__init__()
        self.embeddings = BertEmbeddings(c, persistent_position_ids=False)
        self.encoder = BertEncoder(c)
        self.pooler = BertPooler(c)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        emb = self.embeddings(input_ids, token_type_ids)
        hidden = self.encoder(emb, extended_attention_mask(attention_mask, emb.dtype))
        return OrderedDict(last_hidden_state=hidden, pooler_output=self.pooler(hidden))


def init_transformer(model):
    """HF _init_weights (Linear/Embedding normal, padding row zeroed, LayerNorm 1/0), then
    perturbed so that every parameter affects the output: larger weight std, random Linear biases,
    random LayerNorm weight/bias. Runs in module registration order, so it is deterministic."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                m.weight.normal_(0.0, WEIGHT_STD)
                m.bias.normal_(0.0, BIAS_STD)
            elif isinstance(m, nn.Embedding):
                m.weight.normal_(0.0, WEIGHT_STD)
                if m.padding_idx is not None:
                    m.weight[m.padding_idx].zero_()
            elif isinstance(m, nn.LayerNorm):
                m.weight.copy_(1.0 + LN_WEIGHT_STD * torch.randn_like(m.weight))
                m.bias.copy_(LN_BIAS_STD * torch.randn_like(m.bias))


# ======================================================================================
# torchvision ResNet with small channel widths
# ======================================================================================


def tiny_resnet_class():
    from torchvision.models.resnet import ResNet

    class TinyResNet(ResNet):
        """torchvision.models.resnet.ResNet with channel widths `widths` instead of
        (64, 128, 256, 512). __init__ mirrors torchvision 0.14's ResNet.__init__ with the
        constants swapped. The module tree, parameter names, _make_layer, the blocks and
        forward() all come from torchvision."""

        def __init__(self, block, layers, widths, num_classes):
            nn.Module.__init__(self)
            self._norm_layer = nn.BatchNorm2d
            self.inplanes = widths[0]
            self.dilation = 1
            self.groups = 1
            self.base_width = 64  # Bottleneck width = planes * base_width / 64 * groups = planes
            self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(self.inplanes)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
            self.layer1 = self._make_layer(block, widths[0], layers[0])
            self.layer2 = self._make_layer(block, widths[1], layers[1], stride=2, dilate=False)
            self.layer3 = self._make_layer(block, widths[2], layers[2], stride=2, dilate=False)
            self.layer4 = self._make_layer(block, widths[3], layers[3], stride=2, dilate=False)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(widths[3] * block.expansion, num_classes)
            for m in self.modules():  # torchvision's init
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)

    return TinyResNet


def perturb_batchnorm(model):
    """Random affine parameters and running statistics, so that eval-mode BN is not the identity."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(1.0 + 0.2 * torch.randn(c))
                m.bias.copy_(0.2 * torch.randn(c))
                m.running_mean.copy_(0.2 * torch.randn(c))
                m.running_var.copy_(0.5 + torch.rand(c))
                m.num_batches_tracked.fill_(1000)


# ======================================================================================
# Helpers
# ======================================================================================


def seed_for(name):
    torch.manual_seed(zlib.crc32(name.encode("utf-8")))


def file_sizes(d):
    return {f: os.path.getsize(os.path.join(d, f)) for f in sorted(os.listdir(d))}


def save_torch(obj, path):
    # torch.save default: zip container (_use_new_zipfile_serialization=True), pickle protocol 2
    torch.save(obj, path)


def forward_and_grads(model, inputs, g):
    """Eval mode. Returns (outputs dict detached, grads OrderedDict name -> grad) for
    L = sum_k sum(out_k * g_k) over the outputs named in g."""
    model.zero_grad(set_to_none=True)
    out = model(**inputs)
    loss = None
    for k, gk in g.items():
        term = (out[k] * gk).sum()
        loss = term if loss is None else loss + term
    loss.backward()
    grads = OrderedDict()
    for n, p in model.named_parameters():
        grads[n] = (p.grad if p.grad is not None else torch.zeros_like(p)).detach().clone()
    return OrderedDict((k, v.detach().clone()) for k, v in out.items() if v is not None), grads


# Vocabulary for bert-tiny (and the ids used by the other BERT-family fixtures).
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = (
    ". , ! ? ' - ( ) : ; "
    "the a an and or but of to in on at for with from by as is was are be it this that "
    "i you he she we they my not no very really so "
    "movie film story plot acting music scene "
    "good great bad terrible fun boring funny love hate like enjoy "
    "john mary paris london new york city went go see saw "
    "play run jump quick brown fox dog cat"
).split()
PIECES = ["##s", "##ed", "##ing", "##ly", "##er", "##est", "##y", "##able", "##ness", "##ful",
          "##less", "##ish"]


def bert_vocab():
    vocab = SPECIAL + WORDS + PIECES
    assert len(vocab) == 99 and len(set(vocab)) == 99, len(vocab)
    return vocab


def bert_inputs():
    v = {t: i for i, t in enumerate(bert_vocab())}
    s0 = ["[CLS]", "the", "movie", "[SEP]", "great", "fun", "[SEP]"]
    s1 = ["[CLS]", "i", "love", "paris", "[SEP]", "[PAD]", "[PAD]"]
    ids = torch.tensor([[v[t] for t in s0], [v[t] for t in s1]], dtype=torch.int64)
    mask = (ids != 0).long()
    tt = torch.tensor([[0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 0, 0, 0]], dtype=torch.int64)
    text = json.dumps([" ".join(s0), " ".join(s1)])
    return ids, mask, tt, text


def roberta_inputs():
    # <s>=0 <pad>=1 </s>=2 <unk>=3, <mask>=98 (last id, as in roberta-base); the other ids are
    # ordinary tokens (no vocabulary file is shipped). Pair layout <s> A </s></s> B </s>.
    ids = torch.tensor([[0, 23, 57, 2, 2, 81, 2], [0, 40, 9, 66, 2, 1, 1]], dtype=torch.int64)
    mask = (ids != 1).long()
    return ids, mask


# ======================================================================================
# Model builders
# ======================================================================================

MODELS = []


def model(name):
    def deco(fn):
        MODELS.append((name, fn))
        return fn

    return deco


def transformer_reference(m, ids, mask, tt, outputs_with_grad, meta, grad_names=None):
    """Build the reference tensors for a transformer fixture. outputs_with_grad: names of the
    outputs that get an upstream gradient g_<name> drawn from N(0,1)."""
    m.eval()
    inputs = OrderedDict(input_ids=ids, attention_mask=mask)
    if tt is not None:
        inputs["token_type_ids"] = tt
    with torch.no_grad():
        shapes = {k: v.shape for k, v in m(**inputs).items() if v is not None}
    g = OrderedDict((k, torch.randn(shapes[k])) for k in outputs_with_grad)
    out, grads = forward_and_grads(m, inputs, g)
    ref = OrderedDict(inputs)
    for k, v in out.items():
        ref[k] = v
    for k, v in g.items():
        ref["g_" + k] = v
    for n, v in grads.items():
        ref["grad." + (grad_names(n) if grad_names else n)] = v
    meta = OrderedDict(meta)
    meta["grad_of"] = " + ".join(f"sum({k} * g_{k})" for k in outputs_with_grad)
    meta["mode"] = "eval (dropout off)"
    meta["torch"] = torch.__version__
    return ref, meta


def hf_state_dict_plain(m):
    """What HF save_pretrained passes to torch.save / safetensors: a plain dict (not an
    OrderedDict with _metadata), persistent buffers included, tensor views kept as they are."""
    return {k: v for k, v in m.state_dict().items()}


@model("bert-tiny")
def build_bert_tiny(d):
    cfg = bert_config("BertForSequenceClassification", ["LABEL_0", "LABEL_1", "LABEL_2"], "4.30.2")
    m = BertForSequenceClassification(Cfg(cfg), persistent_position_ids=True)
    init_transformer(m)
    write_config(os.path.join(d, "config.json"), cfg)
    with open(os.path.join(d, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(bert_vocab()) + "\n")
    sd = hf_state_dict_plain(m)
    save_torch(sd, os.path.join(d, "pytorch_model.bin"))
    write_safetensors(os.path.join(d, "model.safetensors"), sd, {"format": "pt"})
    ids, mask, tt, text = bert_inputs()
    return transformer_reference(
        m, ids, mask, tt, ["logits"],
        {"model": "bert-tiny", "class": "BertForSequenceClassification", "text": text},
    )


@model("roberta-tiny")
def build_roberta_tiny(d):
    cfg = roberta_config()
    m = RobertaForSequenceClassification(Cfg(cfg))
    init_transformer(m)
    write_config(os.path.join(d, "config.json"), cfg)
    write_safetensors(os.path.join(d, "model.safetensors"), hf_state_dict_plain(m), {"format": "pt"})
    ids, mask = roberta_inputs()
    ref, meta = transformer_reference(
        m, ids, mask, None, ["logits"],
        {"model": "roberta-tiny", "class": "RobertaForSequenceClassification"},
    )
    ref["position_ids"] = RobertaEmbeddings.position_ids_from_input_ids(ids, 1)
    return ref, meta


@model("distilbert-tiny")
def build_distilbert_tiny(d):
    cfg = distilbert_config()
    m = DistilBertForSequenceClassification(Cfg(cfg))
    init_transformer(m)
    write_config(os.path.join(d, "config.json"), cfg)
    save_torch(hf_state_dict_plain(m), os.path.join(d, "pytorch_model.bin"))
    ids, mask, _, text = bert_inputs()
    return transformer_reference(
        m, ids, mask, None, ["logits"],
        {"model": "distilbert-tiny", "class": "DistilBertForSequenceClassification", "text": text},
    )


@model("bert-tiny-token")
def build_bert_tiny_token(d):
    cfg = bert_config("BertForTokenClassification", ["B-PER", "I-PER", "B-LOC", "I-LOC", "O"], "4.44.2")
    m = BertForTokenClassification(Cfg(cfg))
    init_transformer(m)
    write_config(os.path.join(d, "config.json"), cfg)
    write_safetensors(os.path.join(d, "model.safetensors"), hf_state_dict_plain(m), {"format": "pt"})
    ids, mask, tt, text = bert_inputs()
    return transformer_reference(
        m, ids, mask, tt, ["logits"],
        {"model": "bert-tiny-token", "class": "BertForTokenClassification", "text": text},
    )


def legacy_name(n):
    """Modern BertModel parameter name -> the TF-converted name stored in bert-legacy-names."""
    if ".LayerNorm." in n or n.startswith("LayerNorm."):
        n = n.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
    return n


@model("bert-legacy-names")
def build_bert_legacy(d):
    cfg = legacy_bert_config()
    c = Cfg(dict(cfg, classifier_dropout=None))
    m = BareBertModel(c)
    init_transformer(m)
    write_config(os.path.join(d, "config.json"), cfg)
    sd = m.state_dict()  # OrderedDict with a _metadata attribute, as torch.save(model.state_dict())
    legacy = OrderedDict()
    for k, v in sd.items():
        legacy[legacy_name(k)] = v
    # Pretraining-head keys that a loader for the encoder must ignore.
    legacy["cls.predictions.bias"] = 0.1 * torch.randn(c.vocab_size)
    legacy["cls.predictions.transform.dense.weight"] = WEIGHT_STD * torch.randn(c.hidden_size, c.hidden_size)
    legacy._metadata = sd._metadata
    save_torch(legacy, os.path.join(d, "pytorch_model.bin"))
    ids, mask, tt, text = bert_inputs()
    return transformer_reference(
        m, ids, mask, tt, ["last_hidden_state", "pooler_output"],
        {"model": "bert-legacy-names", "class": "BertModel", "text": text,
         "grad_names": "checkpoint keys (LayerNorm.gamma/beta, no 'bert.' prefix)"},
        grad_names=legacy_name,
    )


RESNETS = OrderedDict(
    [
        ("resnet-tiny", dict(block="BasicBlock", layers=[1, 1, 1, 1], widths=[8, 16, 32, 64], num_classes=7)),
        ("resnet-bottleneck-tiny",
         dict(block="Bottleneck", layers=[2, 1, 1, 1], widths=[4, 8, 16, 32], num_classes=7)),
    ]
)
IMAGE_SIZE = 64


def resnet_config(spec):
    from torchvision.models.resnet import BasicBlock, Bottleneck

    block = {"BasicBlock": BasicBlock, "Bottleneck": Bottleneck}[spec["block"]]
    return block, OrderedDict(
        [
            ("format", "mlnetfinetune-torchvision-resnet/1"),
            ("weights", "resnet.pth"),
            ("block", spec["block"]),
            ("expansion", block.expansion),
            ("layers", spec["layers"]),
            ("widths", spec["widths"]),
            ("stem_width", spec["widths"][0]),
            ("num_classes", spec["num_classes"]),
            ("in_channels", 3),
            ("groups", 1),
            ("width_per_group", 64),
            ("replace_stride_with_dilation", [False, False, False]),
            ("bottleneck_stride_on", "conv2"),
            ("batch_norm_eps", 1e-05),
            ("batch_norm_momentum", 0.1),
            ("torchvision_version", "0.14.1"),
        ]
    )


def make_resnet_builder(name, spec):
    @model(name)
    def build(d):
        block, cfg = resnet_config(spec)
        net = tiny_resnet_class()(block, spec["layers"], spec["widths"], spec["num_classes"])
        perturb_batchnorm(net)
        write_config(os.path.join(d, "config.json"), cfg)
        save_torch(net.state_dict(), os.path.join(d, "resnet.pth"))

        pixels = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE)
        g_logits = torch.randn(2, spec["num_classes"])
        ref = OrderedDict(pixels=pixels, g_logits=g_logits)

        def run(m, prefix):
            feats = {}
            h = m.fc.register_forward_hook(lambda mod, inp, out: feats.__setitem__("f", inp[0]))
            m.zero_grad(set_to_none=True)
            logits = m(pixels)
            h.remove()
            (logits * g_logits).sum().backward()
            ref[prefix + "logits"] = logits.detach().clone()
            ref[prefix + "features"] = feats["f"].detach().clone()
            for n, p in m.named_parameters():
                ref[prefix + "grad." + n] = p.grad.detach().clone()

        train_net = copy.deepcopy(net)
        net.eval()
        run(net, "")
        train_net.train()
        run(train_net, "train.")
        for n, mod in train_net.named_modules():
            if isinstance(mod, nn.BatchNorm2d):
                ref[f"train.{n}.running_mean"] = mod.running_mean.detach().clone()
                ref[f"train.{n}.running_var"] = mod.running_var.detach().clone()
                assert int(mod.num_batches_tracked) == 1001
        meta = OrderedDict(
            model=name,
            **{"class": f"torchvision.models.resnet.ResNet({spec['block']}, {spec['layers']}) widths {spec['widths']}"},
            grad_of="sum(logits * g_logits)",
            mode="eval for logits/features/grad.*; train (batch statistics, one forward) for train.*",
            torch=torch.__version__,
        )
        return ref, meta

    return build


for _n, _s in RESNETS.items():
    make_resnet_builder(_n, _s)


# ======================================================================================
# Verification: reload every file and recompute the reference from the reloaded weights
# ======================================================================================


def load_bin(path):
    # Check the zip container holds a single pickle and raw storages.
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    assert any(n.endswith("/data.pkl") for n in names), names
    return torch.load(path, map_location="cpu")


def close(a, b, name, rtol=1e-5):
    assert a.shape == b.shape and a.dtype == b.dtype, (name, a.shape, b.shape, a.dtype, b.dtype)
    if a.dtype == torch.int64:
        assert torch.equal(a, b), name
        return
    scale = b.abs().max().item() + 1e-30
    err = (a - b).abs().max().item()
    assert err <= rtol * scale, f"{name}: max abs err {err} vs scale {scale}"


def verify_transformer(name, d, ref, meta):
    cfg = json.load(open(os.path.join(d, "config.json")))
    c = Cfg(dict(cfg, classifier_dropout=cfg.get("classifier_dropout")))
    sds = []
    if name == "bert-tiny":
        m = BertForSequenceClassification(c, persistent_position_ids=True)
        b = load_bin(os.path.join(d, "pytorch_model.bin"))
        assert type(b) is dict
        _, s = read_safetensors(os.path.join(d, "model.safetensors"))
        assert list(s)[0] == "bert.embeddings.position_ids", list(s)[:2]
        assert b["bert.embeddings.position_ids"].shape == (1, 64)
        assert set(b) == set(s)
        for k in b:
            close(b[k], s[k], k, rtol=0)
        sds = [b, s]
    elif name == "roberta-tiny":
        m = RobertaForSequenceClassification(c)
        sds = [read_safetensors(os.path.join(d, "model.safetensors"))[1]]
    elif name == "distilbert-tiny":
        m = DistilBertForSequenceClassification(c)
        b = load_bin(os.path.join(d, "pytorch_model.bin"))
        assert type(b) is dict
        sds = [b]
    elif name == "bert-tiny-token":
        m = BertForTokenClassification(c)
        sds = [read_safetensors(os.path.join(d, "model.safetensors"))[1]]
    elif name == "bert-legacy-names":
        m = BareBertModel(c)
        b = load_bin(os.path.join(d, "pytorch_model.bin"))
        assert type(b) is OrderedDict and hasattr(b, "_metadata")
        assert any(k.endswith("LayerNorm.gamma") for k in b) and not any(k.endswith("LayerNorm.weight") for k in b)
        mapped = OrderedDict()
        for k, v in b.items():
            if k.startswith("cls."):
                continue
            mapped[k.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")] = v
        sds = [mapped]
    else:
        raise KeyError(name)
    for sd in sds:
        m.load_state_dict(sd, strict=True)
        m.eval()
        inputs = OrderedDict(input_ids=ref["input_ids"], attention_mask=ref["attention_mask"])
        if "token_type_ids" in ref:
            inputs["token_type_ids"] = ref["token_type_ids"]
        g = OrderedDict((k[2:], v) for k, v in ref.items() if k.startswith("g_"))
        out, grads = forward_and_grads(m, inputs, g)
        for k, v in out.items():
            close(v, ref[k], f"{name}:{k}")
        for n, v in grads.items():
            key = "grad." + (legacy_name(n) if name == "bert-legacy-names" else n)
            close(v, ref[key], f"{name}:{key}")
        nparams = len(list(m.named_parameters()))
        assert sum(1 for k in ref if k.startswith("grad.")) == nparams
        # Every gradient is non-zero, except the attention key biases: softmax is invariant to
        # adding q.b_k to every score of a row, so their exact gradient is 0 and the stored values
        # are float32 round-off.
        gmax = max(v.abs().max().item() for k, v in ref.items() if k.startswith("grad."))
        for n, p in m.named_parameters():
            key = "grad." + (legacy_name(n) if name == "bert-legacy-names" else n)
            if n.endswith(("attention.self.key.bias", "attention.k_lin.bias")):
                assert ref[key].abs().max() <= 1e-5 * gmax, key
            else:
                assert ref[key].abs().max() > 1e-4 * gmax, f"{name}: (near) zero gradient for {n}"
    return m


def verify_resnet(name, d, ref):
    cfg = json.load(open(os.path.join(d, "config.json")))
    from torchvision.models.resnet import BasicBlock, Bottleneck

    block = {"BasicBlock": BasicBlock, "Bottleneck": Bottleneck}[cfg["block"]]
    sd = load_bin(os.path.join(d, cfg["weights"]))
    assert type(sd) is OrderedDict and hasattr(sd, "_metadata")
    net = tiny_resnet_class()(block, cfg["layers"], cfg["widths"], cfg["num_classes"])
    net.load_state_dict(sd, strict=True)
    tnet = copy.deepcopy(net)
    for m, prefix in ((net.eval(), ""), (tnet.train(), "train.")):
        m.zero_grad(set_to_none=True)
        logits = m(ref["pixels"])
        (logits * ref["g_logits"]).sum().backward()
        close(logits.detach(), ref[prefix + "logits"], f"{name}:{prefix}logits")
        for n, p in m.named_parameters():
            close(p.grad, ref[prefix + "grad." + n], f"{name}:{prefix}grad.{n}")
    for n, mod in tnet.named_modules():
        if isinstance(mod, nn.BatchNorm2d):
            close(mod.running_mean, ref[f"train.{n}.running_mean"], n)
            close(mod.running_var, ref[f"train.{n}.running_var"], n)
    # The names must be exactly torchvision's: compare with a stock ResNet of the same depth.
    from torchvision.models.resnet import ResNet

    stock = ResNet(block, cfg["layers"], num_classes=cfg["num_classes"]).state_dict()
    assert list(stock) == list(sd), "tensor names differ from torchvision's ResNet"
    for k in stock:
        if stock[k].dim() == 0:
            assert sd[k].dim() == 0 and sd[k].dtype == torch.int64, k


def verify(out_dir, names):
    total = 0
    for name in names:
        d = os.path.join(out_dir, name)
        meta, ref = read_safetensors(os.path.join(d, "reference.safetensors"))
        assert meta and meta["model"] == name
        for k, v in ref.items():
            if v.dtype == torch.float32:
                assert torch.isfinite(v).all(), f"{name}:{k} not finite"
        with open(os.path.join(d, "config.json"), encoding="utf-8") as f:
            json.load(f)
        if name in RESNETS:
            verify_resnet(name, d, ref)
        else:
            verify_transformer(name, d, ref, meta)
        for f, s in file_sizes(d).items():
            total += s
        print(f"verified {name}: " + ", ".join(f"{f} {s}" for f, s in file_sizes(d).items()))
    print(f"total {total} bytes")
    assert total < SIZE_LIMIT, f"fixtures too large: {total}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true", help="only verify existing files")
    ap.add_argument("--only", default="", help="comma-separated model names")
    args = ap.parse_args()
    names = [n for n, _ in MODELS]
    if args.only:
        sel = args.only.split(",")
        unknown = set(sel) - set(names)
        if unknown:
            sys.exit(f"unknown models: {sorted(unknown)}")
        names = [n for n in names if n in sel]
    if not args.check:
        for name, build in MODELS:
            if name not in names:
                continue
            d = os.path.join(args.out, name)
            os.makedirs(d, exist_ok=True)
            for f in os.listdir(d):
                os.remove(os.path.join(d, f))
            seed_for(name)
            ref, meta = build(d)
            write_safetensors(os.path.join(d, "reference.safetensors"), ref, meta, layout="sorted")
    verify(args.out, names)


if __name__ == "__main__":
    main()
