#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "aim/error.h"
#include "aim/model/aim_pretrain.h"
#include "aim/model/model_stats.h"
#include "aim/model/probes.h"
#include "test_util.h"

using namespace aim::model;

namespace {
int64_t numel_with_prefix(torch::nn::Module& m, const std::string& prefix) {
  int64_t n = 0;
  for (const auto& p : m.named_parameters())
    if (p.key().rfind(prefix, 0) == 0) n += p.value().numel();
  return n;
}
}  // namespace

// Spec §2 table: trunk parameters (incl. patch embed and norms), within 0.5 %.
TEST(ModelStats, OfficialPresetTrunkSizesMatchSpec) {
  const std::pair<const char*, double> table[] = {
      {"aim-600m", 0.681e9}, {"aim-1b", 1.209e9}, {"aim-3b", 2.720e9}, {"aim-7b", 6.445e9}};
  for (const auto& [name, expected] : table) {
    auto cfg = preset_config(name);
    EXPECT_EQ(cfg.head_dim(), 128) << name;
    const double got = static_cast<double>(count_parameters(cfg).trunk);
    EXPECT_LT(std::abs(got - expected) / expected, 0.005) << name << ": " << got;
  }
}

TEST(ModelStats, DefaultHeadIsAboutPointFourOneBillion) {
  const double head = static_cast<double>(count_parameters(preset_config("aim-600m")).pretrain_head);
  EXPECT_NEAR(head / 1e9, 0.41, 0.01);
}

// The analytic count is exact: it equals the allocated modules' parameter count.
TEST(ModelStats, AnalyticCountEqualsBuiltModel) {
  for (bool quirk : {true, false}) {
    auto cfg = aim::test::tiny_config();
    cfg.head_identity_attn = quirk;
    AimPretrainModel net(cfg);
    auto counts = count_parameters(cfg);
    EXPECT_EQ(numel_with_prefix(*net, "preprocessor.") + numel_with_prefix(*net, "trunk."), counts.trunk);
    EXPECT_EQ(numel_with_prefix(*net, "pretrain_head."), counts.pretrain_head);
  }
  for (const auto& name : {"aim-fmnist-tiny", "aim-small-32"}) {
    AimPretrainModel net(preset_config(name));
    int64_t total = 0;
    for (const auto& p : net->parameters()) total += p.numel();
    EXPECT_EQ(total, count_parameters(preset_config(name)).total()) << name;
  }
}

TEST(ModelStats, ProbeParameterCounts) {
  const int64_t d = 64, classes = 10;
  AttentionPoolingProbe probe(d, 4, classes);
  int64_t n = 0;
  for (const auto& p : probe->parameters()) n += p.numel();
  EXPECT_EQ(n, 2 * d * d + d + d * classes);
  EXPECT_EQ(attentive_probe_parameters(d, classes), n);
  LinearProbe lin(d, classes);
  n = 0;
  for (const auto& p : lin->parameters()) n += p.numel();
  EXPECT_EQ(n, linear_probe_parameters(d, classes));
}

// Spec §4: the head is about 37 % of aim-600m's training FLOPs.
TEST(ModelStats, HeadShareOfFlopsMatchesSpec) {
  auto f = count_flops(preset_config("aim-600m"));
  EXPECT_NEAR(f.head_forward / f.forward(), 0.37, 0.01);
  EXPECT_DOUBLE_EQ(f.training(), 3 * f.forward());
  // Per-block matmul FLOPs of a ViT: 24 K d^2 + 4 K^2 d.
  auto cfg = aim::test::tiny_config();
  cfg.head_blocks = 0;
  auto t = count_flops(cfg);
  const double K = 16, d = 32;
  EXPECT_DOUBLE_EQ(t.trunk_forward, 2 * K * 48 * d + 2 * (24 * K * d * d + 4 * K * K * d));
}

TEST(ModelConfig, ValidationNamesTheKey) {
  auto cfg = aim::test::tiny_config();
  cfg.img_size = 30;
  try {
    cfg.validate();
    FAIL();
  } catch (const aim::Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.img_size"), std::string::npos) << e.what();
  }
  cfg = aim::test::tiny_config();
  cfg.heads = 3;
  EXPECT_THROW(cfg.validate(), aim::Error);
  cfg = aim::test::tiny_config();
  cfg.order = "spiral";  // non-raster with prefix attention is not a studied setting
  EXPECT_THROW(cfg.validate(), aim::Error);
  EXPECT_THROW(preset_config("aim-2b"), aim::Error);
  for (const auto& name : preset_names()) EXPECT_NO_THROW(preset_config(name).validate()) << name;
}
