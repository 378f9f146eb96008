"""Mix-GRPO's per-step arithmetic written here in PyTorch from PAPER.md 8 (and Flow-GRPO's code for
its σ = 1 stand-in), the references of src/sample/grpo.h, read by tests/unit/test_grpo_ref.c.

Usage: /root/.cache/osp-venv/bin/python tests/ref/make_grpo_cases.py OUT_DIR

Inputs are float32; every reference is computed in float64 from them, gradients by autograd:
  sde.*         one SDE step: x, v, z [shape], sigma, sigma_next, eta, sigma_cap (float64), kind
                (0 Flow-GRPO, 1 OSP-Next), noisy (0: the noiseless last step); ref_mean, ref_x_next,
                ref_std, and for a noisy step ref_logp (of x_next, rounded to float32 as the rollout
                keeps it, under the float32 mean), ref_grad_mean (∂logp/∂mean) and ref_grad_v
                (∂logp/∂v through the mean: the chain osp applies with
                osp_sde_mean_velocity_factor).
  kl.*          mean, ref_mean, std; ref_kl and ref_grad (∂kl/∂mean).
  clip.*        logp, logp_old, advantage [n] and eps; ref_loss [n], ref_grad [n] (∂loss/∂logp
                through torch.maximum and torch.clamp, as Flow-GRPO's loss is written) and
                ref_clipped [n] (1 where |r − 1| > ε and the clipped term is the larger).
  advantages.*  rewards [n] and clip; ref = clamp((r − mean)/(std + 1e−8), ±clip), std unbiased.
"""

import math
import sys

import torch

from make_op_cases import CaseWriter, integers

GENERATOR = torch.Generator().manual_seed(20261124)
FLOW_GRPO, OSP_NEXT = 0, 1


def randn(*shape, std=1.0):
    return torch.randn(*shape, generator=GENERATOR, dtype=torch.float32) * std


def f64(value):
    return torch.tensor([value], dtype=torch.float64)


def diffusion(kind, sigma, eta, sigma_cap):
    """g(σ): Flow-GRPO's std_dev_t = η·√(σ / (1 − where(σ == 1, σ_cap, σ))), or OSP-Next's σ."""
    if kind == OSP_NEXT:
        return sigma
    return eta * math.sqrt(sigma / (1 - (sigma_cap if sigma == 1 else sigma)))


def sde_case(write, name, kind, sigma, sigma_next, shape, eta=0.7, sigma_cap=0.96, noisy=True):
    x, v, z = randn(*shape), randn(*shape), randn(*shape)
    g = diffusion(kind, sigma, eta, sigma_cap)
    dt = sigma_next - sigma
    std = g * math.sqrt(-dt)
    v64 = v.double().requires_grad_(True)
    x64 = x.double()
    mean = x64 + (v64 + g * g / (2 * sigma) * (x64 + (1 - sigma) * v64)) * dt
    x_next = (mean + std * z.double() if noisy else mean).detach().float()
    mean32 = mean.detach().float()
    refs = dict(ref_mean=mean32, ref_x_next=x_next, ref_std=f64(std))
    if noisy:  # (a noiseless step has no density to train)
        # logp under the float32 mean the rollout records; its gradient to that mean, and to v
        # through it (the mean's value rounded as osp keeps it, its derivative autograd's).
        def log_prob(m):
            return (-(x_next.double() - m) ** 2 / (2 * std * std) - math.log(std)
                    - 0.5 * math.log(2 * math.pi)).mean()
        m = mean32.double().requires_grad_(True)
        logp = log_prob(m)
        grad_mean, = torch.autograd.grad(logp, m)
        grad_v, = torch.autograd.grad(log_prob(mean + (mean32.double() - mean).detach()), v64)
        refs.update(ref_logp=logp.detach().reshape(1), ref_grad_mean=grad_mean.float(), ref_grad_v=grad_v.float())
    write("sde", name, x=x, v=v, z=z, sigma=f64(sigma), sigma_next=f64(sigma_next), eta=f64(eta),
          sigma_cap=f64(sigma_cap), kind=integers(kind), noisy=integers(int(noisy)), **refs)


def sde_cases(write):
    shape = (1, 16, 2, 3, 5)
    for kind, label in ((FLOW_GRPO, "flow_grpo"), (OSP_NEXT, "osp_next")):
        sde_case(write, f"{label}_first", kind, 1.0, 0.96, shape)  # σ = 1: Flow-GRPO's stand-in
        sde_case(write, f"{label}_mid", kind, 0.8, 0.75, shape)
        sde_case(write, f"{label}_low", kind, 0.12, 0.05, (2, 7))
        sde_case(write, f"{label}_last", kind, 0.05, 0.0, (2, 7), noisy=False)
    sde_case(write, "flow_grpo_eta1", FLOW_GRPO, 0.5, 0.4, (3, 11), eta=1.0)


def kl_cases(write):
    for name, (shape, std) in {"latent": ((1, 16, 2, 3, 5), 0.2), "small_std": ((9,), 1e-3)}.items():
        mean = randn(*shape)
        ref_mean = mean + randn(*shape, std=0.05)
        m = mean.double().requires_grad_(True)
        kl = ((m - ref_mean.double()) ** 2).mean() / (2 * std * std)
        grad, = torch.autograd.grad(kl, m)
        write("kl", name, mean=mean, ref_mean=ref_mean, std=f64(std), ref_kl=kl.detach().reshape(1),
              ref_grad=grad.float())


def clip_case(write, name, logp, logp_old, advantage, eps):
    lp = logp.clone().requires_grad_(True)
    ratio = torch.exp(lp - logp_old)
    unclipped = -advantage * ratio
    clipped = -advantage * torch.clamp(ratio, 1 - eps, 1 + eps)
    loss = torch.maximum(unclipped, clipped)
    grad, = torch.autograd.grad(loss.sum(), lp)
    took = ((ratio - 1).abs() > eps) & (clipped > unclipped)
    write("clip", name, logp=logp, logp_old=logp_old, advantage=advantage, eps=f64(eps),
          ref_loss=loss.detach(), ref_grad=grad, ref_clipped=took.double())


def clip_cases(write):
    n = 64
    base = torch.randn(n, generator=GENERATOR, dtype=torch.float64) - 1.4  # averaged log-probs
    advantage = torch.randn(n, generator=GENERATOR, dtype=torch.float64).clamp(-5, 5)
    for eps in (1e-4, 5e-3):
        shift = torch.randn(n, generator=GENERATOR, dtype=torch.float64) * 2 * eps  # some in, some out
        clip_case(write, f"eps{eps:g}", base + shift, base, advantage, eps)
    clip_case(write, "ratio_one", base.clone(), base, advantage, 1e-4)  # before the first update: r = 1 exactly


def advantage_cases(write):
    groups = {"four": [0.5, 0.9, 0.1, 0.7], "twelve": torch.rand(12, generator=GENERATOR).tolist(),
              "equal": [0.3, 0.3, 0.3], "outlier": [0.0] * 40 + [1.0]}
    for name, rewards in groups.items():
        r = torch.tensor(rewards, dtype=torch.float64)
        ref = ((r - r.mean()) / (r.std() + 1e-8)).clamp(-5, 5)
        write("advantages", name, rewards=r, clip=f64(5.0), ref=ref)


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUT_DIR")
    write = CaseWriter(sys.argv[1])
    sde_cases(write)
    kl_cases(write)
    clip_cases(write)
    advantage_cases(write)
    print(f"make_grpo_cases: wrote {write.count} cases to {sys.argv[1]}")


if __name__ == "__main__":
    main()
