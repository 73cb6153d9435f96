"""Independent PyTorch implementation of AIM written from the AIM paper (El-Nouby et al., 2024)
and the official apple/ml-aim code, used by the C++ parity tests: it reads weights + inputs from a safetensors file written by the C++
side, recomputes everything with plain PyTorch ops, and writes its outputs back.

usage: reference_aim.py IN.safetensors OUT.safetensors
IN's metadata "config" is a JSON object with the model shape; tensors named "input.*" are
inputs, the rest are state-dict entries (spec §10 names; pre-training head: pretrain_head.*,
attentive probe: probe.*, linear probe: linear_probe.*)."""
import json
import math
import sys

import torch
import torch.nn.functional as F

import safetensors_np


def sincos_2d(grid, dim):
    """Spec §2: first dim/2 channels encode the column, last dim/2 the row; each half is
    [sin(pos w), cos(pos w)], w_i = 1/10000^(i/(dim/4))."""
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    rows, cols = torch.meshgrid(torch.arange(grid, dtype=torch.float64),
                                torch.arange(grid, dtype=torch.float64), indexing="ij")

    def half(pos):
        a = pos.reshape(-1, 1) * omega.reshape(1, -1)
        return torch.cat([a.sin(), a.cos()], 1)

    return torch.cat([half(cols), half(rows)], 1).float()


def order_perm(order, grid, given):
    """Spec §7 orders, written independently of the C++ code (random comes from C++)."""
    n = grid * grid
    if order == "raster":
        return torch.arange(n)
    if order == "checkerboard":
        cells = [r * grid + c for parity in (0, 1) for r in range(grid) for c in range(grid) if (r + c) % 2 == parity]
        return torch.tensor(cells)
    if order == "spiral":
        r = c = (grid - 1) // 2
        seen, out = set(), []
        def visit(rr, cc):
            if 0 <= rr < grid and 0 <= cc < grid and (rr, cc) not in seen:
                seen.add((rr, cc)); out.append(rr * grid + cc)
        visit(r, c)
        leg, d = 1, 0
        moves = [(0, 1), (1, 0), (0, -1), (-1, 0)]
        while len(out) < n:
            for _ in range(2):
                for _ in range(leg):
                    r += moves[d][0]; c += moves[d][1]; visit(r, c)
                d = (d + 1) % 4
            leg += 1
        return torch.tensor(out)
    return given


def layer_norm(x, w, p, eps):
    return F.layer_norm(x, (x.shape[-1],), w[p + ".weight"], w[p + ".bias"], eps)


def attention(x, w, p, heads, allowed):
    B, K, d = x.shape
    hd = d // heads
    qkv = x @ w[p + ".qkv.weight"].t()
    q, k, v = qkv.reshape(B, K, 3, heads, hd).permute(2, 0, 3, 1, 4)
    s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
    if allowed is not None:
        s = s.masked_fill(~allowed, float("-inf"))
    o = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, K, d)
    return o @ w[p + ".proj.weight"].t()


def mlp(x, w, p):
    return F.gelu(x @ w[p + ".fc1.weight"].t()) @ w[p + ".fc2.weight"].t()


def trunk(images, w, cfg, allowed, perm=None):
    eps, P = cfg["norm_eps"], cfg["patch_size"]
    x = F.conv2d(images, w["preprocessor.patchifier.proj.weight"], w["preprocessor.patchifier.proj.bias"], stride=P)
    x = layer_norm(x.flatten(2).transpose(1, 2), w, "preprocessor.patchifier.norm", eps)
    x = x + sincos_2d(cfg["img_size"] // P, cfg["width"]).to(x.dtype)
    if perm is not None:
        x = x[:, perm]
    blocks = []
    for i in range(cfg["depth"]):
        p = f"trunk.blocks.{i}"
        x = x + attention(layer_norm(x, w, p + ".norm_1", eps), w, p + ".attn", cfg["heads"], allowed)
        x = x + mlp(layer_norm(x, w, p + ".norm_2", eps), w, p + ".mlp")
        blocks.append(x)
    return layer_norm(x, w, "trunk.post_trunk_norm", eps), blocks


def pretrain(images, prefix, w, cfg, perm):
    """Spec §3-5: prefix-causal trunk, residual-MLP head, next-patch normalized-pixel loss."""
    B, C, H, W = images.shape
    P, eps = cfg["patch_size"], cfg["norm_eps"]
    g = H // P
    K = g * g
    i = torch.arange(K)
    allowed = (i[None, :, None] >= i[None, None, :]) | (i[None, None, :] < prefix[:, None, None])
    x, _ = trunk(images, w, cfg, allowed[:, None], perm)
    h = x @ w["pretrain_head.proj_in.weight"].t() + w["pretrain_head.proj_in.bias"]
    h = h + sincos_2d(g, cfg["head_width"]).to(h.dtype)[perm]
    for b in range(cfg["head_blocks"]):
        p = f"pretrain_head.blocks.{b}"
        if cfg["head_identity_attn"]:
            h = h + layer_norm(h, w, p + ".norm_1", eps)
        h = h + mlp(layer_norm(h, w, p + ".norm_2", eps), w, p + ".mlp")
    pred = layer_norm(h, w, "pretrain_head.norm", eps) @ w["pretrain_head.proj_out.weight"].t() + w["pretrain_head.proj_out.bias"]
    # targets: patches flattened (row-in-patch, col-in-patch, channel), raster order
    t = images.reshape(B, C, g, P, g, P).permute(0, 2, 4, 3, 5, 1).reshape(B, K, P * P * C)
    if cfg["target"] == "norm_pixel":
        t = (t - t.mean(-1, keepdim=True)) / torch.sqrt(t.var(-1, unbiased=True, keepdim=True) + 1e-6)
    t = t[:, perm]
    err = ((pred[:, :-1] - t[:, 1:]) ** 2).mean(-1)
    keep = (torch.arange(1, K)[None] >= prefix[:, None]).to(err.dtype)
    return x, pred, (err * keep).sum() / keep.sum()


def attentive_probe(feats, w, p, heads):
    """Spec §8: BN(affine=False) over channels with batch x token statistics, one learned
    query split into heads, k/v projections, multi-head pooling, linear without bias."""
    B, N, d = feats.shape
    hd = d // heads
    x = F.batch_norm(feats.transpose(1, 2), None, None, training=True, eps=1e-6).transpose(1, 2)
    q = w[p + ".cls_token"].expand(B, 1, d).reshape(B, 1, heads, hd).transpose(1, 2)
    k = (x @ w[p + ".k.weight"].t()).reshape(B, N, heads, hd).transpose(1, 2)
    v = (x @ w[p + ".v.weight"].t()).reshape(B, N, heads, hd).transpose(1, 2)
    a = ((q @ k.transpose(-1, -2)) / math.sqrt(hd)).softmax(-1)
    return (a @ v).transpose(1, 2).reshape(B, d) @ w[p + ".linear.weight"].t()


def linear_probe(feats, w, p):
    x = F.batch_norm(feats.mean(1), None, None, training=True, eps=1e-6)
    return x @ w[p + ".linear.weight"].t() + w[p + ".linear.bias"]


def main():
    tensors, meta = safetensors_np.load(sys.argv[1])
    cfg = json.loads(meta["config"])
    images, prefix = tensors["input.images"], tensors["input.prefix"]
    grid = cfg["img_size"] // cfg["patch_size"]
    perm = order_perm(cfg["order"], grid, tensors.get("input.order"))
    with torch.no_grad():
        normed, pred, loss = pretrain(images, prefix, tensors, cfg, perm)
        _, blocks = trunk(images, tensors, cfg, None)
        chosen = [int(b) for b in cfg["probe_blocks"]]
        feats = sum(blocks[b] for b in chosen) / len(chosen)
        out = {
            "trunk_normed": normed, "pred": pred, "loss": loss.reshape(1),
            "features": feats,
            "attentive_logits": attentive_probe(feats, tensors, "probe", cfg["heads"]),
            "linear_logits": linear_probe(feats, tensors, "linear_probe"),
        }
    safetensors_np.save(sys.argv[2], out)


if __name__ == "__main__":
    main()
