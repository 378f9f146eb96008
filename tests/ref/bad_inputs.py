#!/usr/bin/env python3
"""`osp` on bad inputs: every error is one clean line and leaves no file behind.

usage: python tests/ref/bad_inputs.py OSP_BINARY WORKDIR

Builds one small valid model (weights with original Wan2.1 names, an original-style config.json,
an inputs file; helpers from tests/ref/dit_parity.py), checks first that `osp dit` runs on it and
writes a velocity (so the suite cannot pass by osp failing on everything), then breaks one thing
per case: the safetensors container (truncation, header length, data offsets, dtype), the
weights (shape, a missing tensor, mixed name styles), the inputs (NaN, shapes, a missing tensor),
the command line (unknown flag or subcommand, a missing flag, paths that do not exist),
`osp generate` with the built-in model (empty prompt, absurd sizes, unwritable output, unknown
format, a model folder without its weights), and `osp info` on a truncated file. For each case it checks:
  - osp exits nonzero (exactly 2 for an unknown flag or subcommand, as the contract says), and
    not by a signal;
  - stderr is exactly ONE line, starting with "osp: error: ";
  - that line names the offending file (its basename) and, where there is one, the tensor or
    flag at fault (where either of two names is a fair answer, either is accepted);
  - for shape errors, that the line shows what was found;
  - no output file and no stray temporary file: the case's directory holds exactly the files it
    held before the run, and its out/ directory stays empty.
Each broken file has a basename of its own (bad_weights.safetensors, bad_inputs.safetensors),
so naming the wrong file does not pass.

Prints one line per case and a last line "bad_inputs: N passed, N failed"; exits 1 on a failure.
"""
import argparse
import json
import os
import re
import shutil
import struct
import sys
from dataclasses import dataclass, field

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dit_parity import (Case, first_line, random_inputs, random_model, read_velocity,  # noqa: E402
                        require_binary, run_osp, write_case)

# The valid model every case starts from: original names and config (so the tensor names in the
# messages are the ones in the file, whatever names osp uses inside); ffn_dim != dim so that a
# transposed FFN weight is a shape error.
BASE = Case("base", layers=2, heads=2, head_dim=32, ffn_dim=96, text_dim=16, freq_dim=256, grid=(1, 4, 6),
            timesteps=(500.0,), ctx_len=7, real_len=(5,), names="original", config="original", seed=7)

BAD_WEIGHTS = "bad_weights.safetensors"
BAD_INPUTS = "bad_inputs.safetensors"


# ---------------------------------------------------------------------------------------------
# Raw safetensors surgery: an 8-byte little-endian header length, a JSON header, the data.
# ---------------------------------------------------------------------------------------------

def read_raw(path):
    """(header dict in file order, data section bytes)."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8:8 + n]), blob[8 + n:]


def write_raw(path, header, data, header_len=None):
    """Writes a safetensors file from a header dict and data bytes; header_len overrides the
    length field (to make it lie)."""
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the format pads the header with spaces to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text) if header_len is None else header_len) + text + data)


def repack(header, data, leave_out):
    """Re-lays the data so that every tensor but `leave_out` is contiguous from offset 0 (in the
    order of their offsets) and returns the new data; the caller then places `leave_out`.
    This way a broken range is the only defect: no byte of the data belongs to no tensor."""
    names = sorted((k for k in header if k not in ("__metadata__", leave_out)),
                   key=lambda k: header[k]["data_offsets"][0])
    out = bytearray()
    for k in names:
        b, e = header[k]["data_offsets"]
        header[k]["data_offsets"] = [len(out), len(out) + e - b]
        out += data[b:e]
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# Cases. Each builder gets the base files and the case's directory (a copy of the base files,
# with an empty out/), writes what it breaks, and returns the Expect for the run.
# ---------------------------------------------------------------------------------------------

@dataclass
class Expect:
    argv: list                 # osp's arguments (without the binary)
    names: list                # each must appear in the message: a str, or a tuple of alternatives
    exit_code: int = None      # None: any nonzero exit
    shows: list = field(default_factory=list)  # regexes the message must match (what was found)


CASES = []


def case(name):
    def register(fn):
        CASES.append((name, fn))
        return fn
    return register


def dit(f, weights=None, config=None, inputs=None, output=None):
    """`osp dit` arguments for the case's files, with any of them replaced."""
    return ["dit", "--weights", weights or f.weights, "--config", config or f.config,
            "--inputs", inputs or f.inputs, "-o", output or f.output]


def break_weights(f, fn):
    """Writes bad_weights.safetensors: fn(header, data) edits the raw header and returns
    (data, header_len or None)."""
    header, data = read_raw(f.weights)
    data, header_len = fn(header, data)
    path = os.path.join(f.dir, BAD_WEIGHTS)
    write_raw(path, header, data, header_len)
    return path


def edit_weights(f, fn):
    """Writes bad_weights.safetensors from the weights as tensors, edited by fn(dict)."""
    w = load_file(f.weights)
    fn(w)
    path = os.path.join(f.dir, BAD_WEIGHTS)
    save_file({k: v.contiguous() for k, v in w.items()}, path)
    return path


def edit_inputs(f, fn):
    """Writes bad_inputs.safetensors from the inputs, edited by fn(dict)."""
    x = load_file(f.inputs)
    fn(x)
    path = os.path.join(f.dir, BAD_INPUTS)
    save_file({k: v.contiguous() for k, v in x.items()}, path)
    return path


def truncate(src, dst, keep=0.6):
    with open(src, "rb") as f:
        blob = f.read()
    with open(dst, "wb") as f:
        f.write(blob[:int(len(blob) * keep)])
    return dst


@case("truncated weights file")
def _(f):
    w = truncate(f.weights, os.path.join(f.dir, BAD_WEIGHTS))
    return Expect(dit(f, weights=w), [BAD_WEIGHTS])


@case("header length past EOF")
def _(f):
    size = os.path.getsize(f.weights)
    w = break_weights(f, lambda h, d: (d, size + 1000))
    return Expect(dit(f, weights=w), [BAD_WEIGHTS])


@case("data_offsets outside the file")
def _(f):
    victim = "blocks.1.ffn.2.bias"

    def move(h, d):  # past the end of the data section, which the other tensors fill exactly
        n = h[victim]["data_offsets"][1] - h[victim]["data_offsets"][0]
        d = repack(h, d, victim)
        h[victim]["data_offsets"] = [len(d) + 4096, len(d) + 4096 + n]
        return d, None
    return Expect(dit(f, weights=break_weights(f, move)), [BAD_WEIGHTS, victim])


@case("overlapping data_offsets")
def _(f):
    a, b = "blocks.0.self_attn.norm_q.weight", "blocks.0.self_attn.norm_k.weight"  # same size

    def overlap(h, d):  # b lies on a's bytes; the other tensors fill the data exactly
        d = repack(h, d, b)
        h[b]["data_offsets"] = list(h[a]["data_offsets"])
        return d, None
    return Expect(dit(f, weights=break_weights(f, overlap)), [BAD_WEIGHTS, (a, b)])


@case("unknown dtype string")
def _(f):
    victim = "blocks.0.norm3.bias"

    def retype(h, d):
        h[victim]["dtype"] = "F31"
        return d, None
    return Expect(dit(f, weights=break_weights(f, retype)), [BAD_WEIGHTS, victim])


@case("wrong shape (ffn.0.weight transposed)")
def _(f):
    victim = "blocks.0.ffn.0.weight"  # [ffn, dim] = [96, 64] in the file as [64, 96]

    def transpose(w):
        w[victim] = w[victim].t()
    return Expect(dit(f, weights=edit_weights(f, transpose)), [BAD_WEIGHTS, victim],
                  shows=[r"64\D{1,4}96"])  # the shape found


@case("missing tensor")
def _(f):
    victim = "blocks.1.cross_attn.norm_k.weight"
    return Expect(dit(f, weights=edit_weights(f, lambda w: w.pop(victim))), [BAD_WEIGHTS, victim])


@case("mix of diffusers and original names")
def _(f):
    ours, theirs = "blocks.0.self_attn.q.weight", "blocks.0.attn1.to_q.weight"

    def rename(w):
        w[theirs] = w.pop(ours)
    # osp may report the diffusers name it did not expect, or the original name it misses.
    return Expect(dit(f, weights=edit_weights(f, rename)), [BAD_WEIGHTS, (ours, theirs)])


@case("NaN in latents")
def _(f):
    def nan(x):
        x["latents"][0, 3, 0, 1, 2] = float("nan")
    return Expect(dit(f, inputs=edit_inputs(f, nan)), [BAD_INPUTS, "latents"])


@case("latents with 8 channels")
def _(f):
    def channels(x):
        x["latents"] = x["latents"][:, :8]
    return Expect(dit(f, inputs=edit_inputs(f, channels)), [BAD_INPUTS, "latents"], shows=[r"\b8\b"])


@case("context with the wrong text_dim")
def _(f):
    def widen(x):
        x["context"] = torch.cat([x["context"], torch.ones(*x["context"].shape[:2], 3)], 2)
    return Expect(dit(f, inputs=edit_inputs(f, widen)), [BAD_INPUTS, "context"],
                  shows=[rf"\b{BASE.text_dim + 3}\b"])


@case("timestep of the wrong batch size")
def _(f):
    def grow(x):
        x["timestep"] = torch.tensor([500.0, 20.0, 3.0])
    return Expect(dit(f, inputs=edit_inputs(f, grow)), [BAD_INPUTS, "timestep"], shows=[r"\b3\b"])


@case("missing latents in inputs")
def _(f):
    return Expect(dit(f, inputs=edit_inputs(f, lambda x: x.pop("latents"))), [BAD_INPUTS, "latents"])


@case("nonexistent weights path")
def _(f):
    return Expect(dit(f, weights=os.path.join(f.dir, "nope.safetensors")), ["nope.safetensors"])


@case("unknown flag")
def _(f):
    return Expect(dit(f) + ["--frobnicate", "3"], ["--frobnicate"], exit_code=2)


@case("unknown subcommand")
def _(f):
    return Expect(["frobnicate", "--weights", f.weights], ["frobnicate"], exit_code=2)


@case("missing required flag (--inputs)")
def _(f):
    argv = dit(f)
    i = argv.index("--inputs")
    return Expect(argv[:i] + argv[i + 2:], ["--inputs"])


@case("-o in a nonexistent directory")
def _(f):
    return Expect(dit(f, output=os.path.join(f.dir, "nodir", "velocity.safetensors")),
                  [("nodir", "velocity.safetensors")])


# `osp generate` with the built-in model (models/shapes of this source tree).
MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models", "shapes")


def generate(f, *extra, output=None, model=MODEL):
    return ["generate", "--model", model, "-q", "-p", "a small red circle moving left on a blue background",
            "-o", output or os.path.join(f.dir, "out", "video.mp4")] + list(extra)


@case("generate: empty prompt")
def _(f):
    argv = generate(f)
    argv[argv.index("-p") + 1] = "  "
    return Expect(argv, ["--prompt"])


@case("generate: 0 frames")
def _(f):
    return Expect(generate(f, "--frames", "0"), ["frames"], shows=[r"\b0 frames"])


@case("generate: 100000 pixels wide")
def _(f):
    return Expect(generate(f, "--width", "100000"), ["100000"])


@case("generate: output in a nonexistent directory")
def _(f):
    return Expect(generate(f, output=os.path.join(f.dir, "nodir", "video.mp4")), ["nodir"])


@case("generate: unknown format")
def _(f):
    return Expect(generate(f, "--format", "avi"), ["avi"])


@case("generate: model folder without its weights")
def _(f):
    model = os.path.join(f.dir, "model")
    shutil.copytree(MODEL, model, ignore=shutil.ignore_patterns("dit.safetensors"))
    return Expect(generate(f, model=model), ["dit.safetensors"])


@case("generate: --noise of the wrong shape")
def _(f):
    noise = os.path.join(f.dir, "noise.safetensors")
    save_file({"noise": torch.zeros(1, 3, 8, 32, 30)}, noise)
    return Expect(generate(f, "--noise", noise, "--width", "32"), ["noise"], shows=[r"\[1, 3, 8, 32, 30\]"])


@case("generate: --noise file without a 'noise' tensor")
def _(f):
    noise = os.path.join(f.dir, "noise.safetensors")
    save_file({"a": torch.zeros(1, 3, 8, 32, 32), "b": torch.zeros(1)}, noise)
    return Expect(generate(f, "--noise", noise), [("noise.safetensors", "'noise'")])


@case("osp info on a truncated file")
def _(f):
    return Expect(["info", truncate(f.weights, os.path.join(f.dir, BAD_WEIGHTS))], [BAD_WEIGHTS])


# ---------------------------------------------------------------------------------------------
# Running and judging.
# ---------------------------------------------------------------------------------------------

def listing(directory):
    """Every file and directory under `directory`, as relative paths."""
    found = set()
    for root, dirs, files in os.walk(directory):
        for n in dirs + files:
            found.add(os.path.relpath(os.path.join(root, n), directory))
    return found


def judge(r, expect, before, after):
    """What is wrong with one run (empty list: nothing)."""
    problems = []
    if r.returncode == 0:
        problems.append("exit 0")
    elif r.returncode < 0:
        problems.append(f"killed by signal {-r.returncode}")
    elif expect.exit_code is not None and r.returncode != expect.exit_code:
        problems.append(f"exit {r.returncode}, expected {expect.exit_code}")
    lines = r.stderr.rstrip("\n").split("\n") if r.stderr.strip() else []
    if len(lines) != 1:
        problems.append(f"stderr has {len(lines)} lines, expected 1")
    msg = lines[0] if lines else ""
    if lines and not msg.startswith("osp: error: "):
        problems.append("stderr does not start with 'osp: error: '")
    for name in expect.names:
        alternatives = name if isinstance(name, tuple) else (name,)
        if not any(a in msg for a in alternatives):
            problems.append("message does not name " + " or ".join(repr(a) for a in alternatives))
    for pattern in expect.shows:
        if not re.search(pattern, msg):
            problems.append(f"message does not show /{pattern}/")
    if after != before:
        problems.append(f"files left behind: {sorted(after - before)}" if after - before
                        else f"files removed: {sorted(before - after)}")
    return problems


def valid_run(osp, base):
    """The base model must run: exit 0, velocity of the latents' shape, and nothing else left in
    out/. Returns (line, ok)."""
    r = run_osp(base.dit_argv(osp))
    if r.returncode != 0:
        return f"valid model: FAIL, osp dit exit {r.returncode}: {first_line(r.stderr)}", False
    v, problem = read_velocity(base, BASE.latent_shape)
    extra = sorted(set(os.listdir(base.out_dir)) - {os.path.basename(base.output)})
    if problem or extra:
        return f"valid model: FAIL, {problem or f'stray files in out/: {extra}'}", False
    return f"valid model: ok, velocity {list(v.shape)}", True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("osp", help="the osp binary")
    ap.add_argument("workdir", help="directory for the cases' files (WORKDIR/bad_inputs/<n>/)")
    a = ap.parse_args()
    osp = require_binary(a.osp)
    work = os.path.join(os.path.abspath(a.workdir), "bad_inputs")
    shutil.rmtree(work, ignore_errors=True)
    base = write_case(BASE, random_model(BASE), random_inputs(BASE), os.path.join(work, "base"))

    line, ok = valid_run(osp, base)
    print(line, flush=True)
    passed, failed = int(ok), int(not ok)
    for i, (name, build) in enumerate(CASES):
        files = base.copy_to(os.path.join(work, f"{i:02d}"))  # the case's own copy, empty out/
        expect = build(files)
        before = listing(files.dir)
        r = run_osp([osp] + expect.argv)
        problems = judge(r, expect, before, listing(files.dir))
        ok = not problems
        print(f"{name}: {'ok' if ok else 'FAIL'}, exit {r.returncode}: {first_line(r.stderr)}"
              + ("" if ok else "  [" + "; ".join(problems) + "]"), flush=True)
        passed, failed = passed + ok, failed + (not ok)
    print(f"bad_inputs: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
