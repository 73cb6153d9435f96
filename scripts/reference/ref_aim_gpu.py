"""GPU variant of scripts/reference/ref_aim.py for side-by-side timing with
`aim-bench-model --device cuda --dtype bf16`.

The reference is CPU-only (its mask is built from CPU tensors). This script imports
its modules unchanged (same architecture, init and loss) and only moves the step onto the
GPU the way a PyTorch user would run it: bf16 autocast, AdamW with PyTorch's default
multi-tensor (foreach) implementation on CUDA, optionally the fused AdamW kernel and
scaled_dot_product_attention instead of the reference's explicit masked softmax.
Prints one JSON line like ref_aim.py (plus opt_s_median).
Usage: python3 scripts/reference/ref_aim_gpu.py --ref scripts/reference/ref_aim.py [--sdpa] [--fused] ...
"""
import argparse, importlib.util, json, math, time

import torch
import torch.nn.functional as F


def load_ref(path):
    spec = importlib.util.spec_from_file_location("ref_aim", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def sdpa_attn_forward(s, x, mask):
    B, N, C = x.shape
    q, k, v = s.qkv(x).reshape(B, N, 3, s.h, C // s.h).permute(2, 0, 3, 1, 4)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return s.proj(out.transpose(1, 2).reshape(B, N, C))


def aim_forward(s, img, prefix):
    """ref_aim.AIM.forward with every tensor on img's device (the original builds the mask
    and the loss selection from CPU aranges)."""
    B = img.shape[0]; N = s.g * s.g
    x = s.embed_norm(s.embed(img).flatten(2).transpose(1, 2)) + s.pos
    i = torch.arange(N, device=img.device)
    mask = (i[None, :, None] >= i[None, None, :]) | (i[None, None, :] < prefix[:, None, None])
    mask = mask[:, None]
    for b in s.blocks: x = b(x, mask)
    x = s.head_in(s.norm(x)) + s.hpos
    for b in s.head: x = b(x)
    pred = s.head_out(s.head_norm(x))
    t = img.unfold(2, s.p, s.p).unfold(3, s.p, s.p).permute(0, 2, 3, 4, 5, 1).reshape(B, N, -1)
    t = t.float()
    t = (t - t.mean(-1, keepdim=True)) / (t.var(-1, keepdim=True, unbiased=True) + 1e-6).sqrt()
    err = ((pred[:, :-1].float() - t[:, 1:]) ** 2).mean(-1)
    keep = (i[None, 1:] >= prefix[:, None]).float()
    return (err * keep).sum() / keep.sum()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", default="scripts/reference/ref_aim.py")
    ap.add_argument("--sdpa", action="store_true", help="F.scaled_dot_product_attention with the bool mask")
    ap.add_argument("--fused", action="store_true", help="AdamW(fused=True)")
    for k, v in dict(img=224, patch=14, ch=3, width=1536, depth=24, heads=12, head_blocks=12,
                     head_width=2048, batch=64, steps=10, warmup=3).items():
        ap.add_argument("--" + k.replace("_", "-"), type=int, default=v)
    a = ap.parse_args()
    ref = load_ref(a.ref)
    ref.AIM.forward = aim_forward
    if a.sdpa:
        ref.Attn.forward = sdpa_attn_forward
    torch.manual_seed(0)
    dev = torch.device("cuda")
    m = ref.AIM(a.img, a.patch, a.ch, a.width, a.depth, a.heads, a.head_blocks, a.head_width).to(dev)
    decay = [p for n, p in m.named_parameters() if p.ndim > 1 and "norm" not in n]
    no_decay = [p for n, p in m.named_parameters() if not (p.ndim > 1 and "norm" not in n)]
    opt = torch.optim.AdamW([dict(params=decay, weight_decay=0.05), dict(params=no_decay, weight_decay=0.0)],
                            lr=1e-3, betas=(0.9, 0.95), fused=True if a.fused else None)
    N = (a.img // a.patch) ** 2
    x = torch.randn(a.batch, a.ch, a.img, a.img, device=dev)
    times, opt_times = [], []
    for step in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        prefix = torch.randint(1, N, (a.batch,)).to(dev)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = m(x, prefix)
        opt.zero_grad(set_to_none=True); loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        torch.cuda.synchronize(); t1 = time.perf_counter()
        opt.step()
        torch.cuda.synchronize(); t2 = time.perf_counter()
        value = loss.item()
        if step >= a.warmup:
            times.append(time.perf_counter() - t0); opt_times.append(t2 - t1)
    times.sort(); opt_times.sort()
    med = times[len(times) // 2]
    params = sum(p.numel() for p in m.parameters())
    print(json.dumps(dict(params=params, step_s_median=med, img_per_s=a.batch / med,
                          opt_s_median=opt_times[len(opt_times) // 2], loss=value,
                          sdpa=a.sdpa, fused=a.fused, torch=torch.__version__)))


if __name__ == "__main__":
    main()
