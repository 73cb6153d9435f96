#pragma once
// Hub-ready model directories: what the official Python package's
// AIMForImageClassification.from_pretrained(DIR) reads — config.json (the keyword arguments
// of its model builder) next to model.safetensors (preprocessor.*, trunk.*, head.*).
#include <cstdint>
#include <string>
#include <vector>

#include "aim/io/safetensors.h"
#include "aim/model/model_config.h"

namespace aim::model {

/// config.json's keys, with the builder's defaults for the optional ones.
struct HubConfig {
  int64_t img_size = 0, patch_size = 0, embed_dim = 0, num_blocks = 0, num_heads = 0;
  int64_t num_channels = 3;
  std::vector<int64_t> probe_layers;  // resolved block indices (an int N in the file = the last N)
  int64_t num_classes = 1000;
};

inline constexpr const char* kHubConfigFile = "config.json";
/// What aim-probe writes; the reader also takes the other names the hub uses (below).
inline constexpr const char* kHubWeightsFile = "model.safetensors";
/// The weights file names of a hub model directory, in the order they are looked for:
/// model.safetensors, its shard index, pytorch_model.bin (a torch.save archive: the official
/// apple/aim-* repositories), its shard index.
const std::vector<std::string>& hub_weights_names();

/// A directory holding config.json or one of hub_weights_names() (then both are required).
bool is_hub_dir(const std::string& path);

/// DIR/<the first of hub_weights_names() present>; "" when there is none.
std::string hub_weights_file(const std::string& dir);

/// Reads DIR/config.json; errors name the file and the key (missing, not an integer, ...).
HubConfig read_hub_config(const std::string& dir);

/// config.json for `model` with a probe on `probe_layers` classifying `classes`.
HubConfig hub_config_for(const ModelConfig& model, const std::vector<int64_t>& probe_layers, int64_t classes);
void write_hub_config(const std::string& dir, const HubConfig& hub);

/// Refuses a config.json that describes another architecture than `model`, naming every
/// differing pair ("embed_dim=1536 vs model.width=48").
void check_hub_matches_model(const HubConfig& hub, const ModelConfig& model, const std::string& dir);

/// Refuses a config.json that contradicts its weights' shapes (patch embedding, block count,
/// widths, the head's classes), naming the key and the tensor — before anything is loaded.
void check_hub_matches_weights(const HubConfig& hub, const io::NamedTensors& tensors, const std::string& dir);

}  // namespace aim::model
