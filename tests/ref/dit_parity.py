#!/usr/bin/env python3
"""Parity of `osp dit` with diffusers' WanTransformer3DModel, on tiny random models.

usage: python tests/ref/dit_parity.py OSP_BINARY WORKDIR [--tol 1e-5] [--seed S]

Each case builds a tiny WanTransformer3DModel, overwrites EVERY parameter with nonzero random
values (modulation tables and norm weights/biases included, so a mix-up of any two of them shows),
writes the weights (diffusers or original Wan2.1 names), a config.json (diffusers or original
style) and the inputs file, runs `osp dit`, and compares its velocity with diffusers' forward in
float32:

    err = max|osp - ref| / max|ref|   must be <= tol

The error against a float64 run of diffusers is printed too, for information only (diffusers is
not fully float64 even then: its blocks call .float() on the residual stream and its LayerNorms
compute in float32, and its RoPE tables are float32 values).

The cases cover, between them: 1, 2 and 3 layers; head_dim 32, 64 and 128 with 1 to 3 heads; odd
latent grids (1x2x2 is a single token); batch 1 and batch 2 with different timesteps; context
lengths 1, 7 and 512 with rows zero-padded at the end (as pipelines pad prompts); both weight
name styles and both config styles, in all four combinations; freq_dim 256 and once 64.

Prints one line per case and a last line "dit_parity: N passed, N failed"; exits 1 on a failure.
The helpers here (model building, name mapping, file writing, running osp) are imported by
tests/ref/bad_inputs.py.
"""
import argparse
import copy
import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

import torch
from safetensors.torch import load_file, save_file
from diffusers import WanTransformer3DModel
from diffusers.utils import logging as diffusers_logging

# diffusers warns on every .to(float64) that some modules "should be kept in float32"; the
# float64 run is deliberate (information only), so keep the output to our own lines.
diffusers_logging.set_verbosity_error()

# ---------------------------------------------------------------------------------------------
# Tensor names: diffusers WanTransformer3DModel -> original Wan2.1 (PAPER.md section 1.9).
# ---------------------------------------------------------------------------------------------

# Tensors outside the blocks, without their ".weight" / ".bias" suffix.
_TOP_NAMES = {
    "patch_embedding": "patch_embedding",
    "condition_embedder.text_embedder.linear_1": "text_embedding.0",
    "condition_embedder.text_embedder.linear_2": "text_embedding.2",
    "condition_embedder.time_embedder.linear_1": "time_embedding.0",
    "condition_embedder.time_embedder.linear_2": "time_embedding.2",
    "condition_embedder.time_proj": "time_projection.1",
    "scale_shift_table": "head.modulation",
    "proj_out": "head.head",
}
# Tensors inside "blocks.N.", without their suffix. diffusers' norm2 (the cross-attention
# LayerNorm, the only block norm with parameters) is the original norm3.
_BLOCK_NAMES = {
    "scale_shift_table": "modulation",
    "norm2": "norm3",
    "ffn.net.0.proj": "ffn.0",
    "ffn.net.2": "ffn.2",
}
for _ours, _theirs in (("attn1", "self_attn"), ("attn2", "cross_attn")):
    _BLOCK_NAMES.update({f"{_ours}.to_{x}": f"{_theirs}.{x}" for x in "qkv"})
    _BLOCK_NAMES[f"{_ours}.to_out.0"] = f"{_theirs}.o"
    _BLOCK_NAMES.update({f"{_ours}.norm_{x}": f"{_theirs}.norm_{x}" for x in "qk"})


def original_name(name):
    """The original Wan2.1 name of a diffusers tensor name (KeyError for a name we do not know,
    so a new diffusers parameter cannot slip through unmapped)."""
    stem, suffix = name, ""
    for s in (".weight", ".bias"):
        if name.endswith(s):
            stem, suffix = name[: -len(s)], s
    if stem.startswith("blocks."):
        _, index, rest = stem.split(".", 2)
        return f"blocks.{index}.{_BLOCK_NAMES[rest]}{suffix}"
    return _TOP_NAMES[stem] + suffix


# ---------------------------------------------------------------------------------------------
# Cases and the files they are made of.
# ---------------------------------------------------------------------------------------------

@dataclass
class Case:
    name: str
    layers: int
    heads: int
    head_dim: int
    ffn_dim: int
    text_dim: int
    freq_dim: int
    grid: tuple       # latent (F, H, W) before patchify; H and W even (patch 1x2x2)
    timesteps: tuple  # one per batch entry
    ctx_len: int      # rows of context
    real_len: tuple   # per batch entry: rows kept; the rows after are zero (prompt padding)
    names: str        # weight names: "diffusers" or "original"
    config: str       # config.json style: "diffusers" or "original"
    seed: int = 0

    @property
    def batch(self):
        return len(self.timesteps)

    @property
    def latent_shape(self):
        return (self.batch, 16, *self.grid)

    def model_kwargs(self):
        """Arguments of WanTransformer3DModel (the Wan2.1 T2V settings, tiny sizes)."""
        return dict(patch_size=(1, 2, 2), num_attention_heads=self.heads, attention_head_dim=self.head_dim,
                    in_channels=16, out_channels=16, text_dim=self.text_dim, freq_dim=self.freq_dim,
                    ffn_dim=self.ffn_dim, num_layers=self.layers, cross_attn_norm=True,
                    qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024)

    def summary(self):
        return (f"{self.name}: layers {self.layers}, heads {self.heads}x{self.head_dim}, ffn {self.ffn_dim}, "
                f"text_dim {self.text_dim}, freq_dim {self.freq_dim}, latents {list(self.latent_shape)}, "
                f"t {list(self.timesteps)}, context {self.ctx_len} rows (real {list(self.real_len)}), "
                f"{self.names} names, {self.config} config")


def random_model(case):
    """A float32 WanTransformer3DModel whose every parameter is random and nonzero:
    matrices (and the patch-embedding kernel) N(0, 0.8/sqrt(fan_in)), so activations stay O(1)
    through the layers; vectors (biases, norm weights and biases) and the modulation tables
    (blocks.N.scale_shift_table, the head's scale_shift_table) N(0, 0.3). Zero or one defaults
    (LayerNorm bias 0, weight 1) would hide a swapped or ignored tensor.

    Exception: the q/k RMSNorm weights are N(0, 1.5). With 0.3 the attention logits would be
    ~0.1 and softmax nearly uniform, so turning RoPE off would move the velocity by only ~2e-3;
    with 1.5 it moves by ~1e-1 (measured on these cases), while diffusers' own float32-vs-float64
    difference stays ~1e-6, well under the tolerance."""
    gen = torch.Generator().manual_seed(case.seed)
    model = WanTransformer3DModel(**case.model_kwargs()).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2 and not name.endswith("scale_shift_table"):
                std = 0.8 / math.sqrt(p[0].numel())  # fan_in: everything but the output dim
            elif ".norm_q." in name or ".norm_k." in name:
                std = 1.5
            else:
                std = 0.3
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return model


def random_inputs(case):
    """latents [B,16,F,H,W], timestep [B], context [B,L,text_dim] (rows past real_len zeroed)."""
    gen = torch.Generator().manual_seed(case.seed + 1_000_003)
    context = torch.randn(case.batch, case.ctx_len, case.text_dim, generator=gen)
    for b, n in enumerate(case.real_len):
        context[b, n:] = 0
    return {"latents": torch.randn(*case.latent_shape, generator=gen),
            "timestep": torch.tensor(case.timesteps, dtype=torch.float32),
            "context": context}


def weights_dict(model, names):
    """The model's state_dict as contiguous tensors, under diffusers or original names."""
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    return sd if names == "diffusers" else {original_name(k): v for k, v in sd.items()}


def config_dict(case, style):
    """config.json contents: diffusers' WanTransformer3DModel config, or the original Wan2.1 one."""
    if style == "diffusers":
        conf = {"_class_name": "WanTransformer3DModel"}
        conf.update({k: list(v) if isinstance(v, tuple) else v for k, v in case.model_kwargs().items()})
        conf.update(image_dim=None, added_kv_proj_dim=None, pos_embed_seq_len=None)
        return conf
    return {"_class_name": "WanModel", "model_type": "t2v", "patch_size": [1, 2, 2], "text_len": 512,
            "in_dim": 16, "dim": case.heads * case.head_dim, "ffn_dim": case.ffn_dim, "freq_dim": case.freq_dim,
            "text_dim": case.text_dim, "out_dim": 16, "num_heads": case.heads, "num_layers": case.layers,
            "window_size": [-1, -1], "qk_norm": True, "cross_attn_norm": True, "eps": 1e-6}


@dataclass
class CaseFiles:
    dir: str
    weights: str
    config: str
    inputs: str
    out_dir: str  # holds nothing but what osp writes
    output: str

    def dit_argv(self, osp):
        return [osp, "dit", "--weights", self.weights, "--config", self.config,
                "--inputs", self.inputs, "-o", self.output]

    def copy_to(self, directory):
        """A copy of weights, config and inputs in a fresh directory, with an empty out/."""
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(os.path.join(directory, "out"))
        for p in (self.weights, self.config, self.inputs):
            shutil.copy(p, directory)

        def moved(p):
            return os.path.join(directory, os.path.relpath(p, self.dir))
        return CaseFiles(directory, moved(self.weights), moved(self.config), moved(self.inputs),
                         moved(self.out_dir), moved(self.output))


def write_case(case, model, inputs, directory):
    """Writes weights, config and inputs of a case into a fresh directory (removed first if
    present) with an empty out/ subdirectory for osp's output."""
    shutil.rmtree(directory, ignore_errors=True)
    out_dir = os.path.join(directory, "out")
    os.makedirs(out_dir)
    files = CaseFiles(directory, os.path.join(directory, "weights.safetensors"),
                      os.path.join(directory, "config.json"), os.path.join(directory, "inputs.safetensors"),
                      out_dir, os.path.join(out_dir, "velocity.safetensors"))
    save_file(weights_dict(model, case.names), files.weights)
    with open(files.config, "w") as f:
        json.dump(config_dict(case, case.config), f, indent=1)
    save_file(inputs, files.inputs)
    return files


def require_binary(path):
    """The absolute path of the osp binary; exits with a message if it is not an executable."""
    path = os.path.abspath(path)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        sys.exit(f"{os.path.basename(sys.argv[0])}: {path} is not an executable (build osp first)")
    return path


def run_osp(argv, timeout=300):
    """Runs osp; returns the CompletedProcess (returncode -9 and a note on stderr on a timeout)."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, -9, "", f"(killed after {timeout} s)")


def first_line(text, width=200):
    text = (text or "").strip()
    return (text.splitlines()[0] if text else "(nothing on stderr)")[:width]


def read_velocity(files, shape):
    """Loads osp's velocity; returns (tensor, None) or (None, what is wrong with the file)."""
    if not os.path.exists(files.output):
        return None, f"no output file {files.output}"
    got = load_file(files.output)
    v = got.get("velocity")
    if v is None:
        return None, f"output has no 'velocity' (has {sorted(got)})"
    if v.dtype != torch.float32 or tuple(v.shape) != tuple(shape):
        return None, f"velocity is {v.dtype} {list(v.shape)}, expected float32 {list(shape)}"
    if not torch.isfinite(v).all():
        return None, "velocity has NaN or Inf"
    return v, None


# ---------------------------------------------------------------------------------------------
# The reference.
# ---------------------------------------------------------------------------------------------

def use_float64_sinusoid(model):
    """Makes diffusers compute the timestep sinusoid the way the original Wan2.1 code does.

    diffusers' Timesteps builds emb = [cos(t*f_j), sin(t*f_j)], f_j = 10000^(-j/half), in float32,
    so at t = 999 the arguments t*f_j carry rounding errors up to ~6e-5 rad, and the velocity
    moves by up to ~5e-6 relative on these cases: half the tolerance, from this alone. Wan2.1 (sinusoidal_embedding_1d)
    computes the same layout in float64 and casts the result to float32, and OSP follows Wan2.1.
    So the reference uses the float64 sinusoid too; diffusers then casts it to the time
    embedder's dtype (float32, or float64 for the float64 run), as Wan2.1 casts it to float32."""
    proj = model.condition_embedder.timesteps_proj
    assert proj.flip_sin_to_cos and proj.downscale_freq_shift == 0 and proj.scale == 1  # cos first
    half = proj.num_channels // 2
    freqs = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64) / half)

    def forward(t):
        arg = t.double()[:, None] * freqs[None]
        return torch.cat([torch.cos(arg), torch.sin(arg)], 1)
    proj.forward = forward
    return model


def reference_velocity(model, inputs, dtype):
    """diffusers' forward with the float64 sinusoid, with the model and inputs in `dtype`."""
    m = use_float64_sinusoid(copy.deepcopy(model).to(dtype))
    with torch.no_grad():
        return m(inputs["latents"].to(dtype), inputs["timestep"].to(dtype), inputs["context"].to(dtype),
                 return_dict=False)[0]


def rel_err(got, ref):
    """max|got - ref| / max|ref|, computed in float64."""
    return ((got.double() - ref.double()).abs().max() / ref.double().abs().max()).item()


# ---------------------------------------------------------------------------------------------
# The cases. Between them: layers 1/2/3, head_dim 32/64/128 with heads 1-3, grids 1x2x2
# (one token), 3x6x10, 5x4x14 and 2x4x6, batch 1 and 2 (t 999.0 with 3.7), context of 1, 7 and 512
# rows with zero padding at the end, every (names, config) style pair, freq_dim 64 once.
# ---------------------------------------------------------------------------------------------

CASES = [
    Case("c1", layers=1, heads=1, head_dim=32, ffn_dim=64, text_dim=16, freq_dim=256, grid=(1, 2, 2),
         timesteps=(999.0,), ctx_len=1, real_len=(1,), names="diffusers", config="diffusers"),
    Case("c2", layers=2, heads=2, head_dim=64, ffn_dim=256, text_dim=32, freq_dim=256, grid=(3, 6, 10),
         timesteps=(999.0, 3.7), ctx_len=7, real_len=(4, 6), names="original", config="original"),
    Case("c3", layers=3, heads=3, head_dim=128, ffn_dim=512, text_dim=16, freq_dim=256, grid=(5, 4, 14),
         timesteps=(3.7,), ctx_len=512, real_len=(23,), names="diffusers", config="original"),
    Case("c4", layers=2, heads=1, head_dim=128, ffn_dim=320, text_dim=32, freq_dim=64, grid=(2, 4, 6),
         timesteps=(0.0, 500.5), ctx_len=512, real_len=(512, 77), names="original", config="diffusers"),
    Case("c5", layers=1, heads=3, head_dim=32, ffn_dim=160, text_dim=16, freq_dim=256, grid=(3, 6, 10),
         timesteps=(3.7, 999.0), ctx_len=7, real_len=(7, 2), names="diffusers", config="diffusers"),
    Case("c6", layers=3, heads=2, head_dim=64, ffn_dim=96, text_dim=16, freq_dim=256, grid=(1, 2, 2),
         timesteps=(999.0, 3.7), ctx_len=1, real_len=(1, 0), names="original", config="original"),
]


def run_parity_case(osp, workdir, case, tol):
    """Runs one case; returns (line, ok)."""
    model, inputs = random_model(case), random_inputs(case)
    files = write_case(case, model, inputs, os.path.join(workdir, case.name))
    ref32 = reference_velocity(model, inputs, torch.float32)
    ref64 = reference_velocity(model, inputs, torch.float64)
    r = run_osp(files.dit_argv(osp))
    if r.returncode != 0:
        return f"{case.summary()}: FAIL, osp dit exit {r.returncode}: {first_line(r.stderr)}", False
    got, problem = read_velocity(files, case.latent_shape)
    if problem:
        return f"{case.summary()}: FAIL, {problem}", False
    err, err64 = rel_err(got, ref32), rel_err(got, ref64)
    ok = err <= tol
    return (f"{case.summary()}: err {err:.2e} (vs float64 diffusers {err64:.2e}), tol {tol:g}, "
            f"{'ok' if ok else 'FAIL'}"), ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("osp", help="the osp binary")
    ap.add_argument("workdir", help="directory for the cases' files (WORKDIR/dit_parity/<case>/)")
    ap.add_argument("--tol", type=float, default=1e-5, help="max|osp - ref| / max|ref| (default 1e-5)")
    ap.add_argument("--seed", type=int, default=0, help="added to every case's seed (default 0)")
    a = ap.parse_args()
    osp = require_binary(a.osp)
    work = os.path.join(os.path.abspath(a.workdir), "dit_parity")
    passed = failed = 0
    for i, case in enumerate(CASES):
        case.seed = 1000 * (i + 1) + a.seed
        line, ok = run_parity_case(osp, work, case, a.tol)
        print(line, flush=True)
        passed, failed = passed + ok, failed + (not ok)
    print(f"dit_parity: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
