// aim-bench-model: times AIM pre-training steps (prefix sampling, forward, backward,
// gradient clipping, AdamW) on random inputs and prints one JSON line with img/s and MFU.
// Same measurement as scripts/reference/ref_aim.py, so the two can run side by side.
#include <torch/cuda.h>
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "aim/compat.h"
#include "aim/error.h"
#include "aim/model/aim_pretrain.h"
#include "aim/model/attention_mask.h"
#include "aim/model/model_stats.h"
#include "aim/runtime/device.h"
#include "aim/optim/multi_tensor.h"
#include "aim/optim/optimizer.h"

int main(int argc, char** argv) {
  CLI::App app{"Time AIM pre-training steps (forward + backward + AdamW) of a configurable model"};
  std::string preset = "aim-small-32";
  aim::model::ModelConfig over;
  int64_t img = 0, patch = 0, channels = 0, width = 0, depth = 0, heads = 0, head_width = 0, head_blocks = -1;
  int64_t batch = 64, steps = 10, warmup = 2, threads = 0;
  double peak_gflops = 0;  // 0: 225 on CPU (fp32 ceiling of the 2-core build machine), 989,500 on CUDA (H100/H200 dense bf16)
  std::string attention = "prefix", device_name = "cpu", dtype = "fp32", optimizer = "multi-tensor";
  app.add_option("--preset", preset, "Start from this preset")->capture_default_str();
  app.add_option("--img", img, "Image size");
  app.add_option("--patch", patch, "Patch size");
  app.add_option("--ch", channels, "Channels");
  app.add_option("--width", width, "Trunk width");
  app.add_option("--depth", depth, "Trunk depth");
  app.add_option("--heads", heads, "Attention heads");
  app.add_option("--head-width", head_width, "Pre-training head width");
  app.add_option("--head-blocks", head_blocks, "Pre-training head blocks");
  app.add_option("--attention", attention, "prefix | causal")->capture_default_str();
  app.add_option("--batch", batch, "Images per step")->capture_default_str();
  app.add_option("--steps", steps, "Timed steps")->capture_default_str();
  app.add_option("--warmup", warmup, "Untimed steps first")->capture_default_str();
  app.add_option("--threads", threads, "ATen intra-op threads (0 = LibTorch default)")->capture_default_str();
  app.add_option("--peak-gflops", peak_gflops, "Peak FLOP/s (GFLOP/s) for MFU (0 = by device)")->capture_default_str();
  app.add_option("--device", device_name, "cpu | cuda")->capture_default_str();
  app.add_option("--optimizer", optimizer,
                 "multi-tensor (aim-train's _foreach_* AdamW and clipping) | per-tensor (torch::optim::AdamW::step and "
                 "clip_grad_norm_), to compare the two in one binary")
      ->capture_default_str();
  app.add_option("--dtype", dtype, "fp32 | bf16 (CUDA autocast, as aim-train's train.precision=bf16)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    auto cfg = aim::model::preset_config(preset);
    if (img) cfg.img_size = img;
    if (patch) cfg.patch_size = patch;
    if (channels) cfg.channels = channels;
    if (width) cfg.width = width;
    if (depth) cfg.depth = depth;
    if (heads) cfg.heads = heads;
    if (head_width) cfg.head_width = head_width;
    if (head_blocks >= 0) cfg.head_blocks = head_blocks;
    cfg.attention = aim::model::attention_mode_from_string(attention);
    cfg.validate();

    // Default: LibTorch's own intra-op setting (one thread here, as in Python). OpenBLAS
    // runs the GEMMs on its own threads; extra OpenMP threads spin-wait between parallel
    // regions and steal those cores (measured: 2 threads 50 img/s vs 1 thread 70 img/s).
    if (threads > 0) at::set_num_threads(static_cast<int>(threads));
    if (steps < 1 || warmup < 0 || batch < 1) throw aim::Error("--steps and --batch must be >= 1, --warmup >= 0");
    if (optimizer != "multi-tensor" && optimizer != "per-tensor")
      throw aim::Error("--optimizer: expected multi-tensor or per-tensor, got '" + optimizer + "'");
    const bool multi = optimizer == "multi-tensor";
    if (dtype != "fp32" && dtype != "bf16") throw aim::Error("--dtype: expected fp32 or bf16, got '" + dtype + "'");
    const auto device = aim::runtime::select_device(device_name, 0);
    const bool cuda = device.is_cuda();
    if (dtype == "bf16" && !cuda) throw aim::Error("--dtype bf16 is CUDA autocast: use it with --device cuda");
    if (peak_gflops <= 0) peak_gflops = cuda ? 989.5e3 : 225.0;
    torch::manual_seed(0);
    aim::model::AimPretrainModel model(cfg);
    model->to(device);
    auto opt = aim::optim::make_adamw(*model, {});
    auto params = model->parameters();
    auto x = torch::randn({batch, cfg.channels, cfg.img_size, cfg.img_size}).to(device);
    auto gen = at::detail::createCPUGenerator(0);

    // On CUDA each step ends with the loss read-back (a sync, as aim-train's logging does
    // only every log_every steps); clipping and the optimizer are timed on their own
    // between syncs.
    std::vector<double> times, opt_times, clip_times;
    double loss = 0;
    for (int64_t step = 0; step < warmup + steps; ++step) {
      auto t0 = std::chrono::steady_clock::now();
      auto prefix = aim::model::sample_prefix_lengths(batch, cfg.num_tokens(), cfg.attention, gen);
      if (dtype == "bf16") aim::compat::set_cuda_autocast(true, at::kBFloat16);
      auto out = model->forward(x, prefix, aim::model::HeadTokens::kLossOnly);
      if (dtype == "bf16") {
        aim::compat::set_cuda_autocast(false, at::kBFloat16);
        aim::compat::clear_autocast_cache();
      }
      aim::optim::clear_gradients(*opt);
      out.loss.mean.backward();
      if (cuda) torch::cuda::synchronize();
      auto t_clip = std::chrono::steady_clock::now();
      if (multi) aim::optim::clip_grad_norm(params, 1.0).item<double>();  // aim-train reads it back too
      else torch::nn::utils::clip_grad_norm_(params, 1.0);
      if (cuda) torch::cuda::synchronize();
      auto t1 = std::chrono::steady_clock::now();
      if (multi) aim::optim::adamw_step(*opt);
      else opt->step();
      if (cuda) torch::cuda::synchronize();
      auto t2 = std::chrono::steady_clock::now();
      loss = out.loss.mean.item<double>();
      if (step >= warmup) {
        times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        opt_times.push_back(std::chrono::duration<double>(t2 - t1).count());
        clip_times.push_back(std::chrono::duration<double>(t1 - t_clip).count());
      }
    }
    std::sort(opt_times.begin(), opt_times.end());
    std::sort(clip_times.begin(), clip_times.end());
    std::sort(times.begin(), times.end());
    const double med = times[times.size() / 2];
    const auto flops = aim::model::count_flops(cfg);
    const double img_s = static_cast<double>(batch) / med;
    double total = 0;
    for (double t : times) total += t;
    // The mean rate is what a training run sees (slow steps included); the median is the
    // robust number for side-by-side comparisons with the reference.
    const double img_s_mean = static_cast<double>(batch) * times.size() / total;
    int64_t nparams = 0;
    for (const auto& p : params) nparams += p.numel();
    nlohmann::json out = {{"params", nparams},
                          {"step_s_median", med},
                          {"img_per_s", img_s},
                          {"img_per_s_mean", img_s_mean},
                          {"gflops_per_s", img_s * flops.executed_training() / 1e9},
                          {"mfu", img_s * flops.executed_training() / (peak_gflops * 1e9)},
                          {"opt_s_median", opt_times[opt_times.size() / 2]},
                          {"clip_s_median", clip_times[clip_times.size() / 2]},
                          {"optimizer", optimizer},
                          {"loss", loss},
                          {"device", device.str()},
                          {"dtype", dtype},
                          {"threads", at::get_num_threads()},
                          {"torch", aim::compat::torch_version()}};
    std::cout << out.dump() << std::endl;
  } catch (const aim::Error& e) {
    std::cerr << "aim-bench-model: " << e.what() << std::endl;
    return 2;
  }
  return 0;
}
