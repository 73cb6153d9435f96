// The fixed sin-cos tables stay float32 after a bf16 forward (issue 17): a bf16 copy once
// replaced the head's table for good, so every later float32 forward (validation, export,
// probes) added a rounded table.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "aim/model/model_config.h"
#include "aim/model/preprocessor.h"
#include "aim/model/pretrain_head.h"
#include "aim/model/sincos.h"

using namespace aim::model;

TEST(PosTableDtype, CastPerCallNeverStored) {
  auto table = sincos_2d(4, 8);
  const auto original = table.clone();
  auto as_bf16 = cached_on(table, torch::zeros({1}, torch::kBFloat16));
  EXPECT_EQ(as_bf16.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(table.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(table, original));
}

// A bf16 forward (as under CUDA autocast; LibTorch 1.13's CPU autocast cannot run this head's
// LayerNorm, so the head itself is cast) must not change a later float32 forward.
TEST(PosTableDtype, HeadFloat32ForwardUnchangedByEarlierBf16Forward) {
  auto cfg = preset_config("aim-fmnist-tiny");
  torch::manual_seed(3);
  PretrainHead used(cfg);
  torch::manual_seed(3);
  PretrainHead fresh(cfg);
  torch::NoGradGuard no_grad;
  auto x = torch::randn({2, cfg.num_tokens(), cfg.width});
  used->to(torch::kBFloat16);
  auto low = used->forward(x.to(torch::kBFloat16), torch::Tensor());
  ASSERT_EQ(low.scalar_type(), torch::kBFloat16);  // the bf16 path really ran
  used->to(torch::kFloat);
  // The weights lost precision in the round trip; restore them so only the table can differ.
  auto src = fresh->parameters(), dst = used->parameters();
  for (size_t i = 0; i < src.size(); ++i) dst[i].copy_(src[i]);
  EXPECT_TRUE(torch::equal(used->forward(x, torch::Tensor()), fresh->forward(x, torch::Tensor())));
}
