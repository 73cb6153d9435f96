#pragma once
// What a probe run leaves on disk (rank 0): results.json, probe.safetensors (the best head,
// official head.* names, with its features, blocks and class names), and with LoRA the
// adapted trunk three ways (loralib names, merged, a peft adapter); the hub directory when
// probe.export_hub asks. Internal to src/probe.
#include "aim/config/run_config.h"
#include "aim/probe/feature_extractor.h"
#include "aim/probe/probe_head.h"
#include "aim/probe/probe_runner.h"

namespace aim::probe::detail {

struct ProbeOutputs {
  const config::RunConfig& cfg;
  const ProbeReport& report;
  FeatureExtractor& fx;
  ProbeHead best;
  double lora_lr = 0;  // the LoRA tensors' peak lr
  int world_size = 1;
};

void write_probe_outputs(const ProbeOutputs& out);

}  // namespace aim::probe::detail
