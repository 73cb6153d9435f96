#include "aim/train/peak_flops.h"

#include <spdlog/fmt/fmt.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>

#include "aim/compat.h"

namespace aim::train {
namespace {

// Dense (not 2:4 sparse) peaks from NVIDIA's datasheets, FLOP/s: bf16 tensor cores, and fp32
// without TF32 (LibTorch's default for matmuls). The first matching name wins, so the more
// specific names come first.
struct Datasheet {
  const char* name;
  double bf16, fp32;
};
constexpr Datasheet kGpus[] = {
    {"H200", 989.4e12, 66.9e12},      {"GH200", 989.4e12, 66.9e12}, {"H100 PCIe", 756.5e12, 51.2e12},
    {"H100 NVL", 835.5e12, 59.8e12},  {"H100", 989.4e12, 66.9e12},  {"H800", 989.4e12, 66.9e12},
    {"A100", 312e12, 19.5e12},        {"A800", 312e12, 19.5e12},    {"L40S", 362.1e12, 91.6e12},
    {"A10G", 70e12, 31.2e12},         {"L4", 121e12, 30.3e12},      {"B200", 2250e12, 80e12},
};

double measured_cpu_peak() {
  using Clock = std::chrono::steady_clock;
  torch::NoGradGuard ng;
  auto a = torch::randn({1024, 1024}), b = torch::randn({1024, 1024});
  torch::mm(a, b);  // warm up BLAS threads
  double best = 0;
  for (int i = 0; i < 12; ++i) {
    const auto t0 = Clock::now();
    torch::mm(a, b);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::max(best, 2.0 * 1024 * 1024 * 1024 / s);
  }
  return best;
}

}  // namespace

double datasheet_peak_flops(const std::string& device_name, bool bf16) {
  for (const auto& g : kGpus)
    if (device_name.find(g.name) != std::string::npos) return bf16 ? g.bf16 : g.fp32;
  return 0;
}

PeakFlops device_peak_flops(const config::RunConfig& cfg, bool cuda) {
  if (cfg.train.peak_tflops > 0)
    return {cfg.train.peak_tflops * 1e12, fmt::format("train.peak_tflops = {:g} TFLOP/s", cfg.train.peak_tflops)};
  if (!cuda) {
    const double peak = measured_cpu_peak();
    return {peak, fmt::format("{:.0f} GFLOP/s, this machine's best timed 1024x1024 fp32 GEMM (train.peak_tflops "
                              "overrides)",
                              peak / 1e9)};
  }
  const bool bf16 = cfg.train.precision == "bf16";
  const std::string name = compat::cuda_device_name();
  const double peak = datasheet_peak_flops(name, bf16);
  if (peak <= 0)
    return {0, "unknown for '" + name + "': set train.peak_tflops to the GPU's dense " + (bf16 ? "bf16" : "fp32") +
                   " peak to get MFU"};
  return {peak, fmt::format("{:.0f} TFLOP/s, the datasheet's dense {} peak of {}", peak / 1e12, bf16 ? "bf16" : "fp32",
                            name)};
}

}  // namespace aim::train
