#include "aim/train/trainer.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <sstream>
#include <thread>

#include "aim/compat.h"
#include "aim/dist/communicator.h"
#include "aim/dist/gradient_sync.h"
#include "aim/error.h"
#include "aim/io/atomic_file.h"
#include "aim/io/safetensors.h"
#include "aim/io/state_dict.h"
#include "aim/model/aim_pretrain.h"
#include "aim/model/model_stats.h"
#include "aim/model/trunk_weights.h"
#include "aim/train/checkpoint.h"
#include "aim/runtime/device.h"
#include "aim/train/metrics_log.h"
#include "aim/optim/optimizer.h"
#include "aim/train/prefix_sampler.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace aim::train {
namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const auto t = static_cast<int64_t>(s);
  std::ostringstream o;
  if (t >= 3600) o << t / 3600 << "h" << (t % 3600) / 60 << "m";
  else if (t >= 60) o << t / 60 << "m" << t % 60 << "s";
  else o << t << "s";
  return o.str();
}

double peak_rss_gb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / (1024.0 * 1024.0);
}

}  // namespace

double peak_flops(const config::RunConfig& cfg, bool cuda) {
  if (cfg.train.peak_tflops > 0) return cfg.train.peak_tflops * 1e12;
  if (cuda) return 0;
  torch::NoGradGuard ng;
  auto a = torch::randn({1024, 1024}), b = torch::randn({1024, 1024});
  torch::mm(a, b);  // warm up BLAS threads
  auto t0 = Clock::now();
  int n = 0;
  while (seconds_since(t0) < 0.3 || n < 2) {
    torch::mm(a, b);
    ++n;
  }
  return 2.0 * 1024 * 1024 * 1024 * n / seconds_since(t0);
}

std::string describe_run(const config::RunConfig& cfg, int world_size) {
  const auto& m = cfg.model;
  const auto p = model::count_parameters(m);
  const auto f = model::count_flops(m);
  const int64_t accum = cfg.train.batch_size / std::max<int64_t>(1, cfg.train.micro_batch_size * world_size);
  std::ostringstream o;
  o.setf(std::ios::fixed);
  o.precision(3);
  o << "model " << m.preset << ": " << m.img_size << "px, patch " << m.patch_size << ", " << m.num_tokens()
    << " tokens, width " << m.width << ", depth " << m.depth << ", heads " << m.heads << " (head dim "
    << m.head_dim() << "), attention " << model::to_string(m.attention) << ", order " << m.order << "\n"
    << "  parameters: trunk " << p.trunk / 1e6 << " M, pre-training head " << p.pretrain_head / 1e6 << " M ("
    << m.head_blocks << " x " << m.head_width << "), total " << p.total() / 1e6 << " M\n"
    << "  FLOPs per image: forward " << f.forward() / 1e9 << " G (head " << 100.0 * f.head_forward / f.forward()
    << " %), training " << f.training() / 1e9 << " G (executed, head on loss tokens only: "
    << f.executed_training() / 1e9 << " G)\n"
    << "  batch: global " << cfg.train.batch_size << " = micro " << cfg.train.micro_batch_size << " x ranks "
    << world_size << " x accumulation " << accum << "\n"
    << "  steps " << cfg.train.steps << ", images seen " << static_cast<double>(cfg.train.steps) * cfg.train.batch_size
    << ", training FLOPs " << static_cast<double>(cfg.train.steps) * cfg.train.batch_size * f.training() << "\n";
  o << "  data:";
  for (const auto& s : cfg.data.sources) o << " " << s.name << " (" << s.kind << ", weight " << s.weight << ")";
  o << (cfg.data.val ? ", val " + cfg.data.val->name : std::string(", no validation")) << "\n";
  return o.str();
}

dist::ConnectOptions connect_options(const config::RunConfig& cfg, const torch::Device& device) {
  dist::ConnectOptions o;
  o.device = device;
  o.timeout = std::chrono::seconds(cfg.train.dist_timeout_s);
  return o;
}

void export_final_trunk(const config::RunConfig& cfg, const torch::nn::Module& net, int64_t step,
                        const std::string& path, int rank, dist::Communicator* comm) {
  // Every rank holds the same weights, so each knows the digest the file must carry.
  const std::string digest = parameter_digest(net);
  if (rank == 0) {
    model::export_trunk(path, net,
                        {{"preset", cfg.model.preset}, {"config", config::to_yaml(cfg)},
                         {"trained_steps", std::to_string(step)}, {"parameter_digest", digest}});
    spdlog::info("trunk exported to {} (official naming)", path);
  }
  if (!comm) return;
  // No rank reads the trunk (probe.at_end) before rank 0 has renamed it into place, and
  // every rank must see that very file: a node without the shared filesystem, or with a
  // stale copy from an earlier run, stops here instead of probing other weights.
  comm->barrier();
  std::string seen;
  try {
    const auto meta = io::read_safetensors_metadata(path);
    auto it = meta.find("parameter_digest");
    seen = it == meta.end() ? "(no digest)" : it->second;
  } catch (const std::exception& e) {
    seen = std::string("(unreadable: ") + e.what() + ")";
  }
  const auto ok = comm->all_gather_host(seen == digest ? 1 : 0);
  std::string bad;
  for (size_t r = 0; r < ok.size(); ++r)
    if (!ok[r]) bad += (bad.empty() ? "" : " ") + std::to_string(r);
  if (!bad.empty())
    throw Error("rank(s) " + bad + " do not see the trunk rank 0 just wrote to " + path +
                (seen == digest ? "" : " (this rank read " + seen + ")") +
                "; train.out_dir must be on a filesystem every node shares");
}

TrainSummary run_training(const config::RunConfig& cfg_in, const dist::DistEnv& env, dist::Communicator* comm) {
  config::RunConfig cfg = cfg_in;
  config::validate(cfg, env.world_size);
  const auto& tc = cfg.train;
  const auto& mc = cfg.model;

  // Device and precision.
  const torch::Device device = runtime::select_device(tc.device, env.local_rank);
  runtime::pin_current_device(device);  // before any CUDA work: this rank's GPU, not GPU 0
  const bool cuda = device.is_cuda();
  const bool bf16 = cuda && tc.precision == "bf16";
  if (!cuda && tc.precision == "bf16" && env.rank == 0)
    spdlog::info("train.precision=bf16 applies on CUDA; training in fp32 on CPU");
  // threads=0 keeps LibTorch's default: more OpenMP threads spin-wait and slow OpenBLAS's
  // GEMM threads on CPU (see docs/benchmarks.md).
  if (tc.threads > 0) at::set_num_threads(tc.threads);

  std::unique_ptr<dist::Communicator> owned_comm;
  if (env.distributed() && !comm) {
    owned_comm = dist::connect(env, connect_options(cfg, device));
    comm = owned_comm.get();
  }
  if (comm) comm->check_same_on_all_ranks(config::fingerprint(cfg), "the resolved config");

  const int64_t K = mc.num_tokens();
  const int64_t GB = tc.batch_size, micro = tc.micro_batch_size;
  const int64_t accum = GB / (micro * env.world_size);
  if (env.rank == 0) {
    fs::create_directories(tc.out_dir);
    io::write_file_atomic((fs::path(tc.out_dir) / "config.yaml").string(), config::to_yaml(cfg));
    spdlog::info("resolved config:\n{}", config::to_yaml(cfg));
    spdlog::info("{}", describe_run(cfg, env.world_size));
  }

  torch::manual_seed(tc.seed);
  model::AimPretrainModel net(mc);
  net->to(device);
  std::vector<torch::Tensor> params = net->parameters();
  auto opt = optim::make_adamw(*net, cfg.optim);

  CheckpointManager ckpt(tc.out_dir, env.rank, env.world_size, static_cast<int>(tc.keep_checkpoints),
                         config::run_identity(cfg));
  data::Loader loader(config::loader_config(cfg, true, env.rank, env.world_size));

  TrainSummary summary;
  int64_t step = 0;
  int64_t skipped_total = 0;
  auto apply_loader = [&](const nlohmann::json& j) { loader.load_state(j.get<data::LoaderState>()); };
  if (auto rp = ckpt.restore_latest(*net, *opt, tc.resume == "force", apply_loader, comm)) {
    step = rp->step;
    summary.resumed_from = step;
    skipped_total = rp->meta.value("skipped_steps", int64_t(0));
    if (env.rank == 0)
      spdlog::info("resumed from {} (step {}){}", rp->path, step,
                   rp->foreign ? " written by a different config (train.resume=force)" : "");
  }
  // Identical weights on every rank: after the restore (or the seeded initialisation) rank 0's
  // are broadcast, and the restored state is confirmed by digest, so a rank that resumed
  // differently cannot go on silently.
  if (comm) {
    torch::NoGradGuard ng;
    if (summary.resumed_from >= 0)
      comm->check_same_on_all_ranks(parameter_digest(*net), "the restored weights (step " + std::to_string(step) + ")");
    for (auto& p : params) comm->broadcast(p, 0);
  }
  std::unique_ptr<dist::GradientSync> grad_sync;
  if (comm) grad_sync = std::make_unique<dist::GradientSync>(params, *comm);
  std::unique_ptr<MetricsLog> metrics;
  if (env.rank == 0) metrics = std::make_unique<MetricsLog>((fs::path(tc.out_dir) / "metrics.jsonl").string(), step);

  const auto flops = model::count_flops(mc);
  const double peak = peak_flops(cfg, cuda) * env.world_size;
  const auto mean = data::channel_mean(mc.channels), stdv = data::channel_std(mc.channels);

  auto forward_loss = [&](const data::Batch& batch, uint64_t prefix_seed) {
    auto images = data::normalize_images(batch.images, device, mean, stdv);
    // Host prefix: the model reads it on the CPU (loss rows, mask bounds) with no GPU sync.
    auto prefix = prefix_lengths(prefix_seed, batch.index, K, mc.attention);
    if (bf16) compat::set_cuda_autocast(true, at::kBFloat16);
    auto out = net->forward(images, prefix, model::HeadTokens::kLossOnly);
    if (bf16) {
      compat::set_cuda_autocast(false, at::kBFloat16);
      compat::clear_autocast_cache();
    }
    return out.loss;
  };

  // Validation covers the first val_batches x micro_batch_size images of the held-out pass
  // (all of it when val_batches = 0), split over ranks by position, so the number is the
  // same whatever the world size. Prefixes are keyed by position with their own seed.
  auto validate_now = [&]() -> double {
    if (!cfg.data.val) return -1;
    torch::NoGradGuard ng;
    data::Loader val(config::loader_config(cfg, false, env.rank, env.world_size));
    const int64_t limit = tc.val_batches > 0 ? tc.val_batches * micro : std::numeric_limits<int64_t>::max();
    const int64_t stream_batches = tc.val_batches > 0 ? (tc.val_batches + env.world_size - 1) / env.world_size : -1;
    auto sum = torch::zeros({2}, torch::TensorOptions().dtype(torch::kFloat64).device(device));
    int64_t streamed = 0;  // streaming sources carry no position (index -1): count per rank
    for (int64_t b = 0;; ++b) {
      auto batch = val.next();
      if (!batch) break;
      auto idx = batch->index;
      auto positional = idx >= 0;
      auto keep = positional.logical_and(idx < limit).logical_or(positional.logical_not().logical_and(
          torch::full_like(positional, stream_batches < 0 || b < stream_batches)));
      if (!keep.any().item<bool>()) break;
      auto rows = keep.nonzero().view({-1});
      data::Batch part = *batch;
      part.images = batch->images.index_select(0, rows);
      part.index = torch::where(positional, idx, torch::arange(streamed, streamed + idx.numel()) + (int64_t(1) << 40))
                       .index_select(0, rows);
      streamed += idx.numel();
      auto terms = forward_loss(part, tc.seed ^ 0x76616cULL);
      sum[0] += terms.sum.detach().to(torch::kFloat64);
      sum[1] += terms.count.detach().to(torch::kFloat64);
    }
    if (comm) comm->all_reduce_sum_now(sum);
    auto host = sum.cpu();
    return host[0].item<double>() / std::max(1.0, host[1].item<double>());
  };

  auto save_checkpoint = [&](int64_t at_step) {
    nlohmann::json meta = {{"skipped_steps", skipped_total}, {"fingerprint", config::fingerprint(cfg)},
                           {"images_seen", at_step * GB}};
    nlohmann::json lstate = loader.state();
    ckpt.save(at_step, *net, *opt, lstate, meta, comm);
  };

  int64_t consecutive_bad = 0;
  double window_time = 0, window_wait = 0;
  int64_t window_steps = 0;
  auto run_start = Clock::now();
  const int64_t start_step = step;
  bool first_logged = false;

  while (step < tc.steps) {
    auto t_step = Clock::now();
    const double lr = optim::learning_rate(step, tc.steps, cfg.optim);
    optim::set_learning_rate(*opt, lr);
    optim::clear_gradients(*opt);
    const double global_kept = static_cast<double>(kept_targets(tc.seed, step * GB, GB, K, mc.attention));
    auto loss_sum = torch::zeros({2}, torch::TensorOptions().dtype(torch::kFloat64).device(device));
    double wait = 0;
    for (int64_t a = 0; a < accum; ++a) {
      auto t_wait = Clock::now();
      auto batch = loader.next();
      wait += seconds_since(t_wait);
      if (!batch) throw Error("training data ran out (a train-mode loader should never end)");
      auto terms = forward_loss(*batch, tc.seed);
      if (grad_sync && a == accum - 1) grad_sync->arm();  // reduce during the last backward only
      (terms.sum / global_kept).backward();
      loss_sum[0] += terms.sum.detach().to(torch::kFloat64);
      loss_sum[1] += terms.count.detach().to(torch::kFloat64);
    }
    if (comm) {
      grad_sync->finish();
      if (step == start_step && env.rank == 0)
        spdlog::info("gradient all-reduce: {} buckets, {} started during backward", grad_sync->num_buckets(),
                     grad_sync->overlapped_buckets());
      comm->all_reduce_sum_now(loss_sum);
    }
    const double clip = cfg.optim.grad_clip > 0 ? cfg.optim.grad_clip : std::numeric_limits<double>::infinity();
    const double grad_norm = torch::nn::utils::clip_grad_norm_(params, clip);
    auto ls = loss_sum.cpu();
    const double loss = ls[0].item<double>() / std::max(1.0, ls[1].item<double>());
    const bool finite = std::isfinite(loss) && std::isfinite(grad_norm);
    if (finite) {
      opt->step();
      consecutive_bad = 0;
    } else {
      ++consecutive_bad;
      ++skipped_total;
      if (env.rank == 0)
        spdlog::warn("step {}: non-finite loss ({}) or gradient norm ({}); update skipped ({} in a row)", step + 1,
                     loss, grad_norm, consecutive_bad);
      if (consecutive_bad >= tc.max_nonfinite)
        throw Error("stopping: " + std::to_string(consecutive_bad) +
                    " consecutive non-finite steps (train.max_nonfinite); the last good checkpoint in " +
                    ckpt.directory() + " is intact");
    }
    ++step;
    if (cuda) torch::cuda::synchronize(device.index());
    const double dt = seconds_since(t_step);
    window_time += dt;
    window_wait += wait;
    ++window_steps;
    if (!first_logged && finite) {
      summary.first_loss = loss;
      first_logged = true;
    }
    summary.last_loss = loss;

    if (step % tc.log_every == 0 || step == tc.steps) {
      const double img_s = static_cast<double>(GB * window_steps) / window_time;
      const double tflops = img_s * flops.executed_training() / 1e12;
      nlohmann::json rec = {{"step", step}, {"loss", loss}, {"lr", lr}, {"grad_norm", grad_norm},
                            {"img_per_s", img_s}, {"tflops", tflops},
                            {"mfu", peak > 0 ? nlohmann::json(img_s * flops.executed_training() / peak) : nlohmann::json(nullptr)},
                            {"data_wait", window_wait / window_time}, {"peak_mem_gb", peak_rss_gb()},
                            {"images_seen", step * GB}, {"skipped_steps", skipped_total}};
      if (metrics) metrics->write(rec);
      if (env.rank == 0) {
        const double eta = (tc.steps - step) * (seconds_since(run_start) / static_cast<double>(step - start_step));
        spdlog::info("step {}/{} | loss {:.4f} | lr {:.2e} | grad {:.3f} | {:.1f} img/s | mfu {} | data {:.0f}% | eta {}",
                     step, tc.steps, loss, lr, grad_norm, img_s,
                     peak > 0 ? fmt::format("{:.1f}%", 100 * img_s * flops.executed_training() / peak) : std::string("n/a"),
                     100 * window_wait / window_time, format_duration(eta));
        spdlog::info("data: {}", loader.summary());
      }
      window_time = window_wait = 0;
      window_steps = 0;
    }
    if (tc.val_every > 0 && (step % tc.val_every == 0 || step == tc.steps) && cfg.data.val) {
      const double val = validate_now();
      summary.last_val_loss = val;
      if (metrics) metrics->write({{"step", step}, {"val_loss", val}});
      if (env.rank == 0) spdlog::info("step {} | val_loss {:.4f}", step, val);
    }
    // Never checkpoint inside a streak of non-finite steps: the newest checkpoint stays the
    // last state that trained cleanly.
    if (consecutive_bad == 0 && ((tc.ckpt_every > 0 && step % tc.ckpt_every == 0) || step == tc.steps))
      save_checkpoint(step);
  }

  summary.trunk_path = (fs::path(tc.out_dir) / "trunk.safetensors").string();
  export_final_trunk(cfg, *net, step, summary.trunk_path, env.rank, comm);
  summary.steps_done = step;
  summary.skipped_steps = skipped_total;
  return summary;
}

}  // namespace aim::train
