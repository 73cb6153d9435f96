#include "aim/probe/probe_runner.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "aim/data/image_folder_source.h"
#include "aim/data/loader.h"
#include "aim/data/rng.h"
#include "aim/data/sample_transform.h"
#include "aim/error.h"
#include "aim/io/atomic_file.h"
#include "aim/io/safetensors.h"
#include "aim/io/tensorboard_writer.h"
#include "aim/model/hub_config.h"
#include "aim/model/layer_selection.h"
#include "aim/model/model_stats.h"
#include "aim/model/trunk_weights.h"
#include "aim/probe/feature_extractor.h"
#include "aim/probe/hub_export.h"
#include "aim/probe/probe_head.h"
#include "aim/runtime/device.h"
#include "aim/optim/optimizer.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace aim::probe {
namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

/// The class count: probe.classes, else what the training split says; the evaluation split
/// must agree when it knows its own.
int64_t resolve_classes(const config::RunConfig& cfg, const data::Loader& train, const data::Loader& val) {
  const int64_t from_train = train.source_classes().at(0), from_val = val.source_classes().at(0);
  int64_t classes = cfg.probe.classes > 0 ? cfg.probe.classes : from_train;
  if (classes <= 0)
    throw Error("probe.classes: probe.train (" + cfg.probe.train_data->kind +
                ") does not say how many classes it has; set probe.classes");
  if (cfg.probe.classes > 0 && from_train > 0 && from_train != cfg.probe.classes)
    throw Error("probe.classes: set to " + std::to_string(cfg.probe.classes) + " but probe.train has " +
                std::to_string(from_train) + " classes");
  if (from_val > 0 && from_val != classes)
    throw Error("probe.val has " + std::to_string(from_val) + " classes but probe.train has " +
                std::to_string(classes) + "; both splits must share one label set");
  return classes;
}

void check_labels(const torch::Tensor& labels, int64_t classes, const std::string& split) {
  if (labels.numel() == 0) return;
  const int64_t lo = labels.min().item<int64_t>(), hi = labels.max().item<int64_t>();
  if (lo < 0 || hi >= classes)
    throw Error(split + ": label " + std::to_string(lo < 0 ? lo : hi) + " is outside [0, " +
                std::to_string(classes) + ") (unlabelled samples, or set probe.classes)");
}

/// Deterministic shuffle of [0, n) for (seed, epoch, rank), independent of torch's global RNG.
torch::Tensor epoch_permutation(int64_t n, uint64_t seed, int64_t epoch, int rank) {
  std::vector<int64_t> idx(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) idx[i] = i;
  data::Rng rng(data::hash_key(seed, 0x70726f6265ull, static_cast<uint64_t>(epoch), static_cast<uint64_t>(rank)));
  for (int64_t i = n - 1; i > 0; --i) std::swap(idx[i], idx[rng.next() % static_cast<uint64_t>(i + 1)]);
  return torch::tensor(idx, torch::kLong);
}

struct GridHead {
  double lr, weight_decay;
  ProbeHead head{nullptr};
  std::unique_ptr<torch::optim::AdamW> opt;
  torch::Tensor loss_sum;  // on the device: read only when logging, no sync per step
  int64_t loss_count = 0;
  double mean_loss() const { return loss_count > 0 ? loss_sum.item<double>() / loss_count : 0.0; }
};

/// Adds one batch's loss sum, top-1 and top-5 hits and sample count per head to acc [H, 4].
void accumulate_batch(std::vector<ProbeHead>& heads, const torch::Tensor& feats, const torch::Tensor& labels,
                      int64_t classes, torch::Tensor& acc) {
  const int64_t k5 = std::min<int64_t>(5, classes);
  for (size_t i = 0; i < heads.size(); ++i) {
    auto logits = heads[i]->forward(feats).to(torch::kFloat);
    auto loss = torch::nn::functional::cross_entropy(
        logits, labels, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
    auto top = std::get<1>(logits.topk(k5, 1));
    auto hit = top.eq(labels.unsqueeze(1));
    acc[i] += torch::stack({loss.to(torch::kFloat64), hit.narrow(1, 0, 1).any(1).sum().to(torch::kFloat64),
                            hit.any(1).sum().to(torch::kFloat64),
                            torch::scalar_tensor(static_cast<double>(labels.size(0)), acc.options())});
  }
}

/// Loss sum, top-1 and top-5 hits, sample count per head: [H, 4] float64, summed over ranks.
torch::Tensor evaluate_heads(std::vector<ProbeHead>& heads, FeatureExtractor& fx, data::Loader& val,
                             int64_t classes, torch::Device device, dist::Communicator* comm,
                             int64_t* samples_out) {
  torch::NoGradGuard no_grad;
  for (auto& h : heads) h->eval();
  // Sums stay on the device; one copy to the host after the pass.
  auto acc = torch::zeros({static_cast<int64_t>(heads.size()), 4}, torch::TensorOptions().dtype(torch::kFloat64).device(device));
  while (auto batch = val.next()) {
    check_labels(batch->labels, classes, "probe.val");
    accumulate_batch(heads, fx(batch->images), batch->labels.to(device), classes, acc);
  }
  if (comm) comm->all_reduce_sum_now(acc);
  acc = acc.cpu();
  if (samples_out) *samples_out = static_cast<int64_t>(acc[0][3].item<double>());
  return acc;
}

/// evaluate_heads over cached features (the held-out part of probe.train), in batches of `batch`.
torch::Tensor evaluate_cached(std::vector<ProbeHead>& heads, const torch::Tensor& feats, const torch::Tensor& labels,
                              int64_t batch, int64_t classes, torch::Device device, dist::Communicator* comm) {
  torch::NoGradGuard no_grad;
  for (auto& h : heads) h->eval();
  auto acc = torch::zeros({static_cast<int64_t>(heads.size()), 4}, torch::TensorOptions().dtype(torch::kFloat64).device(device));
  for (int64_t i = 0; i < feats.size(0); i += batch) {
    const int64_t n = std::min(batch, feats.size(0) - i);
    accumulate_batch(heads, feats.narrow(0, i, n).to(device), labels.narrow(0, i, n).to(device), classes, acc);
  }
  if (comm) comm->all_reduce_sum_now(acc);
  return acc.cpu();
}

/// Every rank evaluates with rank 0's batch norm statistics (the weights already agree:
/// same seed, averaged gradients).
void sync_buffers(ProbeHead& head, dist::Communicator* comm) {
  if (!comm) return;
  torch::NoGradGuard no_grad;
  for (auto& b : head->buffers()) comm->broadcast(b, 0);
}

/// Averages all heads' gradients (and the LoRA tensors', when the trunk adapts) over ranks
/// in one flat all-reduce (probe heads and LoRA tensors are small).
void average_gradients(std::vector<GridHead>& grid, const std::vector<torch::Tensor>& lora,
                       dist::Communicator* comm) {
  if (!comm) return;
  std::vector<torch::Tensor> grads;
  for (auto& g : grid)
    for (auto& p : g.head->parameters())
      if (p.grad().defined()) grads.push_back(p.grad());
  for (const auto& p : lora)
    if (p.grad().defined()) grads.push_back(p.grad());
  auto flat = torch::cat([&] {
    std::vector<torch::Tensor> v;
    for (auto& t : grads) v.push_back(t.reshape({-1}));
    return v;
  }());
  comm->all_reduce_sum_now(flat);
  flat.div_(comm->world_size());
  int64_t off = 0;
  for (auto& t : grads) {
    t.copy_(flat.narrow(0, off, t.numel()).view_as(t));
    off += t.numel();
  }
}

std::string join_blocks(const std::vector<int64_t>& blocks) {
  std::string out;
  for (int64_t b : blocks) out += (out.empty() ? "" : ",") + std::to_string(b);
  return out;
}

/// The config a saved probe is applied with: the features and trunk blocks it was trained on
/// (its file's metadata) replace the configured ones, which would feed it other features;
/// a note names both when they differ. Files without that metadata (official heads) keep the
/// configured values.
config::RunConfig with_probe_file_features(const config::RunConfig& cfg, const std::string& probe_path, bool log) {
  config::RunConfig c = cfg;
  // A saved probe is applied to the trunk it was trained with: never a fresh LoRA on top.
  c.probe.lora_rank = 0;
  if (model::is_hub_dir(probe_path) && c.probe.features == "trunk") {
    // A hub directory's head was trained on its config.json's probe_layers.
    std::string layers;
    for (int64_t b : model::read_hub_config(probe_path).probe_layers) layers += (layers.empty() ? "" : ",") + std::to_string(b);
    if (layers != cfg.probe.blocks && log)
      spdlog::warn("hub directory '{}' was trained on trunk blocks {}; using them (probe.blocks={})", probe_path, layers,
                   cfg.probe.blocks);
    c.probe.blocks = layers;
    if (cfg.probe.weights != probe_path) {  // ... and belongs to the trunk stored next to it
      if (log) spdlog::warn("hub directory '{}' holds its own trunk; using it (probe.weights={})", probe_path, cfg.probe.weights);
      c.probe.weights = probe_path;
    }
    return c;
  }
  if (!fs::is_regular_file(probe_path)) return c;  // load_probe names the missing file
  const auto meta = io::read_safetensors_metadata(probe_path);
  auto get = [&](const char* key) {
    auto it = meta.find(key);
    return it == meta.end() ? std::string() : it->second;
  };
  // A LoRA run's head belongs to the adapted trunk (its merged export), not to probe.weights.
  const std::string adapted = get("adapted_trunk");
  if (!adapted.empty() && adapted != cfg.probe.weights) {
    if (!fs::exists(adapted))
      throw Error("probe file '" + probe_path + "' was trained with LoRA on the trunk saved as '" + adapted +
                  "', which no longer exists");
    if (log)
      spdlog::warn("probe file '{}' was trained with LoRA; using its adapted trunk {} (probe.weights={})", probe_path,
                   adapted, cfg.probe.weights);
    c.probe.weights = adapted;
  }
  const std::string features = get("features");
  if (!features.empty() && features != cfg.probe.features) {
    if (log)
      spdlog::warn("probe file '{}' was trained on features={}; using them (the config says probe.features={})",
                   probe_path, features, cfg.probe.features);
    c.probe.features = features;
  }
  if (c.probe.features != "trunk") return c;
  std::string blocks = get("block_indices");  // resolved indices; "blocks" is the spec as configured
  if (blocks.empty()) blocks = get("blocks");
  if (blocks.empty()) return c;
  const auto trained = model::select_blocks(blocks, c.model,
                                            "probe file '" + probe_path + "' blocks");
  std::vector<int64_t> configured;
  try {
    configured = model::select_blocks(cfg.probe.blocks, cfg.model);
  } catch (const Error&) {
  }
  if (trained != configured && log)
    spdlog::warn("probe file '{}' was trained on trunk blocks {}; using them (probe.blocks={} would give {})",
                 probe_path, join_blocks(trained), cfg.probe.blocks,
                 configured.empty() ? std::string("no valid blocks") : join_blocks(configured));
  c.probe.blocks = join_blocks(trained);
  return c;
}

data::LoaderConfig val_loader_config(const config::RunConfig& cfg, const dist::DistEnv& env) {
  return config::probe_loader_config(cfg, /*train_split=*/false, /*augment=*/false, env.rank, env.world_size);
}

}  // namespace

std::string probe_out_dir(const config::RunConfig& cfg) {
  return cfg.probe.out_dir.empty() ? (fs::path(cfg.train.out_dir) / "probe").string() : cfg.probe.out_dir;
}

std::vector<std::string> class_names(const config::RunConfig& cfg) {
  for (const auto* split : {&cfg.probe.val_data, &cfg.probe.train_data})
    if (*split && (*split)->kind == "image_folder" && fs::is_directory((*split)->root))
      return data::ImageFolderSource((*split)->root).classes();
  return {};
}

ProbeReport run_probe(const config::RunConfig& cfg, const dist::DistEnv& env, dist::Communicator* comm,
                      const std::string& weights_override) {
  const auto t_start = Clock::now();
  const auto& pc = cfg.probe;
  const torch::Device device = runtime::select_device(cfg.train.device, env.local_rank);
  const int world = comm ? comm->world_size() : 1, rank = comm ? comm->rank() : 0;
  const bool log = rank == 0;

  FeatureExtractor fx(cfg, device, weights_override);
  data::Loader val(val_loader_config(cfg, env));
  const bool lora = pc.lora_rank > 0;
  const bool live = pc.augment || lora;  // augmented views and LoRA need the trunk every step
  auto train_loader = std::make_unique<data::Loader>(config::probe_loader_config(cfg, true, live, rank, world));
  const int64_t classes = resolve_classes(cfg, *train_loader, val);
  const int64_t per_rank = pc.batch_size / world;

  // Feature cache: one ordered pass of the trunk over the training split, reused every epoch.
  const double bytes_per_sample = 4.0 * static_cast<double>(fx.tokens() * fx.dim());
  const int64_t split_size = train_loader->source_sizes().at(0);  // -1 for streaming sources
  bool cached = !live && pc.cache_gb > 0 &&
                (split_size < 0 || split_size / world * bytes_per_sample <= pc.cache_gb * 1e9);
  if (!live && !cached && log)
    spdlog::info("probe: features of {} samples need {:.1f} GB per rank, above probe.cache_gb={}; recomputing them "
                 "every step (center crops)",
                 split_size, split_size / world * bytes_per_sample / 1e9, pc.cache_gb);
  torch::Tensor cache, cache_labels;
  torch::Tensor select_cache, select_labels;  // probe.select_fraction's held-out rows
  int64_t train_samples = split_size;
  if (cached) {
    std::vector<torch::Tensor> feats, labels;
    double bytes = 0;
    const auto t0 = Clock::now();
    while (auto batch = train_loader->next()) {
      check_labels(batch->labels, classes, "probe.train");
      feats.push_back(fx(batch->images).cpu());
      labels.push_back(batch->labels);
      bytes += bytes_per_sample * batch->size();
      if (bytes > pc.cache_gb * 1e9)
        throw Error("probe.cache_gb: the features of probe.train exceed " + std::to_string(pc.cache_gb) +
                    " GB on rank " + std::to_string(rank) + "; raise probe.cache_gb, or set probe.augment=true with "
                    "probe.epoch_size to recompute features every step");
    }
    if (feats.empty()) throw Error("probe.train: no samples on rank " + std::to_string(rank));
    cache = torch::cat(feats);
    cache_labels = torch::cat(labels);
    feats.clear();
    if (pc.select_fraction > 0) {
      // A seeded share of this rank's rows is held out to choose the best head (never
      // trained on); "epoch" -1 keeps the draw apart from the training shuffles.
      const int64_t n = cache.size(0), held = static_cast<int64_t>(pc.select_fraction * static_cast<double>(n));
      if (held < 1 || held >= n)
        throw Error("probe.select_fraction: " + std::to_string(pc.select_fraction) + " of the " + std::to_string(n) +
                    " training samples on rank " + std::to_string(rank) + " holds out " + std::to_string(held) +
                    "; use a larger split or fraction, or 0 to choose the head on probe.val");
      const auto order = epoch_permutation(n, pc.seed, -1, rank);
      const auto kept = std::get<0>(order.narrow(0, held, n - held).sort());
      const auto select_rows = std::get<0>(order.narrow(0, 0, held).sort());
      select_cache = cache.index_select(0, select_rows);
      select_labels = cache_labels.index_select(0, select_rows);
      cache = cache.index_select(0, kept);
      cache_labels = cache_labels.index_select(0, kept);
    }
    train_samples = cache.size(0);
    if (comm) train_samples = static_cast<int64_t>(comm->all_reduce_sum_host({static_cast<double>(train_samples)}).at(0));
    if (log)
      spdlog::info("probe: cached features of {} training images ({} x {} per image, {:.2f} GB per rank) in {:.1f} s{}",
                   train_samples, fx.tokens(), fx.dim(), cache.numel() * 4.0 / 1e9, seconds_since(t0),
                   select_cache.defined() ? fmt::format("; {:g} % of each rank's share held out to choose the head",
                                                        100 * pc.select_fraction)
                                          : std::string());
  } else {
    // A fresh loader in train mode (shuffled, endless) showing the view the cached path and
    // evaluation see: the centre crop, unflipped.
    if (pc.select_fraction > 0 && pc.lrs.size() * pc.weight_decays.size() > 1 && log)
      spdlog::warn("probe: no feature cache, so no held-out part of probe.train (probe.select_fraction applies to "
                   "cached features): the best head is chosen on probe.val and reported there");
    if (!pc.augment) {
      auto lc = config::probe_loader_config(cfg, true, true, rank, world);
      lc.augment.eval_view = true;
      train_loader = std::make_unique<data::Loader>(lc);
    }
  }
  const int64_t epoch_size = pc.epoch_size > 0 ? pc.epoch_size : train_samples;
  if (epoch_size <= 0)
    throw Error("probe.epoch_size: probe.train is a streaming source of unknown size; set probe.epoch_size");
  const int64_t steps_per_epoch = std::max<int64_t>(1, epoch_size / pc.batch_size);
  const int64_t total_steps = steps_per_epoch * pc.epochs;

  // The grid: identical initial heads (seeded), one AdamW each.
  std::vector<GridHead> grid;
  for (double lr : pc.lrs)
    for (double wd : pc.weight_decays) {
      torch::manual_seed(pc.seed);
      GridHead g{lr, wd, ProbeHead(pc.kind, fx.dim(), fx.heads(), classes), nullptr, torch::Tensor(), 0};
      g.head->to(device);
      optim::OptimConfig oc;
      oc.lr = lr;
      oc.weight_decay = wd;
      g.opt = optim::make_adamw(*g.head, oc);
      grid.push_back(std::move(g));
    }
  // LoRA: its tensors train jointly with the (single) head, on the same schedule.
  const std::vector<torch::Tensor> lora_params = fx.lora_parameters();
  std::unique_ptr<torch::optim::AdamW> lora_opt;
  const double lora_peak = pc.lora_lr > 0 ? pc.lora_lr : pc.lrs.at(0);
  const int64_t lora_count = model::lora_parameters(cfg.model, pc.lora_rank);
  const int64_t trunk_count = model::count_parameters(cfg.model).trunk;
  if (lora) {
    optim::OptimConfig oc;
    oc.lr = lora_peak;
    oc.weight_decay = pc.weight_decays.at(0);
    lora_opt = optim::make_adamw(lora_params, {}, oc);
    if (log)
      spdlog::info("probe: LoRA rank {} (alpha {}) on q, v and proj of {} blocks: {} trainable parameters, {:.3f} % "
                   "of the trunk's {}; lr {}",
                   pc.lora_rank, pc.lora_alpha, cfg.model.depth, lora_count, 100.0 * lora_count / trunk_count,
                   trunk_count, lora_peak);
  }
  if (log)
    spdlog::info("probe: {} {} head(s) on {} ({}), {} classes, {} epochs x {} steps of {} images{}", grid.size(),
                 pc.kind, fx.source(), pc.features == "pixels" ? "raw pixels" : "blocks " + pc.blocks, classes,
                 pc.epochs, steps_per_epoch, pc.batch_size, cached ? ", cached features" : "");

  const auto ce_options =
      torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(pc.label_smoothing);
  optim::OptimConfig schedule;
  schedule.warmup = pc.warmup;
  schedule.warmup_start = 0;
  const int64_t log_every = std::max<int64_t>(1, total_steps / 10);
  // train.tensorboard: the probe's curves in <probe out_dir>/tb/, head i as results.json's
  // heads[i]. A probe run starts over, so an earlier run's events there go first, as its
  // results.json is replaced.
  std::unique_ptr<io::TensorBoardWriter> tb;
  if (cfg.train.tensorboard && log) {
    const auto tb_dir = (fs::path(probe_out_dir(cfg)) / "tb").string();
    io::truncate_event_files(tb_dir, 0);
    tb = std::make_unique<io::TensorBoardWriter>(tb_dir);
    tb->add_session_start(1);
  }
  auto head_tag = [](size_t i, const char* what) { return "head_" + std::to_string(i) + "/" + what; };
  auto t_window = Clock::now();
  int64_t window_images = 0;
  torch::Tensor perm;
  for (int64_t step = 0; step < total_steps; ++step) {
    const int64_t epoch = step / steps_per_epoch, in_epoch = step % steps_per_epoch;
    if (in_epoch == 0)
      for (auto& g : grid) g.loss_sum = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(device)), g.loss_count = 0;
    torch::Tensor feats, labels;
    if (cached) {
      if (in_epoch == 0) perm = epoch_permutation(cache.size(0), pc.seed, epoch, rank);
      auto pos = (torch::arange(in_epoch * per_rank, (in_epoch + 1) * per_rank) % perm.size(0));
      auto rows = perm.index_select(0, pos);
      feats = cache.index_select(0, rows).to(device);
      labels = cache_labels.index_select(0, rows).to(device);
    } else {
      auto batch = train_loader->next();
      if (!batch) throw Error("probe.train: the training stream ended");
      check_labels(batch->labels, classes, "probe.train");
      feats = lora ? fx.trainable(batch->images) : fx(batch->images);
      labels = batch->labels.to(device);
    }
    for (auto& g : grid) {
      g.head->train();
      schedule.lr = g.lr;
      optim::set_learning_rate(*g.opt, optim::learning_rate(step, total_steps, schedule));
      optim::clear_gradients(*g.opt);
      auto loss = torch::nn::functional::cross_entropy(g.head->forward(feats), labels, ce_options);
      loss.backward();
      g.loss_sum += loss.detach().to(torch::kFloat64);
      ++g.loss_count;
    }
    if (lora_opt) {
      schedule.lr = lora_peak;
      optim::set_learning_rate(*lora_opt, optim::learning_rate(step, total_steps, schedule));
    }
    average_gradients(grid, lora_params, comm);
    for (auto& g : grid) g.opt->step();
    if (lora_opt) {
      lora_opt->step();
      optim::clear_gradients(*lora_opt);
    }
    window_images += pc.batch_size;
    if (log && ((step + 1) % log_every == 0 || step + 1 == total_steps)) {
      double lo = 1e30, hi = 0;
      for (auto& g : grid) {
        const double l = g.mean_loss();
        lo = std::min(lo, l), hi = std::max(hi, l);
      }
      const double img_s = window_images / seconds_since(t_window);
      spdlog::info("probe step {}/{} (epoch {}/{}) | train loss {:.4f}..{:.4f} over {} heads | {:.0f} img/s", step + 1,
                   total_steps, epoch + 1, pc.epochs, lo, hi, grid.size(), img_s);
      if (tb) {
        std::vector<std::pair<std::string, double>> scalars = {{"img_per_s", img_s}};
        for (size_t i = 0; i < grid.size(); ++i) scalars.emplace_back(head_tag(i, "train_loss"), grid[i].mean_loss());
        tb->add_scalars(step + 1, scalars);
      }
      t_window = Clock::now();
      window_images = 0;
    }
  }
  cache = torch::Tensor();

  std::vector<ProbeHead> heads;
  for (auto& g : grid) {
    sync_buffers(g.head, comm);
    heads.push_back(g.head);
  }
  ProbeReport report;
  torch::Tensor select_acc;
  if (select_cache.defined()) {
    select_acc = evaluate_cached(heads, select_cache, select_labels, per_rank, classes, device, comm);
    select_cache = torch::Tensor();
    report.selection = "train_holdout";
    report.select_samples = static_cast<int64_t>(select_acc[0][3].item<double>());
  }
  auto acc = evaluate_heads(heads, fx, val, classes, device, comm, &report.val_samples);
  if (report.val_samples == 0) throw Error("probe.val: no samples to evaluate");
  for (size_t i = 0; i < grid.size(); ++i) {
    const double n = acc[i][3].item<double>();
    HeadResult r;
    r.lr = grid[i].lr;
    r.weight_decay = grid[i].weight_decay;
    r.train_loss = grid[i].mean_loss();
    r.val_loss = acc[i][0].item<double>() / n;
    r.top1 = acc[i][1].item<double>() / n;
    r.top5 = acc[i][2].item<double>() / n;
    if (select_acc.defined()) {
      const double m = select_acc[i][3].item<double>();
      r.select_loss = select_acc[i][0].item<double>() / m;
      r.select_top1 = select_acc[i][1].item<double>() / m;
    }
    report.heads.push_back(r);
    // Chosen on the held-out part of probe.train when there is one, so the top-1 reported
    // on probe.val is not a maximum taken on probe.val.
    const auto& b = report.heads[report.best];
    const bool better = select_acc.defined() ? r.select_top1 > b.select_top1 ||
                                                   (r.select_top1 == b.select_top1 && r.select_loss < b.select_loss)
                                             : r.top1 > b.top1 || (r.top1 == b.top1 && r.val_loss < b.val_loss);
    if (better) report.best = i;
  }
  report.classes = classes;
  report.train_samples = train_samples;
  report.steps = total_steps;
  report.cached = cached;
  report.weights = fx.source();
  report.out_dir = probe_out_dir(cfg);
  report.seconds = seconds_since(t_start);

  if (tb) {
    std::vector<std::pair<std::string, double>> scalars;
    for (size_t i = 0; i < report.heads.size(); ++i) {
      const auto& h = report.heads[i];
      scalars.insert(scalars.end(), {{head_tag(i, "val_loss"), h.val_loss}, {head_tag(i, "top1"), h.top1},
                                     {head_tag(i, "top5"), h.top5}});
    }
    const auto& b = report.heads[report.best];
    scalars.insert(scalars.end(), {{"best/train_loss", b.train_loss}, {"best/val_loss", b.val_loss},
                                   {"best/top1", b.top1}, {"best/top5", b.top5}});
    tb->add_scalars(total_steps, scalars);
  }
  if (rank == 0) {
    fs::create_directories(report.out_dir);
    const auto& best = report.heads[report.best];
    nlohmann::json heads_json = nlohmann::json::array();
    for (const auto& r : report.heads) {
      heads_json.push_back({{"lr", r.lr}, {"weight_decay", r.weight_decay}, {"train_loss", r.train_loss},
                            {"val_loss", r.val_loss}, {"top1", r.top1}, {"top5", r.top5}});
      if (r.select_top1 >= 0) heads_json.back().update({{"select_loss", r.select_loss}, {"select_top1", r.select_top1}});
    }
    nlohmann::json best_json = heads_json[report.best];
    best_json["index"] = report.best;
    nlohmann::json out = {{"weights", report.weights}, {"features", pc.features}, {"kind", pc.kind},
                          {"blocks", fx.blocks()}, {"classes", classes}, {"train_samples", train_samples},
                          {"val_samples", report.val_samples}, {"epochs", pc.epochs}, {"steps", total_steps},
                          {"batch_size", pc.batch_size}, {"cached_features", cached}, {"world_size", world},
                          {"seconds", report.seconds}, {"heads", heads_json}, {"best", best_json},
                          {"selection",
                           {{"split", report.selection},
                            {"fraction", report.selection == "val" ? 0.0 : pc.select_fraction},
                            {"samples", report.selection == "val" ? report.val_samples : report.select_samples},
                            {"note", report.selection == "val"
                                         ? "best head chosen on probe.val, the split its top1 is reported on"
                                         : "best head chosen on a held-out part of probe.train; top1 is on probe.val"}}},
                          {"config", config::to_yaml(cfg)}};
    std::map<std::string, std::string> probe_meta = {
        {"features", pc.features}, {"blocks", pc.blocks}, {"block_indices", join_blocks(fx.blocks())},
        {"lr", std::to_string(best.lr)}, {"weight_decay", std::to_string(best.weight_decay)},
        {"top1", std::to_string(best.top1)}, {"trunk", report.weights}};
    if (lora) {
      // The adapted trunk twice: with its LoRA tensors in loralib's names (loads strictly into
      // the official LoraAttention), and merged into plain weights (any trunk loader).
      const std::map<std::string, std::string> lora_meta = {{"lora_rank", std::to_string(pc.lora_rank)},
                                                            {"lora_alpha", fmt::format("{}", pc.lora_alpha)},
                                                            {"base_trunk", report.weights}};
      const std::string merged = fs::absolute(fs::path(report.out_dir) / "trunk.safetensors").string();
      model::export_trunk((fs::path(report.out_dir) / "lora_trunk.safetensors").string(), *fx.encoder(), lora_meta);
      model::export_trunk_tensors(merged, model::merged_trunk_tensors(fx.encoder()), lora_meta);
      probe_meta.insert(lora_meta.begin(), lora_meta.end());
      probe_meta["adapted_trunk"] = merged;
      out["lora"] = {{"rank", pc.lora_rank},       {"alpha", pc.lora_alpha},
                     {"lr", lora_peak},            {"parameters", lora_count},
                     {"trunk_parameters", trunk_count}, {"merged_trunk", merged}};
    }
    io::write_file_atomic((fs::path(report.out_dir) / "results.json").string(), out.dump(2) + "\n");
    save_probe((fs::path(report.out_dir) / "probe.safetensors").string(), grid[report.best].head, fx.heads(),
               probe_meta);
    if (!pc.export_hub.empty()) {
      HubCard card;
      card.trunk = lora ? report.weights + " + LoRA rank " + std::to_string(pc.lora_rank) + " (merged)" : report.weights;
      card.data = "train " + pc.train_data->kind + " (" + std::to_string(train_samples) + " images), val " +
                  pc.val_data->kind + " (" + std::to_string(report.val_samples) + " images)";
      card.recipe = fmt::format("{} epochs, batch {}, AdamW lr {} wd {}, warmup {}{}{}", pc.epochs, pc.batch_size,
                                best.lr, best.weight_decay, pc.warmup, pc.augment ? ", RandomResizedCrop + flip" : "",
                                lora ? fmt::format(", LoRA rank {} alpha {} lr {}", pc.lora_rank, pc.lora_alpha, lora_peak)
                                     : std::string());
      card.top1 = best.top1;
      card.val_samples = report.val_samples;
      const io::NamedTensors trunk = model::merged_trunk_tensors(fx.encoder());
      export_hub(pc.export_hub, cfg.model, trunk, grid[report.best].head, fx.blocks(), card);
      spdlog::info("probe: hub model directory written to {}", pc.export_hub);
    }
  }
  return report;
}

EvalReport evaluate_saved_probe(const config::RunConfig& configured, const dist::DistEnv& env,
                                dist::Communicator* comm, const std::string& probe_path) {
  const config::RunConfig cfg = with_probe_file_features(configured, probe_path, env.rank == 0);
  const torch::Device device = runtime::select_device(cfg.train.device, env.local_rank);
  FeatureExtractor fx(cfg, device);
  std::map<std::string, std::string> meta;
  ProbeHead head = load_probe(probe_path, fx.heads(), &meta);
  if (head->dim() != fx.dim())
    throw Error("probe file '" + probe_path + "' expects features of width " + std::to_string(head->dim()) +
                " but the configured " + (cfg.probe.features == "pixels" ? "pixels give " : "trunk gives ") +
                std::to_string(fx.dim()));
  data::Loader val(val_loader_config(cfg, env));
  int64_t data_classes = cfg.probe.classes > 0 ? cfg.probe.classes : val.source_classes().at(0);
  if (data_classes > 0 && data_classes != head->classes())
    throw Error("probe file '" + probe_path + "' classifies " + std::to_string(head->classes()) +
                " classes but probe.val has " + std::to_string(data_classes));
  head->to(device, torch::kFloat);
  std::vector<ProbeHead> heads = {head};
  EvalReport r;
  auto acc = evaluate_heads(heads, fx, val, head->classes(), device, comm, &r.samples);
  if (r.samples == 0) throw Error("probe.val: no samples to evaluate");
  r.loss = acc[0][0].item<double>() / r.samples;
  r.top1 = acc[0][1].item<double>() / r.samples;
  r.top5 = acc[0][2].item<double>() / r.samples;
  r.classes = head->classes();
  return r;
}

void export_hub_from_files(const config::RunConfig& configured, const std::string& probe_path, const std::string& dir) {
  const config::RunConfig cfg = with_probe_file_features(configured, probe_path, true);
  if (cfg.probe.features != "trunk")
    throw Error("--export-hub: probe file '" + probe_path + "' was trained on features=" + cfg.probe.features +
                "; a hub model directory needs a trunk");
  if (cfg.probe.weights == "random" || cfg.probe.weights.empty())
    throw Error("--export-hub: probe.weights must name trunk weights (a file or directory), got '" +
                cfg.probe.weights + "'");
  const auto blocks = model::select_blocks(cfg.probe.blocks, cfg.model, "probe.blocks");
  model::AimEncoder encoder(cfg.model);
  const std::string source = model::load_trunk_weights(encoder, cfg.probe.weights);
  ProbeHead head = load_probe(probe_path, cfg.model.heads);
  HubCard card;
  card.trunk = source;
  card.recipe = "probe file " + probe_path;
  const auto meta = io::read_safetensors_metadata(probe_path);
  if (auto it = meta.find("top1"); it != meta.end()) {
    try {
      card.top1 = std::stod(it->second);
    } catch (const std::exception&) {
    }
  }
  export_hub(dir, cfg.model, model::merged_trunk_tensors(encoder), head, blocks, card);
}

std::vector<Prediction> predict_folder(const config::RunConfig& configured, const std::string& probe_path,
                                       const std::string& dir, int topk) {
  if (!fs::is_directory(dir)) throw Error("--predict: '" + dir + "' is not a directory");
  const config::RunConfig cfg = with_probe_file_features(configured, probe_path, true);
  const torch::Device device = runtime::select_device(cfg.train.device, 0);
  FeatureExtractor fx(cfg, device);
  ProbeHead head = load_probe(probe_path, fx.heads());
  if (head->dim() != fx.dim())
    throw Error("probe file '" + probe_path + "' expects features of width " + std::to_string(head->dim()) +
                ", the configured model gives " + std::to_string(fx.dim()));
  head->to(device, torch::kFloat);
  head->eval();

  // A folder of images, or a labelled split (<class>/<image>); other files are counted and
  // reported as training and `aim-data pack` do, not tried as images.
  const data::ImageListing listing = data::list_image_files(dir);
  if (listing.skipped > 0) spdlog::warn("--predict: {}", data::skipped_note(listing));
  const std::vector<std::string>& files = listing.images;

  data::TransformConfig tc;
  tc.img_size = static_cast<int>(cfg.model.img_size);
  tc.channels = static_cast<int>(cfg.model.channels);
  tc.train = false;
  tc.augment = cfg.data.augment;
  data::SampleTransform transform(tc);

  std::vector<Prediction> out;
  torch::NoGradGuard no_grad;
  for (const auto& f : files) {
    Prediction p;
    p.file = f;
    data::RawSample raw;
    raw.where = f;
    std::ifstream in(f, std::ios::binary);
    raw.bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    auto img = torch::empty({1, tc.channels, tc.img_size, tc.img_size}, torch::kUInt8);
    std::string why;
    if (raw.bytes.empty()) {
      p.error = "empty file";
    } else if (!transform.apply(raw, 0, img.data_ptr<uint8_t>(), &why)) {
      p.error = why.empty() ? "not a readable image" : why;
    } else {
      auto probs = torch::softmax(head->forward(fx(img)).to(torch::kFloat), 1)[0].cpu();
      auto [values, indices] = probs.topk(std::min<int64_t>(topk, probs.size(0)));
      for (int64_t i = 0; i < values.size(0); ++i)
        p.top.emplace_back(indices[i].item<int64_t>(), values[i].item<double>());
    }
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace aim::probe
