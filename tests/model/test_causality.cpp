// Property tests of the attention rule (spec §3): query i sees key k iff k <= i or k < S.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "aim/loss/next_patch_loss.h"
#include "aim/model/aim_encoder.h"
#include "aim/model/aim_pretrain.h"
#include "test_util.h"

using namespace aim;

namespace {

// |d out / d patch k| summed over the patch's pixels: [K] per-patch gradient magnitude.
torch::Tensor patch_grad_magnitude(const torch::Tensor& scalar, const torch::Tensor& images, int64_t patch) {
  auto g = torch::autograd::grad({scalar}, {images}, {}, /*retain_graph=*/true)[0];
  return loss::patchify(g.abs(), patch).sum(-1)[0];  // batch 0
}

struct CausalityFixture {
  model::ModelConfig cfg = aim::test::tiny_config();
  model::AimPretrainModel net{nullptr};
  torch::Tensor images;

  explicit CausalityFixture(model::ModelConfig c = aim::test::tiny_config()) : cfg(c) {
    torch::manual_seed(0);
    net = model::AimPretrainModel(cfg);
    net->to(torch::kFloat64);  // gradients that must vanish do so exactly; others are clearly non-zero
    images = torch::randn({1, cfg.channels, cfg.img_size, cfg.img_size}, torch::kFloat64).requires_grad_(true);
  }
};

}  // namespace

// For every kept target j, the loss term of j depends on input patch k only if k <= j-1 or
// k < S. Checked for several prefix lengths including pure causal (S = 0).
TEST(Causality, LossTermOfTargetIgnoresLaterPatches) {
  CausalityFixture f;
  const int64_t K = f.cfg.num_tokens();
  for (int64_t S : std::vector<int64_t>{0, 1, 5, K - 1}) {
    auto prefix = torch::full({1}, S, torch::kInt64);
    auto out = f.net->forward(f.images, prefix);
    auto target = loss::patch_targets(f.images, f.cfg.patch_size, f.cfg.target);
    for (int64_t j = std::max<int64_t>(S, 1); j < K; ++j) {
      auto term = (out.pred[0][j - 1] - target[0][j]).pow(2).mean();
      auto mag = patch_grad_magnitude(term, f.images, f.cfg.patch_size);
      for (int64_t k = 0; k < K; ++k) {
        const bool visible = k <= j - 1 || k < S;
        const double m = mag[k].item<double>();
        if (visible) {
          EXPECT_GT(m, 1e-12) << "S=" << S << " target " << j << " should see patch " << k;
        } else {
          EXPECT_EQ(m, 0.0) << "S=" << S << " target " << j << " leaks from patch " << k;
        }
      }
    }
  }
}

// Prefix tokens attend bidirectionally within the prefix and to nothing after it.
TEST(Causality, PrefixOutputsIgnoreNonPrefixPatches) {
  CausalityFixture f;
  const int64_t K = f.cfg.num_tokens(), S = 6;
  auto out = f.net->forward(f.images, torch::full({1}, S, torch::kInt64));
  for (int64_t i = 0; i < S; ++i) {
    auto mag = patch_grad_magnitude(out.pred[0][i].sum(), f.images, f.cfg.patch_size);
    for (int64_t k = 0; k < K; ++k) {
      if (k < S) EXPECT_GT(mag[k].item<double>(), 1e-12) << "prefix token " << i << " must see prefix patch " << k;
      else EXPECT_EQ(mag[k].item<double>(), 0.0) << "prefix token " << i << " sees patch " << k;
    }
  }
}

// Downstream: no mask, every output depends on every patch.
TEST(Causality, BidirectionalOutputsSeeEveryPatch) {
  auto cfg = aim::test::tiny_config();
  torch::manual_seed(0);
  model::AimEncoder enc(cfg);
  enc->to(torch::kFloat64);
  auto images = torch::randn({1, 3, 16, 16}, torch::kFloat64).requires_grad_(true);
  auto out = enc->forward(images);
  // A random projection: the plain sum of a LayerNorm output is constant (zero gradient).
  auto probe = torch::randn({cfg.width}, torch::kFloat64);
  for (int64_t i = 0; i < cfg.num_tokens(); ++i) {
    auto mag = patch_grad_magnitude((out[0][i] * probe).sum(), images, cfg.patch_size);
    EXPECT_GT(mag.min().item<double>(), 1e-12) << "token " << i;
  }
}

// Each image's prefix applies to that image only: a batch with mixed S gives every sample
// exactly what it gets alone.
TEST(Causality, PerSamplePrefixMatchesSingleImageRuns) {
  CausalityFixture f;
  torch::manual_seed(1);
  auto images = torch::randn({3, 3, 16, 16}, torch::kFloat64);
  auto prefix = torch::tensor({1, 7, 15}, torch::kInt64);
  auto batched = f.net->forward(images, prefix).pred;
  for (int64_t b = 0; b < 3; ++b) {
    auto alone = f.net->forward(images.slice(0, b, b + 1), prefix.slice(0, b, b + 1)).pred;
    EXPECT_TRUE(torch::allclose(batched[b], alone[0], 1e-10, 1e-10)) << "sample " << b;
  }
}

// Non-raster orders permute tokens, mask and targets together: in sequence order the
// model is causal, so sequence position i depends on raster patches perm[0..i] only.
TEST(Causality, OrdersAreCausalInSequenceOrder) {
  for (const char* order : {"spiral", "checkerboard", "random"}) {
    auto cfg = aim::test::tiny_config();
    cfg.attention = model::AttentionMode::kCausal;
    cfg.order = order;
    cfg.order_seed = 5;
    CausalityFixture f(cfg);
    const int64_t K = cfg.num_tokens();
    auto perm = f.net->order();
    ASSERT_TRUE(perm.defined());
    auto out = f.net->forward(f.images, torch::zeros({1}, torch::kInt64));
    for (int64_t i : std::vector<int64_t>{0, 3, K / 2, K - 2}) {
      auto mag = patch_grad_magnitude(out.pred[0][i].sum(), f.images, cfg.patch_size);
      for (int64_t s = 0; s < K; ++s) {
        const double m = mag[perm[s].item<int64_t>()].item<double>();
        if (s <= i) EXPECT_GT(m, 1e-12) << order << ": position " << i << " must see position " << s;
        else EXPECT_EQ(m, 0.0) << order << ": position " << i << " sees future position " << s;
      }
    }
  }
}
