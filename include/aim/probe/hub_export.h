#pragma once
// Hub-ready model directories (model/hub_config.h): a trunk plus a trained attentive probe
// written as the official AIMForImageClassification.from_pretrained(DIR) reads them.
#include <cstdint>
#include <string>
#include <vector>

#include "aim/io/safetensors.h"
#include "aim/model/model_config.h"
#include "aim/probe/probe_head.h"

namespace aim::probe {

/// What the README card says besides the architecture.
struct HubCard {
  std::string trunk;   // where the trunk came from
  std::string data;    // the probe's training / evaluation data
  std::string recipe;  // epochs, batch, lr, LoRA, ...
  double top1 = -1;    // evaluation top-1 in [0, 1]; < 0 = not measured
  int64_t val_samples = 0;
};

/// Writes DIR/config.json, DIR/model.safetensors (`trunk`'s preprocessor.* and trunk.* —
/// plain, LoRA merged — and `head`'s head.*, float32) and DIR/README.md. The head must be
/// attentive with the trunk's width; `blocks` become config.json's probe_layers.
void export_hub(const std::string& dir, const model::ModelConfig& model, const io::NamedTensors& trunk,
                ProbeHead& head, const std::vector<int64_t>& blocks, const HubCard& card);

}  // namespace aim::probe
