"""PyTorch references for the attention forward with log-sum-exp and the attention backward
(src/ops/grad.h), read by tests/unit/test_attention_grad_ref.c.

Usage: /root/.cache/osp-venv/bin/python tests/ref/make_attention_grad_cases.py OUT_DIR

Writes one safetensors file per case, OUT_DIR/<op>.<case>.safetensors, as make_op_cases.py does:
float32 inputs q, k, v [B, N, heads, D] (k, v with Bk rows, query row b using key row b mod Bk),
an optional u8 key_mask [B, Nk], the scale, and the references computed in float64 by an explicit
softmax under torch autograd from those float32 inputs, rounded once to float32:

  attention_lse.*       ref_out [B, Nq, heads, D] and ref_lse [B, heads, Nq] (torch.logsumexp;
                        −inf for a query whose keys are all masked);
  attention_backward.*  also dout (random) and ref_dq, ref_dk, ref_dv, the gradients of
                        Σ out·dout; with *_prefill tensors the C test starts each gradient from
                        them and the reference is prefill + gradient (the op accumulates).

The explicit softmax is checked against F.scaled_dot_product_attention (make_op_cases.sdpa_f64).
"""

import math
import sys

import torch

from make_op_cases import CaseWriter, GENERATOR, randn, scalar, sdpa_f64


def attention_f64(q, k, v, key_mask, scale):
    """out [B, Nq, heads, D] and lse [B, heads, Nq] of float64 tensors, differentiable. A query
    whose keys are all masked gets out 0, lse −inf and no gradient: its scores are replaced by
    zeros before the softmax (no NaN) and its weights multiplied by 0."""
    batch, keys = q.shape[0], k.shape[1]
    kv_rows = torch.arange(batch) % k.shape[0]
    q_h, k_h, v_h = (t.transpose(1, 2) for t in (q, k[kv_rows], v[kv_rows]))  # [B, heads, N, D]
    scores = scale * q_h @ k_h.transpose(-1, -2)
    attend = (key_mask if key_mask is not None else torch.ones(batch, keys)).bool()
    attend = attend[:, None, None, :]
    scores = scores.masked_fill(~attend, -math.inf)
    live = attend.any(dim=-1, keepdim=True)
    weights = torch.softmax(scores.masked_fill(~live, 0.0), dim=-1) * live
    return (weights @ v_h).transpose(1, 2), torch.logsumexp(scores, dim=-1)


def random_inputs(batch, kv_batch, queries, keys, heads, head_dim, masked, logit_scale):
    """q, k, v, and a key mask that pads some keys, masks every key of query row 1 and, where
    there are more keys than one CPU key block (512), the whole first block of row 0."""
    q = randn(batch, queries, heads, head_dim, std=logit_scale)
    k = randn(kv_batch, keys, heads, head_dim, std=logit_scale)
    v = randn(kv_batch, keys, heads, head_dim)
    key_mask = None
    if masked:
        key_mask = (torch.rand(batch, keys, generator=GENERATOR) < 0.7).to(torch.uint8)
        key_mask[1, :] = 0
        if keys > 512:
            key_mask[0, :512] = 0
    return q, k, v, key_mask


def forward_references(q, k, v, key_mask, scale):
    """out and lse in float64 from the float32 inputs (left differentiable), out checked against
    torch's scaled_dot_product_attention."""
    widened = [t.double().requires_grad_() for t in (q, k, v)]
    out, lse = attention_f64(*widened, key_mask, scale)
    assert (out.detach().float() - sdpa_f64(q, k, v, key_mask, scale)).abs().max() < 1e-6
    return widened, out, lse


def case_tensors(q, k, v, key_mask, scale, out, lse):
    tensors = {"q": q, "k": k, "v": v, "scale": scalar(scale), "ref_out": out.detach().float(),
               "ref_lse": lse.detach().float()}
    if key_mask is not None:
        tensors["key_mask"] = key_mask
    return tensors


# (B, Bk, Nq, Nk, heads, D, masked, logit std, scale or None for D^−½, prefilled gradients).
# Sizes straddle the CPU blocks (256 queries × 512 keys) and are no multiples of them. The backward
# cases with one (key row, head) pair (Bk = heads = 1) take the CPU kernel's two-pass schedule on
# more than one thread, the others its one-pass schedule (src/cpu/attention_backward.c).
LSE_CASES = {
    "nq37_nk53_h3_d16_scale0.3": (2, 2, 37, 53, 3, 16, False, 1.0, 0.3, False),
    "mask_nq300_nk1100_h2_d64": (3, 3, 300, 1100, 2, 64, True, 1.0, None, False),
    "shared_kv_b4_bk2_mask_h1_d128": (4, 2, 70, 90, 1, 128, True, 1.0, None, False),
}
BACKWARD_CASES = {
    "nq37_nk53_h3_d16_scale0.3": (2, 2, 37, 53, 3, 16, False, 1.0, 0.3, False),
    "mask_b3_nq40_nk70_h2_d64_prefill": (3, 3, 40, 70, 2, 64, True, 1.0, None, True),
    "shared_kv_b4_bk2_mask_nq65_nk77_h1_d64": (4, 2, 65, 77, 1, 64, True, 1.0, None, False),
    "shared_kv_b4_bk1_nq300_nk600_h1_d128_prefill": (4, 1, 300, 600, 1, 128, False, 1.0, None,
                                                     True),
    "shared_kv_b2_bk1_mask_nq270_nk1100_h1_d16": (2, 1, 270, 1100, 1, 16, True, 1.0, None, False),
    "nq513_nk37_h2_d128_scale0.05": (1, 1, 513, 37, 2, 128, False, 1.0, 0.05, False),
    "large_logits_nq33_nk270_h1_d16": (2, 2, 33, 270, 1, 16, False, 4.0, None, False),
}


def lse_cases(write):
    for case, (*sizes, masked, logit_scale, scale, _) in LSE_CASES.items():
        q, k, v, key_mask = random_inputs(*sizes, masked, logit_scale)
        scale = scale or sizes[-1] ** -0.5
        _, out, lse = forward_references(q, k, v, key_mask, scale)
        write("attention_lse", case, **case_tensors(q, k, v, key_mask, scale, out, lse))


def backward_cases(write):
    for case, (*sizes, masked, logit_scale, scale, prefilled) in BACKWARD_CASES.items():
        q, k, v, key_mask = random_inputs(*sizes, masked, logit_scale)
        scale = scale or sizes[-1] ** -0.5
        widened, out, lse = forward_references(q, k, v, key_mask, scale)
        dout = randn(*q.shape)
        out.backward(dout.double())
        tensors = case_tensors(q, k, v, key_mask, scale, out, lse)
        tensors["dout"] = dout
        for name, x in zip(("dq", "dk", "dv"), widened):
            assert torch.isfinite(x.grad).all()
            total = x.grad
            if prefilled:
                prefill = randn(*x.shape, std=float(x.grad.std()))
                tensors[f"{name}_prefill"] = prefill
                total = total + prefill.double()
            tensors[f"ref_{name}"] = total.float()
        if masked:  # query row 1 has every key masked: no gradient reaches its queries
            assert (widened[0].grad[1] == 0).all()
        write("attention_backward", case, **tensors)


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUT_DIR")
    write = CaseWriter(sys.argv[1])
    lse_cases(write)
    backward_cases(write)
    print(f"make_attention_grad_cases: wrote {write.count} cases to {sys.argv[1]}")


if __name__ == "__main__":
    main()
