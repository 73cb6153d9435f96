#pragma once
// aim-probe --extract DIR: the frozen features of probe.train and probe.val written to disk,
// for users who train their own heads (numpy, PyTorch, scikit-learn) on them.
//
// Layout (every rank writes its own shards; rank 0 writes the index last):
//   DIR/index.json                  the model, weights, blocks, shapes, class names, and per
//                                   split the shard files with their sample counts
//   DIR/<split>/r<rank>-<k>.safetensors
//       pooled  float32 [n, d]      the probe's features averaged over tokens
//       tokens  float16 [n, K, d]   the per-patch features (the chosen blocks' mean), with --tokens
//       labels  int64   [n]         -1 when the split is unlabelled
//       index   int64   [n]         the sample's position in the split's ordered pass (world-size independent)
//     metadata "names": a JSON array of the samples' files ("<shard>#<n>" for webdataset,
//     "<split file>#<n>" for IDX)
// Each split is one ordered pass with the eval transform (centre crop); memory stays bounded
// by one shard per rank.
#include <cstdint>
#include <string>
#include <vector>

#include "aim/config/run_config.h"
#include "aim/dist/communicator.h"
#include "aim/dist/dist_env.h"

namespace aim::probe {

struct ExtractOptions {
  std::string dir;
  bool tokens = false;       // also the per-patch features (float16)
  int64_t shard_size = 0;    // samples per shard file; 0 = as many as fit ~512 MB
};

struct ExtractedSplit {
  std::string name;          // "train" or "val"
  int64_t samples = 0;       // over all ranks
  int64_t shards = 0;
};

/// Extracts every configured split (probe.train when set, probe.val) over the ranks of
/// `comm`; returns what was written (the same on every rank).
std::vector<ExtractedSplit> extract_features(const config::RunConfig& cfg, const dist::DistEnv& env,
                                             dist::Communicator* comm, const ExtractOptions& options);

}  // namespace aim::probe
