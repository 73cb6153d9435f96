#include <gtest/gtest.h>
#include <torch/torch.h>

#include "aim/model/aim_pretrain.h"
#include "aim/model/probes.h"
#include "aim/optim/optimizer.h"
#include "test_util.h"

using namespace aim;

// Spec §7: no weight decay on biases, norm parameters, position embeddings.
TEST(Optimizer, WeightDecayOnlyOnWeightMatrices) {
  model::AimPretrainModel net(test::tiny_config());
  int64_t decayed = 0;
  for (const auto& p : net->named_parameters()) {
    const auto& n = p.key();
    const bool expect = n.find("norm") == std::string::npos && n.find("bias") == std::string::npos;
    EXPECT_EQ(optim::decays(n, p.value()), expect) << n;
    decayed += expect;
  }
  EXPECT_GT(decayed, 0);
  model::AttentionPoolingProbe probe(32, 2, 4);
  EXPECT_FALSE(optim::decays("cls_token", probe->cls_token));
  auto opt = optim::make_adamw(*net, {});
  ASSERT_EQ(opt->param_groups().size(), 2u);
  auto& g0 = static_cast<torch::optim::AdamWOptions&>(opt->param_groups()[0].options());
  auto& g1 = static_cast<torch::optim::AdamWOptions&>(opt->param_groups()[1].options());
  EXPECT_DOUBLE_EQ(g0.weight_decay(), 0.05);
  EXPECT_DOUBLE_EQ(g1.weight_decay(), 0.0);
  EXPECT_EQ(std::get<1>(g0.betas()), 0.95);
  EXPECT_EQ(static_cast<int64_t>(opt->param_groups()[0].params().size()), decayed);
}

TEST(Optimizer, WarmupThenCosine) {
  optim::OptimConfig cfg;  // lr 1e-3, warmup 2.5 %
  const int64_t total = 1000;  // 25 warmup steps
  EXPECT_DOUBLE_EQ(optim::learning_rate(0, total, cfg), 1e-6);
  EXPECT_NEAR(optim::learning_rate(12, total, cfg), 1e-6 + (1e-3 - 1e-6) * 12 / 25, 1e-12);
  EXPECT_DOUBLE_EQ(optim::learning_rate(25, total, cfg), 1e-3);
  EXPECT_NEAR(optim::learning_rate(25 + 975 / 2, total, cfg), 0.5e-3, 1e-6);
  EXPECT_NEAR(optim::learning_rate(total, total, cfg), 0.0, 1e-15);
  for (int64_t s = 26; s < total; ++s)
    EXPECT_LE(optim::learning_rate(s, total, cfg), optim::learning_rate(s - 1, total, cfg));
}
