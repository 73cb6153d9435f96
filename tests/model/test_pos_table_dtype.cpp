// The fixed sin-cos tables stay float32 after a bf16 forward (issue 17): a bf16 copy once
// replaced the head's table for good, so every later float32 forward (validation, export,
// probes) added a rounded table.
#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "aim/model/model_config.h"
#include "aim/model/preprocessor.h"
#include "aim/model/pretrain_head.h"
#include "aim/model/sincos.h"

using namespace aim::model;

namespace {

// CPU autocast to bf16 for the guard's lifetime: the path a GPU run takes with bf16, on CPU.
struct CpuBf16Autocast {
  CpuBf16Autocast() {
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::set_cpu_enabled(true);
  }
  ~CpuBf16Autocast() {
    at::autocast::set_cpu_enabled(false);
    at::autocast::clear_cache();
  }
};

}  // namespace

TEST(PosTableDtype, CastPerCallNeverStored) {
  auto table = sincos_2d(4, 8);
  const auto original = table.clone();
  auto as_bf16 = cached_on(table, torch::zeros({1}, torch::kBFloat16));
  EXPECT_EQ(as_bf16.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(table.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(table, original));
}

TEST(PosTableDtype, HeadFloat32ForwardUnchangedByEarlierBf16Forward) {
  auto cfg = preset_config("aim-fmnist-tiny");
  torch::manual_seed(3);
  PretrainHead used(cfg);
  torch::manual_seed(3);
  PretrainHead fresh(cfg);
  torch::NoGradGuard no_grad;
  auto x = torch::randn({2, cfg.num_tokens(), cfg.width});
  {
    CpuBf16Autocast bf16;
    auto low = used->forward(x, torch::Tensor());
    ASSERT_EQ(low.scalar_type(), torch::kBFloat16);  // the bf16 path really ran
  }
  EXPECT_TRUE(torch::equal(used->forward(x, torch::Tensor()), fresh->forward(x, torch::Tensor())));
}
