#pragma once
// aim-probe --dry-run: what a probe run would train, counted from shapes alone (no weights
// allocated), so LoRA's share of aim-7b is printed as cheaply as aim-600m's.
#include <cstdint>
#include <string>

#include "aim/config/run_config.h"

namespace aim::probe {

struct TrainableCounts {
  int64_t trunk = 0;     // frozen trunk parameters (preprocessor included)
  int64_t head = 0;      // one probe head
  int64_t lora = 0;      // LoRA tensors (0 without LoRA)
  int64_t classes = 0;   // the class count the head was sized for
  double lora_share() const { return trunk > 0 ? static_cast<double>(lora) / trunk : 0.0; }
};

/// `classes` is probe.classes, or 1000 (ImageNet, the paper's setting) when it comes from the data.
TrainableCounts count_trainable(const config::RunConfig& cfg);

/// The --dry-run lines: model, head, LoRA and its share of the trunk.
std::string describe_trainable(const config::RunConfig& cfg);

}  // namespace aim::probe
