#pragma once
#include <map>
#include <string>

#include "aim/model/aim_encoder.h"

namespace aim::model {

/// Where a trunk's weights come from, resolved from probe.weights:
///  - a .safetensors file: our trunk export, or an official checkpoint (its head.* is ignored);
///  - a run directory: its trunk.safetensors, else the newest complete checkpoint;
///  - a checkpoint directory (checkpoints/step_N): its state.safetensors.
struct TrunkWeights {
  std::string file;    // the safetensors file read
  std::string prefix;  // name prefix to strip ("model." inside training checkpoints)
};
TrunkWeights resolve_trunk_weights(const std::string& weights);

/// Loads preprocessor.* and trunk.* into `encoder` by name (strictly: anything missing,
/// unexpected or of the wrong shape is listed in one aim::Error). Returns a description
/// ("runs/x/trunk.safetensors") for logs.
std::string load_trunk_weights(model::AimEncoder& encoder, const std::string& weights);

/// Writes the preprocessor.* and trunk.* tensors of `model` (an AimPretrainModel or an
/// AimEncoder) to a safetensors file in the official naming, atomically — the file
/// aim-probe and the official PyTorch code load.
void export_trunk(const std::string& path, const torch::nn::Module& model,
                  std::map<std::string, std::string> metadata = {});

}  // namespace aim::model
