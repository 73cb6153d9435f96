#include "aim/runtime/device.h"

#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/cuda.h>

#include <cstdlib>

#include "aim/error.h"

namespace aim::runtime {

torch::Device cuda_device_for_local_rank(int local_rank, int64_t visible_devices, int local_world_size,
                                         const char* cuda_visible_devices) {
  if (local_rank < 0) throw Error("LOCAL_RANK=" + std::to_string(local_rank) + " is negative");
  const std::string vis = cuda_visible_devices ? cuda_visible_devices : "<unset>";
  // Bound per task (SLURM --gpus-per-task=1 / --gpu-bind, or a launcher that sets one
  // CUDA_VISIBLE_DEVICES per rank): the one GPU this process sees is its own, whatever
  // its local rank. Unbound with one GPU for several local ranks, they would all share it.
  if (visible_devices == 1) {
    if (local_rank == 0 || cuda_visible_devices) return torch::Device(torch::kCUDA, 0);
    if (local_world_size > 1)
      throw Error("local rank " + std::to_string(local_rank) + " of " + std::to_string(local_world_size) +
                  " needs its own GPU, but this node shows one GPU to every rank (CUDA_VISIBLE_DEVICES=<unset>); "
                  "start one rank per GPU, or bind one GPU per task (srun --gpus-per-task=1)");
    return torch::Device(torch::kCUDA, 0);
  }
  if (local_rank >= visible_devices)
    throw Error("local rank " + std::to_string(local_rank) + " needs its own GPU, but this process sees " +
                std::to_string(visible_devices) + " (CUDA_VISIBLE_DEVICES=" + vis +
                "); start at most one rank per GPU on each node (--nproc-per-node / --ntasks-per-node), or bind "
                "one GPU per task (srun --gpus-per-task=1)");
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(local_rank));
}

torch::Device select_device(const std::string& want, int local_rank, int local_world_size) {
  const bool available = torch::cuda::is_available();
  if (want == "cuda" && !available) throw Error("train.device=cuda but no CUDA device is available");
  if (want == "cuda" || (want == "auto" && available))
    return cuda_device_for_local_rank(local_rank, static_cast<int64_t>(torch::cuda::device_count()),
                                      local_world_size, std::getenv("CUDA_VISIBLE_DEVICES"));
  return torch::Device(torch::kCPU);
}

void pin_current_device(const torch::Device& device) {
  if (!device.is_cuda()) return;
  // The generic guard interface: the CUDA implementation registers itself in CUDA builds,
  // so this compiles against CPU-only LibTorch too (and is never reached there).
  c10::impl::getDeviceGuardImpl(device.type())->setDevice(device);
}

}  // namespace aim::runtime
