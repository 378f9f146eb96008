#!/usr/bin/env python3
"""Parity of the DiT backward of `osp dit --grad-output` with PyTorch autograd, on tiny random models.

usage: python tests/ref/dit_grad_parity.py OSP_BINARY WORKDIR [--tol 1e-4] [--seed S]
       python tests/ref/dit_grad_parity.py - - --reference-only   (the references and their self-checks alone)

The contract under test:
    osp dit --weights W --config C --inputs I [--schedule S --sparse-ratio P] --grad-output G -o O
G holds `velocity` = dL/dvelocity (any float dtype, the velocity's shape [B, 16, F, H, W]); O gets,
all float32: `velocity` (the forward), `latents` (dL/dlatents) and the gradient of every parameter
under the weight file's own names (diffusers or original Wan2.1, with the file's
"model.diffusion_model." prefix if it had one), each in the parameter's shape; nothing else.

Each case builds a tiny model whose every parameter is random and nonzero (tests/ref/dit_parity.py's
random_model), random inputs (context rows zero-padded as pipelines pad prompts) and a random G
(torch.randn, seeded; written in float32, bfloat16 or float64 as the case says, the reference using
the very values written). The reference gradients are those of loss = sum(velocity * G), by autograd
in float32 with every parameter and the latents as leaves:
  - dense cases: diffusers' WanTransformer3DModel (with the float64 timestep sinusoid of
    dit_parity.py, as OSP and Wan2.1 compute it);
  - Skiparse cases (--sparse-ratio 2): tests/ref/sparse_parity.py's plain-torch sparse_forward
    (permute-into-batch layouts, padding, key masks), its weights a dict of leaf tensors.

Compared, for velocity, latents and EVERY parameter, with ref the float32 reference, ref64 the
float64 one, S = the largest max|ref| over the case's parameter gradients (S64 the same of ref64):
  - in general
        err = max|osp - ref| / max|ref|   must be <= tol (1e-4 by default);
    for a tensor on which float32 autograd itself is that inaccurate, the bound is 4 * e32 instead,
    e32 = max|ref - ref64| / max|ref64| being the float32 reference's own error (only where
    4 * e32 > tol; the line says for how many tensors). That happens to k-projection biases:
    softmax ignores a shift shared by all keys, so sum_j dk_j = 0, and the bias gradient is what
    the per-row RMSNorm Jacobians leave of a cancelling sum (case s5: e32 ~ 9e-5);
  - a parameter whose gradient is zero in exact arithmetic (max|ref64| <= 1e-10 * S64: the q/k
    projections and norms of an attention with a single key, where softmax is constant, and then
    the cross-attention LayerNorm too) must have
        max|osp| <= 0.01 * tol * S   (1e-6 * S by default; float32 autograd leaves ~1e-7 * S there).
O must hold exactly velocity, latents and the weight file's tensor names (a missing or an extra one
fails, named), each float32, of its shape (the file's, e.g. patch_embedding.weight 5-D), finite.
The worst error against a float64 reference (diffusers in float64, which is not fully float64: see
dit_parity.py; sparse_forward in float64, which is) is printed for information, not judged.

Dense cases cover, between them: 1, 2 and 3 layers; head_dim 32 and 64 with 1 and 2 heads; grids
1x1x1 tokens (twice, once with batch 2), 3x3x5, 2x2x3, 2x3x2, 1x2x3; batch 1 and 2 with different
timesteps; context of 1 row (once all-zero for one batch entry) and of 7 rows zero-padded; every
(names, config) style pair; freq_dim 64 once; cross_attn_norm false once; the
"model.diffusion_model." prefix once; G in bfloat16 and in float64 once each.
Skiparse cases: "full,token,group", "token,group,token", "every_k:2" (FTF) and "dual_end:4" on 8
blocks (FFTGTGFF) by --schedule/--sparse-ratio, "uniform" (TGTG) from config.json keys; on grids
that need padding (3x3x5, 1x3x3 tokens, and 2x2x6, where whole group-wise subsequences are padding)
and grids that do not (1x4x4, 2x4x4).

Each Skiparse case checks its reference first (float64): with every block full its gradients
equal diffusers' float64 ones (worst rel err < 1e-5, measured ~2e-6: diffusers keeps float32
RoPE tables and LayerNorms); with the case's schedule they equal the masked natural-order oracle's
(sparse_parity.masked_forward, no padding, no permutation: < 1e-10); and the schedule moves the
latents' gradient by > 1e-3 (the case is not vacuous). Once per run, sparse_forward's autograd
gradients are checked against central finite differences in float64 on a padded FTG case: for each
parameter and the latents, along a random direction d, |fd - <g, d>| <= 1e-6 * |g| |d|.

Error cases (on a valid model): G without `velocity`, G `velocity` of a wrong shape (last dim + 2)
and of a wrong rank (4-D): osp must exit nonzero (not by a signal), its stderr must name G's file
(basename) and `velocity`, and, for shapes, show the expected and the found shape; it must leave no
output file.

Prints one line per case and a last line "dit_grad_parity: N passed, N failed"; exits 1 on a failure.
"""
import argparse
import copy
import dataclasses
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dit_parity import (Case, config_dict, first_line, original_name, random_inputs,  # noqa: E402
                        random_model, require_binary, run_osp, use_float64_sinusoid, write_case)
from sparse_parity import (FULL, GROUP, TOKEN, Weights, dual_end, every_k, masked_forward,  # noqa: E402
                           schedule_string, sparse_forward)

PREFIX = "model.diffusion_model."
ZERO64 = 1e-10   # a float64 reference gradient <= ZERO64 * S64 is zero in exact arithmetic
ZERO_FRACTION = 0.01  # OSP's gradient there must be <= ZERO_FRACTION * tol * S
WIDEN = 4        # an ill-conditioned tensor's bound: WIDEN x the float32 reference's own error


# ---------------------------------------------------------------------------------------------
# Cases.
# ---------------------------------------------------------------------------------------------

@dataclass
class GradCase(Case):
    cross_attn_norm: bool = True
    prefix: str = ""                 # "" or "model.diffusion_model." on every weight name
    g_dtype: torch.dtype = torch.float32
    schedule: list = None            # None: dense (diffusers is the reference); else one pattern per block
    P: int = 1
    cli: list = field(default_factory=list)    # --schedule / --sparse-ratio
    keys: dict = field(default_factory=dict)   # Skiparse keys written into config.json

    def model_kwargs(self):
        kw = super().model_kwargs()
        kw["cross_attn_norm"] = self.cross_attn_norm
        return kw

    def summary(self):
        F, H, W = self.grid
        extra = []
        if not self.cross_attn_norm:
            extra.append("cross_attn_norm false")
        if self.prefix:
            extra.append(f"prefix {self.prefix}")
        if self.schedule is not None:
            src = " ".join(self.cli) if self.cli else json.dumps(self.keys, separators=(",", ":"))
            extra.append(f"P {self.P} {schedule_string(self.schedule)} [{src}]")
        return (f"{self.name}: L {self.layers}, heads {self.heads}x{self.head_dim}, latents {list(self.latent_shape)} "
                f"(tokens {F}x{H // 2}x{W // 2}), t {list(self.timesteps)}, context {self.ctx_len} "
                f"(real {list(self.real_len)}), {self.names}/{self.config}, G {str(self.g_dtype)[6:]}"
                + "".join(f", {e}" for e in extra))


def _dense(name, layers, heads, head_dim, ffn_dim, grid, timesteps, ctx_len, real_len, names, config, **kw):
    return GradCase(name, layers=layers, heads=heads, head_dim=head_dim, ffn_dim=ffn_dim,
                    text_dim=kw.pop("text_dim", 16), freq_dim=kw.pop("freq_dim", 256), grid=grid,
                    timesteps=timesteps, ctx_len=ctx_len, real_len=real_len, names=names, config=config, **kw)


def _sparse(name, layers, heads, head_dim, grid, timesteps, schedule, names="diffusers", config="diffusers",
            cli=None, keys=None):
    return GradCase(name, layers=layers, heads=heads, head_dim=head_dim, ffn_dim=48, text_dim=16, freq_dim=256,
                    grid=grid, timesteps=timesteps, ctx_len=7, real_len=tuple(7 - 2 * b for b in range(len(timesteps))),
                    names=names, config=config, schedule=schedule, P=2, cli=cli or [], keys=keys or {})


def make_cases():
    return [
        # One token and one context row: both attentions have a single key (q/k gradients zero).
        _dense("d1", 1, 1, 32, 64, (1, 2, 2), (999.0,), 1, (1,), "diffusers", "diffusers"),
        _dense("d2", 2, 2, 64, 96, (3, 6, 10), (999.0, 3.7), 7, (4, 6), "original", "original",
               text_dim=32, g_dtype=torch.bfloat16),
        _dense("d3", 3, 1, 64, 128, (2, 4, 6), (500.5,), 7, (7,), "diffusers", "original"),
        # One token, batch 2, one context row that is all zero for the second entry, freq_dim 64.
        _dense("d4", 2, 2, 32, 48, (1, 2, 2), (0.0, 250.0), 1, (1, 0), "original", "diffusers",
               freq_dim=64, g_dtype=torch.float64),
        _dense("d5", 2, 2, 32, 64, (2, 6, 4), (3.7, 999.0), 7, (7, 3), "original", "original",
               cross_attn_norm=False),
        _dense("d6", 1, 2, 32, 64, (1, 4, 6), (700.0,), 7, (5,), "original", "original", prefix=PREFIX),
        # Skiparse, P = 2. Tokens 3x3x5 -> padded 3x4x8.
        _sparse("s1", 3, 2, 16, (3, 6, 10), (999.0, 3.7), [FULL, TOKEN, GROUP],
                cli=["--schedule", "full,token,group", "--sparse-ratio", "2"]),
        # Tokens 1x4x4: no padding (no key mask).
        _sparse("s2", 3, 1, 32, (1, 8, 8), (500.0,), [TOKEN, GROUP, TOKEN], "original", "original",
                cli=["--schedule", "token,group,token", "--sparse-ratio", "2"]),
        # Tokens 2x2x6 -> 2x4x8: group-wise subsequences 2 and 3 are all padding. From config.json.
        _sparse("s3", 4, 2, 16, (2, 4, 12), (0.0, 999.0), dual_end(4, 0), "original", "diffusers",
                keys=dict(skiparse_model_type="uniform", sparse_ratio=2, num_full_blocks=0)),
        # every_k:2 on 3 blocks (FTF): token-wise entered and left; tokens 2x4x4, no padding.
        _sparse("s4", 3, 2, 16, (2, 8, 8), (42.0, 600.0), every_k(3, 2), "diffusers", "original",
                cli=["--schedule", "every_k:2", "--sparse-ratio", "2"]),
        # dual_end:4 on 8 blocks (FFTGTGFF); tokens 1x3x3 -> 1x4x4.
        _sparse("s5", 8, 1, 32, (1, 6, 6), (250.0,), dual_end(8, 4),
                cli=["--schedule", "dual_end:4", "--sparse-ratio", "2"]),
    ]


# ---------------------------------------------------------------------------------------------
# Files.
# ---------------------------------------------------------------------------------------------

def file_name(case, name):
    """The weight file's name of a diffusers parameter name."""
    return case.prefix + (name if case.names == "diffusers" else original_name(name))


def random_grad(case):
    """dL/dvelocity as written to G (in the case's dtype)."""
    gen = torch.Generator().manual_seed(case.seed + 2_000_029)
    return torch.randn(*case.latent_shape, generator=gen).to(case.g_dtype)


def write_grad_case(case, model, inputs, g, directory):
    """weights (with the case's names and prefix), config.json (with cross_attn_norm and the
    Skiparse keys), inputs and G; returns (files, G path, output path)."""
    files = write_case(case, model, inputs, directory)
    if case.prefix:
        save_file({case.prefix + k: v for k, v in load_file(files.weights).items()}, files.weights)
    conf = config_dict(case, case.config)
    if case.config == "original":
        conf["cross_attn_norm"] = case.cross_attn_norm
    conf.update(case.keys)
    with open(files.config, "w") as f:
        json.dump(conf, f, indent=1)
    g_path = os.path.join(directory, "grad.safetensors")
    save_file({"velocity": g.contiguous()}, g_path)
    files = dataclasses.replace(files, output=os.path.join(files.out_dir, "grads.safetensors"))
    return files, g_path


def grad_argv(osp, case, files, g_path):
    return files.dit_argv(osp) + case.cli + ["--grad-output", g_path]


# ---------------------------------------------------------------------------------------------
# References: gradients of sum(velocity * G) by autograd.
# ---------------------------------------------------------------------------------------------

def diffusers_grads(model, inputs, g, dtype):
    """velocity and {diffusers name: grad, "latents": grad} from diffusers' autograd in `dtype`."""
    m = use_float64_sinusoid(copy.deepcopy(model).to(dtype))
    m.requires_grad_(True)
    m.zero_grad(set_to_none=True)
    latents = inputs["latents"].to(dtype).clone().requires_grad_()
    v = m(latents, inputs["timestep"].to(dtype), inputs["context"].to(dtype), return_dict=False)[0]
    (v * g.to(dtype)).sum().backward()
    grads = {k: (p.grad if p.grad is not None else torch.zeros_like(p)).detach() for k, p in m.named_parameters()}
    assert set(grads) == set(m.state_dict()), "the model has buffers in its state_dict"
    grads["latents"] = latents.grad
    return v.detach(), grads


def sparse_grads(model, inputs, freq_dim, schedule, P, g, dtype, forward=sparse_forward):
    """velocity and gradients from sparse_parity's plain-torch forward (or masked_forward) in
    `dtype`, its weights a dict of leaf tensors."""
    w = Weights(model, dtype)
    w.sd = {k: v.clone().requires_grad_() for k, v in w.sd.items()}
    inp = dict(inputs, latents=inputs["latents"].to(dtype).clone().requires_grad_())
    v = forward(w, inp, freq_dim, schedule, P)
    (v * g.to(dtype)).sum().backward()
    grads = {k: (t.grad if t.grad is not None else torch.zeros_like(t)) for k, t in w.sd.items()}
    grads["latents"] = inp["latents"].grad
    return v.detach(), grads


def case_references(case, model, inputs, g, dtype):
    if case.schedule is None:
        return diffusers_grads(model, inputs, g, dtype)
    return sparse_grads(model, inputs, case.freq_dim, case.schedule, case.P, g, dtype)


def rel(got, ref):
    """max|got - ref| / max|ref| in float64 (inf when ref is zero and got is not, 0 when both are)."""
    d = (got.double() - ref.double()).abs().max().item()
    s = ref.double().abs().max().item()
    return d / s if s > 0 else (0.0 if d == 0 else float("inf"))


def param_scale(grads):
    return max(t.double().abs().max().item() for k, t in grads.items() if k != "latents")


def worst(errs):
    """(name, err) of the largest err."""
    return max(errs.items(), key=lambda kv: kv[1])


def validate_sparse_reference(case, model, inputs, g):
    """The Skiparse reference's self-checks (module docstring); returns (problem or None, info)."""
    P = case.P
    _, ours_dense = sparse_grads(model, inputs, case.freq_dim, [FULL] * case.layers, P, g, torch.float64)
    _, diff64 = diffusers_grads(model, inputs, g, torch.float64)
    name, e_diff = worst({k: rel(ours_dense[k], diff64[k]) for k in diff64})
    if not e_diff < 1e-5:
        return f"reference (all full) grad of {name} vs diffusers float64: {e_diff:.1e} >= 1e-5", ""
    _, ours = sparse_grads(model, inputs, case.freq_dim, case.schedule, P, g, torch.float64)
    _, oracle = sparse_grads(model, inputs, case.freq_dim, case.schedule, P, g, torch.float64, masked_forward)
    name, e_mask = worst({k: rel(ours[k], oracle[k]) for k in oracle})
    if not e_mask < 1e-10:
        return f"permuted reference grad of {name} vs masked natural-order oracle: {e_mask:.1e} >= 1e-10", ""
    moved = rel(ours["latents"], ours_dense["latents"])
    if not moved > 1e-3:
        return f"schedule moves the latents' gradient by only {moved:.1e} (case is vacuous)", ""
    return None, f"ref: all-full vs diffusers {e_diff:.0e}, vs mask {e_mask:.0e}, sparse-dense {moved:.2f}"


def finite_difference_check(seed):
    """sparse_forward's autograd against central differences, float64, on a padded FTG case; one
    line and ok."""
    case = _sparse("fd", 3, 2, 16, (1, 6, 10), (999.0, 3.7), [FULL, TOKEN, GROUP])
    case.seed = seed
    model, inputs = random_model(case), random_inputs(case)
    g = random_grad(case).double()
    _, grads = sparse_grads(model, inputs, case.freq_dim, case.schedule, case.P, g, torch.float64)
    base = Weights(model, torch.float64)
    lat = inputs["latents"].double()
    gen = torch.Generator().manual_seed(seed + 17)
    eps, worst_name, worst_err = 1e-6, None, 0.0
    with torch.no_grad():
        for name in grads:
            ref = base.sd[name] if name != "latents" else lat
            d = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
            loss = []
            for sign in (1, -1):
                w = Weights(model, torch.float64)
                inp = dict(inputs, latents=lat)
                if name == "latents":
                    inp["latents"] = lat + sign * eps * d
                else:
                    w.sd[name] = ref + sign * eps * d
                loss.append((sparse_forward(w, inp, case.freq_dim, case.schedule, case.P) * g).sum().item())
            fd = (loss[0] - loss[1]) / (2 * eps)
            an = (grads[name] * d).sum().item()
            err = abs(fd - an) / (grads[name].norm().item() * d.norm().item())
            if err > worst_err:
                worst_name, worst_err = name, err
    ok = worst_err <= 1e-6
    return (f"reference: sparse_forward autograd vs central differences (float64, {len(grads)} tensors, "
            f"FTG P 2, tokens 1x3x5 padded): worst {worst_err:.1e} ({worst_name}), bound 1e-6, "
            f"{'ok' if ok else 'FAIL'}"), ok


# ---------------------------------------------------------------------------------------------
# Running a case.
# ---------------------------------------------------------------------------------------------

def compare(case, model, got, ref32, ref64, tol):
    """Checks osp's output dict against the references; returns (problems, info)."""
    expected = {"velocity": ref32[0], "latents": ref32[1]["latents"]}
    expected64 = {"velocity": ref64[0], "latents": ref64[1]["latents"]}
    zero = set()
    s32, s64 = param_scale(ref32[1]), param_scale(ref64[1])
    for k in model.state_dict():
        fname = file_name(case, k)
        expected[fname], expected64[fname] = ref32[1][k], ref64[1][k]
        if ref64[1][k].abs().max().item() <= ZERO64 * s64:
            zero.add(fname)
    problems = []
    missing = [k for k in expected if k not in got]
    extra = sorted(k for k in got if k not in expected)
    if missing:
        problems.append(f"{len(missing)} tensors missing from the output: {', '.join(missing[:6])}"
                        + (" ..." if len(missing) > 6 else ""))
    if extra:
        problems.append(f"{len(extra)} unexpected tensors in the output: {', '.join(extra[:6])}"
                        + (" ..." if len(extra) > 6 else ""))
    errs, errs64, zero_seen, bad, widened = {}, {}, {}, [], {}
    for k, ref in expected.items():
        t = got.get(k)
        if t is None:
            continue
        if t.dtype != torch.float32 or tuple(t.shape) != tuple(ref.shape):
            bad.append(f"{k} is {str(t.dtype)[6:]} {list(t.shape)}, expected float32 {list(ref.shape)}")
            continue
        if not torch.isfinite(t).all():
            bad.append(f"{k} has NaN or Inf")
            continue
        if k in zero:
            zero_seen[k] = t.abs().max().item() / s32
            if zero_seen[k] > ZERO_FRACTION * tol:
                bad.append(f"{k}: gradient zero in exact arithmetic, osp max|g| = {zero_seen[k]:.1e}*S "
                           f"(> {ZERO_FRACTION * tol:.0e}*S)")
            continue
        errs[k], errs64[k] = rel(t, ref), rel(t, expected64[k])
        own = rel(ref, expected64[k])  # the float32 reference's own error on this tensor
        bound = max(tol, WIDEN * own)
        if bound > tol:
            widened[k] = bound
        if errs[k] > bound:
            bad.append(f"{k} err {errs[k]:.2e}" + (f" (bound {bound:.1e})" if bound > tol else ""))
    if bad:
        problems.append(f"{len(bad)} of {len(expected)} tensors wrong: " + "; ".join(bad[:12])
                        + (f"; and {len(bad) - 12} more" if len(bad) > 12 else ""))
    info = []
    if "velocity" in errs:
        info.append(f"velocity {errs['velocity']:.1e}")
    if "latents" in errs:
        info.append(f"latents {errs['latents']:.1e}")
    if errs:
        n, e = worst(errs)
        info.append(f"worst {e:.2e} ({n})")
        n64, e64 = worst(errs64)
        info.append(f"vs float64 worst {e64:.1e} ({n64})")
    if widened:
        n, b = worst(widened)
        info.append(f"bound widened for {len(widened)} ({n} {b:.1e})")
    if zero:
        info.append(f"{len(zero)} zero grads, max|osp| {max(zero_seen.values(), default=0):.0e}*S")
    return problems, ", ".join(info)


def run_grad_case(osp, workdir, case, tol):
    """Runs one case; returns (line, ok). osp None: the references and their checks only."""
    model, inputs = random_model(case), random_inputs(case)
    g = random_grad(case)
    info = ""
    if case.schedule is not None:
        problem, info = validate_sparse_reference(case, model, inputs, g)
        if problem:
            return f"{case.summary()}: FAIL, reference self-check: {problem}", False
        info = "; " + info
    ref32 = case_references(case, model, inputs, g, torch.float32)
    ref64 = case_references(case, model, inputs, g, torch.float64)
    if osp is None:
        nonzero = [k for k in ref32[1] if ref64[1][k].abs().max() > ZERO64 * param_scale(ref64[1])]
        n, e = worst({k: rel(ref32[1][k], ref64[1][k]) for k in nonzero})
        return (f"{case.summary()}: reference float32 vs float64 worst {e:.1e} ({n}), "
                f"{len(ref32[1]) - len(nonzero)} zero grads{info}; ok"), True
    files, g_path = write_grad_case(case, model, inputs, g, os.path.join(workdir, case.name))
    r = run_osp(grad_argv(osp, case, files, g_path))
    if r.returncode != 0:
        return f"{case.summary()}: FAIL, osp dit exit {r.returncode}: {first_line(r.stderr)}", False
    if not os.path.exists(files.output):
        return f"{case.summary()}: FAIL, no output file {files.output}", False
    problems, detail = compare(case, model, load_file(files.output), ref32, ref64, tol)
    ok = not problems
    return (f"{case.summary()}: {detail}, tol {tol:g}{info}; "
            + ("ok" if ok else "FAIL, " + "; ".join(problems))), ok


# ---------------------------------------------------------------------------------------------
# Error cases.
# ---------------------------------------------------------------------------------------------

def shape_pattern(shape):
    return r"\D{1,4}".join(str(n) for n in shape)


def error_cases(osp, workdir, seed):
    """[(line, ok)] for the bad-G cases, on case d1's kind of model (batch 2 here)."""
    case = _dense("err", 1, 1, 32, 64, (1, 4, 6), (999.0, 3.7), 7, (7, 5), "original", "original")
    case.seed = seed
    model, inputs = random_model(case), random_inputs(case)
    good = random_grad(case)
    B, C, F, H, W = case.latent_shape
    bad = [
        ("G without 'velocity'", "g_missing.safetensors", {"grad": good}, None),
        ("G 'velocity' of a wrong shape", "g_shape.safetensors",
         {"velocity": torch.randn(B, C, F, H, W + 2)}, (B, C, F, H, W + 2)),
        ("G 'velocity' of a wrong rank", "g_rank.safetensors",
         {"velocity": torch.randn(B, C, H, W)}, (B, C, H, W)),
    ]
    out = []
    for i, (label, basename, tensors, found) in enumerate(bad):
        files, _ = write_grad_case(case, model, inputs, good, os.path.join(workdir, f"err{i}"))
        g_path = os.path.join(files.dir, basename)
        save_file(tensors, g_path)
        r = run_osp(grad_argv(osp, case, files, g_path))
        msg = (r.stderr or "").strip()
        problems = []
        if r.returncode == 0:
            problems.append("osp exited 0")
        elif r.returncode < 0:
            problems.append(f"osp killed by signal {-r.returncode}")
        if basename not in msg:
            problems.append(f"message does not name {basename}")
        if "velocity" not in msg:
            problems.append("message does not name 'velocity'")
        if found is not None:
            if not re.search(shape_pattern(case.latent_shape), msg):
                problems.append(f"message does not show the expected shape {list(case.latent_shape)}")
            if not re.search(shape_pattern(found), msg):
                problems.append(f"message does not show the found shape {list(found)}")
        left = os.listdir(files.out_dir)
        if left:
            problems.append(f"left {left} in the output directory")
        ok = not problems
        out.append((f"error: {label}: exit {r.returncode}, '{first_line(msg)}': "
                    + ("ok" if ok else "FAIL, " + "; ".join(problems)), ok))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("osp", help="the osp binary")
    ap.add_argument("workdir", help="directory for the cases' files (WORKDIR/dit_grad_parity/<case>/)")
    ap.add_argument("--tol", type=float, default=1e-4, help="max|osp - ref| / max|ref| (default 1e-4)")
    ap.add_argument("--seed", type=int, default=0, help="added to every case's seed (default 0)")
    ap.add_argument("--reference-only", action="store_true",
                    help="only the references and their self-checks; osp is not run")
    a = ap.parse_args()
    osp = None if a.reference_only else require_binary(a.osp)
    work = None if a.reference_only else os.path.join(os.path.abspath(a.workdir), "dit_grad_parity")
    torch.set_num_threads(min(2, torch.get_num_threads()))
    start = time.time()
    results = [finite_difference_check(9000 + a.seed)]
    print(results[0][0], flush=True)
    for i, case in enumerate(make_cases()):
        case.seed = 3000 + 1000 * i + a.seed
        results.append(run_grad_case(osp, work, case, a.tol))
        print(results[-1][0], flush=True)
    if osp is not None:
        for line, ok in error_cases(osp, os.path.join(work, "errors"), 99000 + a.seed):
            results.append((line, ok))
            print(line, flush=True)
    passed = sum(ok for _, ok in results)
    print(f"(took {time.time() - start:.1f} s)")
    print(f"dit_grad_parity: {passed} passed, {len(results) - passed} failed")
    sys.exit(1 if passed < len(results) else 0)


if __name__ == "__main__":
    main()
