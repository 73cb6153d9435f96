#include "aim/train/device.h"

#include <torch/cuda.h>

#include "aim/error.h"

namespace aim::train {

torch::Device select_device(const std::string& want, int local_rank) {
  const bool available = torch::cuda::is_available();
  if (want == "cuda" && !available) throw Error("train.device=cuda but no CUDA device is available");
  if (want == "cuda" || (want == "auto" && available)) return torch::Device(torch::kCUDA, local_rank);
  return torch::Device(torch::kCPU);
}

std::vector<double> channel_mean(int64_t c) {
  return c == 1 ? std::vector<double>{0.449} : std::vector<double>{0.485, 0.456, 0.406};
}
std::vector<double> channel_std(int64_t c) {
  return c == 1 ? std::vector<double>{0.226} : std::vector<double>{0.229, 0.224, 0.225};
}

}  // namespace aim::train
