"""Writes torch.save files with Debian's python3-torch for tests/io/test_torch_archive.cpp,
each beside a safetensors reference of the tensors it should read back (float32 for bfloat16,
which the numpy writer cannot store).

usage: write_torch_save.py DIR
Files in DIR:
  plain.pth        torch.save(state_dict) of every dtype the reader takes, a view into a
                   shared storage, a transposed (non-contiguous) tensor and a 0-d tensor;
                   plain.ref.safetensors holds the expected values
  module.pth       torch.save(nn.Module.state_dict()): an OrderedDict with _metadata (BUILD)
  nested.pth       {"model": sd, "optimizer": ..., "epoch": 3, "args": Namespace(...)}
  ddp.pth          keys "module.<name>" (DistributedDataParallel)
  legacy.pth       the pre-1.6 format (_use_new_zipfile_serialization=False)
  script.pt        torch.jit.save of a scripted module (a TorchScript archive)
  list.pth         a list of tensors (no state dict)
  nostate.pth      {"epoch": 3, "lr": 0.1} (a dict without tensors)
  deflated.pth     plain.pth re-zipped with DEFLATE compression
  complex.pth      a complex64 tensor (a storage type the reader refuses)
"""
import argparse
import collections
import os
import sys
import zipfile

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "parity"))
import safetensors_np  # noqa: E402


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    base = torch.randn(4, 6)
    sd = collections.OrderedDict()
    sd["f32"] = torch.randn(3, 5)
    sd["f64"] = torch.randn(4, dtype=torch.float64)
    sd["f16"] = torch.randn(2, 3).half()
    sd["bf16"] = torch.randn(7).bfloat16()
    sd["i64"] = torch.arange(-3, 5, dtype=torch.int64)
    sd["i32"] = torch.arange(6, dtype=torch.int32).reshape(2, 3)
    sd["i16"] = torch.tensor([-7, 300], dtype=torch.int16)
    sd["i8"] = torch.tensor([-128, 5, 127], dtype=torch.int8)
    sd["u8"] = torch.tensor([0, 200, 255], dtype=torch.uint8)
    sd["bool"] = torch.tensor([True, False, True])
    sd["scalar"] = torch.tensor(2.5)
    sd["shared.whole"] = base
    sd["shared.row"] = base[2]                # offset 12 into the same storage
    sd["shared.col_t"] = base.t()             # stride (1, 6): not contiguous
    sd["empty"] = torch.zeros(0, 4)
    torch.save(sd, os.path.join(out, "plain.pth"))
    ref = {k: (v.float() if v.dtype == torch.bfloat16 else v).contiguous() for k, v in sd.items()}
    safetensors_np.save(os.path.join(out, "plain.ref.safetensors"), ref)

    module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    torch.save(module.state_dict(), os.path.join(out, "module.pth"))
    safetensors_np.save(os.path.join(out, "module.ref.safetensors"), dict(module.state_dict()))

    opt = torch.optim.AdamW(module.parameters())
    torch.save({"epoch": 3, "args": argparse.Namespace(lr=0.1, name="x"), "optimizer": opt.state_dict(),
                "model": module.state_dict()}, os.path.join(out, "nested.pth"))
    torch.save(collections.OrderedDict(("module." + k, v) for k, v in module.state_dict().items()),
               os.path.join(out, "ddp.pth"))
    torch.save(module.state_dict(), os.path.join(out, "legacy.pth"), _use_new_zipfile_serialization=False)
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), os.path.join(out, "script.pt"))
    torch.save([torch.ones(2)], os.path.join(out, "list.pth"))
    torch.save({"epoch": 3, "lr": 0.1}, os.path.join(out, "nostate.pth"))
    torch.save({"z": torch.ones(2, dtype=torch.complex64)}, os.path.join(out, "complex.pth"))
    with zipfile.ZipFile(os.path.join(out, "plain.pth")) as src, \
            zipfile.ZipFile(os.path.join(out, "deflated.pth"), "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))


if __name__ == "__main__":
    main()
