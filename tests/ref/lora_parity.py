#!/usr/bin/env python3
"""LoRA in OSP (src/model/lora.h) against diffusers' Wan LoRA loader, on a tiny random DiT.

usage: python tests/ref/lora_parity.py OSP_BINARY WORKDIR

The venv has no `peft`, so diffusers cannot attach adapters; the reference is what diffusers does
up to that point, and PEFT's merge after it:
  - WanLoraLoaderMixin.lora_state_dict reads each file: it converts original-Wan names
    ("diffusion_model.blocks.0.self_attn.q.lora_down.weight", alpha folded into A and B) and
    musubi-tuner names ("lora_unet_blocks_0_self_attn_q.lora_down.weight") to diffusers names, and
    returns the file's "lora_adapter_metadata" (PEFT's LoraConfig);
  - PEFT's merge (fuse_lora): W += scale·(lora_alpha/r)·B·A and b += scale·(lora_alpha/r)·lora_B.bias,
    lora_alpha = r without metadata (diffusers' get_peft_kwargs), the metadata's otherwise.

Checks:
  (a) `osp merge-lora` against that merge, per tensor: max|osp − ref| / max|ref| <= 1e-6 (float32
      base), tensors no LoRA touches byte for byte; a bfloat16 base stays bfloat16, within one
      rounding of the float32 merge;
  (b) `osp dit` on the merged weights against diffusers' forward with the merged weights: 1e-5;
  (c) `osp generate --lora` on the built-in model (an f32 copy) gives the same latents as
      `osp generate` on the weights `osp merge-lora` wrote, and other latents than without it;
  (d) errors: a LoRA of another width (the message names the file, the tensor and both shapes), a
      tensor name the DiT has no Linear for, a name that is no LoRA part.
Prints one line per check and "lora_parity: N passed, N failed"; exits 1 on a failure.
"""
import json
import os
import shutil
import sys

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dit_parity import (Case, config_dict, first_line, original_name, random_inputs,  # noqa: E402
                        random_model, reference_velocity, read_velocity, rel_err, require_binary, run_osp,
                        weights_dict, write_case)
from tally import Tally  # noqa: E402
from diffusers.loaders.lora_pipeline import WanLoraLoaderMixin  # noqa: E402
from diffusers.utils import logging as diffusers_logging  # noqa: E402

diffusers_logging.set_verbosity_error()

CASE = Case("lora", layers=2, heads=2, head_dim=32, ffn_dim=96, text_dim=16, freq_dim=256, grid=(2, 4, 6),
            timesteps=(999.0, 3.7), ctx_len=7, real_len=(7, 4), names="diffusers", config="diffusers", seed=77)
RANK = 4

# The Linears of a block: diffusers' name, original Wan's name.
BLOCK_LINEARS = [(f"attn{n}.to_{x}", f"{a}.{x}") for n, a in ((1, "self_attn"), (2, "cross_attn")) for x in "qkv"]
BLOCK_LINEARS += [("attn1.to_out.0", "self_attn.o"), ("attn2.to_out.0", "cross_attn.o"),
                  ("ffn.net.0.proj", "ffn.0"), ("ffn.net.2", "ffn.2")]


def linear_shape(model, name):
    return tuple(model.get_parameter(f"{name}.weight").shape)


def low_rank(gen, out, inp, rank=RANK):
    """A [r, in] and B [out, r], so that B·A is about 0.1 of a weight."""
    return torch.randn(rank, inp, generator=gen) * 0.3 / inp ** 0.5, torch.randn(out, rank, generator=gen) * 0.3 / rank ** 0.5


def diffusers_lora(model, gen, prefix="transformer."):
    """PEFT names (lora_A / lora_B) on every attention Linear of every block, the FFN of block 1,
    and lora_B.bias on block 0's to_q."""
    sd = {}
    for i in range(CASE.layers):
        for ours, _ in BLOCK_LINEARS:
            if ours.startswith("ffn") and i != 1:
                continue
            name = f"blocks.{i}.{ours}"
            sd[f"{prefix}{name}.lora_A.weight"], sd[f"{prefix}{name}.lora_B.weight"] = low_rank(gen, *linear_shape(model, name))
    sd[f"{prefix}blocks.0.attn1.to_q.lora_B.bias"] = torch.randn(linear_shape(model, "blocks.0.attn1.to_q")[0], generator=gen) * 0.1
    return sd


def original_lora(model, gen, down="lora_down", up="lora_up"):
    """Original Wan names behind "diffusion_model.", each module with its alpha (2r), diff_b on one,
    and a norm's diff_b (which diffusers drops)."""
    sd = {}
    for i in range(CASE.layers):
        for ours, theirs in BLOCK_LINEARS:
            key = f"diffusion_model.blocks.{i}.{theirs}"
            sd[f"{key}.{down}.weight"], sd[f"{key}.{up}.weight"] = low_rank(gen, *linear_shape(model, f"blocks.{i}.{ours}"))
            sd[f"{key}.alpha"] = torch.tensor(2.0 * RANK)
    sd["diffusion_model.blocks.1.ffn.2.diff_b"] = torch.randn(linear_shape(model, "blocks.1.ffn.net.2")[0], generator=gen) * 0.1
    sd["diffusion_model.blocks.0.norm3.diff_b"] = torch.randn(CASE.heads * CASE.head_dim, generator=gen)
    return sd


def musubi_lora(model, gen):
    """musubi-tuner's names: every block's attention and FFN Linears, alpha r/2 each."""
    sd = {}
    for i in range(CASE.layers):
        for ours, theirs in BLOCK_LINEARS:
            key = f"lora_unet_blocks_{i}_{theirs.replace('.', '_')}"
            sd[f"{key}.lora_down.weight"], sd[f"{key}.lora_up.weight"] = low_rank(gen, *linear_shape(model, f"blocks.{i}.{ours}"))
            sd[f"{key}.alpha"] = torch.tensor(RANK / 2.0)
    return sd


def write_lora(path, sd, metadata=None):
    save_file({k: v.contiguous() for k, v in sd.items()}, path,
              metadata={"format": "pt", "lora_adapter_metadata": json.dumps(metadata)} if metadata else None)


def reference_merge(base, loras):
    """PEFT's merge of each (file, scale) in turn, as diffusers reads the files."""
    merged = {k: v.clone().double() for k, v in base.items()}
    for path, scale in loras:
        sd, metadata = WanLoraLoaderMixin.lora_state_dict(path, return_lora_metadata=True)
        meta = {k.removeprefix("transformer."): v for k, v in (metadata or {}).items()}
        for key in [k for k in sd if k.endswith(".lora_A.weight")]:
            module = key.removeprefix("transformer.").removesuffix(".lora_A.weight")
            a, b = sd[key].double(), sd[key.replace("lora_A", "lora_B")].double()
            r = a.shape[0]
            merged[f"{module}.weight"] += scale * meta.get("lora_alpha", r) / r * (b @ a)
        for key in [k for k in sd if k.endswith(".lora_B.bias")]:
            module = key.removeprefix("transformer.").removesuffix(".lora_B.bias")
            r = sd[key.replace("lora_B.bias", "lora_A.weight")].shape[0] if key.replace("lora_B.bias", "lora_A.weight") in sd else meta["r"]
            merged[f"{module}.bias"] += scale * meta.get("lora_alpha", r) / r * sd[key].double()
    return {k: v.float() for k, v in merged.items()}


def merge_argv(osp, base, config, loras, out):
    argv = [osp, "merge-lora", "--weights", base, "--config", config, "-o", out]
    for path, scale in loras:
        argv += ["--lora", f"{path}:{scale}"]
    return argv


def check_merge(t, osp, files, base, loras, out, what):
    """(a): the merged file against the reference merge; returns the merged weights or None."""
    r = run_osp(merge_argv(osp, files.weights, files.config, loras, out))
    if r.returncode != 0:
        t.check(False, f"{what}: osp merge-lora exit {r.returncode}: {first_line(r.stderr)}")
        return None
    got, ref = load_file(out), reference_merge(base, loras)
    changed = [k for k in ref if not torch.equal(ref[k], base[k])]
    err = max(rel_err(got[k], ref[k]) for k in changed)
    same = all(torch.equal(got[k], base[k]) for k in base if k not in changed)
    t.check(sorted(got) == sorted(base) and err <= 1e-6 and same,
            f"{what}: merge-lora, {len(changed)} tensors changed, max rel err {err:.2e} (tol 1e-6), "
            f"the other {len(base) - len(changed)} byte for byte: {same}")
    return ref


def check_forward(t, osp, files, model, inputs, merged_path, ref_weights, what):
    """(b): osp dit on the merged file against diffusers with the reference merge."""
    m = random_model(CASE)
    m.load_state_dict(ref_weights)
    ref = reference_velocity(m, inputs, torch.float32)
    out = os.path.join(files.out_dir, "velocity.safetensors")
    r = run_osp([osp, "dit", "--weights", merged_path, "--config", files.config, "--inputs", files.inputs, "-o", out])
    if r.returncode != 0:
        t.check(False, f"{what}: osp dit exit {r.returncode}: {first_line(r.stderr)}")
        return
    got, problem = read_velocity(files, CASE.latent_shape)
    base_ref = reference_velocity(model, inputs, torch.float32)
    err = rel_err(got, ref) if got is not None else float("inf")
    t.check(problem is None and err <= 1e-5,
            f"{what}: osp dit on the merged weights, rel err {err:.2e} (tol 1e-5; the LoRA moves the velocity by "
            f"{rel_err(base_ref, ref):.2e}){' ' + problem if problem else ''}")


def check_bf16(t, osp, work, model, lora):
    """A bf16 base with original names: the merge stays bf16, each changed tensor the float32 merge
    rounded to bf16 (an element may differ by one unit where the sum sits on a rounding tie: OSP
    sums in float32, the reference in float64), the others byte for byte."""
    folder = os.path.join(work, "bf16")
    os.makedirs(folder, exist_ok=True)
    base = {k: v.bfloat16() for k, v in weights_dict(model, "original").items()}
    save_file(base, os.path.join(folder, "weights.safetensors"))
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config_dict(CASE, "original"), f)
    r = run_osp([osp, "merge-lora", "--weights", os.path.join(folder, "weights.safetensors"), "--lora", lora,
                 "-o", os.path.join(folder, "merged.safetensors")])
    if r.returncode:
        t.check(False, f"bf16 base: osp merge-lora exit {r.returncode}: {first_line(r.stderr)}")
        return
    got = load_file(os.path.join(folder, "merged.safetensors"))
    as_diffusers = {k: v.float() for k, v in weights_dict(model, "diffusers").items()}
    for k in as_diffusers:
        as_diffusers[k] = base[original_name(k)].float()
    ref = {original_name(k): v for k, v in reference_merge(as_diffusers, [(lora, 1.0)]).items()}
    changed = [k for k in ref if not torch.equal(ref[k], base[k].float())]
    err = max(rel_err(got[k].float(), ref[k]) for k in changed)
    off = sum((got[k] != ref[k].bfloat16()).sum().item() for k in changed)
    total = sum(ref[k].numel() for k in changed)
    same = all(torch.equal(got[k], base[k]) for k in base if k not in changed)
    t.check(sorted(got) == sorted(base) and all(v.dtype == torch.bfloat16 for v in got.values()) and
            err <= 2 ** -8 and off <= total // 1000 and same,
            f"bf16 base, original names: merged file bf16, {len(changed)} tensors changed, {off} of {total} elements "
            f"not the reference rounded to bf16 (at most 0.1%), max rel err {err:.2e} (tol 2^-8, one rounding), "
            f"the others byte for byte: {same}")


def check_error(t, osp, files, path, must_say, what):
    """(d): merge-lora refuses the file; the message says each of must_say."""
    r = run_osp(merge_argv(osp, files.weights, files.config, [(path, 1.0)], os.path.join(files.out_dir, "bad.safetensors")))
    missing = [s for s in must_say if s not in r.stderr]
    t.check(r.returncode not in (0, -9) and not missing,
            f"{what}: exit {r.returncode}, '{first_line(r.stderr, 400)}'{' lacks ' + str(missing) if missing else ''}")


def check_generate(t, osp, work, gen):
    """(c): osp generate --lora against osp generate on the merged weights (an f32 built-in model)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    folder = os.path.join(work, "shapes32")
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(os.path.join(root, "models", "shapes"), folder)
    weights = os.path.join(folder, "dit.safetensors")
    base = {k: v.float() for k, v in load_file(weights).items()}
    save_file(base, weights)
    lora = {}
    for i in (0, 3):
        for x in ("q", "o"):
            key = f"diffusion_model.blocks.{i}.self_attn.{x}"
            lora[f"{key}.lora_down.weight"], lora[f"{key}.lora_up.weight"] = low_rank(gen, *base[f"blocks.{i}.self_attn.{x}.weight"].shape)
    lora_path = os.path.join(work, "shapes_lora.safetensors")
    write_lora(lora_path, lora)
    merged = os.path.join(work, "shapes_merged")
    shutil.rmtree(merged, ignore_errors=True)
    shutil.copytree(folder, merged)
    r = run_osp(merge_argv(osp, weights, os.path.join(folder, "config.json"), [(lora_path, 2.0)],
                           os.path.join(merged, "dit.safetensors")))
    latents = {}
    for name, model, extra in (("base", folder, []), ("lora", folder, ["--lora", f"{lora_path}:2"]),
                               ("merged", merged, [])):
        out = os.path.join(work, f"latents_{name}.safetensors")
        g = run_osp([osp, "generate", "--model", model, "-p", "a small red circle moving right on a blue background",
                     "--steps", "2", "-q", "-o", os.path.join(work, f"{name}.gif"), "--latents-out", out] + extra)
        if r.returncode or g.returncode:
            t.check(False, f"generate --lora: {name}: exit {r.returncode or g.returncode}: {first_line(r.stderr or g.stderr)}")
            return
        latents[name] = load_file(out)["latents"]
    t.check(torch.equal(latents["lora"], latents["merged"]) and not torch.equal(latents["lora"], latents["base"]),
            f"generate --lora (built-in model, f32): latents equal to the merged model's "
            f"({torch.equal(latents['lora'], latents['merged'])}), moved from the base by "
            f"{rel_err(latents['lora'], latents['base']):.2e}")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    osp = require_binary(sys.argv[1])
    work = os.path.join(os.path.abspath(sys.argv[2]), "lora_parity")
    t = Tally("lora_parity")
    gen = torch.Generator().manual_seed(5)
    model, inputs = random_model(CASE), random_inputs(CASE)
    files = write_case(CASE, model, inputs, work)
    base = weights_dict(model, "diffusers")

    def path(name):
        return os.path.join(work, name)

    write_lora(path("peft.safetensors"), diffusers_lora(model, gen))
    write_lora(path("peft_bare.safetensors"), diffusers_lora(model, gen, prefix=""))
    write_lora(path("peft_meta.safetensors"), diffusers_lora(model, gen),
               {"transformer.r": RANK, "transformer.lora_alpha": 3 * RANK, "transformer.use_rslora": False,
                "transformer.alpha_pattern": {}, "transformer.rank_pattern": {}})
    write_lora(path("wan.safetensors"), original_lora(model, gen))
    write_lora(path("wan_ab.safetensors"), original_lora(model, gen, "lora_A", "lora_B"))
    write_lora(path("musubi.safetensors"), musubi_lora(model, gen))

    cases = [("diffusers names, transformer. prefix", [(path("peft.safetensors"), 1.0)]),
             ("diffusers metadata lora_alpha 3r", [(path("peft_meta.safetensors"), 0.75)]),
             ("original Wan names, lora_down/up + alpha + diff_b", [(path("wan.safetensors"), 1.0)]),
             ("original Wan names, lora_A/B", [(path("wan_ab.safetensors"), -0.5)]),
             ("musubi-tuner names", [(path("musubi.safetensors"), 1.5)]),
             ("two LoRAs, scales 0.5 and 2", [(path("peft.safetensors"), 0.5), (path("wan.safetensors"), 2.0)])]
    for what, loras in cases:
        out = path(f"merged_{len(os.listdir(work))}.safetensors")
        ref = check_merge(t, osp, files, base, loras, out, what)
        if ref is not None and what.startswith(("original", "two")):
            check_forward(t, osp, files, model, inputs, out, ref, what)

    # diffusers reads bare names (no "transformer.") as nothing; OSP takes them: the same merge.
    check_merge(t, osp, files, base, [(path("peft_bare.safetensors"), 1.0)], path("bare.safetensors"), "bare names")

    check_bf16(t, osp, work, model, path("wan.safetensors"))

    # (c) the plumbing of osp generate --lora.
    check_generate(t, osp, work, gen)

    # (d) errors.
    wide = Case("wide", layers=2, heads=2, head_dim=16, ffn_dim=96, text_dim=16, freq_dim=256, grid=(1, 2, 2),
                timesteps=(1.0,), ctx_len=1, real_len=(1,), names="diffusers", config="diffusers")
    write_lora(path("narrow.safetensors"), diffusers_lora(random_model(wide), gen))
    check_error(t, osp, files, path("narrow.safetensors"),
                [path("narrow.safetensors"), "transformer.blocks.0.attn1.to_q.lora_A.weight", "[*, 64]", "[4, 32]"],
                "a LoRA of a narrower DiT")
    write_lora(path("unknown.safetensors"), {"transformer.blocks.0.attn1.to_x.lora_A.weight": torch.zeros(RANK, 64),
                                             "transformer.blocks.0.attn1.to_x.lora_B.weight": torch.zeros(64, RANK)})
    check_error(t, osp, files, path("unknown.safetensors"),
                [path("unknown.safetensors"), "transformer.blocks.0.attn1.to_x.lora_", "no Linear layer 'blocks.0.attn1.to_x'"],
                "a module the DiT does not have")
    write_lora(path("notlora.safetensors"), {"transformer.blocks.0.attn1.to_q.weight": torch.zeros(64, 64)})
    check_error(t, osp, files, path("notlora.safetensors"),
                [path("notlora.safetensors"), "transformer.blocks.0.attn1.to_q.weight", "no part of a LoRA"],
                "a full weight instead of a LoRA")
    t.finish()


if __name__ == "__main__":
    main()
