"""diffusers' flow-matching samplers, the references of the samplers (src/sample/sampler.h), read by
tests/unit/test_sampler_ref.c.

Usage: /root/.cache/osp-venv/bin/python tests/ref/make_sampler_cases.py OUT_DIR

Writes one safetensors file per case, OUT_DIR/<op>.<case>.safetensors, with make_op_cases.py's
writer:
  euler.*     FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=S), set_timesteps(N)
  unipc.*     UniPCMultistepScheduler configured as Wan2.1-T2V-14B-Diffusers' scheduler_config.json
              (flow_prediction, use_flow_sigmas, solver_order 2, predict_x0, bh2, lower_order_final,
              final_sigmas_type "zero"), flow_shift=S, set_timesteps(N); the order-1 cases set
              solver_order=1.
              Each holds: steps (int64), order (unipc only, int64), shift (float64: exactly the
              Python float diffusers was given), sample (the start, float32), velocity [N, ...]
              (the "model output" of each step: random and independent of the sample, so the C
              test needs no model), ref_samples [N, ...] (the sample after each scheduler.step,
              float32 as diffusers runs it) and ref_timesteps [N] (scheduler.timesteps: the t the
              model is called with).
  guidance.*  classifier-free guidance as WanPipeline combines the two predictions in float32:
              cond, uncond, scale (float64), ref = uncond + scale·(cond − uncond).
"""

import os
import sys

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # the pipelines import warns otherwise

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

from make_op_cases import CaseWriter, integers

GENERATOR = torch.Generator().manual_seed(20260715)

# Wan2.1-T2V-14B-Diffusers scheduler/scheduler_config.json (the diffusers WanPipeline's sampler),
# less flow_shift, which the caller chooses (3.0 for 480P, 5.0 for 720P).
WAN_UNIPC = dict(
    num_train_timesteps=1000,
    prediction_type="flow_prediction",
    use_flow_sigmas=True,
    solver_order=2,
    predict_x0=True,
    solver_type="bh2",
    lower_order_final=True,
    final_sigmas_type="zero",
    timestep_spacing="linspace",
    disable_corrector=[],
)

SHAPE_WAN = (1, 16, 3, 4, 6)  # a latent video [B, C, F, H, W]
SHAPE_BATCH = (2, 16, 1, 3, 5)  # two prompts, one frame, odd sizes


def randn(*shape):
    return torch.randn(*shape, generator=GENERATOR, dtype=torch.float32)


def f64(value):
    return torch.tensor([value], dtype=torch.float64)


def make_scheduler(kind, shift, order):
    if kind == "euler":
        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift)
    return UniPCMultistepScheduler(**{**WAN_UNIPC, "solver_order": order}, flow_shift=shift)


def sampler_case(write, kind, steps, shift, shape, order=2):
    """Runs the scheduler as WanPipeline's denoising loop does, with random velocities."""
    scheduler = make_scheduler(kind, shift, order)
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps
    assert len(timesteps) == steps and len(set(timesteps.tolist())) == steps, timesteps
    start = randn(*shape)
    velocity = randn(steps, *shape)
    sample, after = start, []
    for i, t in enumerate(timesteps):
        sample = scheduler.step(velocity[i], t, sample, return_dict=False)[0]
        assert sample.dtype == torch.float32
        after.append(sample)
    name = f"steps{steps}_shift{shift:g}_{'x'.join(map(str, shape))}"
    extra = {}
    if kind == "unipc":
        extra["order"] = integers(order)
        name += f"_order{order}" if order != 2 else ""
    write(kind, name, steps=integers(steps), shift=f64(shift), sample=start, velocity=velocity,
          ref_samples=torch.stack(after), ref_timesteps=timesteps.float(), **extra)


def sampler_cases(write):
    for kind in ("euler", "unipc"):
        for steps in (1, 2, 3, 10, 50):
            for shift in (1.0, 3.0, 5.0):
                sampler_case(write, kind, steps, shift, SHAPE_WAN)
        sampler_case(write, kind, 4, 3.0, SHAPE_BATCH)
        sampler_case(write, kind, 30, 2.9, (3, 7))  # a shift float32 cannot hold exactly
    for steps in (1, 3, 10):
        sampler_case(write, "unipc", steps, 5.0, SHAPE_WAN, order=1)


def guidance_cases(write):
    for case, scale in {"scale5": 5.0, "scale1": 1.0, "scale0": 0.0, "scale3.7": 3.7}.items():
        cond, uncond = randn(*SHAPE_WAN), randn(*SHAPE_WAN)
        write("guidance", case, cond=cond, uncond=uncond, scale=f64(scale),
              ref=uncond + scale * (cond - uncond))


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUT_DIR")
    write = CaseWriter(sys.argv[1])
    sampler_cases(write)
    guidance_cases(write)
    print(f"make_sampler_cases: wrote {write.count} cases to {sys.argv[1]}")


if __name__ == "__main__":
    main()
