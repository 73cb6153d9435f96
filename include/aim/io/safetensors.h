#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

namespace aim::io {

/// Named tensors in a stable order (state-dict order when written from a module).
using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

struct SafetensorsFile {
  std::map<std::string, std::string> metadata;  // the "__metadata__" string map
  NamedTensors tensors;                         // in file order
};

/// Writes the Hugging Face safetensors format (8-byte little-endian header length, JSON
/// header, raw little-endian data). Atomic: written to a temporary beside `path`, flushed,
/// then renamed, so a crash never leaves a half-written file under the final name.
/// Supported dtypes: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL.
void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {});

/// Reads a safetensors file into CPU tensors. Every structural problem — short file,
/// header length beyond the file, malformed JSON, unknown dtype, shape/byte-size
/// disagreement, data past the end (truncation), overlapping tensors — throws aim::Error
/// naming the file and the tensor. Tensors are read straight into their own storage, so
/// peak memory is the size of the weights, not twice that.
SafetensorsFile load_safetensors(const std::string& path);

/// One tensor of a file being laid out: its data follows the previous tensor's.
struct TensorSpec {
  std::string name;
  torch::Dtype dtype;
  std::vector<int64_t> shape;
};
/// The bytes before the data of a safetensors file that holds `specs`' tensors back to back in
/// this order (the 8-byte length and the header, padded so the data starts 8-byte aligned).
/// save_safetensors writes exactly this; a writer that fills the data itself (checkpoint
/// parts, written from preallocated buffers) starts its file with it.
std::string safetensors_prefix(const std::vector<TensorSpec>& specs,
                               const std::map<std::string, std::string>& metadata = {});

/// Where each tensor of a safetensors file lies, without reading the data.
struct TensorEntry {
  std::string name;
  torch::Dtype dtype;
  std::vector<int64_t> shape;
  uint64_t offset = 0, bytes = 0;  // offset: from the start of the file
};
struct SafetensorsIndex {
  std::map<std::string, std::string> metadata;
  std::vector<TensorEntry> tensors;  // in header order
  uint64_t data_start = 0;
};
/// The index of a safetensors file held in memory (a mapping of it, say), with every check of
/// load_safetensors; `path` names it in errors.
SafetensorsIndex index_safetensors(const uint8_t* data, size_t size, const std::string& path);

/// The "__metadata__" map alone (the header is read, the tensors are not), with the same
/// checks on the header as load_safetensors.
std::map<std::string, std::string> read_safetensors_metadata(const std::string& path);

}  // namespace aim::io
