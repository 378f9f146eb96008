#!/usr/bin/env python3
"""PyTorch twin of `osp bench --umt5`: transformers' UMT5EncoderModel with umT5-XXL's config
(Wan2.1's text encoder) and random weights, in bf16 on the GPU, encoding 512 and 77 tokens.

    python3 bench/torch_umt5.py --json $OUT/torch_umt5.json
    python3 bench/torch_umt5.py --device cpu --tiny          # smoke test, no GPU

One warm-up forward, then one timed between CUDA synchronisations (the encoder only, attention
mask all ones, as WanPipeline runs it on a prompt padded to 512). FLOPs as osp bench counts them:
per layer 2·L·(4·d·inner + 3·d·d_ff) + 4·L²·inner. Peak memory is torch.cuda.max_memory_allocated.
"""

import argparse
import json
import time

import torch


def config(tiny):
    from transformers import UMT5Config
    if tiny:
        return UMT5Config(vocab_size=100, d_model=64, d_kv=16, d_ff=96, num_layers=2, num_heads=4,
                          feed_forward_proj="gated-gelu")
    return UMT5Config(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                      relative_attention_num_buckets=32, relative_attention_max_distance=128,
                      feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6)


def flops(c, L):
    inner = c.num_heads * c.d_kv
    return c.num_layers * (2.0 * L * (4.0 * c.d_model * inner + 3.0 * c.d_model * c.d_ff) + 4.0 * L * L * inner)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    from transformers import UMT5EncoderModel
    c = config(a.tiny)
    dtype = torch.bfloat16 if a.device == "cuda" else torch.float32
    torch.manual_seed(0)
    with torch.device(a.device):
        model = UMT5EncoderModel(c).to(dtype).eval()
    results = []
    for L in (512, 77):
        ids = (torch.arange(L, device=a.device) * 7919 + 1) % c.vocab_size
        ids, mask = ids[None], torch.ones(1, L, dtype=torch.long, device=a.device)
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask)
            if a.device == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            model(input_ids=ids, attention_mask=mask)
            if a.device == "cuda":
                torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated() if a.device == "cuda" else 0
        f = flops(c, L)
        print(f"torch umt5 encode {L} tokens {seconds * 1e3:11.3f} ms {f / seconds * 1e-12:9.1f} TFLOP/s "
              f"peak memory {peak / 2 ** 30:.2f} GiB", flush=True)
        results.append(dict(tokens=L, ms=seconds * 1e3, flops=f, peak_bytes=peak))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(dict(device=a.device, torch=torch.__version__, results=results), fh, indent=1)


if __name__ == "__main__":
    main()
