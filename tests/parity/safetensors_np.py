"""Minimal safetensors reader/writer for the parity scripts (Debian has no python3-safetensors).
Format: 8-byte little-endian header length, JSON header, raw little-endian tensor bytes."""
import json
import struct

import numpy as np
import torch

_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
           "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
_NAMES = {np.dtype(v): k for k, v in _DTYPES.items()}


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    tensors = {}
    for name, e in header.items():
        if e["dtype"] == "BF16":
            raw = np.frombuffer(data, np.uint16, count=int(np.prod(e["shape"])), offset=base + e["data_offsets"][0])
            t = torch.from_numpy(raw.astype(np.int32) << 16).view(torch.float32).reshape(e["shape"])
        else:
            b, end = e["data_offsets"]
            arr = np.frombuffer(data[base + b: base + end], _DTYPES[e["dtype"]]).reshape(e["shape"])
            t = torch.from_numpy(arr.copy())
        tensors[name] = t
    return tensors, meta


def save(path, tensors, meta=None):
    header, blobs, off = {}, [], 0
    if meta:
        header["__metadata__"] = meta
    for name, t in tensors.items():
        a = t.detach().cpu().contiguous().numpy()
        b = a.tobytes()
        header[name] = {"dtype": _NAMES[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
