#pragma once
#include <string>

#include "aim/model/aim_encoder.h"

namespace aim::probe {

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

}  // namespace aim::probe
