#pragma once
// Internal to src/train: the pieces of a sharded checkpoint (see CheckpointManager in
// include/aim/train/checkpoint.h for the directory layout).
//
// The parameters, flattened in model.named_parameters() order, form one space of T elements;
// rank R of W owns elements shard_range(T, R, W) of it (the same slice ZeRO gives it). Its
// part file, part_rank<R>.safetensors, holds that slice of the weights and of AdamW's two
// moments plus the step count of every parameter piece that has optimizer state, as 1-D
// tensors named
//   model.<param>@<begin>             weights, elements [begin, begin + n) of the parameter
//   optim.exp_avg.<param>@<begin>     AdamW's first moment, same elements
//   optim.exp_avg_sq.<param>@<begin>  second moment
//   optim.step.<param>@<begin>        int64 [1]: the steps AdamW took for that parameter
// whatever train.sharding is (a replicated optimizer is written by slices like the weights),
// so every rank writes 12 bytes per parameter / W and the format does not depend on the mode.
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "aim/io/safetensors.h"

namespace aim::train::ckpt {

constexpr int kFormatVersion = 2;
constexpr const char* kManifest = "manifest.json";
constexpr const char* kMeta = "meta.json";

std::string part_file(int rank);    // part_rank<R>.safetensors
std::string loader_file(int rank);  // loader_rank<R>.json
std::string step_name(int64_t step);  // step_000000042

/// The flattened parameter space of a model (or of a checkpoint's manifest).
struct ParamSpace {
  std::vector<std::string> names;
  std::vector<std::vector<int64_t>> shapes;
  std::vector<torch::Dtype> dtypes;
  std::vector<int64_t> offset;  // parameter k holds elements [offset[k], offset[k + 1])

  static ParamSpace of(const torch::nn::Module& model);
  static ParamSpace from_json(const nlohmann::json& j);  // throws aim::Error when malformed
  nlohmann::json to_json() const;
  size_t size() const { return names.size(); }
  int64_t total() const { return offset.empty() ? 0 : offset.back(); }
  int64_t numel(size_t k) const { return offset[k + 1] - offset[k]; }
  /// Index of a parameter by name, -1 when absent.
  int64_t find(const std::string& name) const;
  /// "" when equal; else which parameters differ ("trunk.blocks.0.mlp.fc1.weight: [8, 4] in the
  /// checkpoint, [16, 4] in the model", "missing ...", "unexpected ...").
  std::string difference(const ParamSpace& model) const;

 private:
  std::map<std::string, int64_t> index_;
  void build_index();
};

enum class Field { kWeight, kExpAvg, kExpAvgSq, kStep };

/// One tensor of a part file.
struct Piece {
  Field field = Field::kWeight;
  int64_t param = 0;         // index in the ParamSpace
  int64_t begin = 0, end = 0;  // elements of the flattened parameter (kStep: the piece it belongs to)
  torch::Dtype dtype = torch::kFloat32;
  uint64_t offset = 0, bytes = 0;  // in the file
};

std::string piece_name(const ParamSpace& space, const Piece& p);
/// Parses a piece name; false when it is not one.
bool parse_piece_name(const std::string& name, Field* field, std::string* param, int64_t* begin);

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

/// One file of a checkpoint as the manifest lists it.
struct FileRecord {
  std::string name;
  uint64_t bytes = 0;
  uint64_t digest = 0;  // io::block_digest with the manifest's block size
};

/// manifest.json: what makes a checkpoint, written last.
struct Manifest {
  int64_t step = 0;
  int world_size = 1;
  uint64_t block_bytes = 0;
  ParamSpace params;
  std::vector<FileRecord> files;

  nlohmann::json to_json() const;
  static Manifest read(const std::string& dir);  // throws aim::Error naming the file
  const FileRecord* file(const std::string& name) const;
};

/// Writes `content` atomically to `path`; returns its record (name = the file name).
FileRecord write_small_file(const std::string& path, const std::string& content, uint64_t block_bytes);

/// Reads a small file whole and checks it against its record; throws aim::Error naming it.
std::string read_verified(const std::string& dir, const FileRecord& rec, uint64_t block_bytes);

/// Copies `src` (elements [a, a + src.numel()) of the flattened space) into the tensors of
/// `targets` (flat views, one per parameter; undefined ones are skipped).
void copy_into_space(std::vector<torch::Tensor>& targets, const std::vector<int64_t>& offset, int64_t a,
                     const torch::Tensor& src);
/// The reverse: elements [a, a + dst.numel()) of the space into `dst` (zeros where a target is
/// undefined).
void copy_from_space(const std::vector<torch::Tensor>& targets, const std::vector<int64_t>& offset, int64_t a,
                     torch::Tensor dst);

}  // namespace aim::train::ckpt
