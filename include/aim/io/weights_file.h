#pragma once
// One entry point for every file that holds weights, told apart by content, not by name:
// safetensors, a torch.save ZIP archive (.pth / .pt / pytorch_model.bin, io/torch_archive.h),
// or a Hugging Face shard index (*.index.json: its weight_map names the shard files).
#include <map>
#include <string>

#include "aim/io/safetensors.h"

namespace aim::io {

/// The tensors (and, for safetensors, the "__metadata__" map) of a weights file. A torch.save
/// archive gives its state dict (nested {"model": ...} layouts unwrapped) and no metadata; a
/// shard index gives every shard's tensors, each file read once. Errors name the file.
SafetensorsFile load_weights_file(const std::string& path);

/// The metadata alone: the safetensors header's map; {} for the other formats (read cheaply:
/// a torch.save archive is not unpacked for it).
std::map<std::string, std::string> read_weights_metadata(const std::string& path);

/// aim-probe --convert IN OUT: the tensors of any weights file (a torch.save archive above all)
/// written to OUT as safetensors, names and dtypes as they are, contiguous, with metadata
/// "format": "pt" and "converted_from" (IN's file name). OUT must not be IN. Returns a one-line
/// summary ("163 tensors (float32 151, int64 12), 1.21 GB -> OUT").
std::string convert_to_safetensors(const std::string& in, const std::string& out);

/// "safetensors", "torch.save", "shard index" — for messages and results.json.
std::string weights_format(const std::string& path);

}  // namespace aim::io
