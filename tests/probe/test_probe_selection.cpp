// The probe's recipe around the heads: the learning-rate grid's edge, kNN beside the heads,
// and the probe's own AdamW settings (betas, eps, clipping), not pre-training's.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "../../src/probe/head_grid.h"
#include "aim/config/run_config.h"
#include "aim/data/loader.h"
#include "aim/probe/knn.h"
#include "aim/probe/probe_loaders.h"
#include "aim/probe/probe_runner.h"
#include "test_util.h"

using namespace aim;

namespace {

config::RunConfig pixel_probe(const test::TempDir& dir, const std::vector<std::string>& extra) {
  std::vector<std::string> o = {"probe.train={kind: idx, split: train, limit: 1500}",
                                "probe.val={kind: idx, split: test, limit: 500}",
                                "probe.features=pixels",
                                "probe.kind=linear",
                                "probe.epochs=2",
                                "probe.batch_size=100",
                                "probe.out_dir=" + dir.file("probe")};
  o.insert(o.end(), extra.begin(), extra.end());
  return config::config_from_yaml_string(
      "model: {preset: aim-fmnist-tiny, depth: 2}\n"
      "data: {sources: [{kind: synthetic}], workers: 1}\n"
      "train: {device: cpu, out_dir: " + dir.file("run") + "}\n",
      o, "test");
}

}  // namespace

// Every loader a probe run trains from leaves the held-out images out, whatever the path
// (cached features, augmentation, features above cache_gb, LoRA), and the selection pass reads
// exactly them (data/holdout.h: the two sides partition the split).
TEST(ProbeSelection, EveryTrainingPathHoldsOutTheImagesTheHeadIsChosenOn) {
  test::TempDir dir;
  const auto cfg = pixel_probe(dir, {"probe.seed=4"});
  using probe::TrainView;
  for (auto view : {TrainView::kCachePass, TrainView::kCentreCrops, TrainView::kAugmented}) {
    const auto lc = probe::probe_training_loader(cfg, view, 0, 1);
    EXPECT_EQ(lc.holdout.fraction, 0.1);
    EXPECT_EQ(lc.holdout.seed, 4u);
    EXPECT_FALSE(lc.holdout.held);
    EXPECT_EQ(lc.train, view != TrainView::kCachePass);
    EXPECT_EQ(lc.augment.eval_view, view == TrainView::kCentreCrops);
  }
  const auto held = probe::probe_holdout_loader(cfg, 0, 1);
  EXPECT_TRUE(held.holdout.held);
  EXPECT_EQ(held.holdout.fraction, 0.1);
  EXPECT_FALSE(held.train);
  EXPECT_FALSE(probe::probe_training_loader(pixel_probe(dir, {"probe.select_fraction=0"}), TrainView::kAugmented, 0, 1)
                   .holdout.on());
}

TEST(ProbeSelection, BestLrAtTheGridsEdgeIsFlagged) {
  test::TempDir dir;
  // A grid of two: whichever wins sits on an edge.
  auto r = probe::run_probe(pixel_probe(dir, {"probe.lrs=[1.0e-7, 1.0e-6]", "probe.knn.k=0"}), {}, nullptr);
  EXPECT_TRUE(r.lr_at_edge);
  auto results = nlohmann::json::parse(std::ifstream(dir.file("probe/results.json")));
  EXPECT_TRUE(results["lr_at_edge"].get<bool>());
  EXPECT_NE(probe::format_probe_report(r, pixel_probe(dir, {}).probe).find("edge of probe.lrs"), std::string::npos);
  // A grid that brackets the optimum is not flagged; one lr chooses nothing and is not either.
  r = probe::run_probe(pixel_probe(dir, {"probe.lrs=[1.0e-7, 1.0e-2, 1.0e+3]", "probe.knn.k=0"}), {}, nullptr);
  EXPECT_EQ(r.best, 1u);
  EXPECT_FALSE(r.lr_at_edge);
  r = probe::run_probe(pixel_probe(dir, {"probe.lrs=[1.0e-2]", "probe.knn.k=0"}), {}, nullptr);
  EXPECT_FALSE(r.lr_at_edge);
}

// kNN on the same features, reported beside the heads: equal to the classifier run by hand on
// the probe's training pixels (no hold-out here, so the bank is all of probe.train).
TEST(ProbeKnn, KnnBesideTheHeadsEqualsTheClassifierOnTheSameFeatures) {
  test::TempDir dir;
  auto cfg = pixel_probe(dir, {"probe.lrs=[1.0e-2]", "probe.select_fraction=0", "probe.knn.k=10",
                               "probe.knn.temperature=0.1"});
  auto r = probe::run_probe(cfg, {}, nullptr);
  EXPECT_EQ(r.knn.k, 10);
  EXPECT_EQ(r.knn.bank, 1500);
  EXPECT_GT(r.knn.top1, 0.6);  // chance is 0.1

  auto pass = [&](bool train) {
    data::Loader l(config::probe_loader_config(cfg, train, false, 0, 1));
    std::vector<torch::Tensor> x, y;
    while (auto b = l.next()) {
      x.push_back(data::normalize_images(b->images, torch::kCPU, data::channel_mean(1), data::channel_std(1)).flatten(1));
      y.push_back(b->labels);
    }
    return std::make_pair(torch::cat(x), torch::cat(y));
  };
  auto [bx, by] = pass(true);
  auto [qx, qy] = pass(false);
  probe::KnnClassifier knn(bx, by, 10, 10, 0.1);
  const double top1 = knn.scores(qx).argmax(1).eq(qy).to(torch::kDouble).mean().item<double>();
  EXPECT_NEAR(r.knn.top1, top1, 1e-12);
  auto results = nlohmann::json::parse(std::ifstream(dir.file("probe/results.json")));
  EXPECT_NEAR(results["knn"]["top1"].get<double>(), top1, 1e-12);
  EXPECT_EQ(results["knn"]["k"].get<int64_t>(), 10);
  EXPECT_NE(probe::format_probe_report(r, cfg.probe).find("kNN, k=10"), std::string::npos);

  r = probe::run_probe(pixel_probe(dir, {"probe.lrs=[1.0e-2]", "probe.knn.k=0"}), {}, nullptr);
  EXPECT_EQ(r.knn.k, 0);
  results = nlohmann::json::parse(std::ifstream(dir.file("probe/results.json")));
  EXPECT_FALSE(results.contains("knn"));
}

TEST(ProbeOptim, TheProbesBetasEpsAndClippingReachItsHeads) {
  config::ProbeConfig pc;
  EXPECT_EQ(pc.beta2, 0.999);  // a probe's default, not pre-training's 0.95
  pc.lrs = {1e-2};
  pc.weight_decays = {0};  // decay would move the weights whatever the gradient
  pc.beta1 = 0.8;
  pc.beta2 = 0.99;
  pc.eps = 1e-6;
  auto grid = probe::detail::make_grid(pc, 6, 1, 3, torch::kCPU);
  for (auto& group : grid[0].opt->param_groups()) {
    const auto& o = static_cast<const torch::optim::AdamWOptions&>(group.options());
    EXPECT_EQ(std::get<0>(o.betas()), 0.8);
    EXPECT_EQ(std::get<1>(o.betas()), 0.99);
    EXPECT_EQ(o.eps(), 1e-6);
  }
  // Clipping: with a tiny max norm the gradients shrink far below AdamW's eps, so one step
  // barely moves the head; unclipped, the same step moves it by about the lr.
  auto moved = [&](double clip) {
    config::ProbeConfig c = pc;
    c.kind = "linear";
    c.warmup = 0;
    c.grad_clip = clip;
    auto g = probe::detail::make_grid(c, 6, 1, 3, torch::kCPU);
    g[0].loss_sum = torch::zeros({}, torch::kFloat64);
    auto before = g[0].head->parameters()[0].clone();
    torch::manual_seed(1);
    auto feats = torch::randn({8, 1, 6});
    auto labels = torch::randint(0, 3, {8}, torch::kLong);
    probe::detail::GridStep{c, 10, {}, nullptr, 0, nullptr}(g, feats, labels, 0);
    return (g[0].head->parameters()[0] - before).abs().max().item<double>();
  };
  const double free = moved(0), clipped = moved(1e-12);
  EXPECT_GT(free, 1e-3);
  EXPECT_LT(clipped, free * 1e-2);
}
