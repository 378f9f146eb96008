#!/usr/bin/env python3
"""`osp generate --model DIR` on a diffusers-layout model folder against diffusers' WanPipeline.

usage: python tests/ref/pipeline_parity.py OSP_BINARY WORKDIR [--device cuda]

Builds a tiny WanPipeline with random weights (a SentencePiece unigram tokenizer trained here, a
UMT5EncoderModel, a WanTransformer3DModel, an AutoencoderKLWan and the UniPC scheduler Wan2.1's
pipelines configure), saves it with save_pretrained (diffusers' layout: model_index.json,
transformer/, text_encoder/, tokenizer/, vae/, scheduler/), writes the start noise to a file,
and runs both on it:

  diffusers  pipe(prompt, negative_prompt, latents=noise, ...) in float32 on the CPU: the final
             latents (output_type="latent") and the frames (output_type="np", in [0, 1]);
  osp        osp generate --model DIR --noise noise.safetensors --latents-out L -o frames/ (PNG).

Checks: the final latents within 1e-4 relative (max |osp − ref| / max |ref|: fp32 through a text
encoder, 3 sampler steps of two DiT passes and the sampler's arithmetic), and every pixel of
every frame within 1 level of 255 of diffusers' (OSP writes 8-bit PNG: round((x + 1)/2 · 255)).
Cases: with guidance (the conditional and unconditional passes) and without, 1 and 5 frames,
the DiT's weights in two shards with their index; `osp generate --dry-run` counts the tiny model's
parameters as PyTorch does and the 14B preset's as PAPER.md gives them. Then bad model folders, each a clear error
naming what is wrong: a component missing, a shard listed in the index but absent, a VAE whose
latent channels differ from the DiT's.

With --device cuda (scripts/test_gpu.sh runs it where diffusers can be imported): the same
pipeline with head sizes the GPU kernels take (the DiT's heads of 32, the VAE's middle attention
over 32 channels), osp encode-text and osp generate on the GPU (bf16 weights and activations)
against diffusers in float32 on the CPU: the context within 6e-2 of its largest magnitude and 3e-2
on average, the final latents within 3e-2, the frames' pixels within 2.5 levels of 255 on average
and 16 at worst (bf16 through umT5's every op, three sampler steps and the VAE; measured on an
H100: context up to 3.5e-2 of the largest, latents 1.45e-2, pixels 1.08 on average, 11.8 at worst).

Prints one line per check and "pipeline: N passed, M failed" last; exits 1 on a failure.
"""
import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np
import sentencepiece as spm
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import T5Tokenizer, UMT5Config, UMT5EncoderModel
from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
from diffusers.utils import logging as diffusers_logging

from tally import Tally

diffusers_logging.set_verbosity_error()

TEXT_DIM = 32
TALLY = Tally("pipeline")
check = TALLY.check


class Device:
    """Where osp runs, and what that allows: the CPU in float32 as diffusers does, or CUDA in bf16."""
    def __init__(self, name):
        self.name, self.cuda = name, name == "cuda"
        self.head_dim = 32 if self.cuda else 16  # the CUDA attention kernels take heads of 32, 64, 128
        self.vae_dim_mult = [1, 2, 4, 4] if self.cuda else [1, 2, 2, 2]  # VAE attention over 32 channels
        self.context_tol = 6e-2 if self.cuda else 1e-5  # of the largest magnitude
        self.context_mean_tol = 3e-2 if self.cuda else 1e-5  # mean |error| / mean |reference|
        self.latents_tol = 3e-2 if self.cuda else 1e-4
        self.pixel_mean_tol, self.pixel_max_tol = (2.5, 16.0) if self.cuda else (1.0, 1.0 + 1e-3)

    def args(self):
        return ["--device", self.name]


DEVICE = Device("cpu")


def train_tokenizer(folder):
    """A small unigram model with umT5's special ids (pad 0, eos 1, unk 2), as transformers loads it."""
    rng = random.Random(0)
    words = ("a the red blue green circle square triangle moving right left up down on background small large "
             "cat dog running jumping city night rain sunset ocean waves forest camera slowly quickly").split()
    text = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) for _ in range(2000)]
    os.makedirs(folder, exist_ok=True)
    spm.SentencePieceTrainer.train(sentence_iterator=iter(text), model_prefix=f"{folder}/spiece", vocab_size=100,
                                   hard_vocab_limit=False, model_type="unigram", pad_id=0, eos_id=1, unk_id=2,
                                   bos_id=-1, minloglevel=2)
    return T5Tokenizer.from_pretrained(folder, extra_ids=0)


def randomize(module, seed):
    """Every parameter random and nonzero (norm gains around 1), so a mix-up of any two shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            r = torch.randn(p.shape, generator=g)
            if p.ndim == 1 or "gamma" in name or name.endswith("norm.weight") or "layer_norm" in name:
                p.copy_(1.0 + 0.2 * r if ("norm" in name or "gamma" in name) else 0.1 * r)
            else:
                fan_in = p[0].numel() if p.ndim > 1 else 1
                p.copy_(r / fan_in ** 0.5)


def build_pipeline(folder, z_dim=16):
    tokenizer = train_tokenizer(f"{folder}/spm")
    encoder = UMT5EncoderModel(UMT5Config(vocab_size=len(tokenizer), d_model=TEXT_DIM, d_kv=8, d_ff=48, num_layers=2,
                                          num_heads=4, relative_attention_num_buckets=32,
                                          relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
                                          is_encoder_decoder=False)).eval()
    transformer = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=DEVICE.head_dim,
                                        in_channels=16, out_channels=16, text_dim=TEXT_DIM, freq_dim=32, ffn_dim=64,
                                        num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6,
                                        rope_max_seq_len=1024).eval()
    vae = AutoencoderKLWan(base_dim=8, z_dim=z_dim, dim_mult=DEVICE.vae_dim_mult, num_res_blocks=1, attn_scales=[],
                           temperal_downsample=[False, True, True],
                           latents_mean=[0.1 * i - 0.5 for i in range(z_dim)],
                           latents_std=[1.0 + 0.1 * i for i in range(z_dim)]).eval()
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                        num_train_timesteps=1000, flow_shift=3.0)
    for i, module in enumerate((encoder, transformer, vae)):
        randomize(module, 100 + i)
    pipe = WanPipeline(tokenizer=tokenizer, text_encoder=encoder, transformer=transformer, vae=vae, scheduler=scheduler)
    pipe.save_pretrained(f"{folder}/model")
    pipe.set_progress_bar_config(disable=True)
    return pipe, f"{folder}/model"


def shard(model_dir):
    """The transformer's weights as two shards and their index, as save_pretrained writes big models."""
    folder = f"{model_dir}/transformer"
    tensors = load_file(f"{folder}/diffusion_pytorch_model.safetensors")
    names = sorted(tensors)
    parts = {"diffusion_pytorch_model-00001-of-00002.safetensors": names[: len(names) // 2],
             "diffusion_pytorch_model-00002-of-00002.safetensors": names[len(names) // 2:]}
    weight_map = {}
    for file, part in parts.items():
        save_file({n: tensors[n] for n in part}, f"{folder}/{file}")
        weight_map.update({n: file for n in part})
    os.remove(f"{folder}/diffusion_pytorch_model.safetensors")
    with open(f"{folder}/diffusion_pytorch_model.safetensors.index.json", "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f)


def run_osp(osp, args):
    return subprocess.run([osp, "generate", "-q", *args], capture_output=True, text=True)


def read_frames(path, count):
    """The frames osp wrote: a folder of PNG frames, or (the GPU machines' builds have no FFmpeg) a
    safetensors file of U8 [F, H, W, 3]."""
    if path.endswith(".safetensors"):
        return load_file(path)["frames"].numpy()[:count] if os.path.exists(path) else None
    names = sorted(n for n in os.listdir(path) if n.endswith(".png"))
    return np.stack([np.asarray(Image.open(f"{path}/{n}").convert("RGB")) for n in names[:count]]) if names else None


def compare(osp, pipe, model_dir, work, name, prompt, frames, guidance):
    height, width = 32, 48
    latent_shape = (1, 16, (frames - 1) // 4 + 1, height // 8, width // 8)
    noise = torch.randn(latent_shape, generator=torch.Generator().manual_seed(len(name)))
    noise_file, latents_file = f"{work}/{name}.noise.safetensors", f"{work}/{name}.latents.safetensors"
    frames_dir = f"{work}/{name}.frames" + (".safetensors" if DEVICE.cuda else "")
    frames_format = "safetensors" if DEVICE.cuda else "png"
    save_file({"noise": noise.contiguous()}, noise_file)
    common = dict(prompt=prompt, negative_prompt="", height=height, width=width, num_frames=frames,
                  num_inference_steps=3, guidance_scale=guidance)
    with torch.no_grad():
        ref_latents = pipe(**common, latents=noise.clone(), output_type="latent").frames
        ref_frames = pipe(**common, latents=noise.clone(), output_type="np").frames[0]
    shutil.rmtree(frames_dir, ignore_errors=True)
    result = run_osp(osp, ["--model", model_dir, "-p", prompt, "--noise", noise_file, "--latents-out", latents_file,
                           "--steps", "3", "--guidance", str(guidance), "--frames", str(frames), "--height", str(height),
                           "--width", str(width), "-o", frames_dir, "--format", frames_format, *DEVICE.args()])
    if result.returncode != 0:
        check(False, f"{name}: osp generate failed: {result.stderr.strip()}")
        return
    got = load_file(latents_file)["latents"]
    err = (got - ref_latents).abs().max().item() / ref_latents.abs().max().item()
    check(err <= DEVICE.latents_tol,
          f"{name}: final latents {tuple(got.shape)}, rel err {err:.2e} (tol {DEVICE.latents_tol:g})")
    pixels = read_frames(frames_dir, frames)
    want = ref_frames * 255.0
    diff = np.abs(pixels.astype(np.float64) - want) if pixels is not None and pixels.shape == want.shape else None
    worst, mean = (diff.max(), diff.mean()) if diff is not None else (None, None)
    check(diff is not None and worst <= DEVICE.pixel_max_tol and mean <= DEVICE.pixel_mean_tol,
          f"{name}: {frames} frames of {width}x{height}, pixel difference {mean} levels on average (at most "
          f"{DEVICE.pixel_mean_tol:g}), {worst} at worst (at most {DEVICE.pixel_max_tol:g})")


def compare_context(osp, pipe, model_dir, work, prompt):
    """osp encode-text -p against the pipeline's own prompt encoding (cleaning, tokenizer, umT5, padding)."""
    out = f"{work}/context.safetensors"
    result = subprocess.run([osp, "encode-text", "--model", model_dir, "-p", prompt, "-o", out, *DEVICE.args()],
                            capture_output=True, text=True)
    if result.returncode != 0:
        check(False, f"encode-text {prompt!r}: {result.stderr.strip()}")
        return
    with torch.no_grad():
        want, _ = pipe.encode_prompt(prompt, do_classifier_free_guidance=False, max_sequence_length=512)
    got = load_file(out)["context"]
    err = (got - want).abs().max().item() / want.abs().max().item()
    mean = (got - want).abs().mean().item() / max(want.abs().mean().item(), 1e-30)
    zeros = bool((got[0, len(pipe.tokenizer(prompt).input_ids):] == 0).all())
    check(got.shape == want.shape and err <= DEVICE.context_tol and mean <= DEVICE.context_mean_tol and zeros,
          f"encode-text {prompt!r}: context {tuple(got.shape)}, rel err {err:.2e} (tol {DEVICE.context_tol:g}), mean "
          f"{mean:.2e} (tol {DEVICE.context_mean_tol:g}), zero rows past the prompt")


def dry_run(osp, pipe, model_dir):
    """--dry-run's parameter counts against the modules' own, and the Wan2.1 presets against PAPER.md."""
    def counts(args):
        out = subprocess.run([osp, "generate", "--dry-run", *args], capture_output=True, text=True).stdout
        rows = re.findall(r"^\s+(text encoder|DiT|VAE)\s+\S+\s+([\d.]+) ([KMB])", out, re.M)
        return {k.split()[0]: float(n) * {"K": 1e3, "M": 1e6, "B": 1e9}[u] for k, n, u in rows}, out
    got, out = counts(["--model", model_dir])
    want = {"text": sum(p.numel() for p in pipe.text_encoder.parameters()),
            "DiT": sum(p.numel() for p in pipe.transformer.parameters()),
            "VAE": sum(p.numel() for p in pipe.vae.parameters())}
    ok = got.keys() == want.keys() and all(abs(got[k] - want[k]) <= 0.0005 * want[k] + 50 for k in want)
    check(ok, f"dry run of the tiny model: parameters {got} against the modules' {want}")
    got, out = counts(["--preset", "wan2.1-t2v-14b", "--device", "cuda"])
    ok = abs(got.get("text", 0) - 5.68e9) < 0.01e9 and abs(got.get("VAE", 0) - 126.9e6) < 0.1e6 and \
        abs(got.get("DiT", 0) - 14.29e9) < 0.01e9 and "peak on the GPU" in out
    check(ok, f"dry run of wan2.1-t2v-14b: parameters {got} (PAPER.md: umT5-XXL 5.68 B, VAE 126.9 M, DiT 14.29 B)")


def expect_error(osp, model_dir, what, needle):
    output = os.path.join(os.path.dirname(model_dir), "unused.gif")
    result = run_osp(osp, ["--model", model_dir, "-p", "a red circle", "--steps", "1", "--frames", "1", "--height",
                           "16", "--width", "16", "-o", output])
    ok = result.returncode != 0 and needle in result.stderr
    check(ok, f"bad model: {what}: exit {result.returncode}, {result.stderr.strip()}")


def bad_models(osp, model_dir, work):
    broken = f"{work}/broken"

    def fresh():
        shutil.rmtree(broken, ignore_errors=True)
        shutil.copytree(model_dir, broken)
        return broken

    shutil.rmtree(f"{fresh()}/vae")
    expect_error(osp, broken, "no vae/ folder", "vae: missing")
    os.remove(f"{fresh()}/transformer/diffusion_pytorch_model-00002-of-00002.safetensors")
    expect_error(osp, broken, "a shard listed in the index is absent",
                 "shard 'diffusion_pytorch_model-00002-of-00002.safetensors' is listed in the index")
    os.remove(f"{fresh()}/tokenizer/tokenizer.json")
    expect_error(osp, broken, "no tokenizer.json", "tokenizer.json: missing")
    _, other = build_pipeline(f"{work}/z4", z_dim=4)
    fresh()
    shutil.rmtree(f"{broken}/vae")
    shutil.copytree(f"{other}/vae", f"{broken}/vae")
    expect_error(osp, broken, "a VAE of 4 latent channels under a DiT of 16", "latent channels")


def original_release(osp, pipe, model_dir, work):
    """The original Wan2.1 layout: found by its config.json, its .pth files named for conversion, then
    loaded with the built-in umT5-XXL config (which the tiny T5 here does not fit: a clear error)."""
    folder = f"{work}/Wan2.1-T2V-tiny"
    os.makedirs(f"{folder}/google", exist_ok=True)
    shutil.copytree(f"{model_dir}/tokenizer", f"{folder}/google/umt5-xxl")
    config = json.load(open(f"{model_dir}/transformer/config.json"))
    original = {"_class_name": "WanModel", "model_type": "t2v", "dim": config["num_attention_heads"] *
                config["attention_head_dim"], "ffn_dim": config["ffn_dim"], "freq_dim": config["freq_dim"],
                "in_dim": 16, "out_dim": 16, "num_heads": config["num_attention_heads"],
                "num_layers": config["num_layers"], "text_len": 512, "eps": 1e-6, "text_dim": TEXT_DIM}
    json.dump(original, open(f"{folder}/config.json", "w"))
    for name in os.listdir(f"{model_dir}/transformer"):  # the weights (sharded by now) beside config.json
        if name != "config.json":
            shutil.copy(f"{model_dir}/transformer/{name}", folder)
    torch.save(pipe.text_encoder.state_dict(), f"{folder}/models_t5_umt5-xxl-enc-bf16.pth")
    torch.save(pipe.vae.state_dict(), f"{folder}/Wan2.1_VAE.pth")
    expect_error(osp, folder, "the release's T5 not yet converted",
                 "convert the release's PyTorch file first: osp convert")
    for stem in ("models_t5_umt5-xxl-enc-bf16", "Wan2.1_VAE"):
        subprocess.run([osp, "convert", f"{folder}/{stem}.pth", "-o", f"{folder}/{stem}.safetensors"], check=True,
                       capture_output=True)
    expect_error(osp, folder, "a T5 smaller than umT5-XXL under the release's layout",
                 "models_t5_umt5-xxl-enc-bf16.safetensors")


def main():
    global DEVICE
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("osp")
    ap.add_argument("work")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    a = ap.parse_args()
    osp, work, DEVICE = a.osp, a.work, Device(a.device)
    shutil.rmtree(work, ignore_errors=True)  # save_pretrained leaves an earlier run's shards
    os.makedirs(work)
    torch.manual_seed(0)
    pipe, model_dir = build_pipeline(work)
    for prompt in ("a red circle moving right on a blue background", "  &amp; the   cat\t&lt;running&gt;  ", ""):
        compare_context(osp, pipe, model_dir, work, prompt)
    compare(osp, pipe, model_dir, work, "guided.5frames", "a red circle moving right on a blue background", 5, 5.0)
    compare(osp, pipe, model_dir, work, "unguided.1frame", "small cat running in the rain", 1, 1.0)
    if DEVICE.cuda:  # the rest is about folders and files, the same on every device
        TALLY.finish()
        return
    dry_run(osp, pipe, model_dir)
    shard(model_dir)
    compare(osp, pipe, model_dir, work, "sharded.guided.5frames", "the camera moving slowly over the ocean waves", 5, 4.0)
    bad_models(osp, model_dir, work)
    original_release(osp, pipe, model_dir, work)
    TALLY.finish()


if __name__ == "__main__":
    main()
