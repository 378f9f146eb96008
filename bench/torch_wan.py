#!/usr/bin/env python3
"""PyTorch twin of `osp bench`: the same Wan2.1 / Skiparse-2D work, in plain PyTorch.

Run it in the same device call as `osp bench` so every OSP figure stands next to
PyTorch's on the same card (docs: PAPER.md sections 1, 5 and 12; issue 6).

    python3 bench/torch_wan.py --op all --model 14b --res 720p,768p --json $OUT/torch.json
    python3 bench/torch_wan.py --op attention --repeats 20
    python3 bench/torch_wan.py --tiny --device cpu --op all        # smoke test, no GPU

Ops (each record in --json is one measurement):
  attention  full SDPA [1, heads, N, 128] with the cuDNN and the FlashAttention backends
             forced, and Skiparse SDPA as 4 subsequences [4, heads, N'/4, 128].
             FLOPs = 4 * B * heads * Nq * Nk * D.
  switch     the token<->group Skiparse switch of an [N', C] bf16 tensor as one index
             gather through a precomputed table (PAPER.md 5.3-5.5), versus the same
             rearrange as view/permute/contiguous. Bytes = 2 * N' * C * 2 (read + write).
             The table is checked on the PAPER.md 5.6 worked example before anything runs.
  block      one Wan block (diffusers numerics: bf16 residual, fp32 LayerNorm/modulation,
             RMSNorm across heads, interleaved RoPE in fp32) on the natural sequence (full)
             and on the token-wise permuted batch [4, N'/4, C] (Skiparse, no key mask).
  forward    the whole block stack (40 blocks for 14B) for a schedule: `full` or `dual_end`
             (8 full blocks; pad+permute once entering the sparse span, one index gather per
             switch, unpermute+crop leaving). Only the blocks are timed, as in PAPER.md 12.

Timing (METHOD.md): CUDA events around the region, warm-up runs first, median of
--repeats runs, random inputs and weights (never zeros). On the CPU a host clock is used.
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

try:  # torch >= 2.3
    from torch.nn.attention import SDPBackend, sdpa_kernel
except ImportError:  # pragma: no cover - very old torch
    SDPBackend = None
    sdpa_kernel = None

P = 2  # Skiparse stride; P*P = 4 subsequences (PAPER.md 5)
S = P * P

# ----------------------------------------------------------------------------------------
# Configurations
# ----------------------------------------------------------------------------------------

MODELS = {  # PAPER.md 1.1
    "14b": dict(dim=5120, heads=40, ffn=13824, layers=40, full_blocks=8, text_len=512),
    "1.3b": dict(dim=1536, heads=12, ffn=8960, layers=30, full_blocks=8, text_len=512),
    # --tiny: same structure, small enough for a CPU smoke test (head_dim stays 128).
    "tiny": dict(dim=256, heads=2, ffn=512, layers=8, full_blocks=4, text_len=16),
}
HEAD_DIM = 128
EPS = 1e-6

RESOLUTIONS = {  # token grid (T, H, W) after the (1,2,2) patch embedding; PAPER.md 1.2, 5.2
    "480p": (21, 30, 52),  # latent 21x60x104 -> 32,760 tokens; padded to 21x32x52 = 34,944
    "720p": (21, 45, 80),  # latent 21x90x160 -> 75,600 tokens; padded to 21x48x80 = 80,640
    "768p": (21, 48, 80),  # 80,640 tokens, no padding
    "tiny": (2, 6, 10),  # 120 tokens; padded to 2x8x12 = 192 (exercises the pad and crop)
}


def padded_grid(grid):
    """PAPER.md 5.2: pad H and W up to multiples of P*P = 4."""
    t, h, w = grid
    return t, h + (-h) % S, w + (-w) % S


# ----------------------------------------------------------------------------------------
# Skiparse layout maps (PAPER.md 5.3-5.5) and the gather tables built from them
# ----------------------------------------------------------------------------------------

def token_row(t, y, x, hp, wp):
    """Row of padded natural token (t, y, x) in the flattened token-wise layout (B = 1).

    s = (y mod P)*P + (x mod P); position = (t*H'/P + y//P)*W'/P + x//P  (PAPER.md 5.3).
    The flattened row is s * (N'/4) + position, i.e. the [4, N'/4, C] batch viewed as 2-D.
    """
    s = (y % P) * P + (x % P)
    pos = (t * (hp // P) + y // P) * (wp // P) + x // P
    return s, pos


def group_row(t, y, x, hp, wp):
    """Row of padded natural token (t, y, x) in the group-wise layout (PAPER.md 5.4).

    y = hh*P^2 + p1*P + p2, x = ww*P^2 + q1*P + q2; s = p1*P + q1;
    position = (((t*H'/P^2 + hh)*P + p2)*W'/P^2 + ww)*P + q2.
    """
    hh, p1, p2 = y // S, (y // P) % P, y % P
    ww, q1, q2 = x // S, (x // P) % P, x % P
    s = p1 * P + q1
    pos = (((t * (hp // S) + hh) * P + p2) * (wp // S) + ww) * P + q2
    return s, pos


class SkiparseTables:
    """Index tables for one grid. Every layout change is one index_select (or, entering the
    sparse span, one index_copy_ into a zero-padded buffer).

    Natural layout: unpadded rows n = (t*H + y)*W + x, N rows.
    Token / group layout: [4, N'/4] subsequences flattened to N' rows (padded grid).
    """

    def __init__(self, grid, device):
        self.grid = grid
        self.pgrid = padded_grid(grid)
        t_, h_, w_ = grid
        tp, hp, wp = self.pgrid
        self.n = t_ * h_ * w_
        self.n_pad = tp * hp * wp
        self.sub = self.n_pad // S
        # (t, y, x) of every padded natural token, natural row-major order.
        t, y, x = torch.meshgrid(torch.arange(tp), torch.arange(hp), torch.arange(wp), indexing="ij")
        t, y, x = t.reshape(-1), y.reshape(-1), x.reshape(-1)
        s, pos = token_row(t, y, x, hp, wp)
        tok_of = s * self.sub + pos  # padded-natural index -> token-wise row
        s, pos = group_row(t, y, x, hp, wp)
        grp_of = s * self.sub + pos  # padded-natural index -> group-wise row
        valid = (y < h_) & (x < w_)  # real (unpadded) tokens
        nat_of = torch.full((self.n_pad,), -1, dtype=torch.long)  # padded-natural -> natural row
        nat_of[valid] = torch.arange(self.n)
        self.valid_pad = valid

        # Gather tables: out = x.index_select(0, table).
        nat_of_tok = torch.empty_like(tok_of)
        nat_of_tok[tok_of] = torch.arange(self.n_pad)  # token row -> padded-natural index
        nat_of_grp = torch.empty_like(grp_of)
        nat_of_grp[grp_of] = torch.arange(self.n_pad)  # group row -> padded-natural index
        self.switch = tok_of[nat_of_grp]  # group row r <- token row switch[r]; self-inverse
        self.tok_to_nat = tok_of[valid]  # natural row <- token row (unpermute + crop)
        self.grp_to_nat = grp_of[valid]  # natural row <- group row (unpermute + crop)
        # Scatter tables for entering the span (pad + permute): out[dst[n]] = x[n].
        self.nat_to_tok = tok_of[valid]
        self.nat_to_grp = grp_of[valid]
        # Padded-natural index for every layout row (used for RoPE tables and checks).
        self.pad_of = {"token": nat_of_tok, "group": nat_of_grp}
        self.nat_of_pad = nat_of
        for name in ("switch", "tok_to_nat", "grp_to_nat", "nat_to_tok", "nat_to_grp"):
            setattr(self, name, getattr(self, name).to(device))

    # -- layout changes (what the forward does between blocks) ---------------------------
    def enter(self, x_nat, layout):
        """natural [N, C] -> token/group [N', C]: zero pad + permute as one scatter."""
        dst = self.nat_to_tok if layout == "token" else self.nat_to_grp
        out = x_nat.new_zeros(self.n_pad, x_nat.shape[-1])
        return out.index_copy_(0, dst, x_nat)

    def switch_layout(self, x):
        """token <-> group [N', C]: one index gather (the table is its own inverse)."""
        return x.index_select(0, self.switch)

    def leave(self, x, layout):
        """token/group [N', C] -> natural [N, C]: unpermute + crop as one gather."""
        return x.index_select(0, self.tok_to_nat if layout == "token" else self.grp_to_nat)

    def change(self, x, src, dst):
        """Any layout change between 'natural', 'token' and 'group'."""
        if src == dst:
            return x
        if src == "natural":
            return self.enter(x, dst)
        if dst == "natural":
            return self.leave(x, src)
        return self.switch_layout(x)


# -- the same rearranges as view/permute (PAPER.md's einops patterns), for checks and timing

def permute_token(x, pgrid):
    """`b (t h p w q) c -> (p q b) (t h w) c` on a padded natural [N', C] tensor (B = 1)."""
    t, hp, wp = pgrid
    c = x.shape[-1]
    return x.view(t, hp // P, P, wp // P, P, c).permute(2, 4, 0, 1, 3, 5).reshape(-1, c)


def permute_group(x, pgrid):
    """`b (g p1 p2 w q1 q2) c -> (p1 q1 b) (g p2 w q2) c` on padded natural [N', C] (B = 1)."""
    t, hp, wp = pgrid
    c = x.shape[-1]
    v = x.view(t * hp // S, P, P, wp // S, P, P, c)  # g p1 p2 w q1 q2 c
    return v.permute(1, 4, 0, 2, 3, 5, 6).reshape(-1, c)


def permute_switch(x, pgrid):
    """`(p2 q2 b) (g p1 w q1) c -> (p1 q1 b) (g p2 w q2) c`, the switch as view/permute."""
    t, hp, wp = pgrid
    c = x.shape[-1]
    v = x.view(P, P, t * hp // S, P, wp // S, P, c)  # p2 q2 g p1 w q1 c
    return v.permute(3, 5, 2, 0, 4, 1, 6).reshape(-1, c)


def check_tables_worked_example():
    """PAPER.md 5.6 (T = 1, H = W = 4, P = 2), plus the 8x8 order. Raises on any mismatch."""
    tb = SkiparseTables((1, 4, 4), "cpu")
    tok = [[0, 2, 8, 10], [1, 3, 9, 11], [4, 6, 12, 14], [5, 7, 13, 15]]
    grp = [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]
    assert tb.pad_of["token"].view(4, 4).tolist() == tok, "token-wise layout differs from PAPER 5.6"
    assert tb.pad_of["group"].view(4, 4).tolist() == grp, "group-wise layout differs from PAPER 5.6"
    # Switch: token subsequence 0, positions 0..3 -> position 0 of group subsequences 0..3.
    assert tb.switch.view(4, 4)[:, 0].tolist() == [0, 1, 2, 3], "switch differs from PAPER 5.6"
    # 8x8: group subsequence 0 is row-major over rows {0,1,4,5} x columns {0,1,4,5}.
    tb8 = SkiparseTables((1, 8, 8), "cpu")
    want = [8 * r + c for r in (0, 1, 4, 5) for c in (0, 1, 4, 5)]
    assert tb8.pad_of["group"].view(4, 16)[0].tolist() == want, "8x8 group order differs"


def check_tables(tb, device, channels=8):
    """Layout tables of one grid against the einops-style view/permute, on random data."""
    x = torch.randn(tb.n, channels, device=device)  # natural, unpadded
    xp = torch.zeros(tb.pgrid + (channels,), device=device)  # zero padded natural grid
    t, h, w = tb.grid
    xp[:, :h, :w] = x.view(t, h, w, channels)
    xp = xp.view(-1, channels)
    tok, grp = tb.enter(x, "token"), tb.enter(x, "group")
    assert torch.equal(tok, permute_token(xp, tb.pgrid)), "enter(token) != rearrange"
    assert torch.equal(grp, permute_group(xp, tb.pgrid)), "enter(group) != rearrange"
    assert torch.equal(tb.switch_layout(tok), grp), "switch(token) != group"
    assert torch.equal(tb.switch_layout(grp), tok), "switch is not self-inverse"
    assert torch.equal(permute_switch(tok, tb.pgrid), grp), "view/permute switch != group"
    assert torch.equal(tb.leave(tok, "token"), x) and torch.equal(tb.leave(grp, "group"), x)


def check_schedule_plumbing(tb, schedule, device, channels=4):
    """Run the forward's layout changes with identity blocks: natural order must come back."""
    x = torch.randn(tb.n, channels, device=device)
    y, layout = x, "natural"
    for kind in schedule:
        want = "natural" if kind == "full" else kind
        y, layout = tb.change(y, layout, want), want
    y = tb.change(y, layout, "natural")
    assert torch.equal(y, x), "schedule layout changes do not return natural order"


# ----------------------------------------------------------------------------------------
# Schedules (PAPER.md 5.9)
# ----------------------------------------------------------------------------------------

def make_schedule(name, layers, full_blocks):
    """Per block: 'full', 'token' or 'group'."""
    if name == "full":
        return ["full"] * layers
    if name == "dual_end":
        assert layers % 2 == 0 and full_blocks % 4 == 0 and full_blocks <= layers // 2
        half = full_blocks // 2
        return ["full" if (i < half or i >= layers - half) else ("token" if i % 2 == 0 else "group")
                for i in range(layers)]
    raise ValueError(f"unknown schedule {name}")


# ----------------------------------------------------------------------------------------
# 3D RoPE tables (PAPER.md 1.6, 5.8)
# ----------------------------------------------------------------------------------------

def rope_angles(grid):
    """Angles [N, 64] (fp64) for the natural grid: t 22 pairs, h 21, w 21, interleaved pairs."""
    t_, h_, w_ = grid
    pairs = HEAD_DIM // 2
    nh = nw = pairs // 3
    nt = pairs - nh - nw

    def freqs(n):  # omega_j = 10000^(-2j / (2n))
        return 10000.0 ** (-torch.arange(n, dtype=torch.float64) * 2 / (2 * n))

    t, y, x = torch.meshgrid(torch.arange(t_), torch.arange(h_), torch.arange(w_), indexing="ij")
    t, y, x = (v.reshape(-1, 1).double() for v in (t, y, x))
    return torch.cat([t * freqs(nt), y * freqs(nh), x * freqs(nw)], dim=1)


def rope_tables(grid, tb, device):
    """Rotations cos + i*sin, complex64 [rows, 1, 64], for each layout; padded tokens get
    angle 0 (PAPER.md 5.8)."""
    ang = rope_angles(grid)
    ang_pad = torch.zeros(tb.n_pad, ang.shape[1], dtype=torch.float64)
    ang_pad[tb.valid_pad] = ang
    out = {}
    for layout, a in (("natural", ang), ("token", ang_pad[tb.pad_of["token"]]),
                      ("group", ang_pad[tb.pad_of["group"]])):
        out[layout] = torch.polar(torch.ones_like(a), a).to(torch.complex64).unsqueeze(1).to(device)
    # Every real token keeps its true angle in both sparse layouts (never renumbered).
    for layout in ("token", "group"):
        back = torch.view_as_real(out[layout]).view(tb.n_pad, -1)
        want = torch.view_as_real(out["natural"]).view(tb.n, -1)
        assert torch.equal(tb.leave(back, layout), want), f"RoPE table wrong in {layout}"
    return out


def apply_rope(x, rot):
    """Interleaved RoPE in fp32 on x [B, L, heads, 128]; rot = cos + i*sin [B*L, 1, 64].

    Pair (x[2i], x[2i+1]) as the complex x[2i] + i*x[2i+1]; one complex64 product gives
    out[2i] = x[2i]cos - x[2i+1]sin, out[2i+1] = x[2i]sin + x[2i+1]cos (PAPER.md 1.6),
    in fp32, rounded once to bf16 (check_numerics compares it with the real-valued form)."""
    b, l, h, d = x.shape
    xc = torch.view_as_complex(x.float().view(b, l, h, d // 2, 2))
    return torch.view_as_real(xc * rot.view(b, l, 1, d // 2)).view(b, l, h, d).to(x.dtype)


def apply_rope_reference(x, rot):
    """The real-valued interleaved form, for check_numerics."""
    b, l, h, d = x.shape
    xf = x.float().view(b, l, h, d // 2, 2)
    cos, sin = rot.real.view(b, l, 1, d // 2), rot.imag.view(b, l, 1, d // 2)
    x1, x2 = xf[..., 0], xf[..., 1]
    return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1).view(b, l, h, d).to(x.dtype)


# ----------------------------------------------------------------------------------------
# One Wan block (PAPER.md 1.5), functional, diffusers numerics
# ----------------------------------------------------------------------------------------

def make_block_weights(cfg, device, dtype, gen):
    """Random weights for one block. Linear weights [out, in], std 1/sqrt(in) so that 40
    blocks of random weights keep the bf16 residual finite. Norm weights near 1."""
    c, f = cfg["dim"], cfg["ffn"]

    def lin(o, i):
        w = torch.randn(o, i, generator=gen, device=device, dtype=torch.float32) / math.sqrt(i)
        b = torch.randn(o, generator=gen, device=device, dtype=torch.float32) * 0.02
        return w.to(dtype), b.to(dtype)

    def norm_w(n):
        return (1 + 0.1 * torch.randn(n, generator=gen, device=device)).to(dtype)

    w = {}
    for p in ("sa", "ca"):
        for m in ("q", "k", "v", "o"):
            w[f"{p}_{m}"] = lin(c, c)
        w[f"{p}_norm_q"], w[f"{p}_norm_k"] = norm_w(c), norm_w(c)
    w["ffn_0"], w["ffn_2"] = lin(f, c), lin(c, f)
    w["norm3_w"], w["norm3_b"] = norm_w(c).float(), (0.02 * torch.randn(c, generator=gen, device=device))
    # modulation table [1, 6, C] (fp32 in diffusers: scale_shift_table is kept in fp32).
    w["modulation"] = 0.1 * torch.randn(1, 6, c, generator=gen, device=device)
    return w


# The element-wise helpers below keep diffusers' numerics (fp32 math, one rounding to bf16)
# but use PyTorch's fused kernels instead of chains of .float()/mul/add/.to() passes, so that
# the PyTorch figure is PyTorch's best plain-eager number. check_numerics() compares each
# with the literal formula (the *_reference functions) before any timing.

def rms_norm_across_heads(x, weight):
    """RMSNorm over the full C (all heads together): x*rsqrt(mean x^2 + eps) in fp32 (fused
    kernel), cast back, times weight."""
    return F.rms_norm(x, (x.shape[-1],), eps=EPS) * weight


def rms_norm_reference(x, weight):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + EPS)).to(x.dtype) * weight


def modulated_norm(x, scale, shift):
    """LN(x)*(1 + scale) + shift in fp32, rounded once: fp32 LayerNorm, then the modulation
    as one fused addcmul writing bf16 (CUDA layer_norm takes no fp32 affine on bf16 input)."""
    ln = F.layer_norm(x.float(), (x.shape[-1],), eps=EPS)
    if torch.is_grad_enabled():  # autograd takes no out=: the same math, then one cast
        return torch.addcmul(shift, ln, 1 + scale).to(x.dtype)
    return torch.addcmul(shift, ln, 1 + scale, out=torch.empty_like(x))


def modulated_norm_reference(x, scale, shift):
    return (F.layer_norm(x.float(), (x.shape[-1],), eps=EPS) * (1 + scale) + shift).to(x.dtype)


def gated_add(x, y, gate):
    """x + y*gate in fp32 (gate fp32), rounded once to x's dtype: one fused pass."""
    if torch.is_grad_enabled():  # autograd takes no out=: the same math, then one cast
        return torch.addcmul(x.float(), y, gate).to(x.dtype)
    return torch.addcmul(x, y, gate, out=torch.empty_like(x))


def gated_add_reference(x, y, gate):
    return (x.float() + y.float() * gate).to(x.dtype)


def sdpa(q, k, v, backend):
    """q/k/v [B, L, heads, 128] -> [B, L, heads*128], with the SDPA backend forced."""
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, heads, L, D], strided view
    if backend == "default" or sdpa_kernel is None:
        o = F.scaled_dot_product_attention(q, k, v)
    else:
        with sdpa_kernel(BACKENDS[backend]):
            o = F.scaled_dot_product_attention(q, k, v)
    b, h, l, d = o.shape
    return o.transpose(1, 2).reshape(b, l, h * d)


def self_attention(h, w, heads, rot, backend):
    """h [B, L, C] (already normed+modulated): q/k/v, RMSNorm across heads, RoPE, SDPA, o."""
    b, l, c = h.shape
    q = rms_norm_across_heads(F.linear(h, *w["sa_q"]), w["sa_norm_q"]).view(b, l, heads, -1)
    k = rms_norm_across_heads(F.linear(h, *w["sa_k"]), w["sa_norm_k"]).view(b, l, heads, -1)
    v = F.linear(h, *w["sa_v"]).view(b, l, heads, -1)
    q, k = apply_rope(q, rot), apply_rope(k, rot)
    return F.linear(sdpa(q, k, v, backend), *w["sa_o"])


def cross_attention(h, ctx, w, heads, backend):
    """h [B, L, C] attends the shared context ctx [1, 512, C] (no RoPE, no mask).

    Cross-attention is per query and the context is the same for every subsequence, so the
    Skiparse batch [4, N'/4, C] is attended as one [1, N', C] sequence: exactly the result of
    repeating ctx 4 times, without the copies.
    """
    b, l, c = h.shape
    hq = h.reshape(1, b * l, c)
    q = rms_norm_across_heads(F.linear(hq, *w["ca_q"]), w["ca_norm_q"]).view(1, b * l, heads, -1)
    k = rms_norm_across_heads(F.linear(ctx, *w["ca_k"]), w["ca_norm_k"]).view(1, -1, heads, HEAD_DIM)
    v = F.linear(ctx, *w["ca_v"]).view(1, -1, heads, HEAD_DIM)
    return F.linear(sdpa(q, k, v, backend), *w["ca_o"]).view(b, l, c)


def wan_block(x, ctx, e0, w, heads, rot, backend):
    """One Wan block, the same for full and Skiparse blocks (only x's shape differs):
    x [B, L, C] bf16 (B = 1 natural, B = 4 Skiparse), ctx [1, 512, C], e0 [1, 6, C] fp32,
    rot the RoPE table of x's layout. Returns the new bf16 residual (bf16 as in diffusers;
    every norm, modulation and gated add is fp32 math rounded once)."""
    c = x.shape[-1]
    mod = (w["modulation"] + e0).unsqueeze(2)  # [1, 6, 1, C] fp32, shared by the batch
    shift_msa, scale_msa, gate_msa, shift_ffn, scale_ffn, gate_ffn = mod.unbind(1)
    # Self-attention with modulation and gated residual.
    a = self_attention(modulated_norm(x, scale_msa, shift_msa), w, heads, rot, backend)
    x = gated_add(x, a, gate_msa)
    # Cross-attention: affine LayerNorm (fp32 weight/bias), no modulation, no gate.
    h = F.layer_norm(x.float(), (c,), w["norm3_w"], w["norm3_b"], eps=EPS).to(x.dtype)
    x = x + cross_attention(h, ctx, w, heads, backend)
    # FFN: Linear -> GELU(tanh) -> Linear, modulated and gated.
    h = modulated_norm(x, scale_ffn, shift_ffn)
    f = F.linear(F.gelu(F.linear(h, *w["ffn_0"]), approximate="tanh"), *w["ffn_2"])
    return gated_add(x, f, gate_ffn)


def check_numerics(device, dtype, c=256, rows=96):
    """The fused element-wise helpers against their literal fp32 formulas, on random data.
    bf16 results may differ by rounding of the last bit (fma vs mul+add): tolerance 1e-2
    relative norm, which is far above one ulp summed and far below any real bug."""
    g = lambda *s: torch.randn(*s, device=device)
    x, y = g(1, rows, c).to(dtype), g(1, rows, c).to(dtype)
    scale, shift, gate, wt = 0.1 * g(1, 1, c), 0.1 * g(1, 1, c), g(1, 1, c), (1 + 0.1 * g(c)).to(dtype)
    rot = torch.polar(torch.ones(rows, 1, HEAD_DIM // 2, device=device), 3 * g(rows, 1, HEAD_DIM // 2))
    xh = g(1, rows, 2, HEAD_DIM).to(dtype)
    pairs = {
        "rms_norm": (rms_norm_across_heads(x, wt), rms_norm_reference(x, wt)),
        "modulated_norm": (modulated_norm(x, scale, shift), modulated_norm_reference(x, scale, shift)),
        "gated_add": (gated_add(x, y, gate), gated_add_reference(x, y, gate)),
        "rope": (apply_rope(xh, rot), apply_rope_reference(xh, rot)),
    }
    for name, (got, ref) in pairs.items():
        err = ((got.float() - ref.float()).norm() / ref.float().norm()).item()
        assert got.dtype == ref.dtype and err < 1e-2, f"{name}: rel err {err} ({got.dtype})"


def block_flops(cfg, rows, sub_len, n_sub, text_len):
    """FLOPs of one block on `rows` tokens split into n_sub sequences of sub_len tokens."""
    c, f, heads = cfg["dim"], cfg["ffn"], cfg["heads"]
    lin = 2 * rows * c * (4 * c + 2 * c + 2 * f) + 2 * text_len * c * 2 * c  # sa qkvo, ca q o, ffn; ca k v
    attn = 4 * n_sub * heads * sub_len * sub_len * HEAD_DIM + 4 * heads * rows * text_len * HEAD_DIM
    return lin + attn


# ----------------------------------------------------------------------------------------
# Timing and reporting
# ----------------------------------------------------------------------------------------

BACKENDS = {}
if SDPBackend is not None:
    BACKENDS = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
                "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}


def timeit(fn, device, warmup, repeats):
    """Median seconds of fn() over `repeats` runs after `warmup` runs (CUDA events on GPU)."""
    for _ in range(warmup):
        fn()
    times = []
    if device.type == "cuda":
        torch.cuda.synchronize()
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
    else:
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def profile(fn, device, title, rows=25):
    """Print the kernels of one fn() call by device time (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile as tprofile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with tprofile(activities=acts) as prof:
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
    key = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    print(f"---- profile: {title}")
    print(prof.key_averages().table(sort_by=key, row_limit=rows, max_name_column_width=60))


class Reporter:
    """Collects one record per measurement; prints a row per record and a table at the end."""

    def __init__(self, args, device):
        self.args, self.device, self.records = args, device, []
        if device.type == "cuda":
            self.device_name = torch.cuda.get_device_name(device)
        else:
            self.device_name = "cpu"
        self.cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None

    def measure(self, op, variant, fn, *, res=None, schedule=None, shape=None, flops=None,
                nbytes=None, note=None, repeats=None):
        dev = self.device
        if dev.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(dev)
        reps = repeats or self.args.repeats
        sec = timeit(fn, dev, self.args.warmup, reps)
        rec = dict(op=op, variant=variant, model=self.args.model_name, res=res, schedule=schedule,
                   seconds=sec, shape=shape, device=self.device_name, torch=torch.__version__,
                   cudnn=self.cudnn, dtype=str(self.args.torch_dtype).replace("torch.", ""),
                   repeats=reps, compile=self.args.compile)
        if flops is not None:
            rec["tflops"] = flops / sec / 1e12
        if nbytes is not None:
            rec["tbps"] = nbytes / sec / 1e12
        if dev.type == "cuda":
            rec["max_memory_allocated"] = torch.cuda.max_memory_allocated(dev)
        if note:
            rec["note"] = note
        self.records.append(rec)
        print(f"  {self.row(rec)}", flush=True)
        return rec

    @staticmethod
    def row(r):
        rate = (f"{r['tflops']:8.1f} TFLOP/s" if "tflops" in r else
                f"{r['tbps']:8.3f} TB/s   " if "tbps" in r else " " * 16)
        mem = f"{r['max_memory_allocated'] / 2**30:7.2f} GiB" if "max_memory_allocated" in r else " " * 11
        return (f"{r['op']:<10}{r['variant']:<24}{str(r['res'] or ''):<6}{str(r['schedule'] or ''):<9}"
                f"{r['seconds'] * 1e3:12.3f} ms {rate} {mem}  {r['shape']}")

    def finish(self):
        print(f"\n== torch_wan summary: {self.device_name}, torch {torch.__version__}, cudnn {self.cudnn}, "
              f"model {self.args.model_name}, {self.args.torch_dtype}")
        print(f"{'op':<10}{'variant':<24}{'res':<6}{'schedule':<9}{'median':>15} {'rate':<16} "
              f"{'peak mem':>11}  shape")
        for r in self.records:
            print(self.row(r))
        if self.args.json:
            with open(self.args.json, "w") as fh:
                json.dump(self.records, fh, indent=1)
            print(f"wrote {len(self.records)} records to {self.args.json}")


# ----------------------------------------------------------------------------------------
# The ops
# ----------------------------------------------------------------------------------------

def randn(shape, device, dtype, scale=1.0):
    return (torch.randn(shape, device=device, dtype=torch.float32) * scale).to(dtype)


def bench_attention(args, rep, cfg, device):
    """SDPA forward: full [1, heads, N, 128] and Skiparse [4, heads, N'/4, 128]."""
    heads, dt = cfg["heads"], args.torch_dtype
    for res in args.res_list:
        grid = RESOLUTIONS[res]
        n = grid[0] * grid[1] * grid[2]
        sub = math.prod(padded_grid(grid)) // S
        for name, b, l in (("full", 1, n), ("skiparse", S, sub)):
            q, k, v = (randn((b, heads, l, HEAD_DIM), device, dt) for _ in range(3))
            flops = 4 * b * heads * l * l * HEAD_DIM
            for backend in args.attn_backends:
                def fn():
                    if backend == "default":
                        return F.scaled_dot_product_attention(q, k, v)
                    with sdpa_kernel(BACKENDS[backend]):
                        return F.scaled_dot_product_attention(q, k, v)
                try:
                    rep.measure("attention", f"{name}/{backend}", fn, res=res, flops=flops,
                                shape=[b, heads, l, HEAD_DIM])
                except RuntimeError as e:  # a backend that does not support the shape/device
                    print(f"  attention {name}/{backend}: not available ({str(e).splitlines()[0]})")
            del q, k, v


def bench_switch(args, rep, cfg, device):
    """Token<->group switch of [N', C]: index gather via the table vs view/permute."""
    c, dt = cfg["dim"], args.torch_dtype
    for res in args.res_list:
        tb = SkiparseTables(RESOLUTIONS[res], device)
        check_tables(tb, device)  # at the benchmark grid, on the device
        x = randn((tb.n_pad, c), device, dt)
        idx = tb.switch
        nbytes = 2 * tb.n_pad * c * x.element_size()
        # Check once more on the timed tensor itself: gather == view/permute.
        assert torch.equal(x.index_select(0, idx), permute_switch(x, tb.pgrid))
        out = torch.empty_like(x)
        variants = {
            "gather/index_select": lambda: torch.index_select(x, 0, idx, out=out),
            "gather/x[idx]": lambda: x[idx],
            "view_permute": lambda: permute_switch(x, tb.pgrid),
            "copy (ceiling)": lambda: out.copy_(x),
        }
        for name, fn in variants.items():
            rep.measure("switch", name, fn, res=res, nbytes=nbytes, shape=[tb.n_pad, c])
        del x, out


class Model:
    """Weights for the stack (one shared block if 40 do not fit), context and e0."""

    def __init__(self, args, cfg, device):
        self.cfg, dt = cfg, args.torch_dtype
        gen = torch.Generator(device=device).manual_seed(args.seed)
        self.n_weights = cfg["layers"] if self.all_fit(args, cfg, device) else 1
        self.blocks = [make_block_weights(cfg, device, dt, gen) for _ in range(self.n_weights)]
        self.note = None
        if self.n_weights == 1 and cfg["layers"] > 1:
            self.note = (f"one block's weights reused for all {cfg['layers']} blocks "
                         "(40 distinct blocks do not fit or --shared-weights; timing is the same)")
        self.ctx = randn((1, cfg["text_len"], cfg["dim"]), device, dt)
        self.e0 = 0.1 * torch.randn(1, 6, cfg["dim"], device=device)
        self.fn = torch.compile(wan_block, dynamic=False) if args.compile else wan_block

    @staticmethod
    def all_fit(args, cfg, device):
        if args.shared_weights or args.op not in ("forward", "all"):
            return False
        c, f = cfg["dim"], cfg["ffn"]
        per_block = (8 * c * c + 2 * c * f) * args.torch_dtype.itemsize
        need = per_block * cfg["layers"]
        if device.type != "cuda":
            return True
        free, _ = torch.cuda.mem_get_info(device)
        return need + args.headroom_gb * 2**30 < free

    def block(self, i, x, rot, backend):
        return self.fn(x, self.ctx, self.e0, self.blocks[i % self.n_weights], self.cfg["heads"],
                       rot, backend)


def block_cases(args, device):
    """The block shapes timed, per resolution: full on [1, N, C], Skiparse on the token-wise
    batch [4, N'/4, C]; yields (res, name, layout, rows, batch, rope tables of the layout)."""
    for res in args.res_list:
        grid = RESOLUTIONS[res]
        tb = SkiparseTables(grid, device)
        rope = rope_tables(grid, tb, device)
        for name, layout in (("full", "natural"), ("skiparse-token", "token")):
            rows = tb.n if layout == "natural" else tb.n_pad
            yield res, name, layout, rows, 1 if layout == "natural" else S, rope[layout]


def bench_block(args, rep, cfg, device, model):
    """One block: full on [1, N, C]; Skiparse on the token-wise batch [4, N'/4, C]."""
    c = cfg["dim"]
    for res, name, layout, rows, b, rot in block_cases(args, device):
        x = randn((b, rows // b, c), device, args.torch_dtype)
        flops = block_flops(cfg, rows, rows // b, b, cfg["text_len"])
        note = None if layout == "natural" else "no key mask on padded tokens (PAPER.md 12 caveat)"
        for backend in args.block_backends:
            def fn():
                return model.block(0, x, rot, backend)
            rep.measure("block", f"{name}/{backend}", fn, res=res, flops=flops,
                        shape=list(x.shape), note=note)
            if args.profile:
                profile(fn, device, f"block {name}/{backend} {res}")
        del x


def bench_train_block(args, rep, cfg, device, model):
    """One block's forward + backward with autograd (the training step's work for a block): the
    gradient of sum(out * g) for the input and every weight; full and Skiparse token-wise. Model
    FLOPs = 3x the forward's (the usual MFU convention)."""
    c = cfg["dim"]
    def leaf(v):
        return tuple(leaf(t) for t in v) if isinstance(v, tuple) else v.detach().requires_grad_(True)

    weights = {k: leaf(v) for k, v in model.blocks[0].items()}
    leaves = [t for v in weights.values() for t in (v if isinstance(v, tuple) else (v,))]
    for res, name, layout, rows, b, rot in block_cases(args, device):
        x = randn((b, rows // b, c), device, args.torch_dtype).requires_grad_(True)
        g = randn((b, rows // b, c), device, args.torch_dtype)
        flops = 3 * block_flops(cfg, rows, rows // b, b, cfg["text_len"])
        for backend in args.block_backends:
            def fn():
                out = model.fn(x, model.ctx, model.e0, weights, cfg["heads"], rot, backend)
                out.backward(g)
                x.grad = None
                for w in leaves:
                    w.grad = None
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            rep.measure("train-block", f"{name}/{backend}", fn, res=res, flops=flops,
                        shape=list(x.shape), note="forward + backward, autograd")
            if device.type == "cuda":
                print(f"  peak memory {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB")
        del x, g


def stack_forward(model, tb, rope, schedule, x_nat, backend):
    """The block stack for a schedule on x_nat [N, C]: layout changes between blocks
    (pad+permute entering the sparse span, one gather per switch, unpermute+crop leaving)."""
    x, layout = x_nat, "natural"
    for i, kind in enumerate(schedule):
        want = "natural" if kind == "full" else kind
        x, layout = tb.change(x, layout, want), want
        b = 1 if layout == "natural" else S
        x = model.block(i, x.view(b, -1, x.shape[-1]), rope[layout], backend).view(-1, x.shape[-1])
    return tb.change(x, layout, "natural")


def bench_forward(args, rep, cfg, device, model):
    """The whole stack (blocks only) for each schedule and resolution."""
    c = cfg["dim"]
    for res in args.res_list:
        grid = RESOLUTIONS[res]
        tb = SkiparseTables(grid, device)
        rope = rope_tables(grid, tb, device)
        x = randn((tb.n, c), device, args.torch_dtype)
        for sched_name in args.schedules:
            schedule = make_schedule(sched_name, cfg["layers"], cfg["full_blocks"])
            check_schedule_plumbing(tb, schedule, device)
            flops = sum(block_flops(cfg, tb.n, tb.n, 1, cfg["text_len"]) if k == "full" else
                        block_flops(cfg, tb.n_pad, tb.sub, S, cfg["text_len"]) for k in schedule)
            notes = [model.note] if model.note else []
            if sched_name != "full":
                notes.append("sparse attention without key mask on padded tokens (PAPER.md 12 caveat)")
            for backend in args.forward_backends:
                out = stack_forward(model, tb, rope, schedule, x, backend)
                finite = bool(torch.isfinite(out).all())
                if not finite:
                    notes.append("output not finite (random weights)")
                rep.measure("forward", f"{len(schedule)} blocks/{backend}",
                            lambda: stack_forward(model, tb, rope, schedule, x, backend),
                            res=res, schedule=sched_name, flops=flops, shape=[tb.n, c],
                            note="; ".join(notes) or None, repeats=args.forward_repeats)
        del x


# ----------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------

def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--op", default="all", choices=["attention", "switch", "block", "forward", "train-block", "all"])
    ap.add_argument("--model", default="14b", choices=["14b", "1.3b"])
    ap.add_argument("--res", default="720p", help="comma list of 720p, 768p (default 720p)")
    ap.add_argument("--schedule", default="full,dual_end", help="comma list of full, dual_end")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    ap.add_argument("--tiny", action="store_true", help="tiny model and grid (CPU smoke test)")
    ap.add_argument("--repeats", type=int, default=10, help="timed runs per op (median)")
    ap.add_argument("--forward-repeats", type=int, default=3, help="timed runs of a whole forward")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--attn-backends", default=None,
                    help="SDPA backends for --op attention (default cuda: cudnn,flash; cpu: default)")
    ap.add_argument("--block-backends", default=None, help="for --op block (default: as attention)")
    ap.add_argument("--forward-backends", default=None, help="for --op forward (default cuda: cudnn)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the block function")
    ap.add_argument("--profile", action="store_true", help="print a torch.profiler table per block")
    ap.add_argument("--shared-weights", action="store_true", help="reuse one block's weights for all")
    ap.add_argument("--headroom-gb", type=float, default=24.0,
                    help="GPU memory kept free for activations when deciding whether 40 blocks fit")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads (default: torch's; --tiny --device cpu uses 1, since tiny ops "
                         "are dominated by thread-pool wake-ups)")
    ap.add_argument("--json", default=None, help="write the records to this file")
    args = ap.parse_args(argv)
    args.model_name = "tiny" if args.tiny else args.model
    args.res_list = ["tiny"] if args.tiny else args.res.split(",")
    args.schedules = args.schedule.split(",")
    args.torch_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    cuda = args.device == "cuda"
    if args.tiny and not cuda and args.threads is None:
        args.threads = 1
    args.attn_backends = (args.attn_backends or ("cudnn,flash" if cuda else "default")).split(",")
    args.block_backends = (args.block_backends or ",".join(args.attn_backends)).split(",")
    args.forward_backends = (args.forward_backends or ("cudnn" if cuda else "default")).split(",")
    for r in args.res_list:
        assert r in RESOLUTIONS, f"unknown resolution {r}"
    for b in args.attn_backends + args.block_backends + args.forward_backends:
        assert b == "default" or b in BACKENDS, f"unknown SDPA backend {b}"
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("torch_wan: --device cuda but torch sees no GPU (use --device cpu --tiny)")
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = MODELS[args.model_name]

    # Self-checks before any timing: the layout maps against PAPER.md 5.6, then the tables
    # of every benchmark grid against the einops-style view/permute rearranges.
    check_tables_worked_example()
    for res in args.res_list:
        check_tables(SkiparseTables(RESOLUTIONS[res], "cpu"), "cpu")
    print("switch tables: PAPER.md 5.6 worked example and view/permute checks passed")
    check_numerics(device, args.torch_dtype)
    print("element-wise helpers (RMSNorm, modulated LayerNorm, gated add, RoPE) match their "
          "fp32 reference formulas")

    rep = Reporter(args, device)
    print(f"torch_wan: {rep.device_name}, torch {torch.__version__}, cudnn {rep.cudnn}, "
          f"model {args.model_name} {cfg}, res {args.res_list}, dtype {args.dtype}, "
          f"warm-up {args.warmup}, median of {args.repeats} (forward {args.forward_repeats})")
    ops = ["attention", "switch", "block", "forward"] if args.op == "all" else [args.op]
    model = None
    if "block" in ops or "forward" in ops or "train-block" in ops:
        model = Model(args, cfg, device)
        print(f"weights: {model.n_weights} distinct block(s) of {cfg['layers']}"
              + (f" -- NOTE: {model.note}" if model.note else ""))
    print("NOTE: Skiparse self-attention runs on padded subsequences without a key mask "
          "(same cost as a varlen kernel; numerics are not the point), as PAPER.md 12.")
    for op in ops:
        print(f"-- {op}", flush=True)
        if op == "train-block":  # autograd: outside inference mode
            bench_train_block(args, rep, cfg, device, model)
            continue
        with torch.inference_mode():
            {"attention": lambda: bench_attention(args, rep, cfg, device),
             "switch": lambda: bench_switch(args, rep, cfg, device),
             "block": lambda: bench_block(args, rep, cfg, device, model),
             "forward": lambda: bench_forward(args, rep, cfg, device, model)}[op]()
    rep.finish()


if __name__ == "__main__":
    main()
