"""The official AIM architecture as PyTorch nn.Modules with the official parameter names
(spec §2, §8, §10), written from the spec: preprocessor.patchifier.{proj,norm},
trunk.blocks.N.{norm_1,attn.qkv,attn.proj,norm_2,mlp.fc1,mlp.fc2}, trunk.post_trunk_norm,
head.{cls_token,k,v,linear,bn} (the attentive probe, AttentionPoolingClassifier); with
"lora_rank" in the config every attention is the official LoraAttention (loralib's MergedLinear
on qkv with enable_lora=[True, False, True] and loralib's Linear on proj: attn.qkv.lora_A,
attn.qkv.lora_B, attn.proj.lora_A, attn.proj.lora_B, scaled by lora_alpha / r, alpha 1 by
default), written from loralib's documented shapes and semantics.
Weights move between it and aim through safetensors and load_state_dict(strict=True), so a
renamed, missing or reshaped tensor fails loudly on either side.

usage:
  official_aim.py export CONFIG_JSON WEIGHTS_OUT IO_OUT
      random official model (seeded, perturbed, float64) -> WEIGHTS_OUT (every tensor, official
      names); random images, the probe features and the logits -> IO_OUT
  official_aim.py run CONFIG_JSON TRUNK_FILE PROBE_FILE IMAGES_FILE OUT
      strict-loads our trunk export + our probe file into the official model, writes the
      features and logits for IMAGES_FILE's "images" to OUT
  official_aim.py hub-run HUB_DIR IMAGES_FILE OUT
      builds the model from HUB_DIR/config.json alone (the official builder's keys), strict-loads
      HUB_DIR/model.safetensors, writes float32 logits for IMAGES_FILE's "images" to OUT
  official_aim.py hub-export CONFIG_JSON HUB_DIR IO_OUT
      a random official model written as the official hub layout (config.json with the builder's
      keys, probe_layers as an int; model.safetensors in float32); images and float64 logits of
      those float32 weights -> IO_OUT
  official_aim.py export-torch CONFIG_JSON OUT_DIR DTYPE
      a random official model (float32 or float16 weights) saved with torch.save as the released
      files are: OUT_DIR/backbone.pth (preprocessor.* and trunk.*, the apple/AIM backbones'
      layout), OUT_DIR/head.pth (head.*), OUT_DIR/checkpoint.pth ({"model": state dict,
      "epoch": ...}), and OUT_DIR/hub/ as the official Hugging Face repositories hold it
      (config.json, pytorch_model.bin, LICENSE, README.md with license fields); images and the
      float64 features / logits of those exact weights -> OUT_DIR/io.safetensors
CONFIG_JSON: {"img_size","patch_size","channels","width","depth","heads","classes","blocks"[,
"lora_rank","lora_alpha"]}."""
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "parity"))
import safetensors_np  # noqa: E402
from reference_aim import sincos_2d  # noqa: E402


def layer_norm(d):
    return nn.LayerNorm(d, eps=1e-6)


class PatchEmbed(nn.Module):
    def __init__(self, channels, width, patch):
        super().__init__()
        self.proj = nn.Conv2d(channels, width, kernel_size=patch, stride=patch)
        self.norm = layer_norm(width)

    def forward(self, x):
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class ViTPreprocessor(nn.Module):
    def __init__(self, channels, width, patch, grid):
        super().__init__()
        self.patchifier = PatchEmbed(channels, width, patch)
        self.grid, self.width = grid, width  # positions are computed, not stored (no state)

    def forward(self, x):
        tokens = self.patchifier(x)
        return tokens + sincos_2d(self.grid, self.width).to(tokens.dtype).unsqueeze(0)


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-2, -1) / math.sqrt(C // self.heads)).softmax(-1)
        return self.proj((att @ v).transpose(1, 2).reshape(B, N, C))


class LoraMergedLinear(nn.Linear):
    """loralib.MergedLinear(d, 3d, r, enable_lora=[True, False, True], bias=False): lora_A holds
    r rows per enabled slice, lora_B d rows per enabled slice; the update is a grouped 1x1
    convolution of A by B (one group per enabled slice), zero-padded into the q and v rows."""

    def __init__(self, dim, r, alpha):
        super().__init__(dim, 3 * dim, bias=False)
        self.scaling = alpha / r
        self.lora_A = nn.Parameter(torch.zeros(2 * r, dim))
        self.lora_B = nn.Parameter(torch.zeros(2 * dim, r))
        self.enabled = torch.tensor([True, False, True]).repeat_interleave(dim)

    def delta_weight(self):
        grouped = F.conv1d(self.lora_A.unsqueeze(0), self.lora_B.unsqueeze(-1), groups=2).squeeze(0)
        full = grouped.new_zeros(self.out_features, self.in_features)
        full[self.enabled] = grouped
        return full * self.scaling

    def forward(self, x):
        return F.linear(x, self.weight) + x @ self.delta_weight().T


class LoraLinear(nn.Linear):
    """loralib.Linear(d, d, r, bias=False): lora_A [r, d], lora_B [d, r], x A^T B^T alpha/r."""

    def __init__(self, dim, r, alpha):
        super().__init__(dim, dim, bias=False)
        self.scaling = alpha / r
        self.lora_A = nn.Parameter(torch.zeros(r, dim))
        self.lora_B = nn.Parameter(torch.zeros(dim, r))

    def forward(self, x):
        return F.linear(x, self.weight) + (x @ self.lora_A.T @ self.lora_B.T) * self.scaling


class LoraAttention(Attention):
    def __init__(self, dim, heads, r, alpha=1.0):
        super().__init__(dim, heads)
        self.qkv = LoraMergedLinear(dim, r, alpha)
        self.proj = LoraLinear(dim, r, alpha)


class MLP(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden, bias=False)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads, lora_rank=0, lora_alpha=1.0):
        super().__init__()
        self.attn = LoraAttention(dim, heads, lora_rank, lora_alpha) if lora_rank > 0 else Attention(dim, heads)
        self.norm_1 = layer_norm(dim)
        self.mlp = MLP(dim, 4 * dim)
        self.norm_2 = layer_norm(dim)

    def forward(self, x):
        x = x + self.attn(self.norm_1(x))
        return x + self.mlp(self.norm_2(x))


class Trunk(nn.Module):
    def __init__(self, dim, depth, heads, lora_rank=0, lora_alpha=1.0):
        super().__init__()
        self.blocks = nn.ModuleList([Block(dim, heads, lora_rank, lora_alpha) for _ in range(depth)])
        self.post_trunk_norm = layer_norm(dim)

    def forward(self, x):
        outs = []
        for b in self.blocks:
            x = b(x)
            outs.append(x)
        return self.post_trunk_norm(x), outs


class AttentionPoolingClassifier(nn.Module):
    def __init__(self, dim, classes, heads):
        super().__init__()
        self.heads = heads
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.linear = nn.Linear(dim, classes, bias=False)
        self.bn = nn.BatchNorm1d(dim, affine=False, eps=1e-6)

    def forward(self, x):
        B, N, C = x.shape
        x = self.bn(x.transpose(-2, -1)).transpose(-2, -1)
        hd = C // self.heads
        q = self.cls_token.expand(B, -1, -1).reshape(B, 1, self.heads, hd).permute(0, 2, 1, 3)
        k = self.k(x).reshape(B, N, self.heads, hd).permute(0, 2, 1, 3)
        v = self.v(x).reshape(B, N, self.heads, hd).permute(0, 2, 1, 3)
        att = (q @ k.transpose(-2, -1) / math.sqrt(hd)).softmax(-1)
        pooled = (att @ v).transpose(1, 2).reshape(B, 1, C).mean(1)
        return self.linear(pooled)


class AIMForProbing(nn.Module):
    """preprocessor + trunk + attentive head; features = mean of the chosen blocks' outputs
    (before the post-trunk norm), as the official AverageLayers does."""

    def __init__(self, c):
        super().__init__()
        grid = c["img_size"] // c["patch_size"]
        self.preprocessor = ViTPreprocessor(c["channels"], c["width"], c["patch_size"], grid)
        self.trunk = Trunk(c["width"], c["depth"], c["heads"], c.get("lora_rank", 0), c.get("lora_alpha", 1.0))
        self.head = AttentionPoolingClassifier(c["width"], c["classes"], c["heads"])
        self.blocks = c["blocks"]

    def forward(self, images):
        _, outs = self.trunk(self.preprocessor(images))
        feats = torch.stack([outs[i] for i in self.blocks], -1).mean(-1)
        return feats, self.head(feats)


def config_from_hub(hub):
    """AIMForImageClassification's config.json (the builder's keyword arguments and defaults)
    -> this file's config."""
    depth = hub["num_blocks"]
    layers = hub.get("probe_layers", 6)
    if isinstance(layers, int):
        layers = list(range(depth - layers, depth))
    return {"img_size": hub["img_size"], "patch_size": hub["patch_size"], "channels": hub.get("num_channels", 3),
            "width": hub["embed_dim"], "depth": depth, "heads": hub["num_heads"],
            "classes": hub.get("num_classes", 1000), "blocks": list(layers)}


def randomize(model, width):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        model.head.bn.running_mean.copy_(torch.randn(width) * 0.1)
        model.head.bn.running_var.copy_(torch.rand(width) + 0.5)
        model.head.bn.num_batches_tracked.fill_(17)
    model.eval()


def main():
    mode = sys.argv[1]
    if mode == "hub-run":
        hub_dir = sys.argv[2]
        if not os.path.exists(os.path.join(hub_dir, "config.json")):
            sys.exit("no config.json in " + hub_dir)
        cfg = config_from_hub(json.loads(open(os.path.join(hub_dir, "config.json")).read()))
        model = AIMForProbing(cfg).float()
        weights, _ = safetensors_np.load(os.path.join(hub_dir, "model.safetensors"))
        model.load_state_dict(weights, strict=True)
        model.eval()
        images = safetensors_np.load(sys.argv[3])[0]["images"].float()
        with torch.no_grad():
            _, logits = model(images)
        safetensors_np.save(sys.argv[4], {"logits": logits})
        return
    cfg = json.loads(open(sys.argv[2]).read())
    torch.manual_seed(7)
    if mode == "export-torch":
        out, dtype = sys.argv[3], {"float32": torch.float32, "float16": torch.float16}[sys.argv[4]]
        model = AIMForProbing(cfg).double()
        randomize(model, cfg["width"])
        model = model.to(dtype)
        sd = model.state_dict()
        os.makedirs(os.path.join(out, "hub"), exist_ok=True)
        torch.save({k: v for k, v in sd.items() if not k.startswith("head.")}, os.path.join(out, "backbone.pth"))
        torch.save({k: v for k, v in sd.items() if k.startswith("head.")}, os.path.join(out, "head.pth"))
        torch.save({"model": sd, "epoch": 3, "optimizer": {"state": {}}}, os.path.join(out, "checkpoint.pth"))
        depth, blocks = cfg["depth"], cfg["blocks"]
        hub = {"img_size": cfg["img_size"], "patch_size": cfg["patch_size"], "embed_dim": cfg["width"],
               "num_blocks": depth, "num_heads": cfg["heads"], "num_channels": cfg["channels"],
               "probe_layers": len(blocks), "num_classes": cfg["classes"]}
        with open(os.path.join(out, "hub", "config.json"), "w") as f:
            json.dump(hub, f)
        torch.save(sd, os.path.join(out, "hub", "pytorch_model.bin"))
        with open(os.path.join(out, "hub", "LICENSE"), "w") as f:
            f.write("Test licence text of the trunk.\n")
        with open(os.path.join(out, "hub", "README.md"), "w") as f:
            f.write("---\nlicense: other\nlicense_name: test-sample-license\nlicense_link: LICENSE\n"
                    "library_name: ml-aim\n---\n# a trunk\n")
        images = torch.randn(3, cfg["channels"], cfg["img_size"], cfg["img_size"], dtype=torch.float64)
        with torch.no_grad():
            feats, logits = model.double()(images)
        safetensors_np.save(os.path.join(out, "io.safetensors"), {"images": images, "features": feats, "logits": logits})
        return
    if mode == "hub-export":
        model = AIMForProbing(cfg).float()
        randomize(model, cfg["width"])
        hub_dir = sys.argv[3]
        os.makedirs(hub_dir, exist_ok=True)
        depth, blocks = cfg["depth"], cfg["blocks"]
        assert blocks == list(range(depth - len(blocks), depth)), "hub-export writes probe_layers as an int"
        hub = {"img_size": cfg["img_size"], "patch_size": cfg["patch_size"], "embed_dim": cfg["width"],
               "num_blocks": depth, "num_heads": cfg["heads"], "num_channels": cfg["channels"],
               "probe_layers": len(blocks), "num_classes": cfg["classes"]}
        with open(os.path.join(hub_dir, "config.json"), "w") as f:
            json.dump(hub, f)
        safetensors_np.save(os.path.join(hub_dir, "model.safetensors"), dict(model.state_dict()))
        images = torch.randn(3, cfg["channels"], cfg["img_size"], cfg["img_size"], dtype=torch.float64)
        with torch.no_grad():
            feats, logits = model.double()(images)
        safetensors_np.save(sys.argv[4], {"images": images, "features": feats, "logits": logits})
        return
    model = AIMForProbing(cfg).double()
    if mode == "export":
        randomize(model, cfg["width"])
        images = torch.randn(3, cfg["channels"], cfg["img_size"], cfg["img_size"], dtype=torch.float64)
        with torch.no_grad():
            feats, logits = model(images)
        safetensors_np.save(sys.argv[3], dict(model.state_dict()), {"format": "pt"})
        safetensors_np.save(sys.argv[4], {"images": images, "features": feats, "logits": logits})
    elif mode == "run":
        trunk, _ = safetensors_np.load(sys.argv[3])
        probe, _ = safetensors_np.load(sys.argv[4])
        both = dict(trunk)
        both.update(probe)
        model.load_state_dict(both, strict=True)  # every name and shape must match
        model.eval()
        images = safetensors_np.load(sys.argv[5])[0]["images"]
        with torch.no_grad():
            feats, logits = model(images.double())
        safetensors_np.save(sys.argv[6], {"features": feats, "logits": logits})
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
