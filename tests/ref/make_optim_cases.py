"""PyTorch references for the optimizer (src/ops/optim.h, src/pipeline/lr_schedule.h), read by
tests/unit/test_optim_ref.c.

Usage: /root/.cache/osp-venv/bin/python tests/ref/make_optim_cases.py OUT_DIR

Writes one safetensors file per case, OUT_DIR/<op>.<case>.safetensors, with make_op_cases.py's
writer:
  adamw.*          torch.optim.AdamW (single-tensor path) over a few float32 parameters, 10 steps:
                   param.<i> (the start), grads.<i> [10, ...] (the gradient of each step), the
                   hyperparameters as float64 scalars (exactly the Python floats torch was given),
                   ref_params.<i> [10, ...] (the parameter after each step), ref_m.<i>, ref_v.<i>
                   (the moments after the last step).
  clip_grad_norm.* torch.nn.utils.clip_grad_norm_ over grads.<i>: max_norm (float64), ref.<i> (the
                   gradients after), ref_total_norm (the norm torch returns, float32).
  lr_schedule.*    the lr of each optimizer step under torch's LambdaLR: kind (the name's ASCII
                   bytes, u8), lr, min_lr (float64), warmup_steps, total_steps, ref_lr [steps].
"""

import math
import sys

import torch

from make_op_cases import CaseWriter, integers

GENERATOR = torch.Generator().manual_seed(20260601)
STEPS = 10


def randn(*shape, std=1.0):
    return torch.randn(*shape, generator=GENERATOR, dtype=torch.float64).mul(std).float()


def f64(value):
    return torch.tensor([value], dtype=torch.float64)


def adamw_cases(write):
    """Shapes with odd sizes (torch's vector kernels leave tails); parameters at a typical init
    scale (std 0.02, where an lr of 1e-3 is a visible change) and at std 1; gradients of std 1,
    1e-2 and 1e-4. 'unusual_no_decay' has 1 − β1 ≥ 0.5 (the other branch of torch's lerp) and an
    eps of 1e-4, as large as the smallest gradients."""
    tensors = [((7,), 0.02, 1.0), ((16, 33), 1.0, 1e-2), ((3, 5, 67), 0.02, 1e-4)]
    for case, hyper in {
        "decay": dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1),
        "unusual_no_decay": dict(lr=3e-2, betas=(0.3, 0.95), eps=1e-4, weight_decay=0.0),
    }.items():
        params = [randn(*shape, std=std) for shape, std, _ in tensors]
        grads = [randn(STEPS, *shape, std=grad_std) for shape, _, grad_std in tensors]
        live = [p.clone().requires_grad_(True) for p in params]
        optimizer = torch.optim.AdamW(live, foreach=False, fused=False, **hyper)
        history = [[] for _ in live]
        for step in range(STEPS):
            for p, g in zip(live, grads):
                p.grad = g[step].clone()
            optimizer.step()
            for h, p in zip(history, live):
                h.append(p.detach().clone())
        out = {
            "lr": f64(hyper["lr"]),
            "beta1": f64(hyper["betas"][0]),
            "beta2": f64(hyper["betas"][1]),
            "eps": f64(hyper["eps"]),
            "weight_decay": f64(hyper["weight_decay"]),
        }
        for i, (p, g, h, live_p) in enumerate(zip(params, grads, history, live)):
            state = optimizer.state[live_p]
            out |= {f"param.{i}": p, f"grads.{i}": g, f"ref_params.{i}": torch.stack(h),
                    f"ref_m.{i}": state["exp_avg"], f"ref_v.{i}": state["exp_avg_sq"]}
        write("adamw", case, **out)


def clip_grad_norm_cases(write):
    grads = [randn(5, 9), randn(300), randn(2, 3, 4, std=3.0)]
    exact_norm = math.sqrt(sum(g.double().square().sum().item() for g in grads))
    for case, max_norm in {"clips": 1.0, "no_clip": 100.0}.items():
        live = [torch.zeros_like(g, requires_grad=True) for g in grads]
        for p, g in zip(live, grads):
            p.grad = g.clone()
        total_norm = torch.nn.utils.clip_grad_norm_(live, max_norm)
        assert abs(total_norm.item() - exact_norm) <= 1e-6 * exact_norm
        assert (exact_norm > max_norm) == (case == "clips")
        out = {"max_norm": f64(max_norm), "ref_total_norm": total_norm.reshape(1)}
        for i, (g, p) in enumerate(zip(grads, live)):
            out |= {f"grads.{i}": g, f"ref.{i}": p.grad}
        write("clip_grad_norm", case, **out)


def ema_cases(write):
    """torch.optim.swa_utils.get_ema_multi_avg_fn's update over 6 steps: ema.lerp_(p, 1 - decay)
    with the parameter changing each step."""
    from torch.optim.swa_utils import get_ema_multi_avg_fn
    update = get_ema_multi_avg_fn(0.0)
    for case, decay in {"decay_0999": 0.999, "decay_09": 0.9, "decay_07": 0.7, "decay_0": 0.0}.items():
        update = get_ema_multi_avg_fn(decay)
        start = randn(7, 11)
        params = torch.stack([randn(7, 11) for _ in range(6)])
        ema = start.clone()
        for p in params:
            update([ema], [p], torch.tensor(1))
        write("ema", case, decay=f64(decay), **{"param.0": start, "grads.0": params, "ref.0": ema})


def lr_factor(kind, lr, min_lr, warmup, total):
    """λ(e) for LambdaLR: the lr of optimizer step t = e + 1 divided by lr (lr_schedule.h)."""

    def factor(epoch):
        t = epoch + 1
        if t <= warmup:
            return t / warmup
        if kind == "constant":
            return 1.0
        progress = min(1.0, (t - warmup) / (total - warmup))
        return (min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))) / lr

    return factor


def lrs_of_steps(steps, lr, make_scheduler):
    """The lr each optimizer.step() uses, scheduler.step() after each, as a training loop does."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = make_scheduler(optimizer)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def lr_schedule_cases(write):
    for case, (kind, lr, min_lr, warmup, total, steps) in {
        "constant_warmup": ("constant", 1e-3, 0.0, 5, 0, 12),
        "constant_no_warmup": ("constant", 2e-4, 0.0, 0, 0, 4),
        "cosine_warmup": ("cosine", 3e-4, 1e-5, 10, 50, 56),
        "cosine_no_warmup": ("cosine", 1e-3, 0.0, 0, 20, 23),
    }.items():
        factor = lr_factor(kind, lr, min_lr, warmup, total)
        lrs = lrs_of_steps(steps, lr, lambda o: torch.optim.lr_scheduler.LambdaLR(o, factor))
        if kind == "cosine":  # after the warm-up, torch's own cosine (step t = W + its epoch)
            annealing = lrs_of_steps(total - warmup + 1, lr, lambda o: torch.optim.lr_scheduler.
                                     CosineAnnealingLR(o, T_max=total - warmup, eta_min=min_lr))
            for epoch, want in enumerate(annealing):
                t = warmup + epoch
                if t >= 1:
                    assert abs(lrs[t - 1] - want) <= 1e-12 * lr, (case, t, lrs[t - 1], want)
        write("lr_schedule", case, kind=torch.tensor(list(kind.encode()), dtype=torch.uint8),
              lr=f64(lr), min_lr=f64(min_lr), warmup_steps=integers(warmup),
              total_steps=integers(total), ref_lr=torch.tensor(lrs, dtype=torch.float64))


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUT_DIR")
    write = CaseWriter(sys.argv[1])
    for make in (adamw_cases, clip_grad_norm_cases, ema_cases, lr_schedule_cases):
        make(write)
    print(f"make_optim_cases: wrote {write.count} cases to {sys.argv[1]}")


if __name__ == "__main__":
    main()
