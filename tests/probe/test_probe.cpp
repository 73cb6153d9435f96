// aim-probe: the probe grid learns, writes results.json and the best head in the official
// naming, evaluates a saved probe to the same numbers, refuses mismatched weights and class
// counts, resolves run directories and checkpoints, and runs data-parallel and from the CLI.
#include <gtest/gtest.h>
#include <spdlog/fmt/fmt.h>
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <map>
#include <set>

#include "aim/config/run_config.h"
#include "aim/data/loader.h"
#include "aim/error.h"
#include "aim/io/safetensors.h"
#include "aim/model/aim_encoder.h"
#include "aim/probe/probe_head.h"
#include "aim/probe/probe_runner.h"
#include "aim/model/trunk_weights.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace aim;

namespace {

const std::string kProbeBin = std::string(AIM_BIN_DIR) + "/aim-probe";

/// A probe config on small Fashion-MNIST slices (Debian's dataset-fashion-mnist).
config::RunConfig fmnist_probe(const test::TempDir& dir, const std::vector<std::string>& overrides = {}) {
  std::vector<std::string> o = {
      "probe.train={kind: idx, split: train, limit: 2000}",
      "probe.val={kind: idx, split: test, limit: 1000}",
      "probe.epochs=3",
      "probe.batch_size=100",
      "probe.out_dir=" + dir.file("probe"),
  };
  o.insert(o.end(), overrides.begin(), overrides.end());
  return config::config_from_yaml_string(
      "model: {preset: aim-fmnist-tiny, depth: 2}\n"
      "data: {sources: [{kind: synthetic}], workers: 1}\n"
      "train: {device: cpu, out_dir: " + dir.file("run") + "}\n",
      o, "test");
}

std::set<std::string> names_in(const std::string& file) {
  std::set<std::string> out;
  for (const auto& [n, t] : io::load_safetensors(file).tensors) out.insert(n);
  return out;
}

TEST(Probe, PixelLinearGridLearnsAndSavedProbeEvaluatesIdentically) {
  test::TempDir dir;
  auto cfg = fmnist_probe(dir, {"probe.features=pixels", "probe.kind=linear", "probe.lrs=[1.0e-3, 1.0e-2]",
                                "probe.weight_decays=[0, 0.05]"});
  config::validate_probe(cfg);
  auto r = probe::run_probe(cfg, {}, nullptr);
  ASSERT_EQ(r.heads.size(), 4u);  // lrs x weight decays, lrs outer
  EXPECT_DOUBLE_EQ(r.heads[1].lr, 1e-3);
  EXPECT_DOUBLE_EQ(r.heads[1].weight_decay, 0.05);
  EXPECT_EQ(r.classes, 10);
  // ~10 % held out by sample index to choose the head (probe.select_fraction), never trained on.
  EXPECT_EQ(r.train_samples + r.select_samples, 2000);
  EXPECT_NEAR(r.select_samples, 200, 40);
  EXPECT_EQ(r.val_samples, 1000);
  EXPECT_TRUE(r.cached);
  EXPECT_GT(r.heads[r.best].top1, 0.65);  // chance is 0.10; a pixel linear probe reaches ~0.8
  EXPECT_GE(r.heads[r.best].top5, r.heads[r.best].top1);

  auto results = nlohmann::json::parse(std::ifstream(dir.file("probe/results.json")));
  EXPECT_EQ(results["heads"].size(), 4u);
  EXPECT_EQ(results["best"]["index"].get<size_t>(), r.best);
  EXPECT_DOUBLE_EQ(results["best"]["top1"].get<double>(), r.heads[r.best].top1);
  EXPECT_EQ(results["val_samples"].get<int64_t>(), 1000);

  EXPECT_EQ(names_in(dir.file("probe/probe.safetensors")),
            (std::set<std::string>{"head.bn.running_mean", "head.bn.running_var", "head.bn.num_batches_tracked",
                                   "head.linear.weight", "head.linear.bias"}));
  auto e = probe::evaluate_saved_probe(cfg, {}, nullptr, dir.file("probe/probe.safetensors"));
  EXPECT_EQ(e.samples, 1000);
  EXPECT_NEAR(e.top1, r.heads[r.best].top1, 1e-12);
  EXPECT_NEAR(e.loss, r.heads[r.best].val_loss, 1e-5);
}

// A saved probe is evaluated and applied on the features it was trained on: its file's blocks
// win over the configured ones (here the default `last`, blocks 0-1 of a depth-2 trunk, versus
// block 0 at training), so --eval-only reproduces the training run's numbers; and evaluation
// needs no probe.train.
TEST(Probe, SavedProbeUsesTheBlocksItWasTrainedOnAndNeedsNoTrainSplit) {
  test::TempDir dir;
  const std::vector<std::string> small = {"probe.weights=random", "probe.kind=linear", "probe.lrs=[1.0e-2]",
                                          "probe.train={kind: idx, split: train, limit: 500}",
                                          "probe.val={kind: idx, split: test, limit: 200}", "probe.epochs=1"};
  auto trained_cfg = fmnist_probe(dir, small);
  trained_cfg.probe.blocks = "0";
  config::validate_probe(trained_cfg);
  auto r = probe::run_probe(trained_cfg, {}, nullptr);
  const auto meta = io::read_safetensors_metadata(dir.file("probe/probe.safetensors"));
  EXPECT_EQ(meta.at("block_indices"), "0");

  auto later = fmnist_probe(dir, small);  // probe.blocks: last (0,1 here)
  later.probe.train_data.reset();
  EXPECT_THROW(config::validate_probe(later), Error);  // training a probe needs probe.train
  EXPECT_NO_THROW(config::validate_probe(later, 1, true, /*needs_train_split=*/false));
  auto e = probe::evaluate_saved_probe(later, {}, nullptr, dir.file("probe/probe.safetensors"));
  EXPECT_NEAR(e.loss, r.heads[r.best].val_loss, 1e-5);
  EXPECT_NEAR(e.top1, r.heads[r.best].top1, 1e-12);

  // A file whose blocks do not exist in the configured trunk is refused, naming the file.
  auto out = fmnist_probe(dir, small);
  io::save_safetensors(dir.file("deep.safetensors"), io::load_safetensors(dir.file("probe/probe.safetensors")).tensors,
                       {{"features", "trunk"}, {"blocks", "5"}, {"block_indices", "5"}, {"probe_kind", "linear"}});
  try {
    probe::evaluate_saved_probe(out, {}, nullptr, dir.file("deep.safetensors"));
    ADD_FAILURE() << "blocks 5 of a depth-2 trunk accepted";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("deep.safetensors"), std::string::npos) << err.what();
  }
}

// The best head is chosen on a held-out part of probe.train, not on probe.val where it is
// reported (issue 17); probe.select_fraction=0 chooses on probe.val and says so.
TEST(Probe, BestHeadIsChosenOnAHeldOutPartOfTheTrainingSplit) {
  test::TempDir dir;
  const std::vector<std::string> grid = {"probe.features=pixels", "probe.kind=linear",
                                         "probe.lrs=[1.0e-4, 1.0e-3, 1.0e-2, 1.0e-1]", "probe.epochs=1"};
  auto cfg = fmnist_probe(dir, grid);
  auto r = probe::run_probe(cfg, {}, nullptr);
  EXPECT_EQ(r.selection, "train_holdout");
  EXPECT_NEAR(r.select_samples, 200, 40);
  EXPECT_EQ(r.train_samples, 2000 - r.select_samples);  // the held-out images are not trained on
  for (size_t i = 0; i < r.heads.size(); ++i) {
    const auto &h = r.heads[i], &b = r.heads[r.best];
    ASSERT_GE(h.select_top1, 0);
    EXPECT_TRUE(b.select_top1 > h.select_top1 || (b.select_top1 == h.select_top1 && b.select_loss <= h.select_loss))
        << "head " << i << " is better on the held-out split than the chosen head " << r.best;
  }
  auto results = nlohmann::json::parse(std::ifstream(dir.file("probe/results.json")));
  EXPECT_EQ(results["selection"]["split"], "train_holdout");
  EXPECT_EQ(results["selection"]["samples"].get<int64_t>(), r.select_samples);
  EXPECT_DOUBLE_EQ(results["heads"][r.best]["select_top1"].get<double>(), r.heads[r.best].select_top1);

  cfg.probe.select_fraction = 0;
  auto on_val = probe::run_probe(cfg, {}, nullptr);
  EXPECT_EQ(on_val.selection, "val");
  EXPECT_EQ(on_val.train_samples, 2000);
  for (const auto& h : on_val.heads) EXPECT_GE(on_val.heads[on_val.best].top1, h.top1);
  results = nlohmann::json::parse(std::ifstream(dir.file("probe/results.json")));
  EXPECT_EQ(results["selection"]["split"], "val");

  cfg.probe.select_fraction = 1.0;
  EXPECT_THROW(config::validate_probe(cfg), Error);
}

// Unnamed synthetic splits are two different data sets (a probe evaluated on its training
// images would report memorisation as accuracy).
TEST(Probe, UnnamedSyntheticSplitsDiffer) {
  test::TempDir dir;
  auto cfg = fmnist_probe(dir, {"probe.train={kind: synthetic, size: 8, classes: 2}",
                                "probe.val={kind: synthetic, size: 8, classes: 2}", "probe.batch_size=8"});
  ASSERT_NE(cfg.probe.train_data->name, cfg.probe.val_data->name);
  data::Loader train(config::probe_loader_config(cfg, true, false, 0, 1));
  data::Loader val(config::probe_loader_config(cfg, false, false, 0, 1));
  auto a = train.next(), b = val.next();
  ASSERT_TRUE(a && b);
  EXPECT_FALSE(torch::equal(a->images, b->images));
}

// The grid trains its heads independently: head (1e-3, 0.05) of a 2 x 2 grid ends exactly
// where the same head trained alone does (same seed, same batches, its own optimizer).
TEST(Probe, GridHeadEqualsTheSameHeadTrainedAlone) {
  test::TempDir dir;
  auto grid = probe::run_probe(fmnist_probe(dir, {"probe.features=pixels", "probe.kind=linear",
                                                  "probe.lrs=[1.0e-3, 1.0e-2]", "probe.weight_decays=[0, 0.05]",
                                                  "probe.epochs=1"}),
                               {}, nullptr);
  auto alone = probe::run_probe(fmnist_probe(dir, {"probe.features=pixels", "probe.kind=linear", "probe.lrs=[1.0e-3]",
                                                   "probe.weight_decays=[0.05]", "probe.epochs=1",
                                                   "probe.out_dir=" + dir.file("alone")}),
                                {}, nullptr);
  ASSERT_EQ(grid.heads.size(), 4u);
  ASSERT_EQ(alone.heads.size(), 1u);
  const auto &g = grid.heads[1], &a = alone.heads[0];
  EXPECT_EQ(g.top1, a.top1);
  EXPECT_EQ(g.top5, a.top5);
  EXPECT_NEAR(g.val_loss, a.val_loss, 1e-9 * a.val_loss);
  EXPECT_NEAR(g.train_loss, a.train_loss, 1e-9 * a.train_loss);
  EXPECT_NE(grid.heads[0].val_loss, g.val_loss) << "the weight decay made no difference: the test proves nothing";
}

// train.tensorboard: <probe out_dir>/tb/, read by the independent Python reader
// (tests/io/read_tfevents.py), holds each head's train loss at every logged step and its
// results.json numbers at the last step; a second run replaces the first's events rather than
// repeating their steps.
TEST(Probe, TensorBoardHoldsTheResultsAndARerunReplacesThem) {
  test::TempDir dir;
  auto cfg = fmnist_probe(dir, {"probe.features=pixels", "probe.kind=linear", "probe.lrs=[1.0e-3, 1.0e-2]",
                                "probe.epochs=2", "train.tensorboard=true"});
  config::validate_probe(cfg);
  probe::run_probe(cfg, {}, nullptr);
  probe::run_probe(cfg, {}, nullptr);
  const auto out = test::capture(std::string(AIM_PYTHON) + " " + AIM_SOURCE_DIR + "/tests/io/read_tfevents.py " +
                                 dir.file("probe/tb"));
  const auto exit_at = out.rfind("\n[exit ");
  const auto read = nlohmann::json::parse(out.substr(0, exit_at), nullptr, /*allow_exceptions=*/false);
  AIM_REQUIRE_DEPENDENCY(read.contains("files"), "python3 for tests/io/read_tfevents.py");
  ASSERT_EQ(out.substr(exit_at), "\n[exit 0]") << out;
  EXPECT_EQ(read["files"].size(), 1u) << "the first run's events survived the second";

  std::map<std::pair<int64_t, std::string>, double> scalar;
  for (const auto& s : read["scalars"]) {
    const auto key = std::make_pair(s[1].get<int64_t>(), s[2].get<std::string>());
    EXPECT_EQ(scalar.count(key), 0u) << "step " << key.first << " " << key.second << " twice";
    scalar[key] = s[3].get<double>();
  }
  auto at = [&](int64_t step, const std::string& tag) {
    auto it = scalar.find({step, tag});
    return it == scalar.end() ? -1.0 : it->second;
  };
  auto f32 = [](const nlohmann::json& v) { return static_cast<double>(static_cast<float>(v.get<double>())); };
  const auto results = nlohmann::json::parse(std::ifstream(dir.file("probe/results.json")));
  const int64_t last = results["steps"].get<int64_t>();
  ASSERT_EQ(last, 36);  // 1800 (10 % of 2000 held out to choose the head) / 100 x 2 epochs
  const auto& heads = results["heads"];
  ASSERT_EQ(heads.size(), 2u);
  for (size_t i = 0; i < heads.size(); ++i) {
    const std::string h = "head_" + std::to_string(i) + "/";
    for (const char* k : {"train_loss", "val_loss", "top1", "top5"})
      EXPECT_EQ(at(last, h + k), f32(heads[i][k])) << h << k;
    EXPECT_GT(at(3, h + "train_loss"), 0) << "no train loss at the first logged step (every 36 / 10 steps)";
  }
  for (const char* k : {"train_loss", "val_loss", "top1", "top5"})
    EXPECT_EQ(at(last, std::string("best/") + k), f32(results["best"][k])) << k;
  EXPECT_GT(at(last, "img_per_s"), 0);
  EXPECT_EQ(read["starts"], nlohmann::json::parse("[[0, 1]]"));
}

// Without the feature cache (probe.cache_gb=0) the features are recomputed from a shuffled
// loader; with probe.augment each step sees augmented views. Both learn about as well as the
// cached path on the same data.
TEST(Probe, UncachedAndAugmentedPathsLearn) {
  test::TempDir dir;
  const std::vector<std::string> base = {"probe.features=pixels", "probe.kind=linear", "probe.lrs=[1.0e-2]"};
  auto with = [&](std::vector<std::string> extra) {
    extra.insert(extra.begin(), base.begin(), base.end());
    return probe::run_probe(fmnist_probe(dir, extra), {}, nullptr);
  };
  auto cached = with({});
  auto uncached = with({"probe.cache_gb=0"});
  auto augmented = with({"probe.augment=true"});
  EXPECT_TRUE(cached.cached);
  EXPECT_FALSE(uncached.cached);
  EXPECT_FALSE(augmented.cached);
  EXPECT_EQ(uncached.train_samples + uncached.select_samples, 2000);
  EXPECT_EQ(uncached.selection, "train_holdout");  // held out on every path, not only with the cache
  EXPECT_EQ(augmented.selection, "train_holdout");
  EXPECT_EQ(augmented.select_samples, cached.select_samples);  // the same images, by sample index
  EXPECT_EQ(uncached.val_samples, 1000);
  EXPECT_NEAR(uncached.heads[0].top1, cached.heads[0].top1, 0.04);
  EXPECT_GT(augmented.heads[0].top1, 0.5);  // chance is 0.10
}

TEST(Probe, AttentiveProbeOnTrunkUsesOfficialNamesAndBeatsChance) {
  test::TempDir dir;
  torch::manual_seed(0);
  model::AimEncoder enc(config::config_from_yaml_string("model: {preset: aim-fmnist-tiny, depth: 2}").model);
  model::export_trunk(dir.file("trunk.safetensors"), *enc);
  auto cfg = fmnist_probe(dir, {"probe.weights=" + dir.file("trunk.safetensors"), "probe.lrs=[3.0e-3]",
                                "probe.blocks=0,1"});
  auto r = probe::run_probe(cfg, {}, nullptr);
  ASSERT_EQ(r.heads.size(), 1u);
  EXPECT_EQ(r.weights, dir.file("trunk.safetensors"));
  EXPECT_GT(r.heads[0].top1, 0.4);
  EXPECT_EQ(names_in(dir.file("probe/probe.safetensors")),
            (std::set<std::string>{"head.cls_token", "head.k.weight", "head.v.weight", "head.linear.weight",
                                   "head.bn.running_mean", "head.bn.running_var", "head.bn.num_batches_tracked"}));
}

TEST(Probe, MismatchedWeightsAreListedNeverPartiallyLoaded) {
  test::TempDir dir;
  auto other = config::config_from_yaml_string("model: {preset: aim-fmnist-tiny, width: 64, depth: 3}").model;
  model::AimEncoder enc(other);
  model::export_trunk(dir.file("trunk.safetensors"), *enc);
  auto cfg = fmnist_probe(dir, {"probe.weights=" + dir.file("trunk.safetensors")});
  try {
    probe::run_probe(cfg, {}, nullptr);
    FAIL() << "a width-64, depth-3 trunk loaded into a width-128, depth-2 model";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(dir.file("trunk.safetensors")), std::string::npos) << msg;
    EXPECT_NE(msg.find("unexpected"), std::string::npos) << msg;  // block 2
    EXPECT_NE(msg.find("trunk.blocks.2.attn.qkv.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("wrong shape"), std::string::npos) << msg;
    EXPECT_NE(msg.find("trunk.blocks.0.attn.qkv.weight (expected [384, 128], got [192, 64])"), std::string::npos)
        << msg;
  }
}

TEST(Probe, ClassCountMismatchIsAClearError) {
  test::TempDir dir;
  auto cfg = fmnist_probe(dir, {"probe.features=pixels", "probe.kind=linear"});
  probe::ProbeHead five("linear", 28 * 28, 1, 5);
  probe::save_probe(dir.file("five.safetensors"), five, 1);
  try {
    probe::evaluate_saved_probe(cfg, {}, nullptr, dir.file("five.safetensors"));
    FAIL() << "a 5-class probe evaluated on 10-class data";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("5 classes"), std::string::npos) << msg;
    EXPECT_NE(msg.find("has 10"), std::string::npos) << msg;
  }
  auto bad = fmnist_probe(dir, {"probe.features=pixels", "probe.kind=linear", "probe.classes=7"});
  EXPECT_THROW(probe::run_probe(bad, {}, nullptr), Error);  // the data says 10
}

TEST(Probe, WeightsResolveFromRunDirectoriesAndCheckpoints) {
  test::TempDir dir;
  // A checkpoint is a directory with a manifest (its reading: CheckpointRanks.Consolidation...).
  auto step_dir = [&](const std::string& name, bool complete = true) {
    fs::create_directories(dir.path() / "run/checkpoints" / name);
    if (complete) std::ofstream((dir.path() / "run/checkpoints" / name / "manifest.json").string()) << "{}";
  };
  step_dir("step_000000002");
  step_dir("step_000000010");
  step_dir("step_000000030", /*complete=*/false);  // no manifest: never chosen
  auto w = model::resolve_trunk_weights(dir.file("run"));
  EXPECT_EQ(w.file, (dir.path() / "run/checkpoints/step_000000010").string());
  EXPECT_EQ(w.prefix, "model.");
  EXPECT_EQ(model::resolve_trunk_weights(dir.file("run/checkpoints/step_000000002")).file,
            (dir.path() / "run/checkpoints/step_000000002").string());
  io::save_safetensors(dir.file("run/trunk.safetensors"), {{"trunk.post_trunk_norm.weight", torch::ones({2})}});
  EXPECT_EQ(model::resolve_trunk_weights(dir.file("run")).file, dir.file("run/trunk.safetensors"));  // export wins
  EXPECT_THROW(model::resolve_trunk_weights(dir.file("nothing")), Error);
  fs::create_directories(dir.path() / "empty");
  EXPECT_THROW(model::resolve_trunk_weights(dir.file("empty")), Error);
}

TEST(Probe, ValidationNamesTheKey) {
  test::TempDir dir;
  auto expect_error = [&](const std::vector<std::string>& o, const std::string& key) {
    auto cfg = fmnist_probe(dir, o);
    try {
      config::validate_probe(cfg, 2, true);
      ADD_FAILURE() << "accepted: " << key;
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).rfind(key, 0), 0u) << e.what();
    }
  };
  expect_error({}, "probe.weights");  // required (or 'random')
  expect_error({"probe.weights=random", "probe.features=pixels"}, "probe.kind");  // pixels need linear
  expect_error({"probe.weights=random", "probe.lrs=[]"}, "probe.lrs");
  expect_error({"probe.weights=random", "probe.batch_size=101"}, "probe.batch_size");  // world size 2
  expect_error({"probe.weights=random", "probe.blocks=7"}, "probe.blocks");
  expect_error({"probe.weights=/no/such/file.safetensors"}, "probe.weights");
  expect_error({"probe.weights=random", "probe.val=null"}, "probe.val");
  EXPECT_NO_THROW(config::validate_probe(fmnist_probe(dir, {"probe.weights=random"}), 2, true));
}

TEST(ProbeCli, TwoGlooRanksEvalOnlyAndPredict) {
  test::TempDir dir;
  const std::string common = " --config " + std::string(AIM_SOURCE_DIR) +
                             "/configs/fmnist-demo.yaml probe.features=pixels probe.kind=linear "
                             "'probe.train={kind: idx, split: train, limit: 1000}' "
                             "'probe.val={kind: idx, split: test, limit: 500}' probe.epochs=2 probe.batch_size=100 "
                             "'probe.lrs=[1.0e-2]' probe.out_dir=" + dir.file("p");
  std::string out = test::capture(kProbeBin + " --nproc-per-node 2" + common);
  ASSERT_NE(out.find("[exit 0]"), std::string::npos) << out;
  auto results = nlohmann::json::parse(std::ifstream(dir.file("p/results.json")));
  EXPECT_EQ(results["world_size"].get<int>(), 2);
  EXPECT_EQ(results["val_samples"].get<int64_t>(), 500);  // split over ranks, counted once
  // ~10 % held out by sample index, the same images on any world size.
  EXPECT_EQ(results["train_samples"].get<int64_t>() + results["selection"]["samples"].get<int64_t>(), 1000);
  const double top1 = results["best"]["top1"].get<double>();
  EXPECT_GT(top1, 0.6);
  // One process on the same data and global batch. Not bit-identical by design (each rank
  // shuffles its own shard and batch norm uses per-rank batch statistics, as PyTorch's DDP
  // without SyncBatchNorm), so the heads agree to a tolerance; a wrong gradient average or a
  // rank training on the other's shard would move them further apart than this.
  out = test::capture(kProbeBin + common + "1");
  ASSERT_NE(out.find("[exit 0]"), std::string::npos) << out;
  auto single = nlohmann::json::parse(std::ifstream(dir.file("p1/results.json")));
  EXPECT_EQ(single["world_size"].get<int>(), 1);
  EXPECT_EQ(single["val_samples"].get<int64_t>(), 500);
  EXPECT_NEAR(single["best"]["top1"].get<double>(), top1, 0.03);
  EXPECT_NEAR(single["heads"][0]["val_loss"].get<double>(), results["heads"][0]["val_loss"].get<double>(), 0.1);

  out = test::capture(kProbeBin + " --eval-only" + common);
  ASSERT_NE(out.find("[exit 0]"), std::string::npos) << out;
  EXPECT_NE(out.find(fmt::format("top-1 {:.2f} %", 100 * top1)), std::string::npos) << out;

  fs::create_directories(dir.path() / "imgs");
  cv::imwrite(dir.file("imgs/a.png"), cv::Mat(28, 28, CV_8UC1, cv::Scalar(200)));
  cv::imwrite(dir.file("imgs/b.jpg"), cv::Mat(40, 30, CV_8UC3, cv::Scalar(10, 90, 200)));
  std::ofstream(dir.file("imgs/c.jpg")) << "not an image";
  out = test::capture(kProbeBin + " --predict " + dir.file("imgs") + " --top 3" + common);
  ASSERT_NE(out.find("[exit 0]"), std::string::npos) << out;
  EXPECT_NE(out.find("a.png\t"), std::string::npos) << out;
  EXPECT_NE(out.find("b.jpg\t"), std::string::npos) << out;
  EXPECT_NE(out.find("c.jpg\terror:"), std::string::npos) << out;

  out = test::capture(kProbeBin + " --config " + std::string(AIM_SOURCE_DIR) + "/configs/fmnist-demo.yaml probe.kind=linaer");
  EXPECT_NE(out.find("[exit 2]"), std::string::npos) << out;
  EXPECT_NE(out.find("did you mean 'linear'"), std::string::npos) << out;
}

TEST(ProbeCli, AimTrainProbesItsExportAtTheEnd) {
  test::TempDir dir;
  std::string out = test::capture(test::kTrainBin + " --config " + std::string(AIM_SOURCE_DIR) +
                            "/configs/test-tiny.yaml train.out_dir=" + dir.file("run") +
                            " probe.at_end=true 'probe.train={kind: synthetic, size: 64, classes: 4}'"
                            " 'probe.val={kind: synthetic, size: 32, classes: 4}' probe.epochs=2 probe.batch_size=16");
  ASSERT_NE(out.find("[exit 0]"), std::string::npos) << out;
  auto results = nlohmann::json::parse(std::ifstream(dir.file("run/probe/results.json")));
  EXPECT_EQ(results["weights"].get<std::string>(), dir.file("run") + "/trunk.safetensors");
  EXPECT_EQ(results["val_samples"].get<int64_t>(), 32);
  EXPECT_TRUE(fs::exists(dir.file("run/probe/probe.safetensors")));
}

}  // namespace
