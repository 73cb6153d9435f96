// run_probe: the probe grid on a frozen (or LoRA-adapted) trunk, from loaders to the report.
// Its pieces live beside it: head_grid.* (the heads, one step, evaluation passes), knn_bank.*
// (the kNN's training bank), probe_outputs.* (results.json, probe file, LoRA and hub exports),
// saved_probe.* (what a saved probe carries).
#include "aim/probe/probe_runner.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "aim/error.h"
#include "aim/io/tensorboard_writer.h"
#include "aim/model/lora.h"
#include "aim/model/model_stats.h"
#include "aim/optim/optimizer.h"
#include "aim/probe/class_labels.h"
#include "aim/probe/feature_extractor.h"
#include "aim/probe/probe_loaders.h"
#include "aim/runtime/device.h"
#include "aim/stopwatch.h"
#include "head_grid.h"
#include "knn_bank.h"
#include "probe_outputs.h"
#include "saved_probe.h"

namespace fs = std::filesystem;

namespace aim::probe {
namespace {


struct ClassPlan {
  int64_t classes = 0;
  std::vector<std::string> names;  // probe.train's
  LabelMap val;                    // probe.val's labels onto probe.train's classes
};

/// The class count (probe.classes, else probe.train's), the names, and how probe.val's labels
/// map onto them: by class name where both splits name their classes, else by position with
/// equal counts (fewer in probe.val with probe.class_match=subset or position).
ClassPlan plan_classes(const config::RunConfig& cfg, const data::Loader& train, const data::Loader& val) {
  const auto& pc = cfg.probe;
  const int64_t from_train = train.source_classes().at(0), from_val = val.source_classes().at(0);
  ClassPlan plan;
  plan.classes = pc.classes > 0 ? pc.classes : from_train;
  if (plan.classes <= 0)
    throw Error("probe.classes: probe.train (" + pc.train_data->kind +
                ") does not say how many classes it has; set probe.classes");
  if (pc.classes > 0 && from_train > 0 && from_train != pc.classes)
    throw Error("probe.classes: set to " + std::to_string(pc.classes) + " but probe.train has " +
                std::to_string(from_train) + " classes");
  plan.names = split_class_names(pc.train_data);
  const auto val_names = split_class_names(pc.val_data);
  plan.val = match_classes(plan.names, "probe.train", val_names, "probe.val", pc.class_match);
  const bool by_name = !plan.names.empty() && !val_names.empty() && pc.class_match != "position";
  if (!by_name && from_val > 0 && (from_val > plan.classes || (from_val < plan.classes && pc.class_match == "names")))
    throw Error("probe.val has " + std::to_string(from_val) + " classes but probe.train has " +
                std::to_string(plan.classes) + "; both splits must share one label set" +
                (from_val < plan.classes ? " (probe.class_match=subset evaluates on a subset of the classes)" : ""));
  return plan;
}

/// Features of this rank's share of `loader`, kept in memory (CPU), or an Error past cache_gb.
std::pair<torch::Tensor, torch::Tensor> cache_features(FeatureExtractor& fx, data::Loader& loader, int64_t classes,
                                                       double cache_gb, int rank) {
  std::vector<torch::Tensor> feats, labels;
  double bytes = 0;
  const double per_sample = 4.0 * static_cast<double>(fx.tokens() * fx.dim());
  while (auto batch = loader.next()) {
    detail::check_labels(batch->labels, classes, "probe.train");
    feats.push_back(fx(batch->images).cpu());
    labels.push_back(batch->labels);
    bytes += per_sample * batch->size();
    if (bytes > cache_gb * 1e9)
      throw Error("probe.cache_gb: the features of probe.train exceed " + std::to_string(cache_gb) + " GB on rank " +
                  std::to_string(rank) + "; raise probe.cache_gb, or set probe.augment=true with probe.epoch_size to "
                  "recompute features every step");
  }
  if (feats.empty()) throw Error("probe.train: no samples on rank " + std::to_string(rank));
  return {torch::cat(feats), torch::cat(labels)};
}

}  // namespace

std::string probe_out_dir(const config::RunConfig& cfg) {
  return cfg.probe.out_dir.empty() ? (fs::path(cfg.train.out_dir) / "probe").string() : cfg.probe.out_dir;
}

ProbeReport run_probe(const config::RunConfig& cfg, const dist::DistEnv& env, dist::Communicator* comm,
                      const std::string& weights_override) {
  const auto t_start = SteadyClock::now();
  const auto& pc = cfg.probe;
  const torch::Device device = runtime::select_device(cfg.train.device, env.local_rank);
  const int world = comm ? comm->world_size() : 1, rank = comm ? comm->rank() : 0;
  const bool log = rank == 0;

  FeatureExtractor fx(cfg, device, weights_override);
  data::Loader val(detail::val_loader_config(cfg, env));
  const bool lora = pc.lora_rank > 0;
  const bool live = pc.augment || lora;  // augmented views and LoRA need the trunk every step
  const bool holdout = pc.select_fraction > 0;
  // probe.train without its held-out part (by sample index, the same on every rank).
  auto train_loader = std::make_unique<data::Loader>(probe_training_loader(
      cfg, pc.augment ? TrainView::kAugmented : live ? TrainView::kCentreCrops : TrainView::kCachePass, rank, world));
  const ClassPlan plan = plan_classes(cfg, *train_loader, val);
  const int64_t classes = plan.classes;
  const int64_t per_rank = pc.batch_size / world;

  // Feature cache: one ordered pass of the trunk over the training split, reused every epoch.
  const double bytes_per_sample = 4.0 * static_cast<double>(fx.tokens() * fx.dim());
  const int64_t split_size = train_loader->source_sizes().at(0);  // -1 for streaming sources
  const bool cached = !live && pc.cache_gb > 0 &&
                      (split_size < 0 || split_size / world * bytes_per_sample <= pc.cache_gb * 1e9);
  if (!live && !cached && log)
    spdlog::info("probe: features of {} samples need {:.1f} GB per rank, above probe.cache_gb={}; recomputing them "
                 "every step (center crops)",
                 split_size, split_size / world * bytes_per_sample / 1e9, pc.cache_gb);
  torch::Tensor cache, cache_labels;
  int64_t train_samples = split_size;
  if (cached) {
    const auto t0 = SteadyClock::now();
    std::tie(cache, cache_labels) = cache_features(fx, *train_loader, classes, pc.cache_gb, rank);
    train_samples = cache.size(0);
    if (comm) train_samples = static_cast<int64_t>(comm->all_reduce_sum_host({static_cast<double>(train_samples)}).at(0));
    if (log)
      spdlog::info("probe: cached features of {} training images ({} x {} per image, {:.2f} GB per rank) in {:.1f} s",
                   train_samples, fx.tokens(), fx.dim(), cache.numel() * 4.0 / 1e9, seconds_since(t0));
  } else if (!live) {
    // Features above probe.cache_gb: recomputed every step from endless centre crops.
    train_loader = std::make_unique<data::Loader>(probe_training_loader(cfg, TrainView::kCentreCrops, rank, world));
  }
  if (holdout && log)
    spdlog::info("probe: {:g} % of probe.train held out by sample index (seed {}) to choose the head; never trained on",
                 100 * pc.select_fraction, pc.seed);
  const int64_t epoch_size = pc.epoch_size > 0 ? pc.epoch_size : train_samples;
  if (epoch_size <= 0)
    throw Error("probe.epoch_size: probe.train is a streaming source of unknown size; set probe.epoch_size");
  const int64_t steps_per_epoch = std::max<int64_t>(1, epoch_size / pc.batch_size);
  const int64_t total_steps = steps_per_epoch * pc.epochs;

  std::vector<detail::GridHead> grid = detail::make_grid(pc, fx.dim(), fx.heads(), classes, device);
  // LoRA: its tensors train jointly with the (single) head, on the same schedule.
  const std::vector<torch::Tensor> lora_params = fx.lora_parameters();
  std::unique_ptr<torch::optim::AdamW> lora_opt;
  const double lora_peak = pc.lora_lr > 0 ? pc.lora_lr : pc.lrs.at(0);
  if (lora) {
    optim::OptimConfig oc;
    oc.lr = lora_peak;
    oc.weight_decay = pc.weight_decays.at(0);
    oc.beta1 = pc.beta1;
    oc.beta2 = pc.beta2;
    oc.eps = pc.eps;
    lora_opt = optim::make_adamw(lora_params, {}, oc);
    const int64_t lora_count = model::lora_parameters(cfg.model, pc.lora_rank);
    const int64_t trunk_count = model::count_parameters(cfg.model).trunk;
    if (log)
      spdlog::info("probe: LoRA rank {} (alpha {}) on q, v and proj of {} blocks: {} trainable parameters, {:.3f} % "
                   "of the trunk's {}; lr {}",
                   pc.lora_rank, pc.lora_alpha, cfg.model.depth, lora_count, 100.0 * lora_count / trunk_count,
                   trunk_count, lora_peak);
  }
  if (log)
    spdlog::info("probe: {} {} head(s) on {} ({}), {} classes, {} epochs x {} steps of {} images{}; AdamW betas ({}, "
                 "{}) eps {}{}",
                 grid.size(), pc.kind, fx.source(), pc.features == "pixels" ? "raw pixels" : "blocks " + pc.blocks,
                 classes, pc.epochs, steps_per_epoch, pc.batch_size, cached ? ", cached features" : "", pc.beta1,
                 pc.beta2, pc.eps, pc.grad_clip > 0 ? fmt::format(", clip {}", pc.grad_clip) : std::string());

  const detail::GridStep train_step{pc, total_steps, lora_params, lora_opt.get(), lora_peak, comm};
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
  auto t_window = SteadyClock::now();
  int64_t window_images = 0;
  torch::Tensor perm;
  for (int64_t step = 0; step < total_steps; ++step) {
    const int64_t epoch = step / steps_per_epoch, in_epoch = step % steps_per_epoch;
    if (in_epoch == 0)
      for (auto& g : grid)
        g.loss_sum = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(device)), g.loss_count = 0;
    torch::Tensor feats, labels;
    if (cached) {
      if (in_epoch == 0) perm = detail::epoch_permutation(cache.size(0), pc.seed, epoch, rank);
      auto pos = (torch::arange(in_epoch * per_rank, (in_epoch + 1) * per_rank) % perm.size(0));
      auto rows = perm.index_select(0, pos);
      feats = cache.index_select(0, rows).to(device);
      labels = cache_labels.index_select(0, rows).to(device);
    } else {
      auto batch = train_loader->next();
      if (!batch) throw Error("probe.train: the training stream ended");
      detail::check_labels(batch->labels, classes, "probe.train");
      feats = lora ? fx.trainable(batch->images) : fx(batch->images);
      labels = batch->labels.to(device);
    }
    train_step(grid, feats, labels, step);
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
      t_window = SteadyClock::now();
      window_images = 0;
    }
  }

  // Evaluation: the held-out part of probe.train (choosing), then probe.val (reporting) with
  // the kNN beside the heads; both on centre crops of the trunk as trained.
  std::vector<ProbeHead> heads;
  for (auto& g : grid) {
    detail::sync_buffers(g.head, comm);
    heads.push_back(g.head);
  }
  ProbeReport report;
  report.class_names = plan.names;
  report.selection = holdout ? "train_holdout" : grid.size() > 1 ? "val" : "none";
  torch::Tensor select_sums;
  if (holdout) {
    data::Loader held(probe_holdout_loader(cfg, rank, world));
    select_sums = detail::evaluate_loader(heads, fx, held, LabelMap{}, classes, nullptr, device, comm,
                                          "probe.train (held out)")
                      .heads;
    report.select_samples = static_cast<int64_t>(select_sums[0][3].item<double>());
    if (report.select_samples == 0)
      throw Error("probe.select_fraction: no sample of probe.train was held out; use a larger split or fraction, or 0 "
                  "to choose the head on probe.val");
  }
  std::unique_ptr<KnnClassifier> knn;
  if (pc.knn.k > 0) {
    const auto t0 = SteadyClock::now();
    detail::Rows bank;
    if (cached) {
      bank = {knn_pooled(cache).to(device), cache_labels.to(device)};  // pooled on the host: [N, d], not [N, K, d]
    } else {
      data::Loader pass(probe_training_loader(cfg, TrainView::kCachePass, rank, world));
      bank = detail::pooled_pass(fx, pass, classes, "probe.train");
    }
    knn = detail::make_knn(bank, classes, pc.knn.k, pc.knn.temperature, comm);
    report.knn = {knn->k(), pc.knn.temperature, 0, 0, knn->size()};
    if (log) spdlog::info("probe: kNN bank of {} training images in {:.1f} s", knn->size(), seconds_since(t0));
  }
  cache = torch::Tensor();
  const auto sums = detail::evaluate_loader(heads, fx, val, plan.val, classes, knn.get(), device, comm, "probe.val");
  report.val_samples = sums.samples();
  if (report.val_samples == 0) throw Error("probe.val: no samples to evaluate");
  if (knn) {
    report.knn.top1 = sums.knn[0].item<double>() / report.val_samples;
    report.knn.top5 = sums.knn[1].item<double>() / report.val_samples;
  }
  for (size_t i = 0; i < grid.size(); ++i) {
    const double n = sums.heads[i][3].item<double>();
    HeadResult r;
    r.lr = grid[i].lr;
    r.weight_decay = grid[i].weight_decay;
    r.train_loss = grid[i].mean_loss();
    r.val_loss = sums.heads[i][0].item<double>() / n;
    r.top1 = sums.heads[i][1].item<double>() / n;
    r.top5 = sums.heads[i][2].item<double>() / n;
    if (select_sums.defined()) {
      const double m = select_sums[i][3].item<double>();
      r.select_loss = select_sums[i][0].item<double>() / m;
      r.select_top1 = select_sums[i][1].item<double>() / m;
    }
    report.heads.push_back(r);
    // Chosen on the held-out part of probe.train when there is one, so the top-1 reported
    // on probe.val is not a maximum taken on probe.val.
    const auto& b = report.heads[report.best];
    const bool better = select_sums.defined() ? r.select_top1 > b.select_top1 ||
                                                    (r.select_top1 == b.select_top1 && r.select_loss < b.select_loss)
                                              : r.top1 > b.top1 || (r.top1 == b.top1 && r.val_loss < b.val_loss);
    if (better) report.best = i;
  }
  const auto [lr_lo, lr_hi] = std::minmax_element(pc.lrs.begin(), pc.lrs.end());
  const double best_lr = report.heads[report.best].lr;
  report.lr_at_edge = pc.lrs.size() > 1 && (best_lr == *lr_lo || best_lr == *lr_hi);
  if (report.lr_at_edge && log)
    spdlog::warn("probe: the best head's lr {} is the {} of probe.lrs ({} .. {}): the best lr may lie outside the grid; "
                 "widen probe.lrs past it",
                 best_lr, best_lr == *lr_lo ? "smallest" : "largest", *lr_lo, *lr_hi);
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
    if (knn) scalars.insert(scalars.end(), {{"knn/top1", report.knn.top1}, {"knn/top5", report.knn.top5}});
    tb->add_scalars(total_steps, scalars);
  }
  if (rank == 0) detail::write_probe_outputs({cfg, report, fx, grid[report.best].head, lora_peak, world});
  return report;
}

}  // namespace aim::probe
