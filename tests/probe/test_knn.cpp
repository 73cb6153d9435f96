// DINO's weighted kNN (probe/knn.h) against scores computed by hand.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "aim/error.h"
#include "aim/probe/knn.h"

using namespace aim;

namespace {

// Four training points in 2-D (rows need not be normalized: the classifier does it) and the
// query (2, 1): cosines 2/sqrt5 (class 0), 1/sqrt5 (class 1), 3/sqrt10 (class 1), -2/sqrt5 (class 2).
torch::Tensor bank() { return torch::tensor({{3.0f, 0.0f}, {0.0f, 0.5f}, {2.0f, 2.0f}, {-1.0f, 0.0f}}); }
torch::Tensor labels() { return torch::tensor({0, 1, 1, 2}, torch::kLong); }
const double c0 = 2 / std::sqrt(5.0), c1 = 1 / std::sqrt(5.0), c2 = 3 / std::sqrt(10.0);

}  // namespace

TEST(Knn, WeightedVotesOfTheNearestNeighbours) {
  const double T = 0.5;
  probe::KnnClassifier k2(bank(), labels(), 3, 2, T);
  auto s = k2.scores(torch::tensor({{2.0f, 1.0f}}));
  ASSERT_EQ(s.sizes(), (std::vector<int64_t>{1, 3}));
  EXPECT_NEAR(s[0][0].item<double>(), std::exp(c0 / T), 1e-4);
  EXPECT_NEAR(s[0][1].item<double>(), std::exp(c2 / T), 1e-4);  // only the nearest of class 1
  EXPECT_EQ(s[0][2].item<double>(), 0.0);
  probe::KnnClassifier k3(bank(), labels(), 3, 3, T);
  s = k3.scores(torch::tensor({{2.0f, 1.0f}}));
  EXPECT_NEAR(s[0][1].item<double>(), std::exp(c2 / T) + std::exp(c1 / T), 1e-4);  // the third joins class 1
  EXPECT_GT(s[0][1].item<double>(), s[0][0].item<double>());
  // k above the bank size is capped at it.
  EXPECT_EQ(probe::KnnClassifier(bank(), labels(), 3, 20, T).k(), 4);
  EXPECT_THROW(probe::KnnClassifier(bank(), labels().narrow(0, 0, 3), 3, 2, T), Error);
}

TEST(Knn, NeighboursAcrossBankChunksAreMerged) {
  // 70000 distractors pointing away from the query, then the four points: the neighbours sit
  // in the second chunk of 65536 rows, and must beat the first chunk's best.
  auto far = torch::cat({torch::full({70000, 1}, -1.0f), torch::rand({70000, 1}) - 0.5f}, 1);
  auto b = torch::cat({far, bank()});
  auto y = torch::cat({torch::full({70000}, 2, torch::kLong), labels()});
  probe::KnnClassifier knn(b, y, 3, 2, 0.5);
  auto s = knn.scores(torch::tensor({{2.0f, 1.0f}, {-1.0f, 0.1f}}));
  EXPECT_NEAR(s[0][0].item<double>(), std::exp(c0 / 0.5), 1e-4);
  EXPECT_NEAR(s[0][1].item<double>(), std::exp(c2 / 0.5), 1e-4);
  EXPECT_EQ(s[0][2].item<double>(), 0.0);
  EXPECT_GT(s[1][2].item<double>(), 0.0);  // the second query's neighbours are distractors
  EXPECT_EQ(s[1][0].item<double>(), 0.0);
}

TEST(Knn, PoolsTokenFeaturesByTheirMean) {
  auto f = torch::tensor({{{1.0f, 2.0f}, {3.0f, 6.0f}}});  // [1, 2 tokens, 2]
  EXPECT_TRUE(torch::allclose(probe::knn_pooled(f), torch::tensor({{2.0f, 4.0f}})));
}
