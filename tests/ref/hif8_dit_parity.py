#!/usr/bin/env python3
"""The DiT under HiF8 (`quant: hif8`, `quant_attn: hif8` in config.json) against PyTorch autograd.

usage: python tests/ref/hif8_dit_parity.py OSP_BINARY WORKDIR [--seed S]

The contract under test is `osp dit ... --grad-output G` (tests/ref/dit_grad_parity.py) on a
config.json that holds OSP-Next's HiF8 keys (PAPER.md 7.5). The reference is tests/ref/
sparse_parity.py's plain-torch Wan DiT (diffusers' block math; Skiparse by permute-into-batch),
with HiF8 added as OSP-Next's training code applies it (PAPER.md 7.3, 7.4), written here from
that description alone:
  - the ten linears of every block (attn1/attn2 to_q, to_k, to_v, to_out.0; ffn.net.0.proj,
    ffn.net.2) compute QDQ(x)·QDQ(W)ᵀ + b with smax 15; their backward quantizes the output
    gradient g with smax 224 and gives dX = g_q·W_q, dW = g_qᵀ·X_q, db = Σ g_q (one autograd
    Function);
  - q, k (after RMSNorm and RoPE) and v entering every attention are QDQ'd with smax 15, their
    gradients with 224 (straight-through otherwise);
  - QDQ(x) = hif8(x·s)/s with s = smax / max(max|x|, 1e−8) over the whole tensor, in float32;
    hif8 here is the element rule computed with torch.frexp in float64 and checked first against
    tests/ref/hif8_parity.py's set formulation on every bf16 value.
Embeddings, head, norms, modulation, softmax and the residual stream are not quantized.

HiF8 rounds: an input that moves by one float32 ulp can cross a rounding boundary and move a
value by a whole HiF8 step (1/8 to 1/2 of it). OSP's float32 sums and torch's differ in their
last bits, so now and then one value rounds the other way, and in these tiny models (one or two
heads of 16 to 64 dims) one such flip can move the output by 1e−2. So each tensor (velocity, the
latents' gradient, every parameter's gradient), with err = max|osp − ref| / max|ref|, passes
  - tightly: err <= 1e−4 (no flip: errors are then ~1e−6); or
  - as a flip: err <= 3 × spread, spread being how far the reference itself moves that tensor
    under 12 random perturbations of 1e−6 (additive, standard normal times 1e−6; a scale would not
    do, as HiF8's absmax scaling cancels it): of G when OSP's velocity matched within 1e−4 (so
    only the backward can have flipped), else of the latents. A flip is reported as such; where
    the reference does not move under such perturbations the spread is ~1e−7 and only the tight
    bound passes.
And the case must not be vacuous: HiF8 moves the reference velocity by > 1e−2.
Cases: dense (diffusers and original names), FTG and uniform Skiparse; both keys, quant alone,
quant_attn alone (nested under model_config). Over ranks (mpirun), where each rank's shard is a
scope (PAPER.md 7.3), the reference takes the same scopes: 2 ranks of Ulysses on a dense model
(linears per token chunk; self-attention q, k, v per head group over all tokens; each rank's
cross-attention with k, v and their gradients of its own) and 4 ranks of SSP on an all-sparse
one (everything per subsequence). Also: `--quant none` over a HiF8 config gives the unquantized
velocity (1e−4); a bad value of `quant` is refused, naming the key.

Prints one line per check and "hif8_dit: N passed, M failed" last.
"""
import argparse
import json
import os
import sys
import types

import torch
import torch.nn.functional as torch_functional
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sparse_parity  # noqa: E402
from dit_grad_parity import _dense, _sparse, grad_argv, random_grad, rel, write_grad_case  # noqa: E402
from dit_parity import first_line, random_inputs, random_model, require_binary, run_osp  # noqa: E402
from hif8_parity import VALUES, reference  # noqa: E402
from sparse_parity import FULL, GROUP, TOKEN, Weights, sparse_forward  # noqa: E402
from tally import Tally  # noqa: E402

TALLY = Tally("hif8_dit")
check = TALLY.check
FORWARD_MAX, BACKWARD_MAX = 15.0, 224.0
BLOCK_LINEARS = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_k",
                 "attn2.to_v", "attn2.to_out.0", "ffn.net.0.proj", "ffn.net.2")


# ---------------------------------------------------------------------------------------------
# HiF8, vectorised.
# ---------------------------------------------------------------------------------------------

def hif8(x):
    """The element rule (PAPER.md 7.2) on a float32 tensor, in float64: |x| = m·2^e (frexp,
    m in [0.5, 1)) so E = e − 1; mantissa bits by |E|; q = 2^(max(E, −22) − bits);
    y = sign·⌊|x|/q + ½⌋·q; 0 below 2^−23; ±inf from 40960."""
    a = x.double().abs()
    _, e = torch.frexp(a)
    E = e.to(torch.int64) - 1
    mag = E.abs()
    bits = torch.where(mag <= 3, 3, torch.where(mag <= 7, 2, torch.where(mag <= 15, 1, 0)))
    q = torch.pow(2.0, (torch.clamp(E, min=-22) - bits).double())
    y = torch.floor(a / q + 0.5) * q
    y = torch.where(a < 2.0 ** -23, torch.zeros_like(y), y)
    y = torch.where(a >= 40960.0, torch.full_like(y, float("inf")), y)
    return (torch.sign(x.double()) * y).to(x.dtype)


def qdq_whole(x, scale_max):
    """hif8(x·s)/s, s = scale_max / max(max|x|, 1e−8), float32 throughout."""
    amax = torch.clamp(x.detach().abs().max(), min=1e-8)
    s = torch.tensor(scale_max, dtype=x.dtype) / amax
    return hif8(x.detach() * s) / s


# Where a block's tensors live when a forward is spread over ranks (PAPER.md 7.3: "amax is the
# local shard's"): None on one device; else (mode, ranks, tokens), set for each block by
# reference_run. Under Ulysses (here: all-full models) a rank holds a contiguous chunk of the
# tokens of every per-token tensor and, for self-attention, one head group of q, k, v over all
# tokens; the context and what the context's k, v projections make are whole on every rank.
# Under SSP (here: all-sparse models) a rank holds whole rows (subsequences) of everything.
SCOPE = None


def scope_parts(x, role):
    """(dim, parts) the amax of x is taken over: role "linear" ([rows, L, C], a linear's input or
    output gradient), "self" (q, k, v of self-attention, [rows, heads, L, hd]), "cross_q", or
    "context" (the cross-attention's k, v)."""
    if SCOPE is None:
        return 0, 1
    mode, ranks, tokens = SCOPE
    if mode == "ssp":
        return 0, ranks
    if role == "self":
        return 1, ranks
    if role == "cross_q":
        return 2, ranks
    if role == "linear" and x.shape[1] == tokens:
        return 1, ranks
    return 0, 1


def qdq(x, scale_max, role="linear"):
    dim, parts = scope_parts(x, role)
    if parts == 1:
        return qdq_whole(x, scale_max)
    return torch.cat([qdq_whole(c, scale_max) for c in x.chunk(parts, dim)], dim)


class Scoped:
    """Runs a backward under the scope its forward had."""

    def __init__(self, scope):
        self.scope = scope

    def __enter__(self):
        global SCOPE
        self.saved, SCOPE = SCOPE, self.scope

    def __exit__(self, *exc):
        global SCOPE
        SCOPE = self.saved


class QuantizedLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b):
        xq, wq = qdq(x, FORWARD_MAX), qdq_whole(w, FORWARD_MAX)
        ctx.save_for_backward(xq, wq)
        ctx.scope = SCOPE
        return torch_functional.linear(xq, wq, b)

    @staticmethod
    def backward(ctx, g):
        xq, wq = ctx.saved_tensors
        with Scoped(ctx.scope):
            gq = qdq(g, BACKWARD_MAX)
        dx = gq @ wq
        dw = gq.reshape(-1, gq.shape[-1]).T @ xq.reshape(-1, xq.shape[-1])
        return dx, dw, gq.reshape(-1, gq.shape[-1]).sum(0)


class QuantizedInput(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, role):
        ctx.scope, ctx.role = SCOPE, role
        return qdq(x, FORWARD_MAX, role)

    @staticmethod
    def backward(ctx, g):
        with Scoped(ctx.scope):
            return qdq(g, BACKWARD_MAX, ctx.role), None


class HiF8Weights(Weights):
    """sparse_parity's weights with the blocks' linears quantized (quant) ."""

    def __init__(self, model, dtype, linears=True):
        super().__init__(model, dtype)
        self.quantize_linears = linears

    def linear(self, x, name):
        if self.quantize_linears and name.startswith("blocks.") and name.split(".", 2)[2] in BLOCK_LINEARS:
            return QuantizedLinear.apply(x, self.sd[name + ".weight"], self.sd[name + ".bias"])
        return super().linear(x, name)


class AttentionInputsQuantized(types.SimpleNamespace):
    """torch.nn.functional with q, k, v quantized as they enter attention (quant_attn), put in
    place of sparse_parity's `Fn` while a reference runs."""

    def __getattr__(self, name):
        return getattr(torch_functional, name)

    @staticmethod
    def scaled_dot_product_attention(q, k, v, **kw):
        cross = q.shape[2] != k.shape[2]  # the cases' contexts differ in length from the sequences
        q = QuantizedInput.apply(q, "cross_q" if cross else "self")
        k, v = (QuantizedInput.apply(t, "context" if cross else "self") for t in (k, v))
        return torch_functional.scaled_dot_product_attention(q, k, v, **kw)


def reference_run(case, model, inputs, g, linears=True, attention=True, spread_over=None):
    """velocity and {name: grad, "latents": grad} of sum(velocity·G), float32; spread_over
    (mode, ranks): each block's scopes as those ranks hold its tensors."""
    w = HiF8Weights(model, torch.float32, linears)
    w.sd = {k: v.clone().requires_grad_() for k, v in w.sd.items()}
    inp = dict(inputs, latents=inputs["latents"].float().clone().requires_grad_())
    schedule = case.schedule or [FULL] * case.layers
    sparse_parity.Fn = AttentionInputsQuantized() if attention else torch_functional
    plain_block = sparse_parity.block

    def scoped_block(w, i, x, *rest, **kw):
        global SCOPE
        SCOPE = None if spread_over is None else (spread_over[0], spread_over[1], x.shape[1])
        try:
            return plain_block(w, i, x, *rest, **kw)
        finally:
            SCOPE = None
    plain_attention = sparse_parity.attention

    def per_rank_cross_attention(w, prefix, h, kv, *rest, **kw):
        """Under Ulysses each rank's cross-attention is its own: its chunk of queries against
        the whole context, with k and v (and their gradients) of its own."""
        global SCOPE
        if SCOPE is None or SCOPE[0] != "ulysses" or kv is h:
            return plain_attention(w, prefix, h, kv, *rest, **kw)
        scope, SCOPE = SCOPE, None
        try:
            return torch.cat([plain_attention(w, prefix, part, kv) for part in h.chunk(scope[1], 1)], 1)
        finally:
            SCOPE = scope
    sparse_parity.block, sparse_parity.attention = scoped_block, per_rank_cross_attention
    try:
        v = sparse_forward(w, inp, case.freq_dim, schedule, max(case.P, 2))
    finally:
        sparse_parity.Fn, sparse_parity.block, sparse_parity.attention = torch_functional, plain_block, plain_attention
    (v * g.float()).sum().backward()
    grads = {k: t.grad if t.grad is not None else torch.zeros_like(t) for k, t in w.sd.items()}
    grads["latents"] = inp["latents"].grad
    return v.detach(), grads


# ---------------------------------------------------------------------------------------------
# Checks.
# ---------------------------------------------------------------------------------------------

def rule_self_check():
    """hif8() here against hif8_parity's set formulation, on every bf16 value."""
    x = torch.arange(65536, dtype=torch.int32).to(torch.int16).view(torch.bfloat16).float()
    x = x[torch.isfinite(x)]
    want = torch.tensor([reference(float(v)) for v in x], dtype=torch.float32)
    got = hif8(x)
    same = (got == want) | (torch.isnan(got) & torch.isnan(want))
    check(bool(same.all()) and len(VALUES) == 126,
          f"reference: vectorised hif8 equals the set formulation on {len(x)} finite bf16 values "
          f"({int((~same).sum())} differ)")


def cases():
    dense = _dense("h1", 2, 2, 32, 64, (2, 4, 6), (999.0, 3.7), 7, (7, 4), "diffusers", "diffusers")
    original = _dense("h2", 1, 1, 64, 128, (1, 6, 4), (500.5,), 7, (5,), "original", "original")
    sparse = _sparse("h3", 3, 2, 16, (2, 8, 8), (250.0, 700.0), [FULL, TOKEN, GROUP],
                     cli=["--schedule", "full,token,group", "--sparse-ratio", "2"])
    uniform = _sparse("h4", 4, 1, 32, (1, 8, 8), (42.0,), [TOKEN, GROUP, TOKEN, GROUP], "original", "original",
                      keys=dict(skiparse_model_type="uniform", sparse_ratio=2, num_full_blocks=0))
    return [dense, original, sparse, uniform]


def write_quant_case(case, model, inputs, g, directory, keys, nested=False):
    files, g_path = write_grad_case(case, model, inputs, g, directory)
    with open(files.config) as f:
        conf = json.load(f)
    if nested:
        conf["model_config"] = dict(conf.get("model_config", {}), **keys)
    else:
        conf.update(keys)
    with open(files.config, "w") as f:
        json.dump(conf, f, indent=1)
    return files, g_path


def errors(case, got, grads):
    """{name in osp's output: err} for the latents' and every parameter's gradient."""
    errs = {"latents": rel(got["latents"], grads["latents"])}
    for k, ref in grads.items():
        if k != "latents":
            name = k if case.names == "diffusers" else sparse_parity_original(k)
            errs[name] = rel(got[name], ref) if name in got else float("inf")
    return errs


def spread(case, model, inputs, g, ref, linears, attention, spread_over, move_latents):
    """How far the reference moves under 12 perturbations of 1e-6 (additive, standard normal):
    of the latents (flips in the forward and so everywhere), or of G (flips in the backward
    alone, for a case whose velocity matched). Returns (velocity err, {name: err})."""
    gen = torch.Generator().manual_seed(case.seed + 555)
    worst_velocity, worst = 0.0, {}
    for _ in range(12):
        moved, moved_g = inputs, g
        if move_latents:
            moved = dict(inputs, latents=inputs["latents"] + 1e-6 * torch.randn(inputs["latents"].shape, generator=gen))
        else:
            moved_g = g + 1e-6 * torch.randn(g.shape, generator=gen)
        other = reference_run(case, model, moved, moved_g, linears, attention, spread_over)
        worst_velocity = max(worst_velocity, rel(other[0], ref[0]))
        renamed = {(k if case.names == "diffusers" or k == "latents" else sparse_parity_original(k)): v
                   for k, v in other[1].items()}
        for name, e in errors(case, renamed, ref[1]).items():
            worst[name] = max(worst.get(name, 0.0), e)
    return worst_velocity, worst


def judge(label, case, model, inputs, g, got, ref, unquantized_velocity, linears, attention, spread_over):
    errs = errors(case, got, ref[1])
    errs["velocity"] = rel(got["velocity"], ref[0])
    effect = rel(unquantized_velocity, ref[0])
    loose = [k for k, e in errs.items() if e > 1e-4]
    note = "no flip"
    if loose:
        forward_flip = errs["velocity"] > 1e-4
        v_spread, spreads = spread(case, model, inputs, g, ref, linears, attention, spread_over, forward_flip)
        spreads["velocity"] = v_spread
        beyond = [k for k in loose if errs[k] > 3 * spreads.get(k, 0.0)]
        worst_loose = max(loose, key=lambda k: errs[k])
        note = (f"{len(loose)} tensors beyond 1e-4 (velocity {errs['velocity']:.1e}); under 1e-6 perturbations of "
                f"{'the latents' if forward_flip else 'G'} the reference itself moves {worst_loose} by "
                f"{spreads.get(worst_loose, 0):.1e}" +
                (f"; beyond 3x that: {', '.join(f'{k} {errs[k]:.1e} vs {spreads.get(k, 0):.1e}' for k in beyond[:4])}"
                 if beyond else ": a flip"))
        loose = beyond
    worst = max(errs.items(), key=lambda kv: kv[1])
    check(not loose and effect > 1e-2,
          f"{label}: velocity err {errs['velocity']:.1e}, {len(errs) - 1} gradients, worst {worst[1]:.1e} "
          f"({worst[0]}); {note}; HiF8 moves the velocity by {effect:.1e} (> 1e-2)")


def sparse_parity_original(name):
    from dit_parity import original_name
    return original_name(name)


def mpirun(ranks):
    return ["mpirun", "--oversubscribe", "--allow-run-as-root", "-np", str(ranks), "-x", "OMP_NUM_THREADS=1"]


def run_case(osp, work, case, keys, linears, attention, nested=False, spread_over=None):
    """spread_over (mode, ranks): osp runs under mpirun with --sp mode, the reference with the
    ranks' scopes."""
    model, inputs = random_model(case), random_inputs(case)
    g = random_grad(case)
    ref = reference_run(case, model, inputs, g, linears, attention, spread_over)
    plain = reference_run(case, model, inputs, g, False, False)
    tag = ",".join(f"{k}={v}" for k, v in keys.items()) + (" (under model_config)" if nested else "")
    label = f"{case.summary()} [{tag}]"
    if spread_over:
        label += f" on {spread_over[1]} ranks, --sp {spread_over[0]}"
    files, g_path = write_quant_case(case, model, inputs, g, os.path.join(work, case.name), keys, nested)
    argv = grad_argv(osp, case, files, g_path)
    if spread_over:
        argv = mpirun(spread_over[1]) + argv + ["--sp", spread_over[0]]
    r = run_osp(argv)
    if r.returncode != 0:
        check(False, f"{label}: osp dit exit {r.returncode}: {first_line(r.stderr)}")
        return files, g_path, plain
    judge(label, case, model, inputs, g, load_file(files.output), ref, plain[0], linears, attention, spread_over)
    return files, g_path, plain


def command_line_and_errors(osp, case, files, g_path, plain):
    r = run_osp(grad_argv(osp, case, files, g_path) + ["--quant", "none"])
    ok = r.returncode == 0
    err = rel(load_file(files.output)["velocity"], plain[0]) if ok else float("inf")
    check(ok and err <= 1e-4, f"--quant none over a HiF8 config: the unquantized velocity, err {err:.1e} (bound 1e-4)"
          + ("" if ok else f": exit {r.returncode}: {first_line(r.stderr)}"))
    with open(files.config) as f:
        conf = json.load(f)
    conf["quant"] = "int4"
    with open(files.config, "w") as f:
        json.dump(conf, f)
    r = run_osp(grad_argv(osp, case, files, g_path))
    msg = (r.stderr or "").strip()
    check(r.returncode > 0 and "'quant'" in msg and "int4" in msg,
          f"quant \"int4\" refused naming the key and the value: exit {r.returncode}, '{first_line(msg)}'")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("osp")
    ap.add_argument("workdir")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    osp = require_binary(a.osp)
    work = os.path.join(os.path.abspath(a.workdir), "hif8_dit_parity")
    torch.set_num_threads(min(2, torch.get_num_threads()))
    rule_self_check()
    both = {"quant": "hif8", "quant_attn": "hif8", "scale_max_forward": 15.0, "scale_max_backward": 224.0}
    variants = [(both, True, True, False), ({"quant": "hif8"}, True, False, False),
                ({"quant_attn": "hif8"}, False, True, True), (both, True, True, False)]
    last = None
    for i, (case, (keys, linears, attention, nested)) in enumerate(zip(cases(), variants)):
        case.seed = 7000 + 1000 * i + a.seed
        last = (case,) + run_case(osp, work, case, keys, linears, attention, nested)
    command_line_and_errors(osp, *last)
    # Over ranks, each rank's shard is a scope (PAPER.md 7.3).
    ulysses = _dense("u2", 2, 2, 32, 64, (2, 4, 6), (999.0,), 7, (5,), "diffusers", "diffusers")
    ssp = _sparse("s4", 2, 4, 16, (1, 8, 8), (300.0,), [TOKEN, GROUP], "original", "original",
                  keys=dict(skiparse_model_type="uniform", sparse_ratio=2, num_full_blocks=0))
    for i, (case, spread_over) in enumerate([(ulysses, ("ulysses", 2)), (ssp, ("ssp", 4))]):
        case.seed = 20000 + 1000 * i + a.seed
        run_case(osp, work, case, both, True, True, spread_over=spread_over)
    TALLY.finish()


if __name__ == "__main__":
    main()
