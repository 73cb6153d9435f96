"""Python/PyTorch reference of one AIM pre-training step, for side-by-side timing
against aim's C++ step (aim-bench-model; scripts/bench_model.sh runs both) on the same
machine and the same ATen. What it computes: forward + backward + AdamW of the full
pre-training model on random images, prefix-causal attention as an explicit masked softmax,
the loss on the non-prefix patches; it prints one JSON line (img/s, parameters, loss).
Architecture per the AIM paper: pre-norm ViT, no biases in trunk linears, sincos 2D
pos-emb, prefix-causal attention, N residual MLP blocks as prediction head (pos-emb
re-added), per-patch normalized pixel regression on non-prefix positions."""
import argparse, json, math, time
import torch, torch.nn as nn, torch.nn.functional as F


def sincos_2d(h, w, dim):
    def one(d, pos):
        omega = 1.0 / 10000 ** (torch.arange(d // 2).float() / (d / 2.0))
        out = pos.reshape(-1)[:, None] * omega[None]
        return torch.cat([out.sin(), out.cos()], 1)
    gy, gx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    return torch.cat([one(dim // 2, gx), one(dim // 2, gy)], 1)


class Attn(nn.Module):
    def __init__(s, d, h):
        super().__init__(); s.h = h
        s.qkv = nn.Linear(d, 3 * d, bias=False); s.proj = nn.Linear(d, d, bias=False)
    def forward(s, x, mask):
        B, N, C = x.shape
        q, k, v = s.qkv(x).reshape(B, N, 3, s.h, C // s.h).permute(2, 0, 3, 1, 4)
        a = (q @ k.transpose(-2, -1)) / math.sqrt(C // s.h)
        a = a.masked_fill(~mask, float("-inf")).softmax(-1)
        return s.proj((a @ v).transpose(1, 2).reshape(B, N, C))


class MLP(nn.Module):
    def __init__(s, d, hid):
        super().__init__(); s.fc1 = nn.Linear(d, hid, bias=False); s.fc2 = nn.Linear(hid, d, bias=False)
    def forward(s, x): return s.fc2(F.gelu(s.fc1(x)))


class Block(nn.Module):
    """Pre-norm block. attn=False is the official head block: its attention slot is an
    identity, so the first residual adds LN1(x) itself."""
    def __init__(s, d, h, attn=True):
        super().__init__()
        s.n1 = nn.LayerNorm(d, eps=1e-6)
        s.attn = Attn(d, h) if attn else None
        s.n2 = nn.LayerNorm(d, eps=1e-6); s.mlp = MLP(d, 4 * d)
    def forward(s, x, mask=None):
        x = x + (s.attn(s.n1(x), mask) if s.attn is not None else s.n1(x))
        return x + s.mlp(s.n2(x))


class AIM(nn.Module):
    def __init__(s, img, patch, ch, width, depth, heads, head_blocks, head_width):
        super().__init__()
        s.p, s.g = patch, img // patch
        s.embed = nn.Conv2d(ch, width, patch, patch); s.embed_norm = nn.LayerNorm(width, eps=1e-6)
        s.blocks = nn.ModuleList([Block(width, heads) for _ in range(depth)])
        s.norm = nn.LayerNorm(width, eps=1e-6)
        s.head_in = nn.Linear(width, head_width, bias=True)
        s.head = nn.ModuleList([Block(head_width, 0, attn=False) for _ in range(head_blocks)])
        s.head_norm = nn.LayerNorm(head_width, eps=1e-6)
        s.head_out = nn.Linear(head_width, patch * patch * ch, bias=True)
        s.register_buffer("pos", sincos_2d(s.g, s.g, width)[None])
        s.register_buffer("hpos", sincos_2d(s.g, s.g, head_width)[None])
        for m in s.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None: nn.init.zeros_(m.bias)
        w = s.embed.weight.data; nn.init.xavier_uniform_(w.view(w.shape[0], -1))

    def forward(s, img, prefix):
        B = img.shape[0]; N = s.g * s.g
        x = s.embed_norm(s.embed(img).flatten(2).transpose(1, 2)) + s.pos
        i = torch.arange(N)
        mask = (i[None, :, None] >= i[None, None, :]) | (i[None, None, :] < prefix[:, None, None])
        mask = mask[:, None]
        for b in s.blocks: x = b(x, mask)
        x = s.head_in(s.norm(x)) + s.hpos
        for b in s.head: x = b(x)
        pred = s.head_out(s.head_norm(x))
        # targets: per-patch normalized pixels, next patch in raster order
        t = img.unfold(2, s.p, s.p).unfold(3, s.p, s.p).permute(0, 2, 3, 4, 5, 1).reshape(B, N, -1)  # (p, q, c)
        t = (t - t.mean(-1, keepdim=True)) / (t.var(-1, keepdim=True, unbiased=True) + 1e-6).sqrt()
        err = ((pred[:, :-1] - t[:, 1:]) ** 2).mean(-1)
        keep = (i[None, 1:] >= prefix[:, None]).float()  # predict patches at positions >= prefix
        return (err * keep).sum() / keep.sum()


def main():
    ap = argparse.ArgumentParser()
    for k, v in dict(img=32, patch=4, ch=3, width=192, depth=6, heads=3, head_blocks=2,
                     head_width=384, batch=64, steps=10, warmup=2, threads=0).items():
        ap.add_argument("--" + k.replace("_", "-"), type=int, default=v)
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    m = AIM(a.img, a.patch, a.ch, a.width, a.depth, a.heads, a.head_blocks, a.head_width)
    decay = [p for n, p in m.named_parameters() if p.ndim > 1 and "norm" not in n]
    no_decay = [p for n, p in m.named_parameters() if not (p.ndim > 1 and "norm" not in n)]
    opt = torch.optim.AdamW([dict(params=decay, weight_decay=0.05), dict(params=no_decay, weight_decay=0.0)],
                            lr=1e-3, betas=(0.9, 0.95))
    N = (a.img // a.patch) ** 2
    x = torch.randn(a.batch, a.ch, a.img, a.img)
    times = []
    for step in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        prefix = torch.randint(1, N, (a.batch,))
        loss = m(x, prefix)
        opt.zero_grad(set_to_none=True); loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); opt.step()
        if step >= a.warmup: times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    params = sum(p.numel() for p in m.parameters())
    print(json.dumps(dict(params=params, step_s_median=med, img_per_s=a.batch / med, loss=loss.item())))


if __name__ == "__main__":
    main()
