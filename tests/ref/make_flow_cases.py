"""PyTorch references for the flow-matching objective (src/pipeline/flow_matching.h), read by
tests/unit/test_flow_ref.c.

Usage: /root/.cache/osp-venv/bin/python tests/ref/make_flow_cases.py OUT_DIR

Writes one safetensors file per case, OUT_DIR/<op>.<case>.safetensors, with make_op_cases.py's
writer:
  shift.*            sigma (float32, before the shift), shift (float32), ref (float64): diffusers'
                     FlowMatchEulerDiscreteScheduler.time_shift(log s, 1, σ) = s·σ/(1 + (s − 1)·σ),
                     in float64 from the float32 σ and s.
  resolution_shift.* latent (h_lat, w_lat), ref_shift = exp(μ) with μ from diffusers'
                     calculate_shift (FLUX's: 0.5 at 256 tokens, 1.15 at 4096) of L = h_lat·w_lat/4,
                     sigma and ref_sigma = time_shift(μ, 1, σ) of a grid of σ.
  training_step.*    one step of the objective as a training loop computes it in float32: x0,
                     noise, v [B, 16, F, H, W], sigma [B] (before the shift), shift (float32);
                     ref_sigma (σ′, rounded once from float64), ref_timestep (1000·σ′ in float32),
                     ref_x_t = (1 − σ′)·x0 + σ′·noise and ref_target = noise − x0 (float32 ops),
                     ref_loss = F.mse_loss(v, target) and ref_grad_v its autograd gradient (float32,
                     grad_output 1).
"""

import math
import os
import sys

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # the pipelines import warns otherwise

import torch
import torch.nn.functional as F
from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.pipelines.flux.pipeline_flux import calculate_shift

from make_op_cases import CaseWriter, integers

GENERATOR = torch.Generator().manual_seed(20260701)
SCHEDULER = FlowMatchEulerDiscreteScheduler()  # exponential time_shift: exp(μ)/(exp(μ) + 1/σ − 1)


def f64(value):
    return torch.tensor([value], dtype=torch.float64)


def f32(value):
    """A float32 scalar, and the Python float it holds exactly (what the C test computes with)."""
    stored = torch.tensor([value], dtype=torch.float32)
    return stored, stored.item()


def randn(*shape):
    return torch.randn(*shape, generator=GENERATOR, dtype=torch.float32)


def sigma_grid():
    """σ in (0, 1): both ends closely, the middle, and logit-normal draws (as training samples)."""
    ends = torch.tensor([1e-6, 1e-4, 0.01, 0.5, 0.99, 0.9999, 1 - 2**-24], dtype=torch.float32)
    drawn = torch.sigmoid(randn(200))
    return torch.cat([ends, torch.linspace(0.001, 0.999, 101, dtype=torch.float32), drawn])


def time_shift(mu, sigma):
    """diffusers' shift of float32 σ in float64."""
    return SCHEDULER.time_shift(mu, 1.0, sigma.double())


def shift_cases(write):
    sigma = sigma_grid()
    for case, value in {"none": 1.0, "half": 0.5, "480p": 2.06, "wan_t2v": 5.0,
                        "osp_next_sampler": 7.0}.items():
        stored, shift = f32(value)
        write("shift", case, sigma=sigma, shift=stored, ref=time_shift(math.log(shift), sigma))


def resolution_shift_cases(write):
    sigma = sigma_grid()
    for case, (height, width) in {"480p_60x104": (60, 104), "720p_90x160": (90, 160),
                                  "768p_96x170": (96, 170), "tiny_8x8": (8, 8),
                                  "odd_5x7": (5, 7)}.items():
        mu = calculate_shift(height * width / 4)
        write("resolution_shift", case, latent=integers(height, width), ref_shift=f64(math.exp(mu)),
              sigma=sigma, ref_sigma=time_shift(mu, sigma))


def training_step_cases(write):
    for case, (shape, value) in {
        "b2_16x3x6x10_shift5": ((2, 16, 3, 6, 10), 5.0),
        "b3_16x1x5x7_no_shift": ((3, 16, 1, 5, 7), 1.0),
        "b1_16x5x30x52_720p_shift": ((1, 16, 5, 30, 52), math.exp(calculate_shift(3600))),
    }.items():
        stored, shift = f32(value)
        batch = shape[0]
        x0, noise = randn(*shape), randn(*shape)
        sigma = torch.sigmoid(randn(batch))
        sigma_shifted = time_shift(math.log(shift), sigma).float()
        timestep = sigma_shifted * 1000
        s = sigma_shifted.view(batch, *([1] * (len(shape) - 1)))
        x_t = (1 - s) * x0 + s * noise
        target = noise - x0
        v = (target + 0.3 * randn(*shape)).requires_grad_()  # a prediction near its target
        loss = F.mse_loss(v, target)
        (grad_v,) = torch.autograd.grad(loss, v)
        exact = (v.detach().double() - target.double()).square().mean()
        assert abs(loss.item() - exact.item()) <= 1e-6 * exact.item(), (case, loss, exact)
        write("training_step", case, x0=x0, noise=noise, sigma=sigma, shift=stored,
              v=v.detach(), ref_sigma=sigma_shifted, ref_timestep=timestep, ref_x_t=x_t,
              ref_target=target, ref_loss=loss.detach().reshape(1), ref_grad_v=grad_v)


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUT_DIR")
    write = CaseWriter(sys.argv[1])
    for make in (shift_cases, resolution_shift_cases, training_step_cases):
        make(write)
    print(f"make_flow_cases: wrote {write.count} cases to {sys.argv[1]}")


if __name__ == "__main__":
    main()
