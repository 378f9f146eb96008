#!/usr/bin/env python3
"""Parity of `osp encode-text` (the umT5 text encoder, src/model/umt5.c) with transformers'
UMT5EncoderModel, on tiny random models.

usage: python tests/ref/umt5_parity.py OSP_BINARY WORKDIR [--tol 1e-5]

Each model is a random UMT5Config (one with heads·d_kv = d_model, one without), every parameter
overwritten with nonzero random values (norm weights around 1 and the relative attention bias of
every layer included, so a mix-up of any two shows), saved with save_pretrained as a diffusers
model folder's text_encoder/. For token ids of several lengths (1, 7, and 130 and 300, past
max_distance), `osp encode-text --ids` writes `context` [1, rows, d_model], compared in float32:

    err = max|osp - ref| / max|ref| over the prompt's rows   must be <= tol

against transformers' last_hidden_state without padding, and against its run padded to 512 with
the attention mask; the rows past the prompt must be exactly 0. The same weights are also checked
saved in bf16 (against transformers in float32 on the bf16-rounded weights), renamed to the
original Wan2.1 T5Encoder names in one safetensors file, with the embedding under transformers'
other name, and in shards with their index JSON. Bad inputs (a missing tensor, a wrong shape, an unknown
feed_forward_proj, an unexpected tensor, a missing shard, an id outside the vocabulary, -p without
a tokenizer) must fail with a message
naming the file and the tensor or key.

Prints one line per check and a last line "umt5: N passed, M failed"; exits 1 on a failure.
"""
import argparse
import copy
import json
import os
import shutil
import subprocess
import sys

import torch
from safetensors.torch import load_file, save_file
from transformers import UMT5Config, UMT5EncoderModel
from transformers.utils import logging as transformers_logging

transformers_logging.set_verbosity_error()

CONFIGS = {
    # heads·d_kv = d_model
    "d64_h4x16": dict(d_model=64, d_kv=16, num_heads=4, d_ff=96, num_layers=3,
                      relative_attention_num_buckets=32, relative_attention_max_distance=128,
                      vocab_size=320),
    # heads·d_kv = 60 ≠ d_model 48, fewer buckets, a shorter max distance
    "d48_h3x20": dict(d_model=48, d_kv=20, num_heads=3, d_ff=80, num_layers=2,
                      relative_attention_num_buckets=16, relative_attention_max_distance=40,
                      vocab_size=300),
}
LENGTHS = (1, 7, 130, 300)
PADDED_ROWS = 512
EOS = 1


def random_model(config_kwargs, seed):
    """A UMT5EncoderModel with every parameter random: matrices N(0, 1/fan_in), the embedding
    N(0, 1), norm weights 1 + N(0, 0.2²), each layer's relative attention bias N(0, 1)."""
    torch.manual_seed(seed)
    model = UMT5EncoderModel(UMT5Config(**config_kwargs, dropout_rate=0.0)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif "relative_attention_bias" in name or name == "shared.weight":
                p.copy_(torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) * p.shape[1] ** -0.5)
    return model


def wan_name(name):
    """transformers' UMT5EncoderModel name → the original Wan2.1 T5Encoder's (wan/modules/t5.py)."""
    if name in ("shared.weight", "encoder.embed_tokens.weight"):
        return "token_embedding.weight"
    if name == "encoder.final_layer_norm.weight":
        return "norm.weight"
    parts = name.split(".")  # encoder.block.N.layer.L.<rest>
    block, rest = parts[2], ".".join(parts[5:])
    return f"blocks.{block}." + {
        "layer_norm.weight": "norm1.weight" if parts[4] == "0" else "norm2.weight",
        "SelfAttention.q.weight": "attn.q.weight",
        "SelfAttention.k.weight": "attn.k.weight",
        "SelfAttention.v.weight": "attn.v.weight",
        "SelfAttention.o.weight": "attn.o.weight",
        "SelfAttention.relative_attention_bias.weight": "pos_embedding.embedding.weight",
        "DenseReluDense.wi_0.weight": "ffn.gate.0.weight",
        "DenseReluDense.wi_1.weight": "ffn.fc1.weight",
        "DenseReluDense.wo.weight": "ffn.fc2.weight",
    }[rest]


def random_ids(count, vocab, seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, vocab, (count,), generator=g)
    ids[-1] = EOS
    return ids


def reference(model, ids, padded_rows=None):
    """last_hidden_state rows of the prompt: unpadded, or padded with 0 to padded_rows under the
    attention mask."""
    count = ids.numel()
    with torch.no_grad():
        if padded_rows is None:
            return model(input_ids=ids[None]).last_hidden_state[0]
        input_ids = torch.zeros(1, padded_rows, dtype=torch.long)
        input_ids[0, :count] = ids
        mask = torch.zeros(1, padded_rows, dtype=torch.long)
        mask[0, :count] = 1
        return model(input_ids=input_ids, attention_mask=mask).last_hidden_state[0, :count]


def rel_err(got, want):
    return ((got - want).abs().max() / want.abs().max()).item()


class Runner:
    def __init__(self, binary, workdir, tol):
        self.binary, self.workdir, self.tol = binary, workdir, tol
        self.passed = self.failed = 0

    def report(self, ok, label, detail):
        print(f"{'PASS' if ok else 'FAIL'} {label}: {detail}")
        self.passed += ok
        self.failed += not ok

    def encode(self, source_args, ids, rows, tag):
        ids_path = os.path.join(self.workdir, f"{tag}.ids")
        out = os.path.join(self.workdir, f"{tag}.context.safetensors")
        with open(ids_path, "w") as f:
            f.write("".join(f"{int(i)}\n" for i in ids))
        cmd = [self.binary, "encode-text", *source_args, "--ids", ids_path, "--max-length", str(rows), "-o", out]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            return None, proc.stderr.strip()
        return load_file(out)["context"], proc.stderr.strip()

    def check_context(self, label, context, refs, count, rows):
        """context [1, rows, d]: the prompt's rows against each named reference, the rest zero."""
        if context is None:
            return self.report(False, label, "osp failed")
        if tuple(context.shape) != (1, rows, refs[0][1].shape[1]):
            return self.report(False, label, f"context shape {tuple(context.shape)}")
        errors = {name: rel_err(context[0, :count], ref) for name, ref in refs}
        zero_rows = bool((context[0, count:] == 0).all())
        ok = all(e <= self.tol for e in errors.values()) and zero_rows
        detail = ", ".join(f"err vs {name} {e:.2e}" for name, e in errors.items())
        self.report(ok, label, f"{detail}, rows past the prompt {'zero' if zero_rows else 'NOT zero'} (tol {self.tol:g})")

    def expect_failure(self, label, source_args, ids, must_name):
        context, message = self.encode(source_args, ids, PADDED_ROWS, "bad")
        last = message.splitlines()[-1] if message else ""
        ok = context is None and all(s in last for s in must_name)
        self.report(ok, label, f"{'refused' if context is None else 'ACCEPTED'}: {last}")


def model_folder(workdir, tag, model, dtype=torch.float32, max_shard_size=None):
    """A diffusers-layout model folder with the encoder in text_encoder/, weights in `dtype`
    (in shards with their index JSON when max_shard_size is given)."""
    folder = os.path.join(workdir, tag)
    shutil.rmtree(folder, ignore_errors=True)
    extra = {"max_shard_size": max_shard_size} if max_shard_size else {}
    copy.deepcopy(model).to(dtype).save_pretrained(os.path.join(folder, "text_encoder"), **extra)
    return folder


def float_copy_of_saved(folder, config_kwargs):
    """transformers in float32 on the weights as saved (the bf16-rounded values)."""
    model = UMT5EncoderModel(UMT5Config(**config_kwargs, dropout_rate=0.0)).eval()
    state = {k: v.float() for k, v in load_file(os.path.join(folder, "text_encoder", "model.safetensors")).items()}
    model.load_state_dict(state, strict=False)
    model.encoder.embed_tokens.weight = model.shared.weight
    return model


def single_file(workdir, tag, folder, rename):
    """The saved weights under new names in one safetensors file, config.json beside it."""
    out = os.path.join(workdir, tag)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    state = load_file(os.path.join(folder, "text_encoder", "model.safetensors"))
    save_file({rename(k): v for k, v in state.items()}, os.path.join(out, "encoder.safetensors"))
    shutil.copy(os.path.join(folder, "text_encoder", "config.json"), out)
    return os.path.join(out, "encoder.safetensors")


def parity_cases(r, tag, config_kwargs, seed):
    model = random_model(config_kwargs, seed)
    folder = model_folder(r.workdir, tag, model)
    vocab = config_kwargs["vocab_size"]
    for count in LENGTHS:
        ids = random_ids(count, vocab, seed + count)
        refs = [("unpadded", reference(model, ids)), ("padded+mask", reference(model, ids, PADDED_ROWS))]
        context, _ = r.encode(["--model", folder], ids, PADDED_ROWS, f"{tag}_{count}")
        r.check_context(f"{tag} f32 {count} tokens, 512 rows", context, refs, count, PADDED_ROWS)
    count = 7
    ids = random_ids(count, vocab, seed + 1000)
    context, _ = r.encode(["--model", folder], ids, count, f"{tag}_exact")
    r.check_context(f"{tag} f32 {count} tokens, {count} rows (no padding)", context,
                    [("unpadded", reference(model, ids))], count, count)
    return model, folder


def bf16_cases(r, tag, config_kwargs, model):
    folder = model_folder(r.workdir, tag + "_bf16", model, torch.bfloat16)
    rounded = float_copy_of_saved(folder, config_kwargs)
    for count in (7, 300):
        ids = random_ids(count, config_kwargs["vocab_size"], 77 + count)
        context, _ = r.encode(["--model", folder], ids, PADDED_ROWS, f"{tag}_bf16_{count}")
        r.check_context(f"{tag} bf16 weights {count} tokens", context,
                        [("f32 on bf16 weights", reference(rounded, ids, PADDED_ROWS))], count, PADDED_ROWS)
    return folder


def name_cases(r, tag, config_kwargs, model, folder, bf16_folder):
    ids = random_ids(130, config_kwargs["vocab_size"], 5)
    ref = [("transformers", reference(model, ids))]
    wan = single_file(r.workdir, tag + "_wan", folder, wan_name)
    context, _ = r.encode(["--text-encoder", wan], ids, PADDED_ROWS, f"{tag}_wan")
    r.check_context(f"{tag} Wan2.1 names, one file", context, ref, 130, PADDED_ROWS)
    alias = single_file(r.workdir, tag + "_alias", folder,
                        lambda k: "encoder.embed_tokens.weight" if k == "shared.weight" else k)
    context, _ = r.encode(["--text-encoder", alias], ids, PADDED_ROWS, f"{tag}_alias")
    r.check_context(f"{tag} embedding as encoder.embed_tokens.weight", context, ref, 130, PADDED_ROWS)
    wan_bf16 = single_file(r.workdir, tag + "_wan_bf16", bf16_folder, wan_name)
    rounded = float_copy_of_saved(bf16_folder, config_kwargs)
    context, _ = r.encode(["--text-encoder", wan_bf16], ids, PADDED_ROWS, f"{tag}_wan_bf16")
    r.check_context(f"{tag} Wan2.1 names, bf16", context, [("f32 on bf16 weights", reference(rounded, ids))],
                    130, PADDED_ROWS)


def shard_cases(r, tag, config_kwargs, model):
    """The weights in shards (model.safetensors.index.json), as the real umT5-XXL ships; then the
    same folder with a shard the index lists removed."""
    folder = model_folder(r.workdir, tag + "_shards", model, max_shard_size="40KB")
    encoder = os.path.join(folder, "text_encoder")
    shards = sorted(f for f in os.listdir(encoder) if f.endswith(".safetensors"))
    ids = random_ids(130, config_kwargs["vocab_size"], 9)
    context, _ = r.encode(["--model", folder], ids, PADDED_ROWS, f"{tag}_shards")
    r.check_context(f"{tag} {len(shards)} shards and their index", context, [("transformers", reference(model, ids))],
                    130, PADDED_ROWS)
    os.remove(os.path.join(encoder, shards[-1]))
    r.expect_failure("a shard listed in the index but absent", ["--model", folder], ids, [shards[-1]])


def bad_input_cases(r, folder, config_kwargs):
    ids = random_ids(7, config_kwargs["vocab_size"], 3)
    weights = os.path.join(folder, "text_encoder", "model.safetensors")
    state = load_file(weights)

    def variant(tag, new_state=None, config_edit=None):
        out = os.path.join(r.workdir, tag)
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        save_file(new_state if new_state is not None else state, os.path.join(out, "model.safetensors"))
        config = json.load(open(os.path.join(folder, "text_encoder", "config.json")))
        config.update(config_edit or {})
        json.dump(config, open(os.path.join(out, "config.json"), "w"))
        return out

    missing = "encoder.block.1.layer.1.DenseReluDense.wo.weight"
    out = variant("bad_missing", {k: v for k, v in state.items() if k != missing})
    r.expect_failure("missing tensor", ["--text-encoder", out], ids, [out, missing, "not found"])
    wrong = "encoder.block.2.layer.0.SelfAttention.relative_attention_bias.weight"
    out = variant("bad_shape", {**state, wrong: torch.zeros(32, 5)})
    r.expect_failure("wrong shape", ["--text-encoder", out], ids, [out, wrong, "[32, 4]", "[32, 5]"])
    out = variant("bad_ffn", config_edit={"feed_forward_proj": "gated-silu"})
    r.expect_failure("unknown feed_forward_proj", ["--text-encoder", out], ids,
                     [os.path.join(out, "config.json"), "feed_forward_proj", "gated-silu"])
    extra = "encoder.block.3.layer.0.layer_norm.weight"
    out = variant("bad_extra", {**state, extra: torch.ones(config_kwargs["d_model"])})
    r.expect_failure("unexpected tensor (a layer more than the config)", ["--text-encoder", out], ids, [out, extra])
    r.expect_failure("id outside the vocabulary", ["--model", folder], torch.tensor([5, 320, EOS]),
                     ["320", "position 1", "vocabulary"])
    proc = subprocess.run([r.binary, "encode-text", "--model", folder, "-p", "a cat", "-o",
                           os.path.join(r.workdir, "p.safetensors")], capture_output=True, text=True)
    last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
    r.report(proc.returncode != 0 and "tokenizer.json" in last, "-p with a model folder that has no tokenizer", last)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("workdir")
    parser.add_argument("--tol", type=float, default=1e-5)
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    r = Runner(os.path.abspath(args.binary), args.workdir, args.tol)
    for seed, (tag, config_kwargs) in enumerate(CONFIGS.items()):
        model, folder = parity_cases(r, tag, config_kwargs, 100 * (seed + 1))
        bf16_folder = bf16_cases(r, tag, config_kwargs, model)
        name_cases(r, tag, config_kwargs, model, folder, bf16_folder)
        if seed == 0:
            shard_cases(r, tag, config_kwargs, model)
            bad_input_cases(r, folder, config_kwargs)
    print(f"umt5: {r.passed} passed, {r.failed} failed")
    sys.exit(1 if r.failed else 0)


if __name__ == "__main__":
    main()
