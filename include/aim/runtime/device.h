#pragma once
#include <string>
#include <vector>

#include <torch/types.h>

namespace aim::runtime {

/// train.device: "cpu", "cuda" (error when none is available) or "auto" (CUDA when present).
/// CUDA ranks use the GPU numbered by their local rank, or the only GPU they see when the
/// scheduler binds one GPU per task (SLURM --gpus-per-task=1: CUDA_VISIBLE_DEVICES names one
/// device per task); a local rank without a GPU of its own is an error naming both numbers
/// (two ranks sharing a GPU would be a silent 2x slowdown, and NCCL refuses it).
/// local_world_size 0 = unknown (a single process).
torch::Device select_device(const std::string& want, int local_rank, int local_world_size = 0);

/// The pure rule behind select_device's CUDA branch, testable without a GPU:
/// `cuda_visible_devices` is the variable's value (nullptr when unset).
torch::Device cuda_device_for_local_rank(int local_rank, int64_t visible_devices, int local_world_size,
                                         const char* cuda_visible_devices);

/// Makes `device` the current CUDA device of this process for the rest of the run, before
/// any CUDA work: kernels launched on the default device, torch::cuda::synchronize(),
/// NCCL's communicators and the CUDA context all then land on this rank's GPU instead of
/// GPU 0. No-op for CPU devices.
void pin_current_device(const torch::Device& device);

}  // namespace aim::runtime
