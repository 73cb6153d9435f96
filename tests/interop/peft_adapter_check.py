"""Applies a peft LoRA adapter (adapter_config.json + adapter_model.safetensors) to a base
trunk by peft's own rules, as its sources state them, and compares the result with a merged
trunk, tensor for tensor:
  - target_modules as a string is matched with re.fullmatch against the module's full name, a
    list by name or ".name" suffix (peft.tuners.tuners_utils.check_target_module_exists);
  - rank_pattern / alpha_pattern keys match a module when re.match(rf"(.*\\.)?({key})$", name)
    (peft.utils.other.get_pattern_key); otherwise r and lora_alpha apply;
  - the saved names are base_model.model.<module>.lora_A.weight ([r, in]) and
    .lora_B.weight ([out, r]) (peft.utils.save_and_load, adapter name dropped);
  - the update is W + (lora_alpha / r) * lora_B @ lora_A (peft.tuners.lora.layer, no rsLoRA).

usage: peft_adapter_check.py BASE_TRUNK ADAPTER_DIR MERGED_TRUNK
Prints what it adapted; exits non-zero on any difference above 1e-6 or any rule broken."""
import json
import os
import re
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "parity"))
import safetensors_np  # noqa: E402


def pattern_key(keys, name):
    for key in keys:
        if re.match(rf"(.*\.)?({key})$", name):
            return key
    return name


def targeted(cfg, name):
    t = cfg["target_modules"]
    if isinstance(t, str):
        return re.fullmatch(t, name) is not None
    return name in t or any(name.endswith("." + k) for k in t)


def main():
    base, _ = safetensors_np.load(sys.argv[1])
    adapter_dir = sys.argv[2]
    merged, _ = safetensors_np.load(sys.argv[3])
    cfg = json.load(open(os.path.join(adapter_dir, "adapter_config.json")))
    lora, _ = safetensors_np.load(os.path.join(adapter_dir, "adapter_model.safetensors"))
    assert cfg["peft_type"] == "LORA" and cfg["bias"] == "none" and not cfg["fan_in_fan_out"], cfg
    assert not cfg.get("use_rslora") and not cfg.get("use_dora"), cfg
    used = set()
    adapted = []
    modules = sorted({n[: -len(".weight")] for n in base if n.endswith(".weight")})
    for module in modules:
        w = base[module + ".weight"]
        if not targeted(cfg, module):
            assert torch.equal(w, merged[module + ".weight"]), "untargeted module changed: " + module
            continue
        assert w.dim() == 2, "a non-Linear module is targeted: " + module
        r = cfg["rank_pattern"].get(pattern_key(cfg["rank_pattern"].keys(), module), cfg["r"])
        alpha = cfg["alpha_pattern"].get(pattern_key(cfg["alpha_pattern"].keys(), module), cfg["lora_alpha"])
        a_name = "base_model.model." + module + ".lora_A.weight"
        b_name = "base_model.model." + module + ".lora_B.weight"
        a, b = lora[a_name], lora[b_name]
        assert a.shape == (r, w.shape[1]), (a_name, a.shape, r)
        assert b.shape == (w.shape[0], r), (b_name, b.shape, r)
        used.update([a_name, b_name])
        got = w.double() + (alpha / r) * (b.double() @ a.double())
        diff = (got - merged[module + ".weight"].double()).abs().max().item()
        assert diff < 1e-6, (module, diff)
        adapted.append(f"{module} r={r} alpha={alpha:g}")
    unused = set(lora) - used
    assert not unused, "adapter tensors no module takes: " + ", ".join(sorted(unused))
    assert adapted, "no module adapted"
    print("\n".join(adapted))


if __name__ == "__main__":
    main()
