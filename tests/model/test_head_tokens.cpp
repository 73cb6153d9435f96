// Training runs the prediction head only on the rows whose output reaches the loss
// (HeadTokens::kLossOnly). It must be the same function as the full head + masked loss:
// same loss, same gradients for every parameter, for prefix, causal and permuted orders.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>

#include "aim/loss/next_patch_loss.h"
#include "aim/model/aim_pretrain.h"
#include "aim/model/model_stats.h"
#include "test_util.h"

using namespace aim;

namespace {

torch::Tensor prefixes(std::vector<int64_t> s) { return torch::tensor(s, torch::kInt64); }

struct Result {
  loss::LossTerms loss;
  torch::Tensor pred;
  std::map<std::string, torch::Tensor> grads;
};

Result run_heads(model::AimPretrainModel& net, const torch::Tensor& images, const torch::Tensor& prefix,
           model::HeadTokens mode) {
  net->zero_grad();
  auto out = net->forward(images, prefix, mode);
  out.loss.mean.backward();
  Result r{out.loss, out.pred.detach(), {}};
  for (const auto& p : net->named_parameters()) r.grads[p.key()] = p.value().grad().clone();
  if (mode == model::HeadTokens::kLossOnly) {
    EXPECT_EQ(out.rows.numel(), out.pred.size(0));
    EXPECT_EQ(out.rows.device().type(), torch::kCPU);
  }
  return r;
}

void expect_same_step(model::ModelConfig cfg, const torch::Tensor& prefix) {
  torch::manual_seed(0);
  model::AimPretrainModel net(cfg);
  net->to(torch::kFloat64);
  const int64_t B = prefix.numel(), K = cfg.num_tokens();
  auto images = torch::randn({B, cfg.channels, cfg.img_size, cfg.img_size}, torch::kFloat64);
  auto full = run_heads(net, images, prefix, model::HeadTokens::kAll);
  auto rows = run_heads(net, images, prefix, model::HeadTokens::kLossOnly);

  EXPECT_EQ(full.loss.count.item<double>(), rows.loss.count.item<double>());
  EXPECT_NEAR(full.loss.sum.item<double>(), rows.loss.sum.item<double>(), 1e-12 * full.loss.sum.item<double>());
  EXPECT_NEAR(full.loss.mean.item<double>(), rows.loss.mean.item<double>(), 1e-12);
  auto picked = full.pred.reshape({B * K, -1}).index_select(0, loss::loss_rows(prefix, K));
  EXPECT_TRUE(torch::allclose(picked, rows.pred, 1e-12, 1e-12)) << "head outputs at the loss rows differ";
  ASSERT_EQ(full.grads.size(), rows.grads.size());
  for (const auto& [name, g] : full.grads) {
    const auto& h = rows.grads.at(name);
    const double scale = g.abs().max().item<double>();
    EXPECT_GT(scale, 0.0) << name << " got no gradient";
    EXPECT_LE((g - h).abs().max().item<double>(), 1e-10 * std::max(scale, 1.0)) << name;
  }
}

}  // namespace

TEST(HeadTokens, LossRowsAreTheKeptTargetsShiftedByOne) {
  const int64_t K = 6;
  auto rows = loss::loss_rows(prefixes({0, 1, 3, 5}), K);
  // S=0 and S=1: outputs 0..4; S=3: outputs 2..4; S=5: output 4 only.
  std::vector<int64_t> want = {0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 14, 15, 16, 22};
  ASSERT_EQ(rows.numel(), static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(rows[i].item<int64_t>(), want[i]) << i;
  EXPECT_THROW(loss::loss_rows(prefixes({6}), K), c10::Error);
}

TEST(HeadTokens, LossOnlyStepEqualsFullHeadForPrefixAttention) {
  auto cfg = aim::test::tiny_config();
  const int64_t K = cfg.num_tokens();
  expect_same_step(cfg, prefixes({1, 5, K - 1, 8}));
}

TEST(HeadTokens, LossOnlyStepEqualsFullHeadForCausalAndPermutedOrder) {
  auto cfg = aim::test::tiny_config();
  cfg.attention = model::AttentionMode::kCausal;
  expect_same_step(cfg, torch::zeros({3}, torch::kInt64));
  cfg.order = "checkerboard";
  expect_same_step(cfg, torch::zeros({3}, torch::kInt64));
  cfg.order = "spiral";
  expect_same_step(cfg, torch::zeros({2}, torch::kInt64));
}

// The head runs on K - max(S, 1) of K tokens: half on average under prefix attention.
TEST(HeadTokens, ExecutedFlopsCountTheLossRowsOnly) {
  auto cfg = aim::test::tiny_config();
  const double K = static_cast<double>(cfg.num_tokens());
  auto f = model::count_flops(cfg);
  EXPECT_DOUBLE_EQ(f.head_token_share, 0.5);
  double mean_rows = 0;
  for (int64_t s = 1; s < cfg.num_tokens(); ++s) mean_rows += (K - s) / (K - 1);
  EXPECT_DOUBLE_EQ(mean_rows / K, f.head_token_share);
  EXPECT_DOUBLE_EQ(f.executed_training(), 3 * (f.trunk_forward + 0.5 * f.head_forward));
  cfg.attention = model::AttentionMode::kCausal;
  EXPECT_DOUBLE_EQ(model::count_flops(cfg).head_token_share, (K - 1) / K);
}
