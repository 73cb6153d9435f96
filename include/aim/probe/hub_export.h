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
  std::string trunk;   // where the trunk came from (for the reader)
  /// probe.weights as given: the LICENSE beside it (a hub directory's, or the file's folder's)
  /// is copied, and a hub directory's README.md license fields are carried over.
  std::string trunk_source;
  std::string data;    // the probe's training / evaluation data
  std::string recipe;  // epochs, batch, lr, LoRA, ...
  double top1 = -1;    // evaluation top-1 in [0, 1]; < 0 = not measured
  int64_t val_samples = 0;
  std::vector<std::string> class_names;  // the head's classes, when the data names them
  std::vector<std::string> datasets;     // hub dataset ids, where known
};

/// Writes DIR/config.json, DIR/model.safetensors (`trunk`'s preprocessor.* and trunk.* —
/// plain, LoRA merged — and `head`'s head.*, float32) and DIR/README.md, a model card whose
/// YAML header carries what the hub reads (library_name: ml-aim, pipeline_tag:
/// image-classification, license fields, tags, datasets, metrics) and whose snippet loads DIR
/// by its path; the trunk's LICENSE, when one lies beside probe.weights, is copied to
/// DIR/LICENSE. The head must be attentive with the trunk's width; `blocks` become
/// config.json's probe_layers.
void export_hub(const std::string& dir, const model::ModelConfig& model, const io::NamedTensors& trunk,
                ProbeHead& head, const std::vector<int64_t>& blocks, const HubCard& card);

}  // namespace aim::probe
