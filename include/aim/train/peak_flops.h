#pragma once
// The per-device peak that MFU is measured against, and where the number comes from.
#include <string>

#include "aim/config/run_config.h"

namespace aim::train {

struct PeakFlops {
  double flops = 0;    // per device, FLOP/s; 0 = unknown (MFU is then reported as null)
  std::string source;  // how it was found, for the log line that says what MFU means
};

/// train.peak_tflops when set. On CPU: the best of a dozen timed 1024 x 1024 fp32 GEMMs on
/// this machine (taken before the data loader's threads start, which would otherwise share
/// the cores and understate it). On CUDA: the datasheet's dense peak for the training
/// precision (bf16 tensor cores, or plain fp32) of a GPU it knows by name (A100, H100, H200,
/// ...); unknown GPUs give 0 and a hint to set train.peak_tflops.
PeakFlops device_peak_flops(const config::RunConfig& cfg, bool cuda);

/// The datasheet peak for a CUDA device name; 0 when the name is not in the table.
double datasheet_peak_flops(const std::string& device_name, bool bf16);

}  // namespace aim::train
