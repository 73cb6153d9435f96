"""Reads an aim-probe --extract directory with the README's lines, through a stand-in for the
safetensors package (Debian has no python3-safetensors): tests/parity/safetensors_np.py's
reader behind `safetensors.numpy.load_file`. Prints the shapes and the label sum.
usage: read_features.py DIR"""
import os
import sys
import tempfile
import types

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "parity"))
import safetensors_np  # noqa: E402

shim = types.ModuleType("safetensors")
shim.numpy = types.ModuleType("safetensors.numpy")
shim.numpy.load_file = lambda path: {k: v.numpy() for k, v in safetensors_np.load(path)[0].items()}
sys.modules["safetensors"] = shim
sys.modules["safetensors.numpy"] = shim.numpy

os.chdir(sys.argv[1])
# --- the README's lines (README.md, "Features to disk") ---
import json, numpy as np; from safetensors.numpy import load_file
shards = [load_file(s["file"]) for s in json.load(open("index.json"))["splits"]["train"]["shards"]]
X, y = np.concatenate([s["pooled"] for s in shards]), np.concatenate([s["labels"] for s in shards])
# ---
print(X.shape[0], X.shape[1], int(y.sum()))
