#include <gtest/gtest.h>

#include <set>

#include "aim/data/mixture.h"
#include "aim/data/rng.h"
#include "aim/error.h"

using namespace aim::data;

TEST(DataMixture, RatioHoldsAndIsDeterministic) {
  MixtureSampler m({0.8, 0.2}, {"dfn2b", "imagenet"}, 3);
  const int n = 200000;
  int first = 0;
  for (uint64_t g = 0; g < n; ++g) first += m.source_of(g) == 0;
  EXPECT_NEAR(first / double(n), 0.8, 0.005);
  MixtureSampler again({4, 1}, {"a", "b"}, 3);  // same proportions, other scale
  for (uint64_t g = 0; g < 5000; g += 7) EXPECT_EQ(m.source_of(g), again.source_of(g));
  MixtureSampler other({0.8, 0.2}, {"a", "b"}, 4);
  int differ = 0;
  for (uint64_t g = 0; g < 1000; ++g) differ += m.source_of(g) != other.source_of(g);
  EXPECT_GT(differ, 100);  // the seed matters
}

TEST(DataMixture, BadWeightsAreStartupErrors) {
  EXPECT_THROW(MixtureSampler({0.8, 0.0}, {"a", "b"}, 0), aim::Error);
  EXPECT_THROW(MixtureSampler({0.0, 0.0}, {"a", "b"}, 0), aim::Error);
  EXPECT_THROW(MixtureSampler({-1.0}, {"a"}, 0), aim::Error);
  EXPECT_THROW(MixtureSampler({}, {}, 0), aim::Error);
  try {
    MixtureSampler({1.0, -0.5}, {"dfn", "inet"}, 0);
    FAIL();
  } catch (const aim::Error& e) {
    EXPECT_NE(std::string(e.what()).find("'inet'"), std::string::npos) << e.what();
  }
}

TEST(DataPermutation, IsABijectionForEverySize) {
  for (uint64_t n : {1ull, 2ull, 3ull, 7ull, 64ull, 1000ull, 4097ull}) {
    IndexPermutation p(n, 99);
    std::set<uint64_t> seen;
    for (uint64_t i = 0; i < n; ++i) {
      uint64_t v = p(i);
      ASSERT_LT(v, n);
      seen.insert(v);
    }
    EXPECT_EQ(seen.size(), n) << n;
  }
  IndexPermutation a(1000, 1), b(1000, 2);
  int same = 0;
  for (uint64_t i = 0; i < 1000; ++i) same += a(i) == b(i);
  EXPECT_LT(same, 20);  // different epochs really reshuffle
}
