#!/usr/bin/env python3
"""Sequence parallelism on CPU ranks: `mpirun -np N osp dit` equals `osp dit` on one rank, and the
bytes each block sends match PAPER.md 6.3.

usage: python tests/parallel/sp_parity.py OSP_BINARY WORKDIR [--tol 1e-6 --grad-tol 1e-5]
       python tests/parallel/sp_parity.py OSP_BINARY WORKDIR --device cuda --ranks 2 --tol 2e-2 --grad-tol 5e-2

Every case runs a tiny random DiT (4 heads of 8 values, 32 on CUDA, so 2 and 4 ranks divide them) once on one rank and
once under mpirun (oversubscribed: 2 cores are enough), and compares the velocities:
    err = max|multi - single| / max|single|   must be <= tol (fp32: 1e-6).
Cases: Ulysses and SSP on 2 and 4 ranks; the full, dual_end and every_k schedules; token grids that
need padding (5 x 7 -> 8 x 8) and that do not (4 x 8); batch 1 and 2; CFG parallelism (the batch
over two groups of ranks) alone and with SSP or Ulysses inside each group, up to 8 ranks.

The backward too (`osp dit --grad-output`): velocity, the latents' gradient and every parameter's
gradient on N ranks equal the single rank's, each within grad-tol of its own largest magnitude
(fp32: 1e-5; the ranks' parameter gradients are summed in another order), with and without
--checkpoint; `osp train` over N ranks takes the same steps (losses and final weights); and
`osp generate` over ranks writes the frames of one rank (the built-in model, CPU only: PNG output
needs FFmpeg).

Byte counters (`osp dit --verbose` prints each block's bytes sent, summed over the ranks): on S
ranks with batch B, width C and 4-byte floats,
    a full block (Ulysses: q, k, v out and the output back) sends 4 (S-1)/S N B C 4 bytes,
    an SSP block inside the sparse span (one token <-> group switch) sends (S-1)/S N' B C 4,
so SSP's block is N'/(4N) of Ulysses' full block: exactly 25% without padding (PAPER.md 6.3).
Ulysses over a Skiparse layout splits bands of P^2 lines, so its layout changes send nothing.

A rank count that cannot split the heads must fail with a message on every rank, not hang.
With --device cuda (one rank per GPU, NCCL; two GPUs are enough) the same runs compare in bf16, whose
tolerance allows for the rounding of activations computed in another order, and the bytes are
counted in 2-byte values.
Prints one line per case and "sp_parity: N passed, N failed"; exits 1 on a failure.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image
from safetensors.numpy import load_file

HEADS, LAYERS = 4, 8
HEAD_DIM = {"cpu": 8, "cuda": 32}  # the smallest the CUDA attention takes
CONFIG = {"_class_name": "WanTransformer3DModel", "patch_size": [1, 2, 2], "num_attention_heads": HEADS,
          "in_channels": 4, "out_channels": 4, "text_dim": 16, "freq_dim": 32,
          "ffn_dim": 64, "num_layers": LAYERS, "cross_attn_norm": True, "qk_norm": "rms_norm_across_heads",
          "eps": 1e-6}


def mpirun(ranks):
    return ["mpirun", "--oversubscribe", "--allow-run-as-root", "-np", str(ranks), "-x", "OMP_NUM_THREADS=1"]


DEVICE = "cpu"


def run_dit(osp, work, name, inputs, schedule, ranks=1, extra=(), verbose=False):
    out = os.path.join(work, name + ".safetensors")
    cmd = (mpirun(ranks) if ranks > 1 else []) + [
        osp, "dit", "--config", os.path.join(work, "config.json"), "--random-weights", "7",
        "--random-inputs", inputs, "--schedule", schedule, "--device", DEVICE, "-o", out, *extra]
    if schedule != "full":
        cmd += ["--sparse-ratio", "2"]
    if verbose:
        cmd.append("--verbose")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    return load_file(out)["velocity"], p.stdout


def write_grad_output(path, inputs):
    """A fixed gradient of the loss with respect to the velocity, for --grad-output."""
    b, f, h, w, _ = (int(x) for x in inputs.split(","))
    g = np.random.default_rng(5).standard_normal((b, CONFIG["out_channels"], f, h, w)).astype(np.float32)
    header = json.dumps({"velocity": {"dtype": "F32", "shape": list(g.shape), "data_offsets": [0, g.nbytes]}}).encode()
    with open(path, "wb") as out:
        out.write(len(header).to_bytes(8, "little") + header + g.tobytes())


def run_grads(osp, work, name, inputs, schedule, ranks=1, extra=()):
    """Every tensor of `osp dit --grad-output` (velocity, latents' and parameters' gradients)."""
    grad = os.path.join(work, "grad_output.safetensors")
    write_grad_output(grad, inputs)
    out = os.path.join(work, name + ".safetensors")
    cmd = (mpirun(ranks) if ranks > 1 else []) + [
        osp, "dit", "--config", os.path.join(work, "config.json"), "--random-weights", "7", "--random-inputs", inputs,
        "--schedule", schedule, "--sparse-ratio", "2", "--device", DEVICE, "--grad-output", grad, "-o", out, *extra]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    return load_file(out)


def run_training(osp, work, name, ranks, extra=()):
    """`osp train` for 4 steps (batch 2, Skiparse schedule, synthetic data): losses and final weights."""
    work = os.path.abspath(work)  # train.json's paths are relative to its own folder
    out = os.path.join(work, name)
    shutil.rmtree(out, ignore_errors=True)
    config = {"model": {"config": os.path.join(work, "config.json"), "random_weights_seed": 3,
                        "schedule": "full,full,token,group,token,group,full,full", "sparse_ratio": 2},
              "data": {"synthetic": {"samples": 8, "frames": 3, "height": 10, "width": 14, "text_rows": 5}},
              "batch_size": 2, "steps": 4, "seed": 11, "device": DEVICE, "output": out,
              "optimizer": {"lr": 1e-3, "weight_decay": 0.01, "clip_grad_norm": 1.0},
              "lr_schedule": {"kind": "cosine", "warmup_steps": 2, "min_lr": 1e-5}, "checkpoint_every": 4}
    path = os.path.join(work, name + ".json")
    with open(path, "w") as f:
        json.dump(config, f)
    cmd = (mpirun(ranks) if ranks > 1 else []) + [osp, "train", "--config", path, *extra]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    losses = [json.loads(line)["loss"] for line in open(os.path.join(out, "metrics.jsonl"))]
    return losses, load_file(os.path.join(out, "step-4", "weights.safetensors"))


def block_bytes(stdout):
    """{block: bytes sent by all ranks} from the --verbose table."""
    rows = re.findall(r"^\s*(\d+) (full|token|group)\s+(\d+)\s*$", stdout, re.M)
    return {int(b): int(n) for b, _, n in rows}


def parity_cases(rank_counts):
    # (ranks, mode, schedule, B,F,H,W,L of the latents, extra flags)
    padded, exact = "1,3,10,14,5", "1,4,8,16,5"
    cases = []
    for ranks in [r for r in rank_counts if r <= HEADS]:
        for mode in ("ulysses", "ssp"):
            cases += [(ranks, mode, "full", padded), (ranks, mode, "dual_end:4", padded),
                      (ranks, mode, "every_k:3", exact), (ranks, mode, "dual_end:4", "2,3,10,14,5")]
    cases += [(2, "ssp", "dual_end:4", "2,3,10,14,5", ["--cfg-parallel"]),
              (4, "ssp", "dual_end:4", "2,3,10,14,5", ["--cfg-parallel"]),
              (4, "ulysses", "every_k:3", "2,2,8,16,5", ["--cfg-parallel"]),
              # 8 ranks as the paper's 8 GPUs would run (issue 10): CFG over 2 groups of 4, SSP or
              # Ulysses inside each (P^2 = 4 subsequences, 4 heads)
              (8, "ssp", "dual_end:4", "2,3,10,14,5", ["--cfg-parallel"]),
              (8, "ulysses", "dual_end:4", "2,3,10,14,5", ["--cfg-parallel"])]
    return [c for c in cases if c[0] in rank_counts]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("osp")
    ap.add_argument("work")
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--grad-tol", type=float, default=1e-5)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--ranks", default="2,4,8", help="rank counts to run (one GPU each on cuda)")
    args = ap.parse_args()
    global DEVICE
    DEVICE = args.device
    value_bytes = 4 if DEVICE == "cpu" else 2
    CONFIG["attention_head_dim"] = HEAD_DIM[DEVICE]
    DIM = HEADS * HEAD_DIM[DEVICE]
    os.makedirs(args.work, exist_ok=True)
    with open(os.path.join(args.work, "config.json"), "w") as f:
        json.dump(CONFIG, f)
    passed = failed = 0

    def report(ok, line):
        nonlocal passed, failed
        passed, failed = passed + ok, failed + (not ok)
        print(("ok   " if ok else "FAIL ") + line, flush=True)

    single = {}
    rank_counts = [int(n) for n in args.ranks.split(",")]
    for case in parity_cases(rank_counts):
        ranks, mode, schedule, inputs = case[:4]
        extra = case[4] if len(case) > 4 else []
        name = f"{ranks} ranks {mode} {schedule} inputs {inputs} {' '.join(extra)}".strip()
        try:
            if (schedule, inputs) not in single:
                single[(schedule, inputs)] = run_dit(args.osp, args.work, "single", inputs, schedule)[0]
            want = single[(schedule, inputs)]
            got = run_dit(args.osp, args.work, "multi", inputs, schedule, ranks, ["--sp", mode, *extra])[0]
            err = float(np.abs(got - want).max() / np.abs(want).max())
            report(err <= args.tol, f"{name}: rel err {err:.2e} (tol {args.tol:g})")
        except Exception as e:  # noqa: BLE001 - one failing case must not hide the others
            report(False, f"{name}: {e}")

    # 8 ranks on a CFG pair (batch 2) without --cfg-parallel: SSP gives each rank one subsequence
    # of one sample (P^2 * B = 8 rows), Ulysses in full blocks over 8 ranks (a model of 8 heads).
    if 8 in rank_counts:
        name = "8 ranks ssp dual_end:4 inputs 2,3,10,14,5, 8 heads (one subsequence of one sample per rank)"
        try:
            with open(os.path.join(args.work, "config.json"), "w") as f:
                json.dump(dict(CONFIG, num_attention_heads=8), f)
            want = run_dit(args.osp, args.work, "single8", "2,3,10,14,5", "dual_end:4")[0]
            got = run_dit(args.osp, args.work, "multi8", "2,3,10,14,5", "dual_end:4", 8, ["--sp", "ssp"])[0]
            err = float(np.abs(got - want).max() / np.abs(want).max())
            report(err <= args.tol, f"{name}: rel err {err:.2e} (tol {args.tol:g})")
        except Exception as e:  # noqa: BLE001
            report(False, f"{name}: {e}")
        finally:
            with open(os.path.join(args.work, "config.json"), "w") as f:
                json.dump(CONFIG, f)

    # osp generate over ranks (the built-in model, 4 steps, PNG frames): the frames of one rank.
    if DEVICE == "cpu":
        prompt = "a large red circle moving right on a blue background"
        for ranks, extra in [(2, ["--sp", "ssp", "--cfg-parallel"]), (4, ["--sp", "ulysses", "--cfg-parallel"]),
                             (2, ["--sp", "ssp"])]:
            if ranks not in rank_counts:
                continue
            name = f"osp generate, {ranks} ranks {' '.join(extra)}"
            try:
                frames = {}
                for label, n, flags in (("one", 1, []), ("many", ranks, extra)):
                    out = os.path.join(args.work, f"generate-{label}")
                    shutil.rmtree(out, ignore_errors=True)
                    cmd = (mpirun(n) if n > 1 else []) + [args.osp, "generate", "-p", prompt, "--steps", "4", "-q",
                                                          "--format", "png", "-o", out, *flags]
                    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
                    if p.returncode != 0:
                        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
                    frames[label] = [np.asarray(Image.open(os.path.join(out, f))).astype(int)
                                     for f in sorted(os.listdir(out))]
                worst = max(int(np.abs(a - b).max()) for a, b in zip(frames["one"], frames["many"]))
                ok = len(frames["one"]) == len(frames["many"]) == 8 and worst <= 1
                report(ok, f"{name}: 8 frames, largest pixel difference {worst} of 255 (at most 1: rounding)")
            except Exception as e:  # noqa: BLE001
                report(False, f"{name}: {e}")

    # Gradients: the backward over N ranks equals the backward on one, every tensor within the
    # tolerance of its own largest magnitude (the ranks' parameter gradients are summed in another
    # order); with --checkpoint too.
    for ranks, mode, schedule, inputs, extra in [
            (2, "ssp", "dual_end:4", "1,3,10,14,5", []), (2, "ulysses", "dual_end:4", "1,3,10,14,5", []),
            (4, "ssp", "every_k:3", "1,4,8,16,5", []), (4, "ulysses", "dual_end:4", "2,3,10,14,5", []),
            (4, "ssp", "dual_end:4", "2,3,10,14,5", ["--checkpoint"])]:
        if ranks not in rank_counts:
            continue
        name = f"gradients, {ranks} ranks {mode} {schedule} inputs {inputs} {' '.join(extra)}".strip()
        try:
            want = run_grads(args.osp, args.work, "grad_single", inputs, schedule, 1, extra)
            got = run_grads(args.osp, args.work, "grad_multi", inputs, schedule, ranks, ["--sp", mode, *extra])
            errs = sorted((float(np.abs(got[k] - want[k]).max() / max(np.abs(want[k]).max(), 1e-30)), k) for k in want)
            ok = sorted(got) == sorted(want) and errs[-1][0] <= args.grad_tol
            report(ok, f"{name}: {len(want)} tensors, worst rel err {errs[-1][0]:.2e} ({errs[-1][1]}; tol {args.grad_tol:g})")
        except Exception as e:  # noqa: BLE001
            report(False, f"{name}: {e}")

    # Training: `mpirun -np N osp train --sp MODE` takes the single rank's steps (losses within
    # grad-tol relative; final weights within grad-tol of each tensor's largest magnitude).
    for ranks, mode in [(2, "ssp"), (4, "ulysses")]:
        if ranks not in rank_counts:
            continue
        try:
            want_loss, want_w = run_training(args.osp, args.work, "train_single", 1)
            got_loss, got_w = run_training(args.osp, args.work, "train_multi", ranks, ["--sp", mode])
            loss_err = max(abs(a - b) / abs(b) for a, b in zip(got_loss, want_loss))
            w_err = max(float(np.abs(got_w[k] - want_w[k]).max() / max(np.abs(want_w[k]).max(), 1e-30)) for k in want_w)
            ok = len(got_loss) == len(want_loss) == 4 and loss_err <= args.grad_tol and w_err <= args.grad_tol
            report(ok, f"osp train, {ranks} ranks {mode}, 4 steps: loss rel err {loss_err:.2e}, weights rel err "
                       f"{w_err:.2e} (tol {args.grad_tol:g})")
        except Exception as e:  # noqa: BLE001
            report(False, f"osp train, {ranks} ranks {mode}: {e}")

    # Bytes: dual_end:4 on 8 blocks is F F T G T G F F; block 3 (group, then token) is one switch.
    for inputs, (T, H, W, Hp, Wp) in (("1,3,10,14,5", (3, 5, 7, 8, 8)), ("1,4,8,16,5", (4, 4, 8, 4, 8))):
        S, B, N, Np = max(r for r in rank_counts if r <= HEADS), 1, T * H * W, T * Hp * Wp
        try:
            ssp = block_bytes(run_dit(args.osp, args.work, "ssp", inputs, "dual_end:4", S, ["--sp", "ssp"], True)[1])
            uly = block_bytes(run_dit(args.osp, args.work, "uly", inputs, "dual_end:4", S, ["--sp", "ulysses"], True)[1])
            full_want = 4 * (S - 1) * N * B * DIM * value_bytes // S
            switch_want = (S - 1) * Np * B * DIM * value_bytes // S
            sparse_ulysses_want = 4 * (S - 1) * Np * B * DIM * value_bytes // S
            ok = (uly.get(0) == full_want and ssp.get(0) == full_want and ssp.get(3) == switch_want
                  and uly.get(3) == sparse_ulysses_want)
            ratio = ssp.get(3, 0) / max(uly.get(0, 1), 1)
            report(ok, f"bytes, grid {T}x{H}x{W} (padded {Hp}x{Wp}), {S} ranks: Ulysses full block {uly.get(0)} "
                       f"(want {full_want}), SSP switch block {ssp.get(3)} (want {switch_want}), Ulysses sparse "
                       f"block {uly.get(3)} (want {sparse_ulysses_want}); SSP/Ulysses {ratio:.4f} = N'/(4N) "
                       f"{Np / (4 * N):.4f}")
        except Exception as e:  # noqa: BLE001
            report(False, f"bytes {inputs}: {e}")

    # osp bench --dry-run predicts, from the plans alone, the bytes the runs above measured.
    if DEVICE == "cpu" and 4 in rank_counts:
        try:
            sparse_config = dict(CONFIG, sparse_ratio=2, skiparse_model_type="dual_end", num_full_blocks=4)
            path = os.path.join(args.work, "config_sparse.json")
            with open(path, "w") as f:
                json.dump(sparse_config, f)
            report_json = os.path.join(args.work, "dry_run.json")
            cmd = [args.osp, "bench", "--dry-run", "--ranks", "4", "--config", path, "--res", "3x10x14",
                   "--schedule", "dual_end:4", "--device", "cpu", "--json", report_json]
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            if p.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
            predicted = json.load(open(report_json))["results"][0]
            measured = {}
            for mode in ("ulysses", "ssp"):
                out = run_dit(args.osp, args.work, "dry", "1,3,10,14,5", "dual_end:4", 4, ["--sp", mode], True)[1]
                measured[mode] = sum(block_bytes(out).values())
            want = {m: predicted[f"{m}_forward_bytes"] * 4 for m in ("ulysses", "ssp")}
            report(want == {m: float(v) for m, v in measured.items()},
                   f"osp bench --dry-run --ranks 4: predicted {want}, measured {measured} (bytes, all ranks)")
        except Exception as e:  # noqa: BLE001
            report(False, f"osp bench --dry-run: {e}")

    # 3 ranks cannot split 4 heads: every rank stops with the message (no hang: the timeout).
    if DEVICE != "cpu":
        print(f"sp_parity: {passed} passed, {failed} failed")
        return 1 if failed else 0
    try:
        run_dit(args.osp, args.work, "bad", "1,3,10,14,5", "full", 3, ["--sp", "ulysses"])
        report(False, "3 ranks over 4 heads: expected a failure")
    except RuntimeError as e:
        report("must divide" in str(e) and "rank" in str(e), "3 ranks over 4 heads fails with a message")
    except subprocess.TimeoutExpired:
        report(False, "3 ranks over 4 heads: hung")

    print(f"sp_parity: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
