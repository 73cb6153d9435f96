#pragma once
#include <map>
#include <string>

#include "aim/io/safetensors.h"
#include "aim/model/aim_encoder.h"
#include "aim/model/lora.h"

namespace aim::model {

/// Where a trunk's weights come from, resolved from probe.weights:
///  - a weights file (io/weights_file.h, told apart by content): safetensors (our trunk export,
///    an official checkpoint: its head.* is ignored), a torch.save archive (the official
///    `.pth` backbones, `pytorch_model.bin`; nested {"model": ...} unwrapped), a shard index;
///  - a run directory: its trunk.safetensors, else the newest complete checkpoint;
///  - a checkpoint directory (checkpoints/step_N, io/sharded_checkpoint.h): its weights,
///    assembled from every rank's part, each part's checksum checked;
///  - a hub model directory (config.json + model.safetensors or pytorch_model.bin,
///    model/hub_config.h): its weights, after config.json is checked against the model and
///    the weights.
struct TrunkWeights {
  std::string file;    // the weights file read (a training checkpoint: its directory)
  std::string prefix;  // "model." for a training checkpoint (its parts name the weights model.*@begin)
  std::string hub_dir;  // set for a hub model directory
};
TrunkWeights resolve_trunk_weights(const std::string& weights);

/// Loads preprocessor.* and trunk.* into `encoder` by name (strictly: anything missing,
/// unexpected or of the wrong shape is listed in one aim::Error). Returns a description
/// ("runs/x/trunk.safetensors") for logs.
std::string load_trunk_weights(model::AimEncoder& encoder, const std::string& weights);

/// Like load_trunk_weights, for a trunk that adapts with LoRA (`lora.rank` > 0): a file with
/// LoRA tensors (ours or the official LoraAttention's, loralib names) loads them strictly,
/// their rank must be `lora.rank`; a plain file loads and LoRA starts fresh (B = 0). With
/// rank 0 a file holding LoRA tensors is refused, naming them (use its merged export).
std::string load_trunk_weights(model::AimEncoder& encoder, const std::string& weights, const LoraSpec& lora);

/// preprocessor.* and trunk.* of `encoder` with every LoRA update merged into its weight
/// (W + alpha/r B A) and no lora_* tensors: a plain trunk any official loader reads.
io::NamedTensors merged_trunk_tensors(const model::AimEncoder& encoder);

/// Writes named tensors as a trunk file (float32 or as given, contiguous, "format": "pt").
void export_trunk_tensors(const std::string& path, const io::NamedTensors& tensors,
                          std::map<std::string, std::string> metadata = {});

/// Writes the preprocessor.* and trunk.* tensors of `model` (an AimPretrainModel or an
/// AimEncoder) to a safetensors file in the official naming, atomically — the file
/// aim-probe and the official PyTorch code load.
void export_trunk(const std::string& path, const torch::nn::Module& model,
                  std::map<std::string, std::string> metadata = {});

}  // namespace aim::model
