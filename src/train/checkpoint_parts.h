#pragma once
// Internal to src/train: writing the pieces of a sharded checkpoint (the format:
// include/aim/io/sharded_checkpoint.h; the directory: include/aim/train/checkpoint.h).
//
// Rank R of W owns elements shard_range(T, R, W) of the flattened parameters (the same slice
// ZeRO gives it) and writes that slice of the weights and of AdamW's two moments, plus the step
// count of every parameter piece that has optimizer state, whatever train.sharding is (a
// replicated optimizer is written by slices like the weights): every rank writes 12 bytes per
// parameter / W, and the format does not depend on the mode.
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "aim/io/safetensors.h"
#include "aim/io/sharded_checkpoint.h"

namespace aim::train::ckpt {

// The format's names, parameter space and manifest are shared with the readers outside train.
using io::ckpt::FileRecord;
using io::ckpt::Field;
using io::ckpt::kFormatVersion;
using io::ckpt::kManifest;
using io::ckpt::kMeta;
using io::ckpt::loader_file;
using io::ckpt::Manifest;
using io::ckpt::ParamSpace;
using io::ckpt::parse_piece_name;
using io::ckpt::part_file;
using io::ckpt::piece_name;
using io::ckpt::read_verified;
using io::ckpt::step_name;
using io::ckpt::write_small_file;

/// One tensor of a part file.
struct Piece {
  Field field = Field::kWeight;
  int64_t param = 0;         // index in the ParamSpace
  int64_t begin = 0, end = 0;  // elements of the flattened parameter (kStep: the piece it belongs to)
  torch::Dtype dtype = torch::kFloat32;
  uint64_t offset = 0, bytes = 0;  // in the file
};

/// A part file's layout: its safetensors prefix and where every piece's bytes go.
struct PartLayout {
  std::string prefix;
  std::vector<Piece> pieces;
  uint64_t file_bytes = 0;
};

/// The part covering elements [lo, hi): weights always; moments and steps of the parameter
/// pieces for which has_state(param, begin) says AdamW holds state.
PartLayout layout_part(const ParamSpace& space, int64_t lo, int64_t hi,
                       const std::function<bool(int64_t, int64_t)>& has_state,
                       const std::map<std::string, std::string>& metadata);

/// Host memory for snapshots: fixed-size chunks (pinned on CUDA, so device-to-host copies run
/// asynchronously and at full link speed; the CUDA host allocator rounds every allocation up to
/// a power of two, which a chunk of 2^k bytes does not waste). File byte x lives in chunk
/// x / chunk_bytes: a chunk is written with one pwrite and hashed as one checksum block.
class HostBuffer {
 public:
  HostBuffer() = default;
  /// Grows to at least `bytes` (keeps what it has: buffers are reused from save to save).
  void reserve(uint64_t bytes, uint64_t chunk_bytes, bool pinned);
  void release();
  uint64_t capacity() const { return chunk_bytes_ * chunks_.size(); }
  uint64_t chunk_bytes() const { return chunk_bytes_; }
  size_t chunks() const { return chunks_.size(); }
  uint8_t* chunk(size_t c) { return chunks_[c].data_ptr<uint8_t>(); }
  /// Copies `src` (any device, contiguous or a view) into file bytes [offset, offset + nbytes):
  /// asynchronously from a CUDA tensor into pinned chunks (the caller synchronizes).
  void copy_tensor(const torch::Tensor& src, uint64_t offset);
  void copy_bytes(const void* src, uint64_t n, uint64_t offset);
  /// Bytes [offset, offset + n) as a tensor of `dtype` (a view when they sit in one chunk,
  /// else a copy).
  torch::Tensor read(uint64_t offset, int64_t numel, torch::Dtype dtype);

 private:
  std::vector<torch::Tensor> chunks_;
  uint64_t chunk_bytes_ = 0;
  bool pinned_ = false;
};

/// Copies `src` (elements [a, a + src.numel()) of the flattened space) into the tensors of
/// `targets` (flat views, one per parameter; undefined ones are skipped).
void copy_into_space(std::vector<torch::Tensor>& targets, const std::vector<int64_t>& offset, int64_t a,
                     const torch::Tensor& src);
/// The reverse: elements [a, a + dst.numel()) of the space into `dst` (zeros where a target is
/// undefined).
void copy_from_space(const std::vector<torch::Tensor>& targets, const std::vector<int64_t>& offset, int64_t a,
                     torch::Tensor dst);

}  // namespace aim::train::ckpt
