#!/usr/bin/env python3
"""PyTorch twin of `osp bench --vae`: diffusers' AutoencoderKLWan (the Wan2.1 VAE) decoding random
latents with random weights, in bf16 on the GPU, at the same shapes.

    python3 bench/torch_vae.py --res 480p,720p --json $OUT/torch_vae.json
    python3 bench/torch_vae.py --device cpu --res 2x8x8          # smoke test, no GPU

For each resolution: one warm-up decode of two latent frames, then the whole video timed between
CUDA synchronisations (the decode diffusers' WanPipeline runs: z / (1/std) + mean is not timed,
post_quant_conv and the decoder frame by frame with its feature cache, clamp). The decode's
FLOPs are counted by torch.utils.flop_counter on one and on two latent frames and extrapolated
(F = first + (F − 1)·(second − first): every later latent frame costs the same), so the rate can
stand next to OSP's time for the same work. Peak memory is torch.cuda.max_memory_allocated.
"""

import argparse
import json
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

RESOLUTIONS = {"480p": (21, 60, 104), "720p": (21, 90, 160), "768p": (21, 96, 160)}


def latent_grid(name):
    if name in RESOLUTIONS:
        return RESOLUTIONS[name]
    f, h, w = (int(v) for v in name.split("x"))
    return f, h, w


def decode(vae, latents):
    with torch.no_grad():
        return vae.decode(latents, return_dict=False)[0].clamp_(-1, 1)


def synchronize(device):
    if device == "cuda":
        torch.cuda.synchronize()


def flops_of(vae, z, frames, h, w, device, dtype):
    latents = torch.randn(1, z, frames, h, w, device=device, dtype=dtype)
    counter = FlopCounterMode(display=False)
    with counter:
        decode(vae, latents)
    return counter.get_total_flops()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--res", default="480p,720p")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--json")
    a = ap.parse_args()
    from diffusers import AutoencoderKLWan
    dtype = torch.bfloat16 if a.device == "cuda" else torch.float32
    torch.manual_seed(0)
    vae = AutoencoderKLWan().to(a.device, dtype).eval()  # diffusers' defaults are the Wan2.1 VAE's
    results = []
    for name in a.res.split(","):
        f, h, w = latent_grid(name)
        z = vae.config.z_dim
        first = flops_of(vae, z, 1, h, w, a.device, dtype)
        two = flops_of(vae, z, 2, h, w, a.device, dtype)
        flops = first + (f - 1) * (two - first)
        decode(vae, torch.randn(1, z, min(f, 2), h, w, device=a.device, dtype=dtype))
        latents = torch.randn(1, z, f, h, w, device=a.device, dtype=dtype)
        if a.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        synchronize(a.device)
        start = time.perf_counter()
        decode(vae, latents)
        synchronize(a.device)
        seconds = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated() if a.device == "cuda" else 0
        frames = 1 + 4 * (f - 1)
        print(f"torch vae decode {name}: {frames} frames of {8 * h}x{8 * w} {seconds * 1e3:11.1f} ms "
              f"{frames / seconds:7.1f} frames/s {flops / seconds * 1e-12:7.1f} TFLOP/s "
              f"({flops * 1e-12:.1f} TFLOP) peak memory {peak / 2 ** 30:.2f} GiB", flush=True)
        results.append(dict(name=name, frames=frames, height=8 * h, width=8 * w, ms=seconds * 1e3, flops=flops,
                            peak_bytes=peak))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(dict(device=a.device, torch=torch.__version__, dtype=str(dtype), results=results), fh, indent=1)


if __name__ == "__main__":
    main()
