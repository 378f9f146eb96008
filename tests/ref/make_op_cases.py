"""PyTorch references for the ops layer (src/ops/ops.h), read by tests/unit/test_ops_ref.c.

Usage: /root/.cache/osp-venv/bin/python tests/ref/make_op_cases.py OUT_DIR

Writes one safetensors file per case, OUT_DIR/<op>.<case>.safetensors, holding the op's inputs,
its scalar parameters as small tensors (eps, scale, grid, patch, table rows) and the expected
outputs, named ref*. Inputs are float32, except gather indices and RoPE positions (int32). Unless a
case says otherwise, the reference is the torch op evaluated in float64 on those float32 inputs and
rounded once to float32: the most accurate answer for the given inputs, so the C test measures
OSP's own error, not torch's float32 rounding. RoPE, patch embedding and unpatchify come from
diffusers' own modules (WanRotaryPosEmbed, WanAttnProcessor, WanTransformer3DModel), so a
difference in layout shows up as a failure.
"""

import math
import pathlib
import sys

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import get_timestep_embedding
from diffusers.models.transformers import transformer_wan
from diffusers.models.transformers.transformer_wan import (
    WanAttention,
    WanAttnProcessor,
    WanRotaryPosEmbed,
    WanTransformer3DModel,
)
from safetensors.torch import save_file

GENERATOR = torch.Generator().manual_seed(20260527)


def randn(*shape, std=1.0, mean=0.0):
    return torch.randn(*shape, generator=GENERATOR, dtype=torch.float64).mul(std).add(mean).float()


def in_f64(op, *tensors, **kwargs):
    """op evaluated in float64 on float32 tensors (None passes through), rounded to float32."""
    widened = [t.double() if t is not None else None for t in tensors]
    return op(*widened, **kwargs).float()


def scalar(value):
    return torch.tensor([value], dtype=torch.float32)


def integers(*values):
    return torch.tensor(values, dtype=torch.int64)


class CaseWriter:
    def __init__(self, out_dir):
        self.out_dir = pathlib.Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.count = 0

    def __call__(self, op, case, **tensors):
        save_file(
            {name: t.contiguous() for name, t in tensors.items()},
            str(self.out_dir / f"{op}.{case}.safetensors"),
        )
        self.count += 1


def linear_cases(write):
    for case, (rows, k, n, with_bias) in {
        "7x13x5_bias": ((7,), 13, 5, True),
        "7x13x5_no_bias": ((7,), 13, 5, False),
        "2x33x1536_to_96": ((2, 33), 1536, 96, True),
    }.items():
        x, w = randn(*rows, k), randn(n, k, std=k**-0.5)
        bias = randn(n) if with_bias else None
        extra = {"bias": bias} if with_bias else {}
        write("linear", case, x=x, weight=w, ref=in_f64(F.linear, x, w, bias), **extra)


def layernorm_cases(write):
    eps = 1e-6
    for case, (shape, mean, affine) in {
        "affine_3x5x64": ((3, 5, 64), 0.0, True),
        "plain_7x1536": ((7, 1536), 0.0, False),
        "large_mean_4x1536": ((4, 1536), 1000.0, False),
        "large_mean_affine_2x3x256": ((2, 3, 256), -500.0, True),
    }.items():
        x, c = randn(*shape, mean=mean), shape[-1]
        weight, bias = (randn(c, mean=1.0, std=0.1), randn(c, std=0.1)) if affine else (None, None)
        ref = in_f64(lambda x_, w_, b_: F.layer_norm(x_, (c,), w_, b_, eps), x, weight, bias)
        extra = {"weight": weight, "bias": bias} if affine else {}
        write("layernorm", case, x=x, eps=scalar(eps), ref=ref, **extra)


def rmsnorm_cases(write):
    eps = 1e-6
    for case, shape in {"2x9x1536": (2, 9, 1536), "5x12": (5, 12)}.items():
        x, c = randn(*shape, std=3.0), shape[-1]
        weight = randn(c, mean=1.0, std=0.2)
        ref = in_f64(lambda x_, w_: F.rms_norm(x_, (c,), w_, eps), x, weight)
        write("rmsnorm", case, x=x, weight=weight, eps=scalar(eps), ref=ref)


def activation_inputs():
    """A sweep of [−12, 12] (both tails of GELU and SiLU) and a batch of normal values."""
    return {
        "sweep": torch.linspace(-12.0, 12.0, 4097, dtype=torch.float32),
        "normal_3x7x9": randn(3, 7, 9, std=2.0),
    }


def activation_cases(write):
    for case, x in activation_inputs().items():
        write("gelu_tanh", case, x=x, ref=in_f64(lambda x_: F.gelu(x_, approximate="tanh"), x))
        write("silu", case, x=x, ref=in_f64(F.silu, x))


def modulation_cases(write):
    """shift, scale and gate are rows of one [Bm, 6, C] table: strided [Bm, C] views in the C test.
    Batch row b of x uses table row b mod Bm: Bm = B, or Bm = 2 for B = 8 as in a Skiparse layout,
    whose P² subsequences (rows s·B + b) share sample b's modulation."""
    tokens, channels = 17, 48
    shift_scale_rows = {"msa_rows_0_1": (0, 1), "ffn_rows_3_4": (3, 4)}
    gate_rows = {"msa_row_2": 2, "ffn_row_5": 5}
    for prefix, (batch, table_batch) in {"": (2, 2), "b8_bm2_": (8, 2)}.items():
        x, y = randn(batch, tokens, channels), randn(batch, tokens, channels)
        table = randn(table_batch, 6, channels, std=0.5)
        row_of_batch = table[torch.arange(batch) % table_batch]  # [B, 6, C]
        for case, (shift_row, scale_row) in shift_scale_rows.items():
            shift, scale = row_of_batch[:, shift_row, None], row_of_batch[:, scale_row, None]
            ref = in_f64(lambda x_, shift_, scale_: x_ * (1 + scale_) + shift_, x, shift, scale)
            write("modulate", prefix + case, x=x, table=table, rows=integers(shift_row, scale_row),
                  ref=ref)
        for case, gate_row in gate_rows.items():
            ref = in_f64(lambda x_, y_, t_: x_ + y_ * t_[:, gate_row, None], x, y, row_of_batch)
            write("gated_add", prefix + case, x=x, y=y, table=table, rows=integers(gate_row),
                  ref=ref)
    x, y = randn(2, tokens, channels), randn(2, tokens, channels)
    write("gated_add", "no_gate", x=x, y=y, ref=in_f64(torch.add, x, y))


def gather_rows_torch(src, index, dst_shape):
    """dst[i] = src[index[i]] over src's rows (all but its last dimension flattened), or a zero row
    where index[i] < 0: torch indexing of src's rows with a zero row appended."""
    rows = src.reshape(-1, src.shape[-1])
    with_zero_row = torch.cat([rows, rows.new_zeros(1, rows.shape[1])])
    return with_zero_row[torch.where(index < 0, rows.shape[0], index)].reshape(dst_shape)


def gather_rows_cases(write):
    """Padding (−1) among random rows, the identity, a permutation into another shape, and more
    rows out than in (repeats). A copy, so the C test wants it exact."""
    with_padding = torch.randint(0, 74, (90,), generator=GENERATOR)
    with_padding[torch.rand(90, generator=GENERATOR) < 0.2] = -1
    for case, (src, index, dst_shape) in {
        "random_with_padding": (randn(2, 37, 24), with_padding, (90, 24)),
        "identity": (randn(50, 16), torch.arange(50), (50, 16)),
        "permutation_3x20_to_4x15": (randn(3, 20, 1536), torch.randperm(60, generator=GENERATOR),
                                     (4, 15, 1536)),
        "repeats_10_to_45": (randn(10, 12), torch.randint(0, 10, (45,), generator=GENERATOR),
                             (3, 15, 12)),
    }.items():
        write("gather_rows", case, src=src, index=index.int(),
              ref=gather_rows_torch(src, index, dst_shape))


def rope_tables_at_cases(write):
    """Tables at listed (t, h, w) coordinates against diffusers' WanRotaryPosEmbed tables of a grid
    covering them, gathered at each coordinate. Padding rows (t = −1; h, w either −1 or anything)
    get cos 1, sin 0. The grid lets the C test also compare with osp_rope_tables' own rows."""
    for head_dim, (frames, height, width), tokens in [
        (12, (3, 6, 10), 50),
        (40, (5, 9, 14), 200),
        (128, (21, 30, 52), 500),
    ]:
        rope = WanRotaryPosEmbed(head_dim, (1, 1, 1), max_seq_len=1024)
        freqs_cos, freqs_sin = rope(torch.empty(1, 1, frames, height, width))  # [1, T·H·W, 1, D]
        grid_cos, grid_sin = freqs_cos[0, :, 0, 0::2], freqs_sin[0, :, 0, 0::2]
        grid = (frames, height, width)
        positions = torch.stack(
            [torch.randint(0, size, (tokens,), generator=GENERATOR) for size in grid], dim=1)
        token = (positions[:, 0] * height + positions[:, 1]) * width + positions[:, 2]
        padding = torch.rand(tokens, generator=GENERATOR) < 0.2
        positions[padding, 0] = -1
        positions[padding & (torch.rand(tokens, generator=GENERATOR) < 0.5), 1:] = -1
        write(
            "rope_tables_at",
            f"d{head_dim}_{tokens}_in_{frames}x{height}x{width}",
            positions=positions.int(),
            grid=integers(*grid),
            head_dim=integers(head_dim),
            ref_cos=torch.where(padding[:, None], 1.0, grid_cos[token]),
            ref_sin=torch.where(padding[:, None], 0.0, grid_sin[token]),
        )


def wan_rotated_query(x, freqs_cos, freqs_sin):
    """x [B, N, heads, D] rotated by WanAttnProcessor itself, in x's dtype and differentiable: an
    attention module whose q projection is the identity (exact in float32) and whose q norm is
    off, and whose attention call is replaced by one that hands back the rotated query."""
    batch, tokens, heads, head_dim = x.shape
    attention = WanAttention(dim=heads * head_dim, heads=heads, dim_head=head_dim,
                             processor=WanAttnProcessor()).to(x.dtype)
    with torch.no_grad():
        for projection in (attention.to_q, attention.to_k, attention.to_v):
            projection.weight.copy_(torch.eye(heads * head_dim))
            projection.bias.zero_()
    attention.norm_q = attention.norm_k = torch.nn.Identity()
    captured = {}

    def capture_query(query, key, value, **kwargs):
        captured["query"] = query
        return query

    original = transformer_wan.dispatch_attention_fn
    transformer_wan.dispatch_attention_fn = capture_query
    try:
        attention(x.flatten(2), rotary_emb=(freqs_cos, freqs_sin))
    finally:
        transformer_wan.dispatch_attention_fn = original
    return captured["query"]


def rotate_like_wan_attention(x, freqs_cos, freqs_sin):
    """wan_rotated_query of float32 x, without autograd."""
    with torch.no_grad():
        return wan_rotated_query(x, freqs_cos, freqs_sin)


def rope_cases(write):
    """Tables from diffusers' WanRotaryPosEmbed (angles in float64, stored as float32), applied by
    WanAttnProcessor in float32. The C test builds its own tables from the grid and compares
    both."""
    for head_dim, (frames, height, width), batch, heads in [
        (12, (3, 6, 10), 1, 2),
        (40, (3, 6, 10), 2, 1),
        (64, (3, 6, 10), 1, 3),
        (128, (3, 6, 10), 1, 2),
        (128, (21, 3, 2), 1, 1),
    ]:
        rope = WanRotaryPosEmbed(head_dim, (1, 1, 1), max_seq_len=1024)
        freqs_cos, freqs_sin = rope(torch.empty(1, 1, frames, height, width))  # [1, N, 1, D]
        tokens = frames * height * width
        x = randn(batch, tokens, heads, head_dim)
        write(
            "rope",
            f"d{head_dim}_{frames}x{height}x{width}",
            grid=integers(frames, height, width),
            x=x,
            ref_cos=freqs_cos[0, :, 0, 0::2],
            ref_sin=freqs_sin[0, :, 0, 0::2],
            ref=rotate_like_wan_attention(x, freqs_cos, freqs_sin),
        )


def per_batch_rope_tables(batch, tokens, head_dim):
    """cos, sin [B, N, D/2] of random angles, one table per batch row (Bt = B), as a permuted
    sequence carries its tokens' own angles; and the two as WanAttnProcessor takes them
    ([B, N, 1, D], each angle twice)."""
    angles = torch.rand(batch, tokens, head_dim // 2, generator=GENERATOR, dtype=torch.float64) * 50
    cos, sin = angles.cos().float(), angles.sin().float()
    return cos, sin, [t.repeat_interleave(2, dim=-1)[:, :, None, :] for t in (cos, sin)]


def rope_apply_cases(write):
    batch, tokens, heads, head_dim = 3, 19, 2, 40
    cos, sin, interleaved = per_batch_rope_tables(batch, tokens, head_dim)
    x = randn(batch, tokens, heads, head_dim)
    write("rope_apply", "per_batch_tables", x=x, cos=cos, sin=sin,
          ref=rotate_like_wan_attention(x, *interleaved))


def sdpa_f64(q, k, v, key_mask, scale):
    """Attention of [B, N, heads, D] tensors in float64; kv row b mod Bk serves query row b. A query
    row whose keys are all masked must be 0, as OSP's contract says (this torch gives 0 there)."""
    batch = q.shape[0]
    kv_rows = torch.arange(batch) % k.shape[0]
    heads_first = [t.double().transpose(1, 2) for t in (q, k[kv_rows], v[kv_rows])]
    mask = key_mask.bool()[:, None, None, :] if key_mask is not None else None
    out = F.scaled_dot_product_attention(*heads_first, attn_mask=mask, scale=scale).transpose(1, 2)
    if key_mask is not None:
        assert (out[~key_mask.bool().any(dim=1)] == 0).all()
    return out.float()


def attention_cases(write):
    """Sizes straddle the CPU kernel's blocks (256 queries × 512 keys): partial blocks, several of
    them, and a batch row whose first key block is masked whole (its running max starts at
    −inf)."""
    first_key_block = 512
    for case, (batch, kv_batch, queries, keys, heads, head_dim, masked, logit_scale) in {
        "nq37_nk53_h3_d32": (2, 2, 37, 53, 3, 32, False, 1.0),
        "nk1_h2_d12": (1, 1, 20, 1, 2, 12, False, 1.0),
        "nk513_nq70_h4_d64": (1, 1, 70, 513, 4, 64, False, 1.0),
        "nq300_nk700_h2_d128": (1, 1, 300, 700, 2, 128, False, 1.0),
        "mask_nq40_nk1100_h2_d32": (3, 3, 40, 1100, 2, 32, True, 1.0),
        "broadcast_kv_b4_bk1_mask_d64": (4, 1, 65, 77, 1, 64, True, 1.0),
        "large_logits_h1_d12": (2, 2, 33, 270, 1, 12, False, 4.0),
    }.items():
        q = randn(batch, queries, heads, head_dim, std=logit_scale)
        k = randn(kv_batch, keys, heads, head_dim, std=logit_scale)
        v = randn(kv_batch, keys, heads, head_dim)
        scale = head_dim**-0.5
        tensors = {"q": q, "k": k, "v": v, "scale": scalar(scale)}
        key_mask = None
        if masked:
            key_mask = (torch.rand(batch, keys, generator=GENERATOR) < 0.7).to(torch.uint8)
            key_mask[1, :] = 0  # a query batch row with every key masked → 0
            if keys > first_key_block:
                key_mask[0, :first_key_block] = 0
            tensors["key_mask"] = key_mask
        write("attention", case, ref=sdpa_f64(q, k, v, key_mask, scale), **tensors)


def patchify_cases(write):
    """osp_patchify then a matmul with the Conv3d weight viewed [C, Cin·pt·ph·pw] must equal the
    Conv3d patch embedding (diffusers' patch_embedding), tokens flattened as in diffusers."""
    for case, (batch, in_channels, frames, height, width, patch, dim) in {
        "wan_patch_1x2x2": (2, 16, 3, 6, 10, (1, 2, 2), 24),
        "patch_2x3x2": (1, 3, 4, 9, 4, (2, 3, 2), 10),
    }.items():
        weight, bias = randn(dim, in_channels, *patch, std=0.2), randn(dim)
        latents = randn(batch, in_channels, frames, height, width)
        conv = torch.nn.Conv3d(in_channels, dim, kernel_size=patch, stride=patch,
                               dtype=torch.float64)
        with torch.no_grad():
            conv.weight.copy_(weight)
            conv.bias.copy_(bias)
            ref = conv(latents.double()).flatten(2).transpose(1, 2).float()
        write("patchify", case, latents=latents, patch=integers(*patch), weight=weight, bias=bias,
              ref=ref)


def tiny_wan_video(batch, out_channels, frames, height, width, patch, proj_out_hook):
    """The output video of a tiny WanTransformer3DModel run forward on random inputs, with
    proj_out_hook as a forward hook on its proj_out (whose output, the tokens, the model then
    unpatchifies by diffusers' own reshape/permute)."""
    model = WanTransformer3DModel(
        patch_size=patch, num_attention_heads=2, attention_head_dim=12, in_channels=4,
        out_channels=out_channels, text_dim=16, freq_dim=16, ffn_dim=32, num_layers=1,
        rope_max_seq_len=64,
    ).eval()
    model.proj_out.register_forward_hook(proj_out_hook)
    return model(
        hidden_states=randn(batch, 4, frames, height, width),
        timestep=torch.tensor([500.0] * batch),
        encoder_hidden_states=randn(batch, 7, 16),
        return_dict=False,
    )[0]


def unpatchify_cases(write):
    """The tokens of a tiny WanTransformer3DModel (its proj_out output) and its final output, the
    unpatchified video, are the input and reference."""
    for case, (batch, out_channels, frames, height, width, patch) in {
        "wan_patch_1x2x2": (2, 16, 3, 6, 10, (1, 2, 2)),
        "patch_2x2x3": (1, 5, 4, 4, 9, (2, 2, 3)),
    }.items():
        captured = {}
        with torch.no_grad():
            video = tiny_wan_video(batch, out_channels, frames, height, width, patch,
                                   lambda module, args, out: captured.update(tokens=out))
        write("unpatchify", case, tokens=captured["tokens"], patch=integers(*patch), ref=video)


def timestep_f64(t, dim):
    """diffusers' get_timestep_embedding(flip_sin_to_cos=True, downscale_freq_shift=0), in float64
    (as Wan2.1 computes it): [cos(t·f_j), sin(t·f_j)], f_j = e^(−ln(10000)·j/half)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float64) / half)
    angles = t.double()[:, None] * freqs[None, :]
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


def timestep_cases(write):
    for case, (values, dim) in {
        "wan_256": ([0.0, 1.0, 3.5, 250.25, 999.0, 1000.0], 256),
        "width_16": ([0.5, 17.0], 16),
    }.items():
        t = torch.tensor(values, dtype=torch.float32)
        ref = timestep_f64(t, dim)
        diffusers_f32 = get_timestep_embedding(t, dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        # same layout as diffusers; the values differ only by its float32 angles (t·f ≤ 1000)
        assert (ref - diffusers_f32.double()).abs().max() < 1e-3
        write("timestep_embedding", case, t=t, ref=ref.float())


# ---- Text encoder (umT5) ---------------------------------------------------------------------


def linear_bf16_cases(write):
    """A bf16 weight with f32 x: the f32 product with the bf16 values. N = 200 is three whole
    tiles of the CPU kernel's 64 weight rows and a partial one."""
    for case, (rows, k, n, with_bias) in {
        "7x13x5_bias": ((7,), 13, 5, True),
        "2x33x96_to_200_no_bias": ((2, 33), 96, 200, False),
        "1x300x64_to_130_bias": ((300,), 64, 130, True),
    }.items():
        x, w = randn(*rows, k), randn(n, k, std=k**-0.5).bfloat16()
        bias = randn(n) if with_bias else None
        extra = {"bias": bias} if with_bias else {}
        write("linear_bf16", case, x=x, weight=w, ref=in_f64(F.linear, x, w.float(), bias), **extra)


def gather_rows_bf16_cases(write):
    """Rows of a bf16 table (an embedding) as f32: exact."""
    index = torch.randint(0, 40, (33,), generator=GENERATOR)
    index[::7] = -1
    src = randn(40, 24).bfloat16()
    write("gather_rows_bf16", "embedding_40x24", src=src, index=index.int(),
          ref=gather_rows_torch(src.float(), index, (33, 24)))


def gelu_tanh_mul_cases(write):
    for case, a in activation_inputs().items():
        b = randn(*a.shape, std=1.5)
        write("gelu_tanh_mul", case, a=a, b=b,
              ref=in_f64(lambda a_, b_: F.gelu(a_, approximate="tanh") * b_, a, b))


def relative_position_bias_cases(write):
    """transformers' UMT5Attention.compute_bias with a random table: the buckets of every
    distance up to 600 (past max_distance, and its boundaries 16, 32, 64), square and not."""
    from transformers import UMT5Config
    from transformers.models.umt5.modeling_umt5 import UMT5Attention

    for case, (buckets, max_distance, heads, queries, keys) in {
        "b32_d128_h4_600x600": (32, 128, 4, 600, 600),
        "b16_d40_h3_70x300": (16, 40, 3, 70, 300),
        "b32_d128_h2_1x1": (32, 128, 2, 1, 1),
    }.items():
        config = UMT5Config(d_model=8, d_kv=2, num_heads=heads, relative_attention_num_buckets=buckets,
                            relative_attention_max_distance=max_distance)
        attention = UMT5Attention(config, has_relative_attention_bias=True)
        table = randn(buckets, heads)
        with torch.no_grad():
            attention.relative_attention_bias.weight.copy_(table)
            ref = attention.compute_bias(queries, keys)[0]
        write("relative_position_bias", case, table=table, max_distance=scalar(max_distance), ref=ref)


def attention_biased_cases(write):
    """Attention with an additive [heads, Nq, Nk] bias, at umT5's scale 1 and at 1/√D, over sizes
    that straddle the CPU kernel's blocks (256 queries × 512 keys), with and without a key mask
    (no query row masked whole: a float mask of −inf there is NaN in torch)."""
    for case, (batch, queries, keys, heads, head_dim, masked, scale) in {
        "nq7_nk7_h4_d16_scale1": (1, 7, 7, 4, 16, False, 1.0),
        "nq300_nk600_h2_d64_scale1": (1, 300, 600, 2, 64, False, 1.0),
        "mask_b2_nq40_nk530_h3_d20": (2, 40, 530, 3, 20, True, 20**-0.5),
    }.items():
        q = randn(batch, queries, heads, head_dim, std=0.5)
        k = randn(batch, keys, heads, head_dim, std=0.5)
        v = randn(batch, keys, heads, head_dim)
        bias = randn(heads, queries, keys, std=2.0)
        tensors = {"q": q, "k": k, "v": v, "bias": bias, "scale": scalar(scale)}
        additive = bias.double()[None].expand(batch, -1, -1, -1).clone()
        if masked:
            key_mask = (torch.rand(batch, keys, generator=GENERATOR) < 0.7).to(torch.uint8)
            key_mask[:, 0] = 1
            additive.masked_fill_(~key_mask.bool()[:, None, None, :], float("-inf"))
            tensors["key_mask"] = key_mask
        heads_first = [t.double().transpose(1, 2) for t in (q, k, v)]
        ref = F.scaled_dot_product_attention(*heads_first, attn_mask=additive, scale=scale)
        write("attention_biased", case, ref=ref.transpose(1, 2).float(), **tensors)


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUT_DIR")
    write = CaseWriter(sys.argv[1])
    for make in (linear_cases, layernorm_cases, rmsnorm_cases, activation_cases, modulation_cases,
                 gather_rows_cases, rope_cases, rope_tables_at_cases, rope_apply_cases,
                 attention_cases, patchify_cases, unpatchify_cases, timestep_cases,
                 linear_bf16_cases, gather_rows_bf16_cases, gelu_tanh_mul_cases,
                 relative_position_bias_cases, attention_biased_cases):
        make(write)
    print(f"make_op_cases: wrote {write.count} cases to {sys.argv[1]}")


if __name__ == "__main__":
    main()
