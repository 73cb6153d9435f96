#include "aim/runtime/device.h"

#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/cuda.h>

#include <cstdlib>

#include "aim/error.h"

namespace aim::runtime {

torch::Device cuda_device_for_local_rank(int local_rank, int64_t visible_devices) {
  if (local_rank < 0) throw Error("LOCAL_RANK=" + std::to_string(local_rank) + " is negative");
  if (local_rank >= visible_devices) {
    const char* vis = std::getenv("CUDA_VISIBLE_DEVICES");
    throw Error("local rank " + std::to_string(local_rank) + " needs its own GPU, but this process sees " +
                std::to_string(visible_devices) + " (CUDA_VISIBLE_DEVICES=" + (vis ? vis : "<unset>") +
                "); start at most one rank per GPU on each node (--nproc-per-node / --ntasks-per-node)");
  }
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(local_rank));
}

torch::Device select_device(const std::string& want, int local_rank) {
  const bool available = torch::cuda::is_available();
  if (want == "cuda" && !available) throw Error("train.device=cuda but no CUDA device is available");
  if (want == "cuda" || (want == "auto" && available))
    return cuda_device_for_local_rank(local_rank, static_cast<int64_t>(torch::cuda::device_count()));
  return torch::Device(torch::kCPU);
}

void pin_current_device(const torch::Device& device) {
  if (!device.is_cuda()) return;
  // The generic guard interface: the CUDA implementation registers itself in CUDA builds,
  // so this compiles against CPU-only LibTorch too (and is never reached there).
  c10::impl::getDeviceGuardImpl(device.type())->setDevice(device);
}

}  // namespace aim::runtime
