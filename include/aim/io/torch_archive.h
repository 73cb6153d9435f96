#pragma once
// Native reading of torch.save files — the format of the official AIM `.pth` backbones and
// heads and of a Hugging Face directory's `pytorch_model.bin` — without Python: the ZIP
// archive PyTorch >= 1.6 writes (data.pkl + one record per storage), its pickle read as data
// only (nothing is executed), tensors rebuilt from their storages.
#include <string>
#include <vector>

#include "aim/io/safetensors.h"

namespace aim::io {

/// What a torch.save archive holds, once its state dict is found.
struct TorchStateDict {
  NamedTensors tensors;   // in the pickle's order; CPU, the file's dtypes
  std::string location;   // where in the saved object they were: "" (top level), "model", "state_dict", ...
};

/// Reads the state dict of a torch.save zip archive. The saved object may be a state dict
/// itself (a dict of tensors, as `torch.save(model.state_dict())` writes it) or a dict that
/// holds one under "model", "state_dict", "model_state_dict" or "module" (training
/// checkpoints; other entries such as "optimizer" or "epoch" are ignored); keys that all begin
/// with "module." (DistributedDataParallel) lose that prefix. Storages of float32/64,
/// float16, bfloat16, int8/16/32/64, uint8 and bool are read; views of a shared storage keep
/// their offsets and strides. Every problem — not a ZIP archive, the pre-1.6 format, a
/// TorchScript archive, a compressed or truncated record, an unknown storage type, a dict
/// without a state dict in it — throws aim::Error naming the file and what was expected.
TorchStateDict load_torch_state_dict(const std::string& path);

/// True when the file starts like a torch.save file: a ZIP archive ("PK\3\4"; another kind
/// of ZIP is then refused by name) or the pre-1.6 format's pickled magic number (refused with
/// how to re-save it).
bool looks_like_torch_save(const std::string& path);

}  // namespace aim::io
