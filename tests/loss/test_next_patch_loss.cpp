#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "aim/loss/next_patch_loss.h"

using namespace aim;

// Pixel values are laid out in (row-in-patch, col-in-patch, channel) order.
TEST(Patchify, FlattensRowColChannel) {
  // 1 image, 2 channels, 4x4, patch 2: value = c*100 + y*10 + x.
  auto img = torch::zeros({1, 2, 4, 4});
  for (int c = 0; c < 2; ++c)
    for (int y = 0; y < 4; ++y)
      for (int x = 0; x < 4; ++x) img[0][c][y][x] = c * 100 + y * 10 + x;
  auto p = loss::patchify(img, 2);
  ASSERT_EQ(p.sizes(), (std::vector<int64_t>{1, 4, 8}));
  // Patch 1 = top-right (rows 0-1, cols 2-3).
  std::vector<float> expected = {2, 102, 3, 103, 12, 112, 13, 113};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(p[0][1][i].item<float>(), expected[i]) << i;
  EXPECT_TRUE(torch::equal(loss::unpatchify(p, 2, 2, 2), img));
}

// A 1x3 image with 3 channels and patch 1 has 3 patches of 3 values each; the loss is
// computed by hand from spec §5 and compared.
TEST(NextPatchLoss, MatchesHandComputedValue) {
  // patches per image: p0 = [0,0,0], p1 = [1,2,3], p2 = [0,0,6]
  auto img = torch::tensor({0.f, 1.f, 0.f, 0.f, 2.f, 0.f, 0.f, 3.f, 6.f}).view({1, 3, 1, 3}).repeat({2, 1, 1, 1});
  auto target = loss::patch_targets(img, 1, loss::TargetKind::kNormalizedPixels);
  // unbiased variances: p1 -> 1, p2 -> ((-2)^2 + (-2)^2 + 4^2) / 2 = 12
  const double s1 = std::sqrt(1.0 + 1e-6), s2 = std::sqrt(12.0 + 1e-6);
  EXPECT_NEAR(target[0][1][0].item<float>(), -1.0 / s1, 1e-6);
  EXPECT_NEAR(target[0][2][2].item<float>(), 4.0 / s2, 1e-6);
  EXPECT_NEAR(target[0][0].abs().sum().item<float>(), 0.0, 1e-6);  // constant patch -> 0

  auto pred = torch::zeros({2, 3, 3});
  pred[0][0] = torch::tensor({1.f, 0.f, 0.f});  // predicts patch 1 of image 0
  pred[1][0] = torch::tensor({5.f, 5.f, 5.f});  // inside image 1's prefix target range: ignored
  pred.select(1, 2).fill_(100.f);               // the last position predicts nothing: ignored
  auto prefix = torch::tensor({1, 2}, torch::kInt64);  // image 0 keeps j=1,2; image 1 keeps j=2
  auto out = loss::next_patch_loss(pred, target, prefix);

  const double e1 = (std::pow(1 + 1 / s1, 2) + 0 + std::pow(1 / s1, 2)) / 3;  // j=1, image 0
  const double e2 = (4 + 4 + 16) / (12 + 1e-6) / 3;                           // j=2, pred 0
  EXPECT_NEAR(out.count.item<float>(), 3.0, 0);
  EXPECT_NEAR(out.sum.item<double>(), e1 + 2 * e2, 1e-5);
  EXPECT_NEAR(out.mean.item<double>(), (e1 + 2 * e2) / 3, 1e-6);
}

// A near-constant patch (variance 1e-8, far below the 1e-6 of spec §5): the epsilon sits
// inside the square root, so its values are divided by sqrt(1e-8 + 1e-6) = 1.005e-3 and stay
// small (0.0995); sqrt(1e-8) + 1e-6 = 1.01e-4 would blow them up tenfold (0.990). The 1x3
// image (patch 1, 3 channels) has patches p0 = [1, 2, 3], p1 = [-h, 0, h] with h = 1e-4, and
// p2 = [0, 0, 0]; in float64 and in float32 (the training dtype).
TEST(NextPatchLoss, NearConstantPatchIsScaledWithTheEpsilonInsideTheRoot) {
  const double h = 1e-4;
  const double scale = std::sqrt(h * h + 1e-6);  // unbiased variance of [-h, 0, h]: (h^2 + h^2) / 2
  EXPECT_NEAR(h / scale, 0.0995037, 1e-6);
  for (auto dtype : {torch::kFloat64, torch::kFloat32}) {
    SCOPED_TRACE(dtype == torch::kFloat64 ? "float64" : "float32");
    // [C, H, W] = [3, 1, 3]: channel c of pixel x is element 3 c + x.
    auto img = torch::tensor({1.0, -h, 0.0, 2.0, 0.0, 0.0, 3.0, h, 0.0}, torch::kFloat64).view({1, 3, 1, 3}).to(dtype);
    auto target = loss::patch_targets(img, 1, loss::TargetKind::kNormalizedPixels);
    const double tol = dtype == torch::kFloat64 ? 1e-12 : 1e-6;
    EXPECT_NEAR(target[0][1][0].item<double>(), -h / scale, tol);
    EXPECT_NEAR(target[0][1][1].item<double>(), 0.0, tol);
    EXPECT_NEAR(target[0][1][2].item<double>(), h / scale, tol);
    EXPECT_NEAR(target[0][0][0].item<double>(), -1.0 / std::sqrt(1.0 + 1e-6), tol);
    // Predicting zeros: the error at p1 is (2 h^2 / scale^2) / 3, at p2 zero; mean over both.
    auto out = loss::next_patch_loss(torch::zeros({1, 3, 3}, dtype), target, torch::zeros({1}, torch::kInt64));
    EXPECT_NEAR(out.mean.item<double>(), 2 * h * h / (scale * scale) / 3 / 2, tol);
  }
}

TEST(NextPatchLoss, CausalKeepsEveryTarget) {
  auto pred = torch::ones({2, 5, 4});
  auto target = torch::zeros({2, 5, 4});
  auto out = loss::next_patch_loss(pred, target, torch::zeros({2}, torch::kInt64));
  EXPECT_EQ(out.count.item<float>(), 8.0f);  // 2 images x (K-1) targets
  EXPECT_FLOAT_EQ(out.mean.item<float>(), 1.0f);
}

TEST(NextPatchLoss, RawPixelTargetsAreUnnormalized) {
  auto img = torch::arange(12, torch::kFloat32).view({1, 3, 2, 2});
  auto t = loss::patch_targets(img, 1, loss::TargetKind::kRawPixels);
  EXPECT_TRUE(torch::equal(t, loss::patchify(img, 1)));
}

TEST(NextPatchLoss, BatchLevelAveragingWeighsTokensNotImages) {
  // Image 0 keeps 3 targets with error 1, image 1 keeps 1 target with error 9: the mean is
  // (3*1 + 9) / 4 = 3, not the per-image average (1 + 9) / 2 = 5.
  auto target = torch::zeros({2, 4, 1});
  auto pred = torch::ones({2, 4, 1});
  pred[1].fill_(3.0f);
  auto out = loss::next_patch_loss(pred, target, torch::tensor({1, 3}, torch::kInt64));
  EXPECT_FLOAT_EQ(out.mean.item<float>(), 3.0f);
}

TEST(NextPatchLoss, TargetsCarryNoGradient) {
  auto img = torch::randn({1, 3, 4, 4}).requires_grad_(true);
  EXPECT_FALSE(loss::patch_targets(img, 2, loss::TargetKind::kNormalizedPixels).requires_grad());
}
