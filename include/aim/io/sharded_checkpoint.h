#pragma once
// The on-disk format of aim's sharded training checkpoints, as far as readers need it: the
// manifest, the piece names inside each rank's part file, checksummed small files, and the
// weights assembled from every part. Written by train::CheckpointManager
// (include/aim/train/checkpoint.h, src/train/checkpoint_parts.h); read here by the restore,
// by aim-train --consolidate, and by probe.weights pointing at a checkpoint.
//
// A checkpoint directory holds part_rank<R>.safetensors (R < world size), loader_rank<R>.json,
// meta.json and, written last, manifest.json. The parameters, flattened in the model's
// named_parameters() order, form one space of T elements; rank R's part holds elements
// [T*R/W, T*(R+1)/W) of the weights (and of AdamW's moments) as 1-D tensors named
//   model.<param>@<begin>             weights, elements [begin, begin + n) of the parameter
//   optim.exp_avg.<param>@<begin>     AdamW's first moment, same elements
//   optim.exp_avg_sq.<param>@<begin>  second moment
//   optim.step.<param>@<begin>        int64 [1]: the steps AdamW took for that parameter
#include <torch/nn/module.h>
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "aim/io/safetensors.h"

namespace aim::io::ckpt {

constexpr int kFormatVersion = 2;
constexpr const char* kManifest = "manifest.json";
constexpr const char* kMeta = "meta.json";

std::string part_file(int rank);      // part_rank<R>.safetensors
std::string loader_file(int rank);    // loader_rank<R>.json
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

std::string piece_name(const std::string& param, Field field, int64_t begin);
/// Parses a piece name; false when it is not one.
bool parse_piece_name(const std::string& name, Field* field, std::string* param, int64_t* begin);

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

/// A directory with a manifest.json: a complete checkpoint (its files still to be verified).
bool is_checkpoint_dir(const std::string& dir);

/// Writes `content` atomically to `path`; returns its record (name = the file name).
FileRecord write_small_file(const std::string& path, const std::string& content, uint64_t block_bytes);

/// Reads a small file whole and checks it against its record; throws aim::Error naming it.
std::string read_verified(const std::string& dir, const FileRecord& rec, uint64_t block_bytes);

/// Every part of checkpoint `dir` checked (size and checksum) and mapped; then `fn` gets each
/// parameter whose name starts with one of `prefixes` (all when empty), in manifest order,
/// assembled from the parts into a tensor of its shape that lives only for the call: memory
/// stays at one parameter beyond the mappings. Throws aim::Error naming the file at fault.
void for_each_checkpoint_weight(const std::string& dir, const std::vector<std::string>& prefixes,
                                const std::function<void(const std::string&, const torch::Tensor&)>& fn);

/// The weights of checkpoint `dir` by parameter name (prefixes as above).
NamedTensors read_checkpoint_weights(const std::string& dir, const std::vector<std::string>& prefixes = {});

}  // namespace aim::io::ckpt
