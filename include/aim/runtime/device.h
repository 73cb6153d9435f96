#pragma once
#include <string>
#include <vector>

#include <torch/types.h>

namespace aim::runtime {

/// train.device: "cpu", "cuda" (error when none is available) or "auto" (CUDA when present).
/// CUDA ranks use the GPU numbered by their local rank; a local rank without a GPU of its
/// own is an error naming both numbers (two ranks sharing GPU 0 would be a silent 2x
/// slowdown, and NCCL refuses it).
torch::Device select_device(const std::string& want, int local_rank);

/// The pure rule behind select_device's CUDA branch, testable without a GPU.
torch::Device cuda_device_for_local_rank(int local_rank, int64_t visible_devices);

/// Makes `device` the current CUDA device of this process for the rest of the run, before
/// any CUDA work: kernels launched on the default device, torch::cuda::synchronize(),
/// NCCL's communicators and the CUDA context all then land on this rank's GPU instead of
/// GPU 0. No-op for CPU devices.
void pin_current_device(const torch::Device& device);

}  // namespace aim::runtime
