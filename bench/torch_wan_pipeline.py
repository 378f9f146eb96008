#!/usr/bin/env python3
"""A whole Wan2.1 text-to-video generation, diffusers' WanPipeline next to `osp generate`, on one
model folder with random weights of the real shapes (Wan2.1-T2V-1.3B: umT5-XXL, the 1.3B DiT,
the Wan-VAE) and one start noise.

    python3 bench/torch_wan_pipeline.py --osp build/osp --work /tmp/wan --json $OUT/pipeline.json
    python3 bench/torch_wan_pipeline.py --osp build/osp --work /tmp/wan --tiny --device cpu   # smoke test

What it does:
  1. builds WanPipeline with random weights (PyTorch's default initialisation; a SentencePiece
     tokenizer trained here, since the real umT5 vocabulary is not available offline: the encoder
     keeps umT5-XXL's 256,384-row embedding), the UniPC scheduler Wan2.1 configures (shift 3),
     and writes it with save_pretrained (text encoder and DiT in bf16, the VAE in f32) and the
     start noise [1, 16, 21, 60, 104] to noise.safetensors;
  2. diffusers: one warm-up generation of one step, then the timed one: 50 steps with classifier-free
     guidance (the conditional and unconditional passes), 81 frames of 832 x 480, decode included;
     the text encoder and the DiT in bf16, the VAE in f32 (as Wan2.1's diffusers example runs it),
     SDPA attention; the step times come from callback_on_step_end;
  3. osp generate --device cuda on the same folder and noise, once per --schedules entry (full:
     every block full attention, as Wan2.1; dual_end: OSP-Next's hybrid of Skiparse and full
     blocks): its own time split (text, steps, decode), one cold process each;
  4. prints both, and how far OSP's full-attention final latents are from diffusers' (relative to
     their largest magnitude; bf16 arithmetic on both sides over 50 steps of random weights, so
     this is a sanity figure, not a tolerance: the tests bound the pipeline's error on small models).
"""

import argparse
import json
import os
import random
import re
import subprocess
import time

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch
from safetensors.torch import load_file, save_file


def train_tokenizer(folder):
    """A small SentencePiece unigram model with umT5's special ids (pad 0, eos 1, unk 2)."""
    import sentencepiece as spm
    from transformers import T5Tokenizer
    rng = random.Random(0)
    words = "a the red blue cat dog running city night rain sunset ocean waves forest camera slowly".split()
    text = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) for _ in range(2000)]
    os.makedirs(folder, exist_ok=True)
    spm.SentencePieceTrainer.train(sentence_iterator=iter(text), model_prefix=f"{folder}/spiece", vocab_size=64,
                                   hard_vocab_limit=False, model_type="unigram", pad_id=0, eos_id=1, unk_id=2,
                                   bos_id=-1, minloglevel=2)
    return T5Tokenizer.from_pretrained(folder, extra_ids=0)


def build(work, tiny, device):
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel
    tokenizer = train_tokenizer(f"{work}/spm")
    if tiny:
        text = UMT5Config(vocab_size=len(tokenizer), d_model=64, d_kv=16, d_ff=96, num_layers=2, num_heads=4,
                          feed_forward_proj="gated-gelu", is_encoder_decoder=False)
        dit = dict(num_attention_heads=2, attention_head_dim=32, text_dim=64, freq_dim=32, ffn_dim=128, num_layers=8)
        vae = dict(base_dim=8, dim_mult=[1, 2, 4, 4], num_res_blocks=1)
    else:  # Wan2.1-T2V-1.3B's configs (PAPER.md; the released config.json files)
        text = UMT5Config(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                          relative_attention_num_buckets=32, relative_attention_max_distance=128,
                          feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6, is_encoder_decoder=False)
        dit = dict(num_attention_heads=12, attention_head_dim=128, text_dim=4096, freq_dim=256, ffn_dim=8960,
                   num_layers=30)
        vae = {}
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        encoder = UMT5EncoderModel(text).to(dtype).eval()  # written in bf16 as Wan2.1's umT5 ships
        transformer = WanTransformer3DModel(patch_size=(1, 2, 2), in_channels=16, out_channels=16,
                                            cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6,
                                            rope_max_seq_len=1024, **dit).eval()
        autoencoder = AutoencoderKLWan(**vae).eval()
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                        num_train_timesteps=1000, flow_shift=3.0)
    pipe = WanPipeline(tokenizer=tokenizer, text_encoder=encoder, transformer=transformer, vae=autoencoder,
                       scheduler=scheduler)
    start = time.perf_counter()
    pipe.save_pretrained(f"{work}/model")
    print(f"wrote the random model to {work}/model in {time.perf_counter() - start:.1f} s", flush=True)
    if dtype != torch.float32:
        # Loaded back as a user loads Wan2.1 (diffusers' example): dtype=bf16 keeps the DiT's
        # norms, modulation and time embedding in f32; the VAE stays f32. (In f32 the modules
        # built here are that already.)
        del pipe, encoder, transformer, autoencoder
        vae = AutoencoderKLWan.from_pretrained(f"{work}/model", subfolder="vae", dtype=torch.float32)
        pipe = WanPipeline.from_pretrained(f"{work}/model", vae=vae, dtype=dtype).to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def synchronize(device):
    if device == "cuda":
        torch.cuda.synchronize()


def run_diffusers(pipe, a, noise):
    """One timed generation; the step times from the callback, the final latents kept."""
    marks, kept = [], {}

    def on_step(pipe_, i, t, kwargs):
        synchronize(a.device)
        marks.append(time.perf_counter())
        kept["latents"] = kwargs["latents"]
        return {}

    common = dict(prompt=a.prompt, negative_prompt="", height=a.height, width=a.width, num_frames=a.frames,
                  guidance_scale=5.0, output_type="np")
    with torch.no_grad():
        pipe(**common, num_inference_steps=1, latents=noise.clone())  # warm-up: kernels, cuDNN plans
        synchronize(a.device)
        if a.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        pipe(**common, num_inference_steps=a.steps, latents=noise.clone(), callback_on_step_end=on_step,
             callback_on_step_end_tensor_inputs=["latents"])
        synchronize(a.device)
    end = time.perf_counter()
    steps = marks[-1] - marks[0]  # the first step's start is the text encoder's end, not seen: use steps 2..n
    result = dict(total_s=end - start, step_s=steps / (len(marks) - 1), decode_s=end - marks[-1],
                  until_first_step_s=marks[0] - start,
                  peak_gib=torch.cuda.max_memory_allocated() / 2 ** 30 if a.device == "cuda" else 0.0)
    print(f"diffusers: {result['total_s']:.2f} s in all: {a.steps} steps of {result['step_s']:.3f} s, decode "
          f"{result['decode_s']:.2f} s, text and first step {result['until_first_step_s']:.2f} s, peak "
          f"{result['peak_gib']:.2f} GiB", flush=True)
    return result, kept["latents"].float().cpu()


SUMMARY = re.compile(r"in ([\d.]+) s: (\d+) steps of ([\d.]+) s, text ([\d.]+) s, decode ([\d.]+) s"
                     r"(?:; peak GPU memory ([\d.]+) GiB)?")


def run_osp(a, schedule):
    latents = f"{a.work}/osp-{schedule}.latents.safetensors"
    args = [a.osp, "generate", "-q", "--model", f"{a.work}/model", "--device", a.device, "-p", a.prompt,
            "--noise", f"{a.work}/noise.safetensors", "--steps", str(a.steps), "--guidance", "5",
            "--frames", str(a.frames), "--height", str(a.height), "--width", str(a.width), "--schedule", schedule,
            "--latents-out", latents, "-o", f"{a.work}/osp-{schedule}.safetensors"]
    start = time.perf_counter()
    out = subprocess.run(args, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"osp generate --schedule {schedule} failed: {out.stderr.strip()}")
    total, steps, step, text, decode, peak = SUMMARY.search(out.stdout).groups()
    result = dict(schedule=schedule, total_s=float(total), step_s=float(step), text_s=float(text),
                  decode_s=float(decode), process_s=wall, peak_gib=float(peak or 0))
    print(f"osp ({schedule}): {result['total_s']:.2f} s in all: {steps} steps of {result['step_s']:.3f} s, decode "
          f"{result['decode_s']:.2f} s, text {result['text_s']:.2f} s, peak {result['peak_gib']:.2f} GiB; the "
          f"process with loading {wall:.1f} s", flush=True)
    return result, load_file(latents)["latents"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--osp", required=True, help="the osp binary")
    ap.add_argument("--work", required=True, help="a folder for the model, the noise and the outputs")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="a tiny model, 2 steps, 5 frames of 64 x 64")
    ap.add_argument("--schedules", help="osp's --schedule values (default full,dual_end; tiny: full,dual_end:4)")
    ap.add_argument("--prompt", default="a cat running in the rain at night, the camera slowly following")
    ap.add_argument("--json")
    a = ap.parse_args()
    a.frames, a.height, a.width, a.steps = (5, 64, 64, 2) if a.tiny else (81, 480, 832, 50)
    a.schedules = a.schedules or ("full,dual_end:4" if a.tiny else "full,dual_end")
    os.makedirs(a.work, exist_ok=True)
    pipe = build(a.work, a.tiny, a.device)
    shape = (1, 16, (a.frames - 1) // 4 + 1, a.height // 8, a.width // 8)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    save_file({"noise": noise}, f"{a.work}/noise.safetensors")
    ours_first = [run_osp(a, s) for s in a.schedules.split(",")]  # before diffusers holds the GPU's memory
    theirs, their_latents = run_diffusers(pipe, a, noise.to(a.device, torch.float32))
    results = dict(device=torch.cuda.get_device_name() if a.device == "cuda" else "cpu", torch=torch.__version__,
                   frames=a.frames, height=a.height, width=a.width, steps=a.steps, guidance=5.0,
                   diffusers=theirs, osp=[r for r, _ in ours_first])
    for r, latents in ours_first:
        err = ((latents - their_latents).abs().max() / their_latents.abs().max()).item()
        r["latents_vs_diffusers"] = err
        print(f"osp ({r['schedule']}) final latents vs diffusers' (full attention): {err:.2e} of the largest "
              "magnitude" + ("" if r["schedule"] == "full" else " (another model: sparse blocks)"))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
