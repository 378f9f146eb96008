#!/usr/bin/env python3
"""`osp quant hif8` against an independent formulation of HiF8 (PAPER.md 7.2, 7.3).

usage: python tests/ref/hif8_parity.py OSP_BINARY WORKDIR

The reference implementation of HiF8 (hif8_npu, an Ascend C kernel) cannot run here, and
OSP-Next's PyTorch fallback lacks the rule's flush, clamp and saturation (PAPER.md 7.1). So the
reference here is the rule restated as a set: the 126 positive values HiF8 can hold (2^−22 ..
2^−16 one per binade; 1 mantissa bit in the binades 2^±8 .. 2^±15, 2^15 alone at the top; 2 bits
in 2^±4 .. 2^±7; 3 bits in 2^−3 .. 2^3), zero below 2^−23, ±∞ from ±40960, and every other value
rounded to the nearest member with ties away from zero, in float64 (every member is exact).
OSP computes the same rule with bit operations on the exponent (src/quant/hif8.h); the two must
agree bit for bit on every bf16 value (all 65,536), a million random float32 bit patterns, and
every member's neighbours and midpoints with their own neighbours. The scaled path is checked
against torch: f32 tensors hif8(x·s)/s, bf16 ones bf16(hif8(bf16(x·s))/s), s = scale_max/max|x|
in float32 (the scalar's dtype in the reference is not in the sources: float32 is assumed).

Prints one line per check and "hif8: N passed, M failed" last.
"""
import bisect
import math
import os
import subprocess
import sys

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from tally import Tally

TALLY = Tally("hif8")
check = TALLY.check


def members():
    values = set()
    for e in range(-22, -15):
        values.add(2.0 ** e)
    for bits, exponents in ((1, list(range(-15, -7)) + list(range(8, 16))), (2, list(range(-7, -3)) + list(range(4, 8))),
                            (3, range(-3, 4))):
        for e in exponents:
            for k in range(2 ** bits):
                v = 2.0 ** e * (1 + k / 2 ** bits)
                if v <= 32768:
                    values.add(v)
    return sorted(values)


VALUES = members()


def reference(x):
    if math.isnan(x):
        return math.nan
    a = abs(x)
    if a < 2.0 ** -23:
        return math.copysign(0.0, x)
    if a >= 40960:
        return math.copysign(math.inf, x)
    i = bisect.bisect_left(VALUES, a)
    if i == len(VALUES):
        y = VALUES[-1]
    elif VALUES[i] == a:
        y = a
    elif i == 0:
        y = VALUES[0]  # between 2^−23 and 2^−22: the nearest member, ties away
    else:
        low, high = VALUES[i - 1], VALUES[i]
        y = high if a - low >= high - a else low
    return math.copysign(y, x)


def run_osp(osp, work, tensors, *extra):
    src, dst = os.path.join(work, "in.safetensors"), os.path.join(work, "out.safetensors")
    save_file(tensors, src)
    r = subprocess.run([osp, "quant", "hif8", "--inputs", src, "-o", dst, *extra], capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.stderr.strip()
    return load_file(dst), ""


def element_rule(osp, work):
    check(len(VALUES) == 126, f"the reference set has {len(VALUES)} positive values (PAPER.md: 126)")
    bf16 = torch.arange(65536, dtype=torch.int32).to(torch.int16).view(torch.bfloat16).float()
    rng = np.random.default_rng(0)
    random_bits = rng.integers(0, 2 ** 32, size=1_000_000, dtype=np.uint64).astype(np.uint32)
    edges = []
    for v in VALUES + [2.0 ** -23, 40960.0]:
        for s in (1, -1):
            edges.append(s * v)
    for a, b in zip(VALUES, VALUES[1:]):
        edges.append((a + b) / 2)
    edges = np.array(edges, dtype=np.float32)
    near = np.concatenate([edges, np.nextafter(edges, np.float32(np.inf)), np.nextafter(edges, np.float32(-np.inf))])
    sets = {"every bf16 value": bf16.numpy(), "1M random float32 bit patterns": random_bits.view(np.float32),
            "the set's members, midpoints and their neighbours": near}
    for label, values in sets.items():
        x = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
        got, error = run_osp(osp, work, {"x": x})
        if got is None:
            check(False, f"{label}: osp quant failed: {error}")
            continue
        want = np.array([reference(float(v)) for v in x.numpy()], dtype=np.float32)
        g = got["x"].numpy()
        same = (g.view(np.uint32) == want.view(np.uint32)) | (np.isnan(g) & np.isnan(want))
        bad = np.flatnonzero(~same)
        detail = "" if not len(bad) else f"; first: x={x.numpy()[bad[0]]!r} osp={g[bad[0]]!r} ref={want[bad[0]]!r}"
        check(len(bad) == 0, f"{label}: {len(values) - len(bad)}/{len(values)} identical bit for bit{detail}")


def ref_tensor(x, scale_max):
    """The reference's scaled QDQ of a tensor (torch for the dtype sequence, the set rule per element)."""
    q = np.vectorize(lambda v: np.float32(reference(float(v))), otypes=[np.float32])
    amax = torch.clamp(x.float().abs().max(), min=1e-8)
    s = torch.tensor(scale_max, dtype=torch.float32) / amax
    if x.dtype == torch.bfloat16:
        scaled = (x.float() * s).to(torch.bfloat16).float()
        return (torch.from_numpy(q(scaled.numpy())) / s).to(torch.bfloat16)
    return torch.from_numpy(q((x * s).numpy())) / s


def scaled(osp, work):
    g = torch.Generator().manual_seed(1)
    tensors = {"activation.f32": torch.randn(64, 96, generator=g) * 3.0,
               "weight.bf16": (torch.randn(48, 80, generator=g) * 0.02).to(torch.bfloat16),
               "gradient.f32": torch.randn(1000, generator=g) * 1e-4,
               "spiky.bf16": torch.cat([torch.randn(500, generator=g), torch.tensor([300.0])]).to(torch.bfloat16)}
    for smax in (15.0, 224.0):
        got, error = run_osp(osp, work, tensors, "--scale-max", str(smax))
        if got is None:
            check(False, f"--scale-max {smax}: osp quant failed: {error}")
            continue
        for name, x in tensors.items():
            want = ref_tensor(x, smax)
            same = got[name].dtype == x.dtype and torch.equal(got[name], want)
            diff = (got[name].float() - want.float()).abs().max().item() if got[name].shape == want.shape else None
            check(same, f"--scale-max {smax:g} on {name} {tuple(x.shape)}: identical to the reference (max diff {diff})")
    ints = {"steps": torch.arange(5, dtype=torch.int64)}
    got, error = run_osp(osp, work, ints)
    check(got is not None and torch.equal(got["steps"], ints["steps"]), "integer tensors copied unchanged")


def main():
    osp, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    element_rule(osp, work)
    scaled(osp, work)
    TALLY.finish()


if __name__ == "__main__":
    main()
