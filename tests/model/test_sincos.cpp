#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "aim/model/sincos.h"

using aim::model::sincos_2d;

TEST(SinCos, ShapeAndDtype) {
  auto pe = sincos_2d(16, 1536);
  EXPECT_EQ(pe.sizes(), (std::vector<int64_t>{256, 1536}));
  EXPECT_EQ(pe.scalar_type(), torch::kFloat32);
}

// dim 8 -> each half has d/4 = 2 frequencies: w0 = 1, w1 = 1/10000^(1/2) = 0.01.
// Layout per token: [sin(c w0), sin(c w1), cos(c w0), cos(c w1), same for row r].
TEST(SinCos, ValuesAtKnownPositions) {
  const int64_t g = 5;
  auto pe = sincos_2d(g, 8);
  const double w[2] = {1.0, 0.01};
  for (int64_t r : {0, 1, 4})
    for (int64_t c : {0, 2, 3}) {
      auto row = pe[r * g + c];
      for (int i = 0; i < 2; ++i) {
        EXPECT_NEAR(row[i].item<float>(), std::sin(c * w[i]), 1e-6) << "col sin r=" << r << " c=" << c;
        EXPECT_NEAR(row[2 + i].item<float>(), std::cos(c * w[i]), 1e-6) << "col cos";
        EXPECT_NEAR(row[4 + i].item<float>(), std::sin(r * w[i]), 1e-6) << "row sin";
        EXPECT_NEAR(row[6 + i].item<float>(), std::cos(r * w[i]), 1e-6) << "row cos";
      }
    }
}

TEST(SinCos, OriginIsZeroSinOneCos) {
  auto pe = sincos_2d(4, 64);
  auto origin = pe[0];
  EXPECT_TRUE(torch::allclose(origin.slice(0, 0, 16), torch::zeros({16})));
  EXPECT_TRUE(torch::allclose(origin.slice(0, 16, 32), torch::ones({16})));
  EXPECT_TRUE(torch::allclose(origin.slice(0, 32, 48), torch::zeros({16})));
  EXPECT_TRUE(torch::allclose(origin.slice(0, 48, 64), torch::ones({16})));
}

TEST(SinCos, RejectsWidthNotDivisibleByFour) { EXPECT_ANY_THROW(sincos_2d(4, 6)); }
