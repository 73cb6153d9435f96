#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>

#include "aim/error.h"
#include "aim/model/token_order.h"

using aim::model::token_order;

namespace {
void expect_permutation(const torch::Tensor& perm, int64_t n) {
  ASSERT_EQ(perm.numel(), n);
  auto sorted = std::get<0>(perm.sort());
  EXPECT_TRUE(torch::equal(sorted, torch::arange(n, torch::kInt64)));
}
}  // namespace

TEST(TokenOrder, AllOrdersArePermutations) {
  for (const char* order : {"raster", "spiral", "checkerboard", "random"})
    for (int64_t g : {1, 2, 4, 5, 16}) expect_permutation(token_order(order, g, 7), g * g);
}

TEST(TokenOrder, RasterIsIdentity) {
  EXPECT_TRUE(torch::equal(token_order("raster", 4), torch::arange(16, torch::kInt64)));
}

TEST(TokenOrder, SpiralStartsAtCentreAndWalksToNeighbours) {
  const int64_t g = 5;
  auto p = token_order("spiral", g);
  auto acc = p.accessor<int64_t, 1>();
  EXPECT_EQ(acc[0], 2 * g + 2);  // the centre cell
  for (int64_t i = 1; i < g * g; ++i) {
    int64_t dr = std::abs(acc[i] / g - acc[i - 1] / g), dc = std::abs(acc[i] % g - acc[i - 1] % g);
    EXPECT_EQ(dr + dc, 1) << "step " << i << " is not to a 4-neighbour";
  }
  // Centre outwards: distance from the centre never decreases by ring.
  int64_t prev_ring = 0;
  for (int64_t i = 0; i < g * g; ++i) {
    int64_t ring = std::max(std::abs(acc[i] / g - 2), std::abs(acc[i] % g - 2));
    EXPECT_GE(ring, prev_ring);
    prev_ring = ring;
  }
}

TEST(TokenOrder, CheckerboardEvenCellsFirstInRasterOrder) {
  const int64_t g = 4;
  auto p = token_order("checkerboard", g);
  auto acc = p.accessor<int64_t, 1>();
  for (int64_t i = 0; i < g * g; ++i) {
    int64_t parity = (acc[i] / g + acc[i] % g) % 2;
    EXPECT_EQ(parity, i < g * g / 2 ? 0 : 1);
    if (i > 0 && i != g * g / 2) {
      EXPECT_GT(acc[i], acc[i - 1]);
    }
  }
}

TEST(TokenOrder, RandomIsFixedBySeed) {
  EXPECT_TRUE(torch::equal(token_order("random", 8, 3), token_order("random", 8, 3)));
  EXPECT_FALSE(torch::equal(token_order("random", 8, 3), token_order("random", 8, 4)));
}

TEST(TokenOrder, UnknownOrderIsAClearError) {
  try {
    token_order("zigzag", 4);
    FAIL();
  } catch (const aim::Error& e) {
    EXPECT_NE(std::string(e.what()).find("zigzag"), std::string::npos);
  }
}
