"""PyTorch references for the backward ops of src/ops/grad.h (all but attention's), read by
tests/unit/test_grads_ref.c.

Usage: /root/.cache/osp-venv/bin/python tests/ref/make_grad_cases.py OUT_DIR

Writes one safetensors file per case, OUT_DIR/<op>_backward.<case>.safetensors, as
make_op_cases.py does: the forward's float32 inputs, a random float32 gradient of its output, and
ref_<name> for each gradient the C test asks the op for (a gradient with no ref_<name> is passed
as NULL). The references are torch autograd in float64 from the float32 inputs, rounded once to
float32. With a <name>_prefill tensor the C test starts that gradient from it instead of zeros,
and the reference is prefill + gradient, rounded once (the ops accumulate). Where the forward test
takes a layout from diffusers (RoPE, the Conv3d patch embedding, the unpatchify of
WanTransformer3DModel), the gradient comes through the same code.
"""

import sys

import torch
import torch.nn.functional as F
from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed

from make_op_cases import (GENERATOR, CaseWriter, gather_rows_torch, integers,
                           per_batch_rope_tables, randn, scalar, tiny_wan_video,
                           wan_rotated_query)


def gradients(output_of, inputs, grad_output):
    """The float64 gradients of Σ output·grad_output with respect to each input (float32 tensors,
    widened; None stays None and gets no gradient)."""
    widened = [t.double().requires_grad_() if t is not None else None for t in inputs]
    output = output_of(*widened)
    wanted = [t for t in widened if t is not None]
    found = iter(torch.autograd.grad(output, wanted, grad_output.double()))
    return [next(found) if t is not None else None for t in widened]


def references(grads, prefilled):
    """ref_<name> (and <name>_prefill where prefilled) for each named float64 gradient: prefill +
    gradient, rounded once to float32."""
    tensors = {}
    for name, grad in grads.items():
        total = grad
        if prefilled:
            prefill = randn(*grad.shape, std=float(grad.std()) + 0.5)
            tensors[f"{name}_prefill"] = prefill
            total = total + prefill.double()
        tensors[f"ref_{name}"] = total.float()
    return tensors


def linear_cases(write):
    """With and without bias; one case wants only dweight and dbias (the patch embedding, whose
    input needs no gradient)."""
    for case, (rows, k, n, wanted, prefilled) in {
        "7x13x5_bias": ((7,), 13, 5, ("dx", "dweight", "dbias"), False),
        "7x13x5_no_bias": ((7,), 13, 5, ("dx", "dweight"), True),
        "2x33x1536_to_96_prefill": ((2, 33), 1536, 96, ("dx", "dweight", "dbias"), True),
        "weights_only_300x64_to_40": ((300,), 64, 40, ("dweight", "dbias"), False),
    }.items():
        x, w, bias = randn(*rows, k), randn(n, k, std=k**-0.5), randn(n)
        dy = randn(*rows, n)
        dx, dw, dbias = gradients(F.linear, (x, w, bias), dy)
        grads = {"dx": dx, "dweight": dw, "dbias": dbias}
        write("linear_backward", case, x=x, weight=w, dy=dy,
              **references({name: grads[name] for name in wanted}, prefilled))


def layernorm_cases(write):
    """Rows of mean 0, and of mean 50 with std 1, where x − mean cancels in float32."""
    eps = 1e-6
    for case, (shape, mean, affine, prefilled) in {
        "affine_3x5x64": ((3, 5, 64), 0.0, True, False),
        "plain_7x1536": ((7, 1536), 0.0, False, False),
        "large_mean_affine_4x1536_prefill": ((4, 1536), 50.0, True, True),
        "large_mean_plain_2x3x256": ((2, 3, 256), 50.0, False, True),
        "affine_600x48": ((600, 48), 0.0, True, False),
    }.items():
        x, c = randn(*shape, mean=mean), shape[-1]
        weight, bias = (randn(c, mean=1.0, std=0.1), randn(c, std=0.1)) if affine else (None, None)
        dy = randn(*shape)
        dx, dweight, dbias = gradients(lambda x_, w_, b_: F.layer_norm(x_, (c,), w_, b_, eps),
                                       (x, weight, bias), dy)
        grads = {"dx": dx, "dweight": dweight, "dbias": dbias} if affine else {"dx": dx}
        extra = {"weight": weight} if affine else {}
        write("layernorm_backward", case, x=x, eps=scalar(eps), dy=dy,
              **references(grads, prefilled), **extra)


def rmsnorm_cases(write):
    eps = 1e-6
    for case, (shape, prefilled) in {
        "2x9x1536_prefill": ((2, 9, 1536), True),
        "5x12": ((5, 12), False),
        "700x40": ((700, 40), False),
    }.items():
        x, c = randn(*shape, std=3.0), shape[-1]
        weight, dy = randn(c, mean=1.0, std=0.2), randn(*shape)
        dx, dweight = gradients(lambda x_, w_: F.rms_norm(x_, (c,), w_, eps), (x, weight), dy)
        write("rmsnorm_backward", case, x=x, weight=weight, eps=scalar(eps), dy=dy,
              **references({"dx": dx, "dweight": dweight}, prefilled))


def activation_cases(write):
    """A sweep of [−12, 12] (both tails) and a batch of normal values, prefilled."""
    for case, (x, prefilled) in {
        "sweep": (torch.linspace(-12.0, 12.0, 4097, dtype=torch.float32), False),
        "normal_3x7x9_prefill": (randn(3, 7, 9, std=2.0), True),
    }.items():
        dy = randn(*x.shape)
        for op, f in (("gelu_tanh", lambda x_: F.gelu(x_, approximate="tanh")), ("silu", F.silu)):
            (dx,) = gradients(f, (x,), dy)
            write(f"{op}_backward", case, x=x, dy=dy, **references({"dx": dx}, prefilled))


def modulation_cases(write):
    """shift, scale and gate are rows of one [Bm, 6, C] table, and so are their gradients: the C
    test hands the op strided rows of a gradient table dtable, and the reference holds the whole
    table (the rows the op must not touch included). Batch row b uses table row b mod Bm: Bm = B,
    or Bm = 2 for B = 8, the P² subsequences of a Skiparse layout sharing their sample's row."""
    tokens, channels = 17, 48
    for prefix, (batch, table_batch, prefilled) in {"": (2, 2, False),
                                                    "b8_bm2_": (8, 2, True)}.items():
        x, y = randn(batch, tokens, channels), randn(batch, tokens, channels)
        table = randn(table_batch, 6, channels, std=0.5)
        dout = randn(batch, tokens, channels)
        rows_of_batch = torch.arange(batch) % table_batch
        for case, (shift_row, scale_row) in {"msa_rows_0_1": (0, 1),
                                             "ffn_rows_3_4": (3, 4)}.items():
            def modulate(x_, table_):
                row = table_[rows_of_batch]
                return x_ * (1 + row[:, scale_row, None]) + row[:, shift_row, None]
            dx, dtable = gradients(modulate, (x, table), dout)
            write("modulate_backward", prefix + case, x=x, table=table,
                  rows=integers(shift_row, scale_row), dy=dout,
                  **references({"dx": dx, "dtable": dtable}, prefilled))
        for case, gate_row in {"msa_row_2": 2, "ffn_row_5": 5}.items():
            def gated_add(y_, table_):
                return x.double() + y_ * table_[rows_of_batch][:, gate_row, None]
            dy, dtable = gradients(gated_add, (y, table), dout)
            write("gated_add_backward", prefix + case, dx=dout, y=y, table=table,
                  rows=integers(gate_row), **references({"dy": dy, "dtable": dtable}, prefilled))
    y, dout = randn(2, tokens, channels), randn(2, tokens, channels)
    (dy,) = gradients(lambda y_: y_ + 1.0, (y,), dout)
    write("gated_add_backward", "no_gate_prefill", dx=dout, y=y, **references({"dy": dy}, True))


def add_cases(write):
    """The gradient of a, broadcast to b's shape by y = a + b: the [1, 6, C] modulation table of
    e0 [B, 6, C], an operand of b's own shape, sums over inner and last dimensions, and a strided
    da: row `row` of a [1, 6, C] gradient table (the C test views it [1, C])."""
    channels = 40
    for case, (a_shape, b_shape, prefilled) in {
        "table_1x6xC_of_4x6xC": ((1, 6, channels), (4, 6, channels), False),
        "same_shape_3x6xC_prefill": ((3, 6, channels), (3, 6, channels), True),
        "3x1x1_of_3x5x7": ((3, 1, 1), (3, 5, 7), True),
        "1x5x1_of_2x5x300": ((1, 5, 1), (2, 5, 300), False),
    }.items():
        a, b, dy = randn(*a_shape), randn(*b_shape), randn(*b_shape)
        (da,) = gradients(lambda a_: a_ + b.double(), (a,), dy)
        write("add_backward", case, dy=dy, **references({"da": da}, prefilled))
    row, dy = 4, randn(5, channels)
    (da,) = gradients(lambda a_: a_ + torch.zeros(5, channels, dtype=torch.float64),
                      (randn(1, channels),), dy)
    dtable = torch.zeros(1, 6, channels, dtype=torch.float64)
    dtable[:, row] = da
    write("add_backward", "row_4_of_table", dy=dy, rows=integers(row),
          **references({"dtable": dtable}, True))


def gather_rows_cases(write):
    """Skiparse tables: permutations with padding (−1) entries, into more rows than src has (the
    padding on entering the sparse span) and into fewer (a crop: rows of src that get no gradient
    keep their prefill). A move of values, so the C test wants it exact."""
    padded = torch.randperm(90, generator=GENERATOR)
    padded[padded >= 74] = -1
    cropped = torch.randperm(60, generator=GENERATOR)[:48]
    for case, (src_shape, index, dst_shape, prefilled) in {
        "pad_74_to_90": ((2, 37, 24), padded, (90, 24), False),
        "crop_3x20_to_4x12_prefill": ((3, 20, 1536), cropped, (4, 12, 1536), True),
    }.items():
        ddst = randn(*dst_shape)
        (dsrc,) = gradients(lambda s_: gather_rows_torch(s_, index, dst_shape),
                            (randn(*src_shape),), ddst)
        write("gather_rows_backward", case, ddst=ddst, index=index.int(),
              **references({"dsrc": dsrc}, prefilled))


def wan_rope_gradient(dx, freqs_cos, freqs_sin):
    """The gradient of WanAttnProcessor's own query rotation (make_op_cases.wan_rotated_query) by
    autograd in float64. dx [B, N, heads, D]; freqs as WanAttnProcessor takes them ([1 or B, N, 1,
    D], each angle twice)."""
    (dinput,) = gradients(lambda x_: wan_rotated_query(x_, freqs_cos.double(), freqs_sin.double()),
                          (torch.zeros(dx.shape),), dx)
    return dinput


def rope_cases(write):
    """Tables [N, D/2] from diffusers' WanRotaryPosEmbed, shared by the batch, and per-batch-row
    tables [B, N, D/2] of random angles. The op rotates dx in place: dx_prefill is the incoming
    gradient and ref_dx the rotated one."""
    for head_dim, (frames, height, width), batch, heads in [(40, (3, 6, 10), 2, 2),
                                                            (128, (2, 3, 4), 1, 3)]:
        freqs_cos, freqs_sin = WanRotaryPosEmbed(head_dim, (1, 1, 1), max_seq_len=1024)(
            torch.empty(1, 1, frames, height, width))  # [1, N, 1, D]
        dx = randn(batch, frames * height * width, heads, head_dim)
        write("rope_apply_backward", f"shared_d{head_dim}_{frames}x{height}x{width}",
              cos=freqs_cos[0, :, 0, 0::2], sin=freqs_sin[0, :, 0, 0::2], dx_prefill=dx,
              ref_dx=wan_rope_gradient(dx, freqs_cos, freqs_sin).float())
    batch, tokens, heads, head_dim = 3, 19, 2, 40
    cos, sin, interleaved = per_batch_rope_tables(batch, tokens, head_dim)
    dx = randn(batch, tokens, heads, head_dim)
    write("rope_apply_backward", "per_batch_tables", cos=cos, sin=sin, dx_prefill=dx,
          ref_dx=wan_rope_gradient(dx, *interleaved).float())


def patchify_cases(write):
    """The gradient of the Conv3d patch embedding (tokens flattened as WanTransformer3DModel does)
    with respect to the latents, its weight one-hot so that the convolution is osp_patchify itself:
    output channel o reads feature o of the patch, (c, kt, kh, kw) in Conv3d weight order. A move
    of values, so exact."""
    for case, (batch, channels, frames, height, width, patch, prefilled) in {
        "wan_patch_1x2x2": (2, 16, 3, 6, 10, (1, 2, 2), False),
        "patch_2x2x3_prefill": (1, 3, 4, 4, 9, (2, 2, 3), True),
    }.items():
        features = channels * patch[0] * patch[1] * patch[2]
        conv = torch.nn.Conv3d(channels, features, kernel_size=patch, stride=patch, bias=False,
                               dtype=torch.float64)
        with torch.no_grad():
            conv.weight.copy_(torch.eye(features).reshape(features, channels, *patch))
        latents = randn(batch, channels, frames, height, width)
        tokens = frames // patch[0] * (height // patch[1]) * (width // patch[2])
        dpatches = randn(batch, tokens, features)
        (dlatents,) = gradients(lambda l_: conv(l_).flatten(2).transpose(1, 2), (latents,),
                                dpatches)
        write("patchify_backward", case, dpatches=dpatches, patch=integers(*patch),
              **references({"dlatents": dlatents}, prefilled))


def unpatchify_cases(write):
    """A tiny WanTransformer3DModel whose proj_out output is replaced by tokens of our own
    (make_op_cases.tiny_wan_video): the gradient of its output video with respect to them is
    diffusers' reshape/permute run backwards. A move of values, exact in any dtype (the model runs
    in float32)."""
    for case, (batch, out_channels, frames, height, width, patch, prefilled) in {
        "wan_patch_1x2x2": (2, 16, 3, 6, 10, (1, 2, 2), False),
        "patch_2x2x3_prefill": (1, 5, 4, 4, 9, (2, 2, 3), True),
    }.items():
        tokens = frames // patch[0] * (height // patch[1]) * (width // patch[2])
        features = patch[0] * patch[1] * patch[2] * out_channels
        dout = randn(batch, out_channels, frames, height, width)
        (dtokens,) = gradients(
            lambda tokens_: tiny_wan_video(batch, out_channels, frames, height, width, patch,
                                           lambda module, args, out: tokens_.float()).double(),
            (torch.zeros(batch, tokens, features),), dout)
        write("unpatchify_backward", case, dout=dout, patch=integers(*patch),
              **references({"dtokens": dtokens}, prefilled))


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUT_DIR")
    write = CaseWriter(sys.argv[1])
    for make in (linear_cases, layernorm_cases, rmsnorm_cases, activation_cases, modulation_cases,
                 add_cases, gather_rows_cases, rope_cases, patchify_cases, unpatchify_cases):
        make(write)
    print(f"make_grad_cases: wrote {write.count} cases to {sys.argv[1]}")


if __name__ == "__main__":
    main()
