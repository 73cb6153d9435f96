#pragma once
#include <string>

#include <torch/types.h>

namespace aim::train {

/// train.device: "cpu", "cuda" (error when none is available) or "auto" (CUDA when present).
/// CUDA ranks use the GPU numbered by their local rank.
torch::Device select_device(const std::string& want, int local_rank);

/// ImageNet channel statistics (and their gray-scale means for 1-channel models).
std::vector<double> channel_mean(int64_t channels);
std::vector<double> channel_std(int64_t channels);

}  // namespace aim::train
