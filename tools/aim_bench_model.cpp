// aim-bench-model: times AIM pre-training steps (prefix sampling, forward, backward,
// gradient clipping, AdamW) on random inputs and prints one JSON line with img/s and MFU.
// Same measurement as ../shared/bench/ref_aim.py, so the two can run side by side.
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
#include "aim/train/optimizer.h"

int main(int argc, char** argv) {
  CLI::App app{"Time AIM pre-training steps (forward + backward + AdamW) of a configurable model"};
  std::string preset = "aim-small-32";
  aim::model::ModelConfig over;
  int64_t img = 0, patch = 0, channels = 0, width = 0, depth = 0, heads = 0, head_width = 0, head_blocks = -1;
  int64_t batch = 64, steps = 10, warmup = 2, threads = 0;
  double peak_gflops = 225.0;  // fp32 ceiling of the 2-core build machine (OpenBLAS)
  std::string attention = "prefix";
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
  app.add_option("--peak-gflops", peak_gflops, "Peak FLOP/s (GFLOP/s) for MFU")->capture_default_str();
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
    torch::manual_seed(0);
    aim::model::AimPretrainModel model(cfg);
    auto opt = aim::train::make_adamw(*model, {});
    auto params = model->parameters();
    auto x = torch::randn({batch, cfg.channels, cfg.img_size, cfg.img_size});
    auto gen = at::detail::createCPUGenerator(0);

    std::vector<double> times;
    double loss = 0;
    for (int64_t step = 0; step < warmup + steps; ++step) {
      auto t0 = std::chrono::steady_clock::now();
      auto prefix = aim::model::sample_prefix_lengths(batch, cfg.num_tokens(), cfg.attention, gen);
      auto out = model->forward(x, prefix);
      aim::train::clear_gradients(*opt);
      out.loss.mean.backward();
      torch::nn::utils::clip_grad_norm_(params, 1.0);
      opt->step();
      loss = out.loss.mean.item<double>();
      if (step >= warmup) times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
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
                          {"gflops_per_s", img_s * flops.training() / 1e9},
                          {"mfu", img_s * flops.training() / (peak_gflops * 1e9)},
                          {"loss", loss},
                          {"threads", at::get_num_threads()},
                          {"torch", aim::compat::torch_version()}};
    std::cout << out.dump() << std::endl;
  } catch (const aim::Error& e) {
    std::cerr << "aim-bench-model: " << e.what() << std::endl;
    return 2;
  }
  return 0;
}
