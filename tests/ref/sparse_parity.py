#!/usr/bin/env python3
"""Parity of `osp dit` with a plain-PyTorch OSP-Next sparse DiT (Skiparse-2D), on tiny random models.

usage: python tests/ref/sparse_parity.py OSP_BINARY WORKDIR [--tol 1e-5] [--seed S] [--no-diagnose]
       python tests/ref/sparse_parity.py - - --reference-only   (the reference's self-checks alone)

The reference here computes a sparse block the way the OSP-Next reference code does (PAPER.md 5),
NOT as a masked attention in natural order:
  - entering the sparse span from natural order, the (T, H, W) token grid is zero-padded at the
    bottom/right to H', W' (multiples of P^2), then rearranged (einops patterns, written out as
    reshape + permute):
        token-wise  b (t h p w q) c        -> (p q b) (t h w) c            h = H'/P,   w = W'/P
        group-wise  b (g p1 p2 w q1 q2) c  -> (p1 q1 b) (g p2 w q2) c      g = T*H'/P^2, w = W'/P^2
  - between a token-wise and a group-wise block, the switch (its own inverse)
        (p2 q2 b) (g p1 w q1) c -> (p1 q1 b) (g p2 w q2) c
  - the ordinary Wan block runs on the [P^2*B, N'/P^2, C] batch, with the context and e0 repeated
    P^2 times along the batch in (s b) order; self-attention is SDPA with a key-padding mask that
    is a validity mask pushed through the same pad + rearrange (None when nothing is padded);
    RoPE cos/sin come from each token's unpadded natural (t, y, x), pushed through the same
    pad + rearrange (padding: angle 0), repeated B times each to match (p q b);
  - leaving the span (before a full block or the head): the inverse rearrange, then the crop.
Padded query rows get attention output 0 (the GPU flash path; the key mask alone already keeps
padding out of every real token, see the self-check below).

The block math (modulation, LayerNorms, q/k RMSNorm across heads, interleaved RoPE, cross-attention
without mask, FFN, head, unpatchify) is written to match diffusers' WanTransformer3DModel, and
every case checks the reference before it is used (float64, the case's own model and inputs):
  1. with every block full, the reference equals diffusers' forward (float64 sinusoid, as in
     tests/ref/dit_parity.py): rel err < 1e-6 (diffusers keeps float32 RoPE tables and float32
     LayerNorms even in a float64 model, hence not 1e-12);
  2. with the case's schedule, the permute-into-batch reference equals an independent masked
     natural-order formulation (full attention, query i sees key j iff they are in the same
     subsequence, ids from the index formulas of PAPER.md 5.3/5.4, no padding at all):
     rel err < 1e-10;
  3. the schedule changes the output (rel diff from the dense forward > 1e-3), so the case is not
     vacuous (except the zero-sparse case, where it must be exactly 0).
Once per run, the rearranges are checked on the worked example of PAPER.md 5.6 (4x4 and 8x8,
P = 2): subsequence contents in order, the switch, its self-inverse, token_to_group(token(x)) =
group(x), enter/leave identity on real tokens.

Schedules reach osp through config.json (skiparse_model_type dual_end / every_k / uniform / full,
sparse_ratio, num_full_blocks, every_k; once nested under "model_config" as OSP-Next writes it)
and through the command line: `--schedule every_k:2 --sparse-ratio 2` over a plain Wan2.1 config
(how one runs Wan2.1 weights sparse), `--schedule full,token,group,token --sparse-ratio 2` and
`--schedule full` over configs that say something else, so an ignored override fails.
Schedule semantics: dual_end F: blocks {0..F/2-1} and {L-F/2..L-1} full, the others token-wise if
the index is even, group-wise if odd (uniform: the same with F = 0); every_k K: block i full when
i mod K == 0, each run of sparse blocks starts token-wise and alternates.

Each case compares osp's velocity to the float32 reference:
    err = max|osp - ref| / max|ref|   must be <= tol
(the error against the float64 reference is printed for information). The zero-sparse case also
requires osp's output to equal its dense run bit for bit (torch.equal).
On a failure, the case is re-run (same config and command line) with blocks k.. made the identity
(output projections zeroed), k = 0..L, to name the first block whose output departs from the
reference (k = 0 tests the layout path alone).

Prints one line per case and a last line "sparse_parity: N passed, N failed"; exits 1 on a failure.
"""
import argparse
import copy
import json
import os
import sys
from dataclasses import dataclass, field

import torch
import torch.nn.functional as Fn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dit_parity import (Case, config_dict, first_line, random_inputs, random_model,  # noqa: E402
                        read_velocity, reference_velocity, rel_err, require_binary, run_osp, write_case)

FULL, TOKEN, GROUP = "full", "token", "group"
LETTER = {FULL: "F", TOKEN: "T", GROUP: "G"}

# ---------------------------------------------------------------------------------------------
# Schedules (PAPER.md 5.9 and the OSP contract for every_k).
# ---------------------------------------------------------------------------------------------


def dual_end(layers, full_blocks):
    """Full blocks {0..F/2-1} and {L-F/2..L-1}; the others token-wise (even index) or group-wise (odd)."""
    half = full_blocks // 2
    full = set(range(half)) | set(range(layers - half, layers))
    return [FULL if i in full else (TOKEN if i % 2 == 0 else GROUP) for i in range(layers)]


def every_k(layers, k):
    """Block i full when i mod k == 0; each run of sparse blocks starts token-wise and alternates."""
    out, run = [], 0
    for i in range(layers):
        if i % k == 0:
            out.append(FULL)
            run = 0
        else:
            out.append(TOKEN if run % 2 == 0 else GROUP)
            run += 1
    return out


def schedule_string(schedule):
    return "".join(LETTER[s] for s in schedule)


# ---------------------------------------------------------------------------------------------
# Skiparse layouts, as the OSP-Next reference code computes them: pad, einops rearranges (written
# as reshape + permute; the pattern of each is in its docstring), switch, inverse, crop.
# A sequence in natural order is [B, T*H*W, C]; in a Skiparse layout it is [P*P*B, T*H'*W'/P^2, C].
# ---------------------------------------------------------------------------------------------


def padded_size(n, P):
    """n rounded up to a multiple of P^2 (PAPER.md 5.2)."""
    q = P * P
    return n + (q - n % q) % q


def pad_grid(x, grid, P):
    """Natural [B, T*H*W, C] -> padded natural [B, T*H'*W', C], zeros at the bottom and right."""
    T, H, W = grid
    B, C = x.shape[0], x.shape[-1]
    Hp, Wp = padded_size(H, P), padded_size(W, P)
    x = x.reshape(B, T, H, W, C)
    x = Fn.pad(x, (0, 0, 0, Wp - W, 0, Hp - H))  # (C: none, W: right, H: bottom)
    return x.reshape(B, T * Hp * Wp, C)


def crop_grid(x, grid, P):
    """Padded natural [B, T*H'*W', C] -> natural [B, T*H*W, C] (keeps [:H, :W])."""
    T, H, W = grid
    B, C = x.shape[0], x.shape[-1]
    Hp, Wp = padded_size(H, P), padded_size(W, P)
    return x.reshape(B, T, Hp, Wp, C)[:, :, :H, :W].reshape(B, T * H * W, C)


def token_rearrange(x, grid, P):
    """b (t h p w q) c -> (p q b) (t h w) c, h = H'/P, w = W'/P (x is padded natural)."""
    T, H, W = grid
    Hp, Wp = padded_size(H, P), padded_size(W, P)
    B, C = x.shape[0], x.shape[-1]
    x = x.reshape(B, T, Hp // P, P, Wp // P, P, C)  # b t h p w q c
    x = x.permute(3, 5, 0, 1, 2, 4, 6)                # p q b t h w c
    return x.reshape(P * P * B, T * (Hp // P) * (Wp // P), C)


def token_unrearrange(x, grid, P):
    """(p q b) (t h w) c -> b (t h p w q) c: the inverse of token_rearrange."""
    T, H, W = grid
    Hp, Wp = padded_size(H, P), padded_size(W, P)
    B, C = x.shape[0] // (P * P), x.shape[-1]
    x = x.reshape(P, P, B, T, Hp // P, Wp // P, C)   # p q b t h w c
    x = x.permute(2, 3, 4, 0, 5, 1, 6)                # b t h p w q c
    return x.reshape(B, T * Hp * Wp, C)


def group_rearrange(x, grid, P):
    """b (g p1 p2 w q1 q2) c -> (p1 q1 b) (g p2 w q2) c, g = T*H'/P^2, w = W'/P^2."""
    T, H, W = grid
    G, Wg = T * padded_size(H, P) // (P * P), padded_size(W, P) // (P * P)
    B, C = x.shape[0], x.shape[-1]
    x = x.reshape(B, G, P, P, Wg, P, P, C)           # b g p1 p2 w q1 q2 c
    x = x.permute(2, 5, 0, 1, 3, 4, 6, 7)             # p1 q1 b g p2 w q2 c
    return x.reshape(P * P * B, G * P * Wg * P, C)


def group_unrearrange(x, grid, P):
    """(p1 q1 b) (g p2 w q2) c -> b (g p1 p2 w q1 q2) c: the inverse of group_rearrange."""
    T, H, W = grid
    G, Wg = T * padded_size(H, P) // (P * P), padded_size(W, P) // (P * P)
    B, C = x.shape[0] // (P * P), x.shape[-1]
    x = x.reshape(P, P, B, G, P, Wg, P, C)           # p1 q1 b g p2 w q2 c
    x = x.permute(2, 3, 0, 4, 5, 1, 6, 7)             # b g p1 p2 w q1 q2 c
    return x.reshape(B, G * P * P * Wg * P * P, C)


def switch(x, grid, P):
    """(p2 q2 b) (g p1 w q1) c -> (p1 q1 b) (g p2 w q2) c: token -> group, and (it is its own
    inverse) group -> token."""
    T, H, W = grid
    G, Wg = T * padded_size(H, P) // (P * P), padded_size(W, P) // (P * P)
    B, C = x.shape[0] // (P * P), x.shape[-1]
    x = x.reshape(P, P, B, G, P, Wg, P, C)           # p2 q2 b g p1 w q1 c
    x = x.permute(4, 6, 2, 3, 0, 5, 1, 7)             # p1 q1 b g p2 w q2 c
    return x.reshape(P * P * B, G * P * Wg * P, C)


REARRANGE = {TOKEN: token_rearrange, GROUP: group_rearrange}
UNREARRANGE = {TOKEN: token_unrearrange, GROUP: group_unrearrange}


def enter(x, pattern, grid, P):
    """Natural -> Skiparse layout: pad, rearrange."""
    return REARRANGE[pattern](pad_grid(x, grid, P), grid, P)


def leave(x, pattern, grid, P):
    """Skiparse layout -> natural: inverse rearrange, crop."""
    return crop_grid(UNREARRANGE[pattern](x, grid, P), grid, P)


# ---------------------------------------------------------------------------------------------
# RoPE angles (PAPER.md 1.6) and the per-layout tables (PAPER.md 5.7, 5.8).
# ---------------------------------------------------------------------------------------------


def rope_angles(grid, head_dim):
    """float64 [T*H*W, head_dim/2]: the angle of each interleaved pair for each natural token,
    from its (t, y, x); axes t, h, w take head_dim - 2*(2*(head_dim//6)), 2*(head_dim//6),
    2*(head_dim//6) real dims, omega_j = 10000^(-2j/d) per axis of d real dims."""
    hw = 2 * (head_dim // 6)
    widths = (head_dim - 2 * hw, hw, hw)
    t, y, x = torch.meshgrid(*(torch.arange(n, dtype=torch.float64) for n in grid), indexing="ij")
    parts = []
    for pos, d in zip((t, y, x), widths):
        omega = torch.pow(10000.0, -torch.arange(0, d, 2, dtype=torch.float64) / d)
        parts.append(pos.reshape(-1, 1) * omega[None])
    return torch.cat(parts, 1)


@dataclass
class Tables:
    cos: torch.Tensor       # [rows, tokens, 1, head_dim/2] (broadcast over heads)
    sin: torch.Tensor
    key_mask: object        # bool [rows, tokens] (True = real) or None


def natural_tables(grid, head_dim, dtype):
    ang = rope_angles(grid, head_dim)[None]  # [1, N, hd/2]
    return Tables(torch.cos(ang).to(dtype)[:, :, None], torch.sin(ang).to(dtype)[:, :, None], None)


def layout_tables(pattern, grid, batch, P, head_dim, dtype):
    """RoPE cos/sin and the key mask of a Skiparse layout: the natural angle table (one sample)
    and a validity mask go through the same pad + rearrange as the activations; padding gets angle
    0 and validity False. The P^2 angle tables are repeated B times each ((p q b) order)."""
    N = grid[0] * grid[1] * grid[2]
    ang = enter(rope_angles(grid, head_dim)[None], pattern, grid, P)      # [P^2, N'/P^2, hd/2]
    ang = ang.repeat_interleave(batch, dim=0)                               # [P^2*B, ...]
    valid = enter(torch.ones(batch, N, 1, dtype=torch.float64), pattern, grid, P)[..., 0] > 0.5
    key_mask = None if bool(valid.all()) else valid
    return Tables(torch.cos(ang).to(dtype)[:, :, None], torch.sin(ang).to(dtype)[:, :, None], key_mask)


# ---------------------------------------------------------------------------------------------
# The DiT: the Wan2.1 block math of diffusers' WanTransformer3DModel, in one dtype throughout.
# ---------------------------------------------------------------------------------------------


class Weights:
    def __init__(self, model, dtype):
        self.sd = {k: v.detach().to(dtype) for k, v in model.state_dict().items()}
        cfg = model.config
        self.heads, self.head_dim, self.eps = cfg.num_attention_heads, cfg.attention_head_dim, cfg.eps
        self.dim = self.heads * self.head_dim
        self.layers, self.dtype = cfg.num_layers, dtype

    def __getitem__(self, k):
        return self.sd[k]

    def linear(self, x, name):
        return Fn.linear(x, self.sd[name + ".weight"], self.sd[name + ".bias"])


def rms_norm(x, weight, eps):
    """RMSNorm over the full C (all heads together)."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rotate(x, cos, sin):
    """Interleaved RoPE on [rows, L, heads, hd]: pairs (x[2i], x[2i+1]) rotated by angle i."""
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack([a * cos - b * sin, a * sin + b * cos], -1).flatten(-2)


def attention(w, prefix, h, kv, cos=None, sin=None, attn_mask=None):
    """Wan attention on [rows, L, C] (self: kv is h with RoPE; cross: kv is the context, no RoPE).
    attn_mask: bool, broadcastable to [rows, heads, Lq, Lk]."""
    rows, L, _ = h.shape
    q = rms_norm(w.linear(h, prefix + ".to_q"), w[prefix + ".norm_q.weight"], w.eps)
    k = rms_norm(w.linear(kv, prefix + ".to_k"), w[prefix + ".norm_k.weight"], w.eps)
    v = w.linear(kv, prefix + ".to_v")
    q, k, v = (t.unflatten(-1, (w.heads, w.head_dim)) for t in (q, k, v))
    if cos is not None:
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
    o = Fn.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=attn_mask)
    return w.linear(o.transpose(1, 2).reshape(rows, L, w.dim), prefix + ".to_out.0")


def block(w, i, x, e0, ctx, tables, attn_mask=None):
    """One Wan block on x [rows, L, C] with e0 [rows, 6, C] and context [rows, Lc, C].
    Self-attention gets `attn_mask` if given (the natural-order oracle), else the key mask of
    `tables` (Skiparse layouts), with padded query rows set to 0."""
    p = f"blocks.{i}"
    C = w.dim
    m = w[p + ".scale_shift_table"] + e0  # rows: shift, scale, gate (msa), shift, scale, gate (ffn)
    shift_msa, scale_msa, gate_msa, shift_ffn, scale_ffn, gate_ffn = m.chunk(6, dim=1)
    h = Fn.layer_norm(x, (C,), eps=w.eps) * (1 + scale_msa) + shift_msa
    if attn_mask is None and tables.key_mask is not None:
        km = tables.key_mask
        a = attention(w, p + ".attn1", h, h, tables.cos, tables.sin, km[:, None, None, :])
        a = torch.where(km[:, :, None], a, torch.zeros((), dtype=a.dtype))
    else:
        a = attention(w, p + ".attn1", h, h, tables.cos, tables.sin, attn_mask)
    x = x + a * gate_msa
    h = Fn.layer_norm(x, (C,), w[p + ".norm2.weight"], w[p + ".norm2.bias"], w.eps)
    x = x + attention(w, p + ".attn2", h, ctx)
    h = Fn.layer_norm(x, (C,), eps=w.eps) * (1 + scale_ffn) + shift_ffn
    ff = w.linear(Fn.gelu(w.linear(h, p + ".ffn.net.0.proj"), approximate="tanh"), p + ".ffn.net.2")
    return x + ff * gate_ffn


def embed(w, inputs, freq_dim):
    """Patch embedding (tokens [B, N, C]), e [B, C], e0 [B, 6, C], context [B, Lc, C], grid."""
    dt = w.dtype
    lat = inputs["latents"].to(dt)
    B, _, F, H, W = lat.shape
    grid = (F, H // 2, W // 2)
    x = Fn.conv3d(lat, w["patch_embedding.weight"], w["patch_embedding.bias"], stride=(1, 2, 2))
    x = x.flatten(2).transpose(1, 2)
    half = freq_dim // 2  # float64 sinusoid, cos first (as Wan2.1, and tests/ref/dit_parity.py)
    freqs = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64) / half)
    arg = inputs["timestep"].double()[:, None] * freqs[None]
    sinus = torch.cat([torch.cos(arg), torch.sin(arg)], 1).to(dt)
    e = w.linear(Fn.silu(w.linear(sinus, "condition_embedder.time_embedder.linear_1")),
                 "condition_embedder.time_embedder.linear_2")
    e0 = w.linear(Fn.silu(e), "condition_embedder.time_proj").unflatten(1, (6, w.dim))
    ctx = w.linear(Fn.gelu(w.linear(inputs["context"].to(dt), "condition_embedder.text_embedder.linear_1"),
                           approximate="tanh"), "condition_embedder.text_embedder.linear_2")
    return x, e, e0, ctx, grid


def head(w, x, e, grid):
    """Head (shift = row 0, scale = row 1 of table + e) and unpatchify to [B, 16, F, 2H, 2W]."""
    shift, scale = (w["scale_shift_table"] + e[:, None]).chunk(2, dim=1)
    y = w.linear(Fn.layer_norm(x, (w.dim,), eps=w.eps) * (1 + scale) + shift, "proj_out")
    B, (T, H, W) = x.shape[0], grid
    oc = y.shape[-1] // 4
    return y.reshape(B, T, H, W, 1, 2, 2, oc).permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(B, oc, T, 2 * H, 2 * W)


def sparse_forward(w, inputs, freq_dim, schedule, P, trace=None):
    """The OSP-Next sparse DiT: permute-into-batch Skiparse blocks. `trace`, a list, receives the
    natural-order hidden state after each block (for diagnosis)."""
    x, e, e0, ctx, grid = embed(w, inputs, freq_dim)
    B = x.shape[0]
    S = P * P
    tables = {FULL: natural_tables(grid, w.head_dim, w.dtype)}
    for pat in (TOKEN, GROUP):
        if pat in schedule:
            tables[pat] = layout_tables(pat, grid, B, P, w.head_dim, w.dtype)
    e0_rep = e0.repeat(S, 1, 1)    # b n c -> (s b) n c
    ctx_rep = ctx.repeat(S, 1, 1)
    cur = FULL
    for i, pat in enumerate(schedule):
        if pat != cur:
            if cur == FULL:
                x = enter(x, pat, grid, P)
            elif pat == FULL:
                x = leave(x, cur, grid, P)
            else:
                x = switch(x, grid, P)
            cur = pat
        x = block(w, i, x, e0 if cur == FULL else e0_rep, ctx if cur == FULL else ctx_rep, tables[cur])
        if trace is not None:
            trace.append(x if cur == FULL else leave(x, cur, grid, P))
    if cur != FULL:
        x = leave(x, cur, grid, P)
    return head(w, x, e, grid)


# ---------------------------------------------------------------------------------------------
# The independent formulation used to validate the above: natural order, full attention with the
# block-sparse mask the pattern implies (ids from the index formulas, no padding, no permutation).
# ---------------------------------------------------------------------------------------------


def subsequence_ids(grid, P, pattern):
    T, H, W = grid
    y = torch.arange(H)[:, None].expand(H, W)
    x = torch.arange(W)[None].expand(H, W)
    s = (y % P) * P + (x % P) if pattern == TOKEN else ((y // P) % P) * P + ((x // P) % P)
    return s.reshape(1, -1).expand(T, -1).reshape(-1)


def masked_forward(w, inputs, freq_dim, schedule, P):
    x, e, e0, ctx, grid = embed(w, inputs, freq_dim)
    tables = natural_tables(grid, w.head_dim, w.dtype)
    masks = {pat: subsequence_ids(grid, P, pat)[:, None] == subsequence_ids(grid, P, pat)[None]
             for pat in (TOKEN, GROUP)}
    for i, pat in enumerate(schedule):
        x = block(w, i, x, e0, ctx, tables, masks.get(pat))
    return head(w, x, e, grid)


# ---------------------------------------------------------------------------------------------
# Layout self-check on the worked example of PAPER.md 5.6.
# ---------------------------------------------------------------------------------------------


def check_layouts():
    """Returns a list of problems (empty when the rearranges match PAPER.md 5.6)."""
    problems = []
    n = torch.arange(16, dtype=torch.float64).reshape(1, 16, 1)  # T=1, H=W=4, P=2, B=1
    g = (1, 4, 4)
    tok = token_rearrange(n, g, 2)[..., 0].long().tolist()
    grp = group_rearrange(n, g, 2)[..., 0].long().tolist()
    if tok != [[0, 2, 8, 10], [1, 3, 9, 11], [4, 6, 12, 14], [5, 7, 13, 15]]:
        problems.append(f"token-wise 4x4 {tok}")
    if grp != [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]:
        problems.append(f"group-wise 4x4 {grp}")
    sw = switch(token_rearrange(n, g, 2), g, 2)[..., 0].long()
    if [sw[s, 0].item() for s in range(4)] != tok[0]:
        problems.append("switch: token subsequence 0 does not go to position 0 of group 0..3")
    # 8x8: group subsequence 0 is rows {0,1,4,5} x columns {0,1,4,5}, row-major.
    n8 = torch.arange(64, dtype=torch.float64).reshape(1, 64, 1)
    g8 = (1, 8, 8)
    want = [8 * y + x for y in (0, 1, 4, 5) for x in (0, 1, 4, 5)]
    if group_rearrange(n8, g8, 2)[0, :, 0].long().tolist() != want:
        problems.append("group-wise 8x8 subsequence 0")
    # On odd grids, several P and B: switch(token) = group, switch is an involution, leave(enter)
    # is the identity on real tokens, and each token lands in the subsequence its id says.
    for grid, P, B in (((3, 3, 5), 2, 2), ((2, 9, 14), 3, 1), ((2, 2, 6), 2, 2), ((1, 4, 4), 2, 1)):
        N = grid[0] * grid[1] * grid[2]
        x = torch.randn(B, N, 3, dtype=torch.float64) + 10  # nonzero: padding is the only zero
        for pat in (TOKEN, GROUP):
            lay = enter(x, pat, grid, P)
            if not torch.equal(leave(lay, pat, grid, P), x):
                problems.append(f"leave(enter) != id, {pat} {grid} P {P}")
            ids = subsequence_ids(grid, P, pat).repeat(B)
            rows = torch.arange(P * P * B)[:, None].expand(lay.shape[:2])
            tag = enter(torch.arange(B * N, dtype=torch.float64).reshape(B, N, 1) + 1, pat, grid, P)[..., 0]
            real = tag > 0
            got_s = (rows[real] // B)[torch.argsort(tag[real])]
            if not torch.equal(got_s, ids):
                problems.append(f"{pat} subsequence ids {grid} P {P}")
        tok_l, grp_l = enter(x, TOKEN, grid, P), enter(x, GROUP, grid, P)
        if not torch.equal(switch(tok_l, grid, P), grp_l) or not torch.equal(switch(grp_l, grid, P), tok_l):
            problems.append(f"switch {grid} P {P}")
    return problems


# ---------------------------------------------------------------------------------------------
# The cases.
# ---------------------------------------------------------------------------------------------


@dataclass
class SparseCase:
    case: Case              # model, inputs and file styles (tests/ref/dit_parity.py)
    schedule: list          # what the reference runs, derived here from the spec
    P: int
    keys: dict = field(default_factory=dict)  # Skiparse keys written into config.json
    nested: bool = False    # the keys under "model_config", as OSP-Next writes them
    cli: list = field(default_factory=list)   # extra `osp dit` arguments
    zero_sparse: list = field(default_factory=list)  # more zero-sparse variants [(label, keys, cli)]; if any,
    #                                                  these and the case itself must equal the dense run

    def summary(self):
        c = self.case
        src = " ".join(self.cli) if self.cli else json.dumps(self.keys, separators=(",", ":"))
        if self.nested:
            src = "model_config " + src
        return (f"{c.name}: L {c.layers}, heads {c.heads}x{c.head_dim}, latents {list(c.latent_shape)} "
                f"(tokens {c.grid[0]}x{c.grid[1] // 2}x{c.grid[2] // 2}), t {list(c.timesteps)}, P {self.P}, "
                f"{schedule_string(self.schedule)} [{src}]")


def _case(name, layers, heads, head_dim, grid, timesteps, names="diffusers", config="diffusers", ffn_dim=48):
    return Case(name, layers=layers, heads=heads, head_dim=head_dim, ffn_dim=ffn_dim, text_dim=16, freq_dim=256,
                grid=grid, timesteps=timesteps, ctx_len=7, real_len=tuple(7 - 2 * b for b in range(len(timesteps))),
                names=names, config=config)


def make_cases():
    return [
        # dual_end F = 0 (every block sparse, TGTG), batch 2 with different timesteps, 3x3x5 grid.
        SparseCase(_case("dual_end_F0", 4, 2, 16, (3, 6, 10), (999.0, 3.7)), dual_end(4, 0), 2,
                   dict(skiparse_model_type="dual_end", sparse_ratio=2, num_full_blocks=0)),
        # dual_end F = 4 on 8 blocks (FFTGTGFF), 2x9x14 grid, OSP-Next's nested model_config,
        # original weight names and config.
        SparseCase(_case("dual_end_F4", 8, 2, 24, (2, 18, 28), (500.5,), "original", "original"), dual_end(8, 4), 2,
                   dict(skiparse_model_type="dual_end", sparse_ratio=2, num_full_blocks=4), nested=True),
        # every_k 2 (FTFTFT: token -> natural before a full block and at the end); 4x4 needs no
        # padding (key mask None).
        SparseCase(_case("every_k2_nopad", 6, 1, 32, (1, 8, 8), (0.0, 999.0)), every_k(6, 2), 2,
                   dict(skiparse_model_type="every_k", sparse_ratio=2, every_k=2)),
        # every_k 3 with P = 3 (FTGFTGFT), 2x9x14 -> padded to 2x9x18, batch 2.
        SparseCase(_case("every_k3_P3", 8, 2, 16, (2, 18, 28), (3.7, 700.0)), every_k(8, 3), 3,
                   dict(skiparse_model_type="every_k", sparse_ratio=3, every_k=3)),
        # token grid H = 2 with P = 2: padded to H' = 4, group-wise subsequences 2 and 3 are all padding.
        SparseCase(_case("allpad_group", 4, 2, 16, (2, 4, 12), (999.0, 250.0)), dual_end(4, 0), 2,
                   dict(skiparse_model_type="dual_end", sparse_ratio=2, num_full_blocks=0)),
        # uniform (OSP-Next's key, F = 0) with P = 3 on 3x3x5 -> 9x9: several group-wise
        # subsequences all padding, original names.
        SparseCase(_case("uniform_P3", 4, 2, 24, (3, 6, 10), (120.0,), "original", "diffusers"), dual_end(4, 0), 3,
                   dict(skiparse_model_type="uniform", sparse_ratio=3, num_full_blocks=0)),
        # Command line over a plain Wan2.1 config (no Skiparse keys): every_k:2, P 2 (FTFT).
        SparseCase(_case("cli_every_k2", 4, 2, 16, (3, 6, 10), (42.0,)), every_k(4, 2), 2,
                   cli=["--schedule", "every_k:2", "--sparse-ratio", "2"]),
        # Command line list, one pattern per block, over a config that says otherwise (dual_end
        # F 0 = TGTG, P 3): FTGT with P 2.
        SparseCase(_case("cli_list", 4, 2, 16, (1, 6, 14), (999.0, 10.0)), [FULL, TOKEN, GROUP, TOKEN], 2,
                   dict(skiparse_model_type="dual_end", sparse_ratio=3, num_full_blocks=0),
                   cli=["--schedule", "full,token,group,token", "--sparse-ratio", "2"]),
        # Zero sparse blocks: every_k 1 in the config, skiparse_model_type full with a sparse_ratio,
        # and `--schedule full` over a dual_end config must all reproduce the dense run bit for bit.
        SparseCase(_case("zero_sparse", 4, 2, 16, (3, 6, 10), (999.0, 3.7)), every_k(4, 1), 2,
                   dict(skiparse_model_type="every_k", sparse_ratio=2, every_k=1),
                   zero_sparse=[("skiparse_model_type full", dict(skiparse_model_type="full", sparse_ratio=2), []),
                                ("--schedule full", dict(skiparse_model_type="dual_end", sparse_ratio=2,
                                                         num_full_blocks=0), ["--schedule", "full"])]),
    ]


def write_config(sc, files, keys, nested):
    conf = config_dict(sc.case, sc.case.config)
    if keys:
        if nested:
            conf["model_config"] = dict(keys)
        else:
            conf.update(keys)
    with open(files.config, "w") as f:
        json.dump(conf, f, indent=1)


def validate_reference(sc, model, inputs):
    """The three self-checks (module docstring); returns (problem or None, info string)."""
    c = sc.case
    w64 = Weights(model, torch.float64)
    dense = [FULL] * c.layers
    with torch.no_grad():
        diff64 = reference_velocity(model, inputs, torch.float64)
        ours_dense = sparse_forward(w64, inputs, c.freq_dim, dense, sc.P)
        e_diff = rel_err(ours_dense, diff64)
        if not e_diff < 1e-6:
            return f"reference (all full) vs diffusers float64: {e_diff:.1e} >= 1e-6", ""
        ours = sparse_forward(w64, inputs, c.freq_dim, sc.schedule, sc.P)
        oracle = masked_forward(w64, inputs, c.freq_dim, sc.schedule, sc.P)
        e_mask = rel_err(ours, oracle)
        if not e_mask < 1e-10:
            return f"permuted reference vs masked natural-order oracle: {e_mask:.1e} >= 1e-10", ""
        moved = rel_err(ours, ours_dense)
    if any(s != FULL for s in sc.schedule):
        if not moved > 1e-3:
            return f"schedule moves the output by only {moved:.1e} (case is vacuous)", ""
    elif moved != 0:
        return f"zero-sparse reference differs from dense by {moved:.1e}", ""
    return None, f"ref: vs diffusers {e_diff:.0e}, vs mask {e_mask:.0e}, sparse-dense {moved:.2f}"


def identity_after(model, k):
    """A copy of the model whose blocks k.. are the identity (self-attention, cross-attention and
    FFN output projections zeroed: x + 0 is x exactly), so the output shows the state after block
    k-1 carried through the schedule's remaining layout changes."""
    m = copy.deepcopy(model)
    with torch.no_grad():
        for blk in m.blocks[k:]:
            for lin in (blk.attn1.to_out[0], blk.attn2.to_out[0], blk.ffn.net[2]):
                lin.weight.zero_()
                lin.bias.zero_()
    return m


def misplaced(got, ref):
    """With every block the identity, the velocity is a per-token function of the patch embedding,
    so a layout bug shows as tokens moved: says which output tokens hold which reference tokens."""
    B, oc, F, H2, W2 = ref.shape
    H, W = H2 // 2, W2 // 2

    def tokens(v):  # [B*F*H*W, 4*oc], row (b, t, y, x)
        return v.double().reshape(B, oc, F, H, 2, W, 2).permute(0, 2, 3, 5, 4, 6, 1).reshape(B * F * H * W, -1)
    g, r = tokens(got), tokens(ref)
    dist = torch.cdist(g, r)
    best = dist.argmin(1)
    scale = r.abs().max().item()
    exact = dist.min(1).values <= 1e-4 * scale
    coords = [(b, t, y, x) for b in range(B) for t in range(F) for y in range(H) for x in range(W)]
    moved = [(i, best[i].item()) for i in range(len(coords)) if exact[i] and best[i].item() != i]
    changed = int((~exact).sum())
    examples = ", ".join(f"(b,t,y,x) {coords[i]} holds {coords[j]}" for i, j in moved[:3])
    return (f"{len(moved)} of {len(coords)} tokens hold another token's value ({examples or 'none'}), "
            f"{changed} hold no token's value (padding or a mix)")


def diagnose(osp, sc, model, inputs, workdir, tol):
    """Runs osp with the case's own config and command line on models whose blocks k.. are the
    identity, k = 0..L; names the first k whose velocity departs from the reference made the same
    way (k = 0: the layout path alone, every block the identity)."""
    c = sc.case
    for k in range(c.layers + 1):
        m = identity_after(model, k)
        files = write_case(c, m, inputs, os.path.join(workdir, f"{c.name}_upto{k}"))
        write_config(sc, files, sc.keys, sc.nested)
        r = run_osp(files.dit_argv(osp) + sc.cli)
        if r.returncode != 0:
            return f"with blocks {k}.. the identity: osp exit {r.returncode}: {first_line(r.stderr)}"
        got, problem = read_velocity(files, c.latent_shape)
        if problem:
            return f"with blocks {k}.. the identity: {problem}"
        with torch.no_grad():
            ref = sparse_forward(Weights(m, torch.float32), inputs, c.freq_dim, sc.schedule, sc.P)
        err = rel_err(got, ref)
        if err > tol:
            if k == 0:
                return f"wrong even with every block the identity, err {err:.2e}: {misplaced(got, ref)}"
            prev = sc.schedule[k - 2] if k > 1 else "natural order"
            return f"first departing block {k - 1} ({sc.schedule[k - 1]}, entered from {prev}), err {err:.2e}"
    return "every block-by-block run matches"


def run_case(osp, workdir, sc, tol, do_diagnose=True):
    """Runs one case; returns (line, ok)."""
    c = sc.case
    model, inputs = random_model(c), random_inputs(c)
    problem, info = validate_reference(sc, model, inputs)
    if problem:
        return f"{sc.summary()}: FAIL, reference self-check: {problem}", False
    files = write_case(c, model, inputs, os.path.join(workdir, c.name))
    write_config(sc, files, sc.keys, sc.nested)
    with torch.no_grad():
        ref32 = sparse_forward(Weights(model, torch.float32), inputs, c.freq_dim, sc.schedule, sc.P)
        ref64 = sparse_forward(Weights(model, torch.float64), inputs, c.freq_dim, sc.schedule, sc.P)
    r = run_osp(files.dit_argv(osp) + sc.cli)
    if r.returncode != 0:
        return f"{sc.summary()}: FAIL, osp dit exit {r.returncode}: {first_line(r.stderr)}", False
    got, problem = read_velocity(files, c.latent_shape)
    if problem:
        return f"{sc.summary()}: FAIL, {problem}", False
    err, err64 = rel_err(got, ref32), rel_err(got, ref64)
    ok = err <= tol
    notes = []
    if sc.zero_sparse:
        dense_files = files.copy_to(os.path.join(workdir, c.name + "_dense"))
        write_config(sc, dense_files, {}, False)
        rd = run_osp(dense_files.dit_argv(osp))
        dense, dproblem = (None, f"exit {rd.returncode}: {first_line(rd.stderr)}") if rd.returncode else \
            read_velocity(dense_files, c.latent_shape)
        if dproblem:
            return f"{sc.summary()}: FAIL, dense run: {dproblem}", False
        runs = [("every_k 1 in the config", got, None)]
        for label, keys, cli in sc.zero_sparse:
            vf = files.copy_to(os.path.join(workdir, f"{c.name}_{len(runs)}"))
            write_config(sc, vf, keys, False)
            rv = run_osp(vf.dit_argv(osp) + cli)
            v, vproblem = (None, f"exit {rv.returncode}: {first_line(rv.stderr)}") if rv.returncode else \
                read_velocity(vf, c.latent_shape)
            runs.append((label, v, vproblem))
        for label, v, vproblem in runs:
            same = v is not None and torch.equal(v, dense)
            if same:
                notes.append(f"{label} == dense bit for bit")
            else:
                why = vproblem or f"max |diff| {(v - dense).abs().max().item():.1e}"
                notes.append(f"{label} DIFFERS from the dense run: {why}")
            ok = ok and same
    line = (f"{sc.summary()}: err {err:.2e} (vs float64 {err64:.2e}), tol {tol:g}"
            + "".join(f"; {n}" for n in notes) + f"; {info}; {'ok' if ok else 'FAIL'}")
    if err > tol and any(s != FULL for s in sc.schedule):
        with torch.no_grad():  # a common failure: the schedule is ignored and osp runs dense
            dense32 = sparse_forward(Weights(model, torch.float32), inputs, c.freq_dim, [FULL] * c.layers, sc.P)
        line += f"; osp vs the dense forward: {rel_err(got, dense32):.2e}"
    if not ok and err > tol and do_diagnose:
        line += f"; diagnosis: {diagnose(osp, sc, model, inputs, os.path.join(workdir, 'diagnose'), tol)}"
    return line, ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("osp", help="the osp binary")
    ap.add_argument("workdir", help="directory for the cases' files (WORKDIR/sparse_parity/<case>/)")
    ap.add_argument("--tol", type=float, default=1e-5, help="max|osp - ref| / max|ref| (default 1e-5)")
    ap.add_argument("--seed", type=int, default=0, help="added to every case's seed (default 0)")
    ap.add_argument("--no-diagnose", action="store_true", help="skip the per-block diagnosis of failures")
    ap.add_argument("--reference-only", action="store_true",
                    help="only the reference's self-checks (layouts, diffusers, masked oracle); osp is not run")
    a = ap.parse_args()
    osp = None if a.reference_only else require_binary(a.osp)
    work = os.path.join(os.path.abspath(a.workdir), "sparse_parity")
    torch.set_num_threads(min(2, torch.get_num_threads()))
    passed = failed = 0
    problems = check_layouts()
    line = "layouts (PAPER.md 5.6 worked example, switch, enter/leave, ids): " + \
        ("ok" if not problems else "FAIL, " + "; ".join(problems))
    print(line, flush=True)
    passed, failed = passed + (not problems), failed + bool(problems)
    for i, sc in enumerate(make_cases()):
        sc.case.seed = 7000 + 1000 * i + a.seed
        if a.reference_only:
            problem, info = validate_reference(sc, random_model(sc.case), random_inputs(sc.case))
            line, ok = f"{sc.summary()}: {'FAIL, ' + problem if problem else info + '; ok'}", not problem
            print(line, flush=True)
            passed, failed = passed + ok, failed + (not ok)
            continue
        line, ok = run_case(osp, work, sc, a.tol, not a.no_diagnose)
        print(line, flush=True)
        passed, failed = passed + ok, failed + (not ok)
    print(f"sparse_parity: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
