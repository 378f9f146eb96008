#!/usr/bin/env python3
"""`osp convert` (PyTorch .pth → safetensors) against torch.load, and its refusals.

usage: python tests/ref/convert_parity.py OSP_BINARY WORKDIR

Each case is saved with torch.save (torch 2.15's zip format), converted by osp, loaded back with
safetensors, and compared with torch.load bit for bit: every name, dtype, shape and byte. Cases:
every dtype safetensors has (f32, f64, f16, bf16, i64, i32, i16, i8, u8, bool), 0-d and 1-d
tensors, a transposed view, two tensors sharing one storage at different offsets, an OrderedDict
and a plain dict, nested dicts, a {"state_dict": ...} wrapper, non-tensor values (skipped), a small
nn.Module's state_dict (Conv3d, Linear, LayerNorm) in f32 and bf16 (torch writes ZIP64 fields only
past 4 GiB, which this test does not write: the reader's ZIP64 path is exercised by the real
11 GB T5 file, not here). Bad inputs must fail with a
message naming the file: a truncated file (several cut points), a pickle naming a forbidden global
(os.getcwd through __reduce__: never called), a zip whose entry is deflated, not a zip, an empty file.

Prints one line per check and "convert: N passed, M failed" last.
"""
import collections
import io
import os
import subprocess
import sys
import zipfile

import torch
from safetensors.torch import load_file

from tally import Tally

TALLY = Tally("convert")
check = TALLY.check


def flatten(obj, prefix=""):
    out = {}
    for k, v in obj.items():
        if isinstance(v, torch.Tensor):
            out[prefix + str(k)] = v
        elif isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
    return out


def run(osp, src, dst):
    return subprocess.run([osp, "convert", src, "-o", dst], capture_output=True, text=True)


def case(osp, work, name, obj, expect=None):
    src, dst = os.path.join(work, name + ".pth"), os.path.join(work, name + ".safetensors")
    torch.save(obj, src)
    r = run(osp, src, dst)
    if r.returncode != 0:
        check(False, f"{name}: osp convert failed: {r.stderr.strip()}")
        return
    got = load_file(dst)
    want = expect if expect is not None else flatten(torch.load(src))
    same = sorted(got) == sorted(want) and all(
        got[k].dtype == want[k].dtype and got[k].shape == want[k].shape and
        torch.equal(got[k].reshape(-1).view(torch.uint8), want[k].contiguous().reshape(-1).view(torch.uint8))
        for k in want)
    check(same, f"{name}: {len(want)} tensors, names, dtypes, shapes and bytes identical")


def refused(osp, work, name, data, needle):
    src = os.path.join(work, name + ".pth")
    with open(src, "wb") as f:
        f.write(data)
    r = run(osp, src, os.path.join(work, name + ".safetensors"))
    ok = r.returncode == 1 and src in r.stderr and needle in r.stderr and "Traceback" not in r.stderr
    check(ok and not os.path.exists(os.path.join(work, name + ".safetensors")),
          f"bad input {name}: exit {r.returncode}, {r.stderr.strip()}")


class Forbidden:
    def __reduce__(self):
        return (os.getcwd, ())


def main():
    osp, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    dtypes = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16,
              torch.int8, torch.uint8, torch.bool]
    every = collections.OrderedDict()
    for i, dt in enumerate(dtypes):
        base = torch.randn(3, 5, generator=g) * 50
        every[f"t{i}.{str(dt).split('.')[1]}"] = base.to(dt) if dt != torch.bool else base > 0
    case(osp, work, "every_dtype", every)
    shared = torch.arange(40, dtype=torch.float32)
    case(osp, work, "views", {"scalar": torch.tensor(3.5), "vector": torch.randn(7, generator=g),
                              "transposed": torch.randn(4, 6, generator=g).t(), "first": shared[:10],
                              "later": shared[10:30].view(4, 5), "strided": shared[::3]})
    case(osp, work, "nested", {"encoder": {"w": torch.randn(2, 2, generator=g), "inner": {"b": torch.ones(3)}},
                               "step": 7, "name": "x", "head": torch.zeros(1, 2, dtype=torch.bfloat16)})
    inner = {"a": torch.randn(2, 3, generator=g), "b": torch.randn(5, generator=g).to(torch.bfloat16)}
    case(osp, work, "wrapped", {"state_dict": inner, "epoch": 3}, expect=inner)
    module = torch.nn.Sequential(torch.nn.Conv3d(3, 4, 3), torch.nn.Linear(4, 5), torch.nn.LayerNorm(5))
    case(osp, work, "module", module.state_dict())
    case(osp, work, "module_bf16", module.to(torch.bfloat16).state_dict())

    buffer = io.BytesIO()
    torch.save({"w": torch.randn(64, 64, generator=g)}, buffer)
    good = buffer.getvalue()
    for cut in (10, len(good) // 2, len(good) - 30, len(good) - 1):
        refused(osp, work, f"truncated_at_{cut}", good[:cut], "")
    buffer = io.BytesIO()
    torch.save({"w": torch.ones(2), "evil": Forbidden()}, buffer)
    refused(osp, work, "forbidden_global", buffer.getvalue(), "posix.getcwd")
    deflated = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as z, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as out:
        for info in z.infolist():
            out.writestr(info.filename, z.read(info.filename))
    refused(osp, work, "deflated", deflated.getvalue(), "compressed")
    refused(osp, work, "not_a_zip", b"hello, I am not a checkpoint" * 10, "not a zip archive")
    refused(osp, work, "empty", b"", "empty")
    TALLY.finish()


if __name__ == "__main__":
    main()
