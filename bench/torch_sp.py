#!/usr/bin/env python3
"""PyTorch twin of `mpirun -np N osp bench --sp ulysses|ssp`: the Wan block stack spread over N
ranks with the same layouts OSP uses (PAPER.md 6; ARCHITECTURE.md, Distributed), in plain PyTorch
and torch.distributed (NCCL on GPUs, gloo on the CPU).

    torchrun --nproc-per-node 2 bench/torch_sp.py --res 720p --schedule full,dual_end --sp ulysses,ssp
    torchrun --nproc-per-node 2 bench/torch_sp.py --tiny --device cpu      # smoke test + parity check

The blocks are bench/torch_wan.py's (diffusers numerics, cuDNN SDPA, no key mask on padded
tokens). Each layout is split over the ranks as OSP splits it:
  - Ulysses: every rank holds, in every row, the tokens of its share of the (frame, band of lines)
    units (bands of P^2 lines when the schedule has Skiparse blocks, so token <-> group switches
    stay on the rank); self-attention sends q, k, v by heads (three all-to-alls) and the output
    back (one);
  - SSP (Skiparse blocks): every rank holds whole subsequences; self-attention is local and a
    layout change is one all-to-all of the hidden states (entering and leaving the span too).
Every layout change is the serial one (torch_wan.SkiparseTables) spread over the ranks: each rank
sends the rows the others need (one index_select), one all_to_all_single, and places what it got
(one index_select); where no token changes rank, one local index_select.

--tiny also checks the output against the one-process stack (torch_wan.stack_forward) on the
same weights: the layouts must not change the result beyond fp32 rounding.
Timing: the forward between barriers, CUDA synchronised, median of --repeats after a warm-up;
rank 0 prints one line per (resolution, schedule, mode) and writes --json.
"""

import argparse
import json
import os
import statistics
import sys
import time
from types import SimpleNamespace

import torch
import torch.distributed as dist
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_wan as tw  # noqa: E402

P, SUBSEQUENCES = tw.P, tw.S


class Split:
    """Which rank holds each serial slot of a layout, and each rank's slots in its local order
    (serial order): rank q's tensor is [rows, tokens[q], C] for band splits, [rows/ranks, L, C]
    for row splits; here it is kept flat as [slots of q, C]."""

    def __init__(self, owner, ranks):
        self.owner = owner  # [slots] rank of each serial slot
        self.slots = [torch.nonzero(owner == q).flatten() for q in range(ranks)]
        self.local = torch.empty_like(owner)  # [slots] index in its rank's tensor
        for q in range(ranks):
            self.local[self.slots[q]] = torch.arange(len(self.slots[q]))


def unit_owner(unit, units, ranks):
    """Unit u goes to the rank q with q*units/ranks <= u < (q+1)*units/ranks (as OSP)."""
    q = (unit * ranks) // units
    q = torch.where((q + 1) * units // ranks <= unit, q + 1, q)
    return torch.where(q * units // ranks > unit, q - 1, q)


def band_split(tb, layout, ranks, band):
    t_, h_, w_ = tb.grid
    tp, hp, wp = tb.pgrid
    if layout == "natural":
        n = torch.arange(tb.n)
        t, y = n // (h_ * w_), n // w_ % h_
        height = h_
    else:
        pad = tb.pad_of[layout]  # padded-natural index of each slot
        t, y = pad // (hp * wp), pad // wp % hp
        height = hp
    bands = (height + band - 1) // band
    return Split(unit_owner(t * bands + y // band, tp * bands, ranks), ranks)


def row_split(tb, ranks):
    if SUBSEQUENCES % ranks:
        raise SystemExit(f"SSP over {ranks} ranks: they must divide the {SUBSEQUENCES} subsequences")
    return Split(torch.arange(tb.n_pad) // (tb.n_pad // ranks), ranks)


def serial_gather(tb, src, dst):
    """Slot i of layout dst takes slot g[i] of src (-1: zero), as SkiparseTables moves them."""
    if src == dst:
        return None
    if src == "natural":
        return tb.nat_of_pad[tb.pad_of[dst]]
    if dst == "natural":
        return (tb.tok_to_nat if src == "token" else tb.grp_to_nat).cpu()
    return tb.switch.cpu()


class Exchange:
    """A serial layout change spread over the ranks, for rank `me` (see the module docstring)."""

    def __init__(self, a, b, g, me, ranks, device):
        src = torch.arange(len(b.owner)) if g is None else g
        mine = b.slots[me]
        self.local_only = bool(all(((src >= 0) & (a.owner[src] != b.owner)).logical_not()))
        if self.local_only:
            s = src[mine]
            self.local = torch.where(s >= 0, a.local[s.clamp(min=0)], -1).to(device)
            return
        self.send, self.send_counts, self.recv_counts = [], [], []
        for p in range(ranks):
            s = src[b.slots[p]]
            s = s[(s >= 0) & (a.owner[s.clamp(min=0)] == me)]
            self.send.append(a.local[s])
            self.send_counts.append(len(s))
        self.send = torch.cat(self.send).to(device)
        s = src[mine]
        from_rank = torch.where(s >= 0, a.owner[s.clamp(min=0)], ranks)
        self.recv_counts = [int((from_rank == q).sum()) for q in range(ranks)]
        offsets = torch.tensor([0] + self.recv_counts).cumsum(0)
        unpack = torch.full((len(mine),), -1, dtype=torch.long)
        for q in range(ranks):  # rank q's rows arrive in our order
            where = torch.nonzero(from_rank == q).flatten()
            unpack[where] = offsets[q] + torch.arange(len(where))
        self.unpack = unpack.to(device)

    def __call__(self, x):
        if self.local_only:
            return pick(x, self.local)
        recv = x.new_empty(sum(self.recv_counts), x.shape[-1])
        dist.all_to_all_single(recv, x.index_select(0, self.send).contiguous(), self.recv_counts, self.send_counts)
        return pick(recv, self.unpack)


def pick(x, index):
    """x[index] with a zero row where index is -1."""
    padded = torch.cat([x, x.new_zeros(1, x.shape[-1])])
    return padded.index_select(0, torch.where(index >= 0, index, len(x)))


def ulysses_attention(q, k, v, ranks, counts, backend):
    """q, k, v [rows, n_me, H, D] of this rank -> attention over every rank's tokens for H/ranks
    heads, output [rows, n_me, H*D] back on this rank."""
    rows, n, h, d = q.shape
    g = h // ranks

    def out_by_heads(t):  # [rows, n, H, D] -> every rank its head group, gathered over tokens
        send = t.view(rows, n, ranks, g, d).permute(2, 0, 1, 3, 4).contiguous()
        recv = t.new_empty(rows * sum(counts) * g * d)
        dist.all_to_all_single(recv, send.view(-1), [rows * c * g * d for c in counts], [rows * n * g * d] * ranks)
        parts = torch.split(recv, [rows * c * g * d for c in counts])
        return torch.cat([p.view(rows, c, g, d) for p, c in zip(parts, counts)], dim=1)

    o = tw.sdpa(out_by_heads(q), out_by_heads(k), out_by_heads(v), backend).view(rows, -1, g, d)
    send = torch.cat([part.reshape(-1) for part in torch.split(o, counts, dim=1)])
    recv = o.new_empty(ranks * rows * n * g * d)
    dist.all_to_all_single(recv, send, [rows * n * g * d] * ranks, [rows * c * g * d for c in counts])
    return recv.view(ranks, rows, n, g, d).permute(1, 2, 0, 3, 4).reshape(rows, n, h * d)


LOCAL_SELF_ATTENTION = tw.self_attention


def make_self_attention(state):
    """torch_wan.self_attention, with Ulysses where the block's layout is split in bands."""

    def self_attention(h, w, heads, rot, backend):
        if state.ulysses is None:
            return LOCAL_SELF_ATTENTION(h, w, heads, rot, backend)
        b, l, c = h.shape
        q = tw.rms_norm_across_heads(F.linear(h, *w["sa_q"]), w["sa_norm_q"]).view(b, l, heads, -1)
        k = tw.rms_norm_across_heads(F.linear(h, *w["sa_k"]), w["sa_norm_k"]).view(b, l, heads, -1)
        v = F.linear(h, *w["sa_v"]).view(b, l, heads, -1)
        q, k = tw.apply_rope(q, rot), tw.apply_rope(k, rot)
        return F.linear(ulysses_attention(q, k, v, state.ranks, state.ulysses, backend), *w["sa_o"])

    return self_attention


class Plan:
    """Every layout's split and every change of one schedule, for rank `me`."""

    def __init__(self, tb, schedule, mode, me, ranks, device):
        sparse = any(k != "full" for k in schedule)
        band = P * P if mode == "ulysses" and sparse else 1
        layouts = ["natural"] + [k for k in ("token", "group") if k in schedule]
        self.split = {}
        for layout in layouts:
            banded = layout == "natural" or mode == "ulysses"
            self.split[layout] = band_split(tb, layout, ranks, band) if banded else row_split(tb, ranks)
        self.banded = {layout: layout == "natural" or mode == "ulysses" for layout in layouts}
        self.changes = {}
        for src in layouts:
            for dst in layouts:
                if src != dst:
                    self.changes[src, dst] = Exchange(self.split[src], self.split[dst], serial_gather(tb, src, dst),
                                                      me, ranks, device)
        self.me, self.ranks = me, ranks

    def rows(self, tb, layout):
        """This rank's tensor shape [rows, tokens] in a layout."""
        n = len(self.split[layout].slots[self.me])
        if layout == "natural":
            return 1, n
        if self.banded[layout]:
            return SUBSEQUENCES, n // SUBSEQUENCES
        return n // tb.sub, tb.sub

    def token_counts(self, layout):
        rows = 1 if layout == "natural" else SUBSEQUENCES
        return [len(s) // rows for s in self.split[layout].slots]


def local_rope(plan, rope, layout, device):
    """This rank's rows of a layout's RoPE table, in its local order."""
    return rope[layout].index_select(0, plan.split[layout].slots[plan.me].to(device))


def sp_forward(model, tb, rope, schedule, x_nat, plan, state, backend, device):
    """The block stack on this rank's tokens: x_nat is this rank's natural rows [n, C]."""
    x, layout = x_nat, "natural"
    for i, kind in enumerate(schedule):
        want = "natural" if kind == "full" else kind
        if want != layout:
            x, layout = plan.changes[layout, want](x), want
        rows, n = plan.rows(tb, layout)
        state.ulysses = plan.token_counts(layout) if plan.banded[layout] else None
        x = model.block(i, x.view(rows, n, -1), local_rope(plan, rope, layout, device), backend).view(-1, x.shape[-1])
    state.ulysses = None
    return plan.changes[layout, "natural"](x) if layout != "natural" else x


def synchronized(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    dist.barrier()


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="14b", choices=["14b", "1.3b"])
    ap.add_argument("--res", default="720p")
    ap.add_argument("--schedule", default="full,dual_end")
    ap.add_argument("--sp", default="ulysses,ssp", help="comma list of ulysses, ssp")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--tiny", action="store_true", help="tiny model and grid, and a parity check")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--backend", default=None, help="SDPA backend (default cuda: cudnn, cpu: default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    args.backend = args.backend or ("cudnn" if args.device == "cuda" else "default")
    return args


def main(argv=None):
    args = parse_args(argv)
    cuda = args.device == "cuda"
    dist.init_process_group("nccl" if cuda else "gloo")
    me, ranks = dist.get_rank(), dist.get_world_size()
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', me))}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    dtype = torch.bfloat16 if cuda else torch.float32
    cfg = tw.MODELS["tiny" if args.tiny else args.model]
    margs = SimpleNamespace(torch_dtype=dtype, seed=args.seed, shared_weights=False, op="forward",
                            headroom_gb=24.0, compile=False)
    torch.manual_seed(args.seed)
    model = tw.Model(margs, cfg, device)  # the same weights on every rank (same seed)
    state = SimpleNamespace(ulysses=None, ranks=ranks)
    tw.self_attention = make_self_attention(state)
    records = []
    for res in (["tiny"] if args.tiny else args.res.split(",")):
        tb = tw.SkiparseTables(tw.RESOLUTIONS[res], device)
        rope = tw.rope_tables(tw.RESOLUTIONS[res], tb, device)
        torch.manual_seed(args.seed + 1)
        x_all = tw.randn((tb.n, cfg["dim"]), device, dtype)
        for sched_name in args.schedule.split(","):
            schedule = tw.make_schedule(sched_name, cfg["layers"], cfg["full_blocks"])
            for mode in args.sp.split(","):
                plan = Plan(tb, schedule, mode, me, ranks, device)
                x = x_all.index_select(0, plan.split["natural"].slots[me].to(device))
                with torch.inference_mode():
                    out = sp_forward(model, tb, rope, schedule, x, plan, state, args.backend, device)
                    times = []
                    for _ in range(args.repeats):
                        synchronized(device)
                        start = time.perf_counter()
                        sp_forward(model, tb, rope, schedule, x, plan, state, args.backend, device)
                        synchronized(device)
                        times.append(time.perf_counter() - start)
                    line = {"res": res, "schedule": sched_name, "sp": mode, "ranks": ranks,
                            "seconds": statistics.median(times), "blocks": cfg["layers"]}
                    if args.tiny:  # the layouts must not change the result (state.ulysses is None)
                        whole = tw.stack_forward(model, tb, rope, schedule, x_all, args.backend)
                        want = whole.index_select(0, plan.split["natural"].slots[me].to(device))
                        err = ((out - want).abs().max() / want.abs().max()).item()
                        line["rel_err_vs_one_process"] = err
                        assert err < 1e-5, f"{mode} {sched_name}: rel err {err} against one process"
                records.append(line)
                if me == 0:
                    print(json.dumps(line), flush=True)
    if me == 0 and args.json:
        with open(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(device) if cuda else "cpu",
                       "torch": torch.__version__, "results": records}, f, indent=1)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
