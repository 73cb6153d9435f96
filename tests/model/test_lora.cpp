// LoRA in the model layer without Python: the merged weights add each low-rank update to its
// own block of the fused qkv (q and v, never k) and to proj, as loralib's MergedLinear with
// enable_lora=[True, False, True] lays them out; the forward delta is the merged weight's
// difference; and a plain trunk loaded with the merged tensors computes what the adapted
// trunk does. B is random (a fresh LoRA's B = 0 would hide every mix-up).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "aim/io/state_dict.h"
#include "aim/model/aim_encoder.h"
#include "aim/model/block.h"
#include "aim/model/lora.h"
#include "aim/model/trunk_weights.h"
#include "test_util.h"

using namespace aim;

namespace {

constexpr int64_t kLoraRank = 3;
constexpr double kAlpha = 2.0;  // scaling alpha / r = 2/3: a wrong scale shows too

// A float64 tiny encoder with LoRA whose A and B are all random.
model::AimEncoder adapted_encoder(uint64_t seed) {
  torch::manual_seed(seed);
  model::AimEncoder enc(test::tiny_config());
  enc->to(torch::kFloat64);
  enc->trunk->enable_lora({kLoraRank, kAlpha});
  torch::NoGradGuard ng;
  for (auto& p : enc->trunk->lora_parameters()) p.normal_(0, 0.5);
  return enc;
}

const model::LoraWeights& lora_of(const model::AimEncoder& enc, size_t block) {
  return (*enc->trunk->blocks)[block]->as<model::BlockImpl>()->attn->lora();
}

torch::nn::Linear& qkv_of(model::AimEncoder& enc, size_t block) {
  return (*enc->trunk->blocks)[block]->as<model::BlockImpl>()->attn->qkv;
}

}  // namespace

TEST(Lora, MergedWeightsAddEachUpdateToItsOwnBlock) {
  auto enc = adapted_encoder(5);
  const auto& w = lora_of(enc, 1);
  const int64_t d = test::tiny_config().width, r = kLoraRank;
  ASSERT_DOUBLE_EQ(w.scaling, kAlpha / kLoraRank);
  ASSERT_GT(w.qkv_B.abs().min().item<double>(), 0) << "every entry of B should be nonzero";
  const auto W = qkv_of(enc, 1)->weight.detach();
  const auto merged = model::merged_qkv_weight(W, w);
  ASSERT_EQ(merged.sizes(), W.sizes());
  // Rows [0, d) are q: B's first d rows times A's first r rows; [d, 2d) are k, untouched;
  // [2d, 3d) are v: B's last d rows times A's last r rows.
  const auto A = w.qkv_A, B = w.qkv_B;
  const double s = kAlpha / kLoraRank;
  EXPECT_TRUE(torch::allclose(merged.narrow(0, 0, d), W.narrow(0, 0, d) + s * B.narrow(0, 0, d).mm(A.narrow(0, 0, r)),
                              1e-12, 1e-12))
      << "q block";
  EXPECT_TRUE(torch::equal(merged.narrow(0, d, d), W.narrow(0, d, d))) << "the k block must stay as it was";
  EXPECT_TRUE(torch::allclose(merged.narrow(0, 2 * d, d),
                              W.narrow(0, 2 * d, d) + s * B.narrow(0, d, d).mm(A.narrow(0, r, r)), 1e-12, 1e-12))
      << "v block";
  const auto P = (*enc->trunk->blocks)[1]->as<model::BlockImpl>()->attn->proj->weight.detach();
  EXPECT_TRUE(torch::allclose(model::merged_proj_weight(P, w), P + s * w.proj_B.mm(w.proj_A), 1e-12, 1e-12));

  // The forward's delta is the merged weight's difference applied to x: zero on k.
  torch::NoGradGuard ng;
  const auto x = torch::randn({5, d}, torch::kFloat64);
  const auto delta = model::lora_qkv_delta(x, w);
  EXPECT_TRUE(torch::allclose(delta, x.mm((merged - W).t()), 1e-12, 1e-12));
  EXPECT_TRUE(torch::equal(delta.narrow(1, d, d), torch::zeros({5, d}, torch::kFloat64)));
  EXPECT_GT(delta.narrow(1, 2 * d, d).abs().max().item<double>(), 1e-3) << "v gets an update";
  EXPECT_TRUE(torch::allclose(model::lora_proj_delta(x, w), x.mm((model::merged_proj_weight(P, w) - P).t()), 1e-12,
                              1e-12));
}

// What aim-probe exports as the merged trunk.safetensors: a plain trunk loaded with it gives
// the adapted trunk's features (float64, to rounding), and the un-adapted trunk does not.
TEST(Lora, MergedTrunkComputesWhatTheAdaptedTrunkDoes) {
  auto enc = adapted_encoder(7);
  const auto merged = model::merged_trunk_tensors(enc);
  for (const auto& [n, t] : merged) EXPECT_EQ(n.find("lora_"), std::string::npos) << n;
  model::AimEncoder plain(test::tiny_config());
  plain->to(torch::kFloat64);
  io::load_state_dict(*plain, merged, "merged trunk", {"preprocessor.", "trunk."});

  torch::NoGradGuard ng;
  const auto images = torch::randn({3, 3, 16, 16}, torch::kFloat64);
  const auto want = enc->features(images, {0, 1});
  EXPECT_LT((plain->features(images, {0, 1}) - want).abs().max().item<double>(), 1e-10);

  model::AimEncoder frozen(test::tiny_config());
  frozen->to(torch::kFloat64);
  io::NamedTensors base;
  for (auto& [n, t] : io::filter_prefixes(io::state_dict(*enc), {"preprocessor.", "trunk."}))
    if (n.find("lora_") == std::string::npos) base.emplace_back(n, t);
  io::load_state_dict(*frozen, base, "base trunk", {"preprocessor.", "trunk."});
  EXPECT_GT((frozen->features(images, {0, 1}) - want).abs().max().item<double>(), 1e-3)
      << "LoRA should have changed the features";
}
