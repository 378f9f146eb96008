#!/usr/bin/env python3
"""Parity of `osp vae-decode` / `osp vae-encode` with diffusers' AutoencoderKLWan (Wan2.1's VAE),
on tiny random models.

usage: python tests/ref/vae_parity.py OSP_BINARY WORKDIR [--tol 1e-4]

Each model is an AutoencoderKLWan with a small config whose EVERY parameter is overwritten with
random values (norm gammas around 1, conv biases nonzero, the attention's zero-initialised
projection included), and random latents_mean / latents_std. It is saved as a diffusers model
directory (DIR/vae/config.json + diffusion_pytorch_model.safetensors).

  decode: latents in the DiT's normalised space; the reference is what WanPipeline does,
          vae.decode(latents / (1 / std) + mean), clamped to [-1, 1] by diffusers itself.
  encode: the reference is (posterior.mean - mean) * (1 / std).
      err = max|osp - ref| / max|ref|  must be <= tol (1e-4, float32)

Also: the original Wan2.1 tensor names (the mapping checked against diffusers' own converter on
the released layout) load and decode the same; a causal decode of a prefix of the latent frames
equals the prefix of the whole decode (the feature caches carry exactly the history); a
perturbed weight is caught (so the comparison can fail); bad inputs get clear messages.

Prints one line per check and a last line "vae: N passed, M failed"; exits 1 on a failure.
"""
import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys

import torch
from safetensors.torch import load_file, save_file
from diffusers import AutoencoderKLWan
from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers
from diffusers.utils import logging as diffusers_logging

diffusers_logging.set_verbosity_error()
torch.set_num_threads(2)

SMALL = dict(base_dim=8, z_dim=16, dim_mult=[1, 2, 2, 2], num_res_blocks=1, attn_scales=[],
             temperal_downsample=[False, True, True])
NARROW_Z = dict(base_dim=8, z_dim=4, dim_mult=[1, 2, 2], num_res_blocks=1, attn_scales=[],
                temperal_downsample=[True, True])
RELEASED_LAYOUT = dict(base_dim=4, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                       temperal_downsample=[False, True, True])


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------

def make_vae(cfg, seed):
    """An AutoencoderKLWan with every parameter random and random latent statistics."""
    g = torch.Generator().manual_seed(seed)
    z = cfg["z_dim"]
    stats = dict(latents_mean=(torch.randn(z, generator=g) * 0.5).tolist(),
                 latents_std=(0.5 + torch.rand(z, generator=g) * 2.5).tolist())
    vae = AutoencoderKLWan(**cfg, **stats).eval()
    with torch.no_grad():
        for name, p in vae.named_parameters():
            if name.endswith("gamma"):
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                scale = 0.3 if "conv_out" in name and name.startswith("decoder") else 1.0
                p.copy_(scale * torch.randn(p.shape, generator=g) / math.sqrt(p[0].numel()))
    return vae


def save_model(vae, root):
    """A diffusers model directory: root/vae/{config.json, diffusion_pytorch_model.safetensors}."""
    shutil.rmtree(root, ignore_errors=True)
    vae.save_pretrained(os.path.join(root, "vae"), safe_serialization=True)
    return root


# diffusers -> original Wan2.1 names (wan/modules/vae.py), for any config.
_RESIDUAL = {"norm1.gamma": "residual.0.gamma", "conv1": "residual.2", "norm2.gamma": "residual.3.gamma",
             "conv2": "residual.6", "conv_shortcut": "shortcut"}


def _residual_suffix(rest):
    for ours, theirs in _RESIDUAL.items():
        if rest == ours or rest.startswith(ours + "."):
            return theirs + rest[len(ours):]
    raise KeyError(rest)


def original_name(name, num_res_blocks):
    top = {"quant_conv": "conv1", "post_quant_conv": "conv2", "encoder.conv_in": "encoder.conv1",
           "decoder.conv_in": "decoder.conv1", "encoder.conv_out": "encoder.head.2",
           "decoder.conv_out": "decoder.head.2"}
    stem, _, suffix = name.rpartition(".")
    if stem in top:
        return f"{top[stem]}.{suffix}"
    m = re.fullmatch(r"(encoder|decoder)\.norm_out\.gamma", name)
    if m:
        return f"{m[1]}.head.0.gamma"
    m = re.fullmatch(r"(encoder|decoder)\.mid_block\.(resnets|attentions)\.(\d)\.(.*)", name)
    if m:
        if m[2] == "attentions":
            return f"{m[1]}.middle.1.{m[4]}"
        return f"{m[1]}.middle.{2 * int(m[3])}.{_residual_suffix(m[4])}"
    m = re.fullmatch(r"encoder\.down_blocks\.(\d+)\.(.*)", name)
    if m:
        rest = m[2] if m[2].startswith(("resample.", "time_conv.")) else _residual_suffix(m[2])
        return f"encoder.downsamples.{m[1]}.{rest}"
    m = re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", name)
    if m:
        return f"decoder.upsamples.{int(m[1]) * (num_res_blocks + 2) + int(m[2])}.{_residual_suffix(m[3])}"
    m = re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.*)", name)
    if m:
        return f"decoder.upsamples.{int(m[1]) * (num_res_blocks + 2) + num_res_blocks + 1}.{m[2]}"
    raise KeyError(name)


def original_state_dict(vae):
    nrb = vae.config.num_res_blocks
    return {original_name(k, nrb): v.detach().clone().contiguous() for k, v in vae.state_dict().items()}


# ---------------------------------------------------------------------------------------------
# References
# ---------------------------------------------------------------------------------------------

def statistics(vae):
    z = vae.config.z_dim
    mean = torch.tensor(vae.config.latents_mean).view(1, z, 1, 1, 1)
    inv_std = 1.0 / torch.tensor(vae.config.latents_std).view(1, z, 1, 1, 1)
    return mean, inv_std


@torch.no_grad()
def reference_decode(vae, latents):
    mean, inv_std = statistics(vae)  # as WanPipeline: latents / latents_std + latents_mean, latents_std = 1/std
    return vae.decode(latents / inv_std + mean, return_dict=False)[0]


@torch.no_grad()
def reference_encode(vae, video):
    mean, inv_std = statistics(vae)
    return (vae.encode(video).latent_dist.mean - mean) * inv_std


# ---------------------------------------------------------------------------------------------
# Running osp
# ---------------------------------------------------------------------------------------------

class Suite:
    def __init__(self, osp, work, tol):
        self.osp, self.work, self.tol = osp, work, tol
        self.passed = self.failed = 0

    def report(self, ok, line):
        print(f"{line}: {'ok' if ok else 'FAIL'}", flush=True)
        self.passed += ok
        self.failed += not ok

    def run(self, command, model, tensors, output_name, extra=()):
        """Writes the inputs, runs osp; returns (tensor or None, stderr)."""
        inputs = os.path.join(self.work, "inputs.safetensors")
        output = os.path.join(self.work, "output.safetensors")
        save_file({k: v.contiguous() for k, v in tensors.items()}, inputs)
        if os.path.exists(output):
            os.remove(output)
        r = subprocess.run([self.osp, command, "--model", model, "--inputs", inputs, "-o", output, *extra],
                           capture_output=True, text=True, errors="replace", timeout=300)
        if r.returncode != 0:
            return None, r.stderr.strip()
        return load_file(output)[output_name], r.stderr.strip()

    def compare(self, label, got, ref, stderr, tol=None, expect_fail=False):
        tol = self.tol if tol is None else tol
        if got is None:
            self.report(False, f"{label}: osp failed: {stderr.splitlines()[-1] if stderr else '?'}")
            return None
        if tuple(got.shape) != tuple(ref.shape):
            self.report(False, f"{label}: shape {list(got.shape)}, expected {list(ref.shape)}")
            return None
        err = ((got - ref).abs().max() / ref.abs().max()).item()
        saturated = (ref.abs() >= 1).float().mean().item()
        ok = (err > tol) if expect_fail else (err <= tol)
        what = "caught, err" if expect_fail else "err"
        self.report(ok, f"{label}: {what} {err:.2e} (tol {tol:g}), {saturated:.0%} of |ref| at 1")
        return got

    def expect_error(self, label, command, model, tensors, needles):
        got, stderr = self.run(command, model, tensors, "x")
        last = stderr.splitlines()[-1] if stderr else ""
        ok = got is None and all(n in last for n in needles)
        self.report(ok, f"{label}: {last[:160] if last else 'no error'}")


def decode_cases(s, vae, model, name, shapes, seed):
    g = torch.Generator().manual_seed(seed)
    z = vae.config.z_dim
    for b, f, h, w in shapes:
        latents = torch.randn(b, z, f, h, w, generator=g)
        ref = reference_decode(vae, latents)
        got, err = s.run("vae-decode", model, {"latents": latents}, "video")
        s.compare(f"{name} decode latents [{b},{z},{f},{h},{w}] -> {list(ref.shape)}", got, ref, err)


def encode_cases(s, vae, model, name, shapes, seed):
    g = torch.Generator().manual_seed(seed)
    for b, f, h, w in shapes:
        video = torch.rand(b, 3, f, h, w, generator=g) * 2 - 1
        ref = reference_encode(vae, video)
        got, err = s.run("vae-encode", model, {"video": video}, "latents")
        s.compare(f"{name} encode video [{b},3,{f},{h},{w}] -> {list(ref.shape)}", got, ref, err)


def check_prefix(s, vae, model):
    """Decoding the first F frames equals the first 1 + 4(F - 1) frames of decoding F + 1."""
    latents = torch.randn(1, vae.config.z_dim, 3, 3, 4, generator=torch.Generator().manual_seed(7))
    whole, e1 = s.run("vae-decode", model, {"latents": latents}, "video")
    part, e2 = s.run("vae-decode", model, {"latents": latents[:, :, :2].contiguous()}, "video")
    if whole is None or part is None:
        s.report(False, f"causal prefix: osp failed: {(e1 or e2).splitlines()[-1]}")
        return
    diff = (whole[:, :, :5] - part).abs().max().item()
    s.report(diff == 0.0, f"causal prefix: decode of 2 latent frames vs the first 5 frames of 3: max diff {diff:.1e}")


def check_original_names(s, vae, work):
    """Original Wan2.1 names: our mapping is diffusers' converter inverted (on the released layout),
    and a file under those names decodes and encodes as the diffusers one."""
    released = make_vae(RELEASED_LAYOUT, 11)
    orig = original_state_dict(released)
    back = convert_wan_vae_to_diffusers(orig)
    sd = released.state_dict()
    same = set(back) == set(sd) and all(torch.equal(back[k], sd[k]) for k in sd)
    s.report(same, f"original names: {len(orig)} tensors map back through diffusers' converter exactly")
    for cfg_vae, label, seed in ((released, "released layout", 12), (vae, "small", 13)):
        folder = os.path.join(work, f"original_{label.replace(' ', '_')}")
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        save_file(original_state_dict(cfg_vae), os.path.join(folder, "Wan2.1_VAE.safetensors"))
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(dict(cfg_vae.config), f)
        weights = os.path.join(folder, "Wan2.1_VAE.safetensors")
        decode_cases(s, cfg_vae, weights, f"original names ({label})", [(1, 2, 3, 5)], seed)
        encode_cases(s, cfg_vae, weights, f"original names ({label})", [(1, 5, 16, 24)], seed)


def check_sensitivity(s, vae, work):
    """A small change to one weight must show: the comparison can fail."""
    broken = os.path.join(work, "broken")
    shutil.rmtree(broken, ignore_errors=True)
    shutil.copytree(os.path.join(work, "small"), broken)
    path = os.path.join(broken, "vae", "diffusion_pytorch_model.safetensors")
    sd = load_file(path)
    sd["decoder.up_blocks.2.resnets.1.norm2.gamma"][0] += 0.05
    sd["encoder.down_blocks.2.conv2.bias"][1] += 0.05
    save_file(sd, path)
    latents = torch.randn(1, vae.config.z_dim, 2, 3, 5, generator=torch.Generator().manual_seed(5))
    got, err = s.run("vae-decode", broken, {"latents": latents}, "video")
    s.compare("perturbed decoder gamma", got, reference_decode(vae, latents), err, expect_fail=True)
    video = torch.rand(1, 3, 5, 16, 24, generator=torch.Generator().manual_seed(6)) * 2 - 1
    got, err = s.run("vae-encode", broken, {"video": video}, "latents")
    s.compare("perturbed encoder bias", got, reference_encode(vae, video), err, expect_fail=True)


def check_bad_inputs(s, vae, model, work):
    z = vae.config.z_dim
    s.expect_error("bad: latents with 8 channels", "vae-decode", model, {"latents": torch.zeros(1, 8, 2, 3, 5)},
                   ["latents", f"[B, {z}, F, H, W]", "[1, 8, 2, 3, 5]"])
    s.expect_error("bad: latents of 4 dimensions", "vae-decode", model, {"latents": torch.zeros(1, z, 3, 5)},
                   ["latents", "5 dimensions"])
    s.expect_error("bad: no tensor 'latents'", "vae-decode", model, {"video": torch.zeros(1, z, 1, 3, 5)},
                   ["missing tensor 'latents'"])
    s.expect_error("bad: video of 4 frames", "vae-encode", model, {"video": torch.zeros(1, 3, 4, 16, 16)},
                   ["1 + 4", "found 4"])
    s.expect_error("bad: video with 4 channels", "vae-encode", model, {"video": torch.zeros(1, 4, 5, 16, 16)},
                   ["video", "[B, 3, F, H, W]"])
    lat = {"latents": torch.zeros(1, z, 1, 3, 5)}
    s.expect_error("bad: no model directory", "vae-decode", os.path.join(work, "nowhere"), lat, ["nowhere", "no such"])
    bad = os.path.join(work, "bad_model")

    def variant(edit_weights=None, edit_config=None):
        shutil.rmtree(bad, ignore_errors=True)
        shutil.copytree(model, bad)
        if edit_weights:
            path = os.path.join(bad, "vae", "diffusion_pytorch_model.safetensors")
            sd = load_file(path)
            edit_weights(sd)
            save_file(sd, path)
        if edit_config:
            path = os.path.join(bad, "vae", "config.json")
            with open(path) as f:
                cfg = json.load(f)
            edit_config(cfg)
            with open(path, "w") as f:
                json.dump(cfg, f)
        return bad

    variant()
    os.remove(os.path.join(bad, "vae", "diffusion_pytorch_model.safetensors"))
    s.expect_error("bad: weights file missing", "vae-decode", bad, lat, ["diffusion_pytorch_model.safetensors", "missing"])
    name = "decoder.up_blocks.1.resnets.0.conv1.weight"
    s.expect_error("bad: a tensor missing", "vae-decode", variant(lambda sd: sd.pop(name)), lat, [name])
    s.expect_error("bad: a tensor of the wrong shape", "vae-decode",
                   variant(lambda sd: sd.__setitem__(name, sd[name][:, :-1].contiguous())), lat,
                   [name, "expected", "found"])
    s.expect_error("bad: Wan2.2 config (is_residual)", "vae-decode",
                   variant(edit_config=lambda c: c.__setitem__("is_residual", True)), lat, ["Wan2.2"])
    s.expect_error("bad: Wan2.2 config (patch_size)", "vae-decode",
                   variant(edit_config=lambda c: c.__setitem__("patch_size", 2)), lat, ["Wan2.2"])
    s.expect_error("bad: attention scales", "vae-decode",
                   variant(edit_config=lambda c: c.__setitem__("attn_scales", [0.5])), lat, ["attn_scales"])


@torch.no_grad()
def check_tiled(s, vae, model):
    """--tile against diffusers' tiled_decode (tiles of 32 pixels every 24, edge tiles smaller), and the
    seam error of tiling: the largest difference from the untiled decode, printed for information."""
    g = torch.Generator().manual_seed(104)
    latents = torch.randn(1, vae.config.z_dim, 3, 9, 11, generator=g)
    vae.enable_tiling(tile_sample_min_height=32, tile_sample_min_width=32, tile_sample_stride_height=24,
                      tile_sample_stride_width=24)
    ref = reference_decode(vae, latents)
    vae.disable_tiling()
    got, stderr = s.run("vae-decode", model, {"latents": latents}, "video", ("--tile", "32", "--tile-stride", "24"))
    got = s.compare("tiled decode (32 px tiles every 24) vs diffusers' tiled_decode", got, ref, stderr)
    untiled, _ = s.run("vae-decode", model, {"latents": latents}, "video")
    if got is not None and untiled is not None:
        seam = (got - untiled).abs().max().item()
        print(f"tiled vs untiled decode (seam error, information): max |diff| {seam:.3e} of values in [-1, 1]")
        s.report(seam > 0, "tiled decode differs from untiled (the tiles are real)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("osp")
    parser.add_argument("work")
    parser.add_argument("--tol", type=float, default=1e-4)
    args = parser.parse_args()
    osp = os.path.abspath(args.osp)
    if not (os.path.isfile(osp) and os.access(osp, os.X_OK)):
        sys.exit(f"vae_parity.py: {osp} is not an executable (build osp first)")
    os.makedirs(args.work, exist_ok=True)
    s = Suite(osp, args.work, args.tol)

    vae = make_vae(SMALL, 1)
    model = save_model(vae, os.path.join(args.work, "small"))
    decode_cases(s, vae, model, "z16", [(1, 1, 3, 5), (2, 2, 3, 5), (1, 3, 4, 7), (2, 3, 4, 7)], 100)
    encode_cases(s, vae, model, "z16", [(1, 1, 16, 24), (2, 5, 16, 24), (1, 9, 24, 40), (1, 5, 20, 28)], 101)
    narrow = make_vae(NARROW_Z, 2)
    narrow_model = save_model(narrow, os.path.join(args.work, "narrow"))
    decode_cases(s, narrow, os.path.join(narrow_model, "vae"), "z4", [(1, 3, 5, 3), (2, 2, 4, 6)], 102)
    encode_cases(s, narrow, os.path.join(narrow_model, "vae"), "z4", [(2, 9, 12, 20)], 103)
    check_tiled(s, vae, model)
    check_prefix(s, vae, model)
    check_original_names(s, vae, args.work)
    check_sensitivity(s, vae, args.work)
    check_bad_inputs(s, vae, model, args.work)

    print(f"vae: {s.passed} passed, {s.failed} failed")
    sys.exit(1 if s.failed else 0)


if __name__ == "__main__":
    main()
