// aim-probe --extract: the features of both splits as safetensors shards + index.json, equal
// to the features a probe trains on, readable with the README's numpy lines, on N ranks.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "aim/config/run_config.h"
#include "aim/data/loader.h"
#include "aim/io/safetensors.h"
#include "aim/probe/feature_export.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace aim;

namespace {

const std::string kOverrides =
    " probe.features=pixels probe.kind=linear 'probe.train={kind: idx, split: train, limit: 300}'"
    " 'probe.val={kind: idx, split: test, limit: 100}'";

config::RunConfig extract_config() {
  return config::config_from_yaml_string(
      "model: {preset: aim-fmnist-tiny, depth: 2}\n"
      "data: {sources: [{kind: synthetic}], workers: 1}\n"
      "train: {device: cpu}\n"
      "probe: {features: pixels, kind: linear, train: {kind: idx, split: train, limit: 300},"
      " val: {kind: idx, split: test, limit: 100}}\n",
      {}, "test");
}

torch::Tensor get(const io::NamedTensors& t, const std::string& name) {
  for (const auto& [n, v] : t)
    if (n == name) return v;
  ADD_FAILURE() << "no tensor " << name;
  return torch::Tensor();
}

}  // namespace

TEST(FeatureExport, ShardsHoldTheProbesFeaturesLabelsAndNames) {
  test::TempDir dir;
  const auto cfg = extract_config();
  const auto splits = probe::extract_features(cfg, {}, nullptr, {dir.file("f"), /*tokens=*/true, /*shard_size=*/128});
  ASSERT_EQ(splits.size(), 2u);
  EXPECT_EQ(splits[0].samples, 300);
  EXPECT_EQ(splits[0].shards, 3);
  EXPECT_EQ(splits[1].samples, 100);
  const auto index = nlohmann::json::parse(test::slurp(dir.file("f/index.json")));
  EXPECT_EQ(index["dim"].get<int64_t>(), 28 * 28);
  const auto& shards = index["splits"]["train"]["shards"];
  ASSERT_EQ(shards.size(), 3u);
  EXPECT_EQ(shards[2]["samples"].get<int64_t>(), 44);
  EXPECT_EQ(shards[0]["file"].get<std::string>(), "train/r0-00000.safetensors");

  // The first shard against the same pass done here: pixels as the probe sees them.
  const auto shard = io::load_safetensors(dir.file("f/train/r0-00000.safetensors"));
  data::Loader l(config::probe_loader_config(cfg, true, false, 0, 1));
  std::vector<torch::Tensor> x, y;
  int64_t n = 0;
  while (auto b = l.next()) {
    x.push_back(data::normalize_images(b->images, torch::kCPU, data::channel_mean(1), data::channel_std(1)).flatten(1));
    y.push_back(b->labels);
    n += b->size();
  }
  auto want = torch::cat(x).narrow(0, 0, 128);
  EXPECT_TRUE(torch::equal(get(shard.tensors, "pooled"), want));
  EXPECT_TRUE(torch::equal(get(shard.tensors, "labels"), torch::cat(y).narrow(0, 0, 128)));
  EXPECT_TRUE(torch::equal(get(shard.tensors, "index"), torch::arange(128, torch::kLong)));
  EXPECT_EQ(get(shard.tensors, "tokens").scalar_type(), torch::kHalf);
  EXPECT_EQ(get(shard.tensors, "tokens").sizes(), (std::vector<int64_t>{128, 1, 28 * 28}));
  const auto names = nlohmann::json::parse(shard.metadata.at("names"));
  ASSERT_EQ(names.size(), 128u);
  EXPECT_NE(names[5].get<std::string>().find(":train#5"), std::string::npos) << names[5];

  // The README's numpy lines read it back.
  const std::string out = test::capture(std::string(AIM_PYTHON) + " " + AIM_SOURCE_DIR +
                                        "/tests/probe/read_features.py " + dir.file("f"));
  ASSERT_NE(out.find("[exit 0]"), std::string::npos) << out;
  EXPECT_EQ(out.substr(0, out.find('\n')), "300 784 " + std::to_string(torch::cat(y).sum().item<int64_t>()));
  // ... which are the README's own.
  const std::string readme = test::slurp(std::string(AIM_SOURCE_DIR) + "/README.md");
  EXPECT_NE(readme.find("shards = [load_file(s[\"file\"]) for s in json.load(open(\"index.json\"))[\"splits\"][\"train\"][\"shards\"]]"),
            std::string::npos);
}

TEST(FeatureExport, TwoRanksWriteEverySampleOnceAndTheIndexLast) {
  test::TempDir dir;
  const std::string cmd = std::string(AIM_BIN_DIR) + "/aim-probe --nproc-per-node 2 --config " + AIM_SOURCE_DIR +
                          "/configs/fmnist-demo.yaml" + kOverrides + " --extract " + dir.file("f") +
                          " --shard-size 64";
  const std::string out = test::capture(cmd);
  ASSERT_NE(out.find("[exit 0]"), std::string::npos) << out;
  EXPECT_NE(out.find("train: 300 samples in"), std::string::npos) << out;
  const auto index = nlohmann::json::parse(test::slurp(dir.file("f/index.json")));
  for (const auto& [split, total] : std::vector<std::pair<std::string, int64_t>>{{"train", 300}, {"val", 100}}) {
    std::multiset<int64_t> seen;
    std::set<std::string> ranks;
    for (const auto& s : index["splits"][split]["shards"]) {
      const auto t = io::load_safetensors(dir.file("f/" + s["file"].get<std::string>())).tensors;
      const auto idx = get(t, "index");
      EXPECT_EQ(idx.size(0), s["samples"].get<int64_t>());
      for (int64_t i = 0; i < idx.size(0); ++i) seen.insert(idx[i].item<int64_t>());
      ranks.insert(s["file"].get<std::string>().substr(split.size() + 1, 2));
    }
    // probe.batch_size 256 deals 128 positions to each rank per step: val's 100 all go to rank 0.
    if (split == "train") {
      EXPECT_EQ(ranks, (std::set<std::string>{"r0", "r1"}));
    }
    std::multiset<int64_t> want;
    for (int64_t i = 0; i < total; ++i) want.insert(i);
    EXPECT_EQ(seen, want) << split;
  }
}
