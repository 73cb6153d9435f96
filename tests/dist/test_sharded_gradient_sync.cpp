// ZeRO-2's gradient reduction on CPU with real Gloo ranks (threads over loopback): each rank
// ends with the sum over ranks and micro-batches of its own uneven slice of the flattened
// gradients, buckets that straddle slice bounds reach every owner, no rank keeps a full
// parameter gradient, and the collectives it is built on (reduce, all-gather) do what they say.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "aim/dist/gradient_sync.h"
#include "aim/dist/sharded_gradient_sync.h"
#include "dist/dist_test_util.h"

using namespace aim;
using aim::test::gloo_rank;
using aim::test::run_ranks;

namespace {

TEST(ShardedGradientSync, ReduceAndAllGather) {
  const int port = test::free_loopback_port();
  auto errors = run_ranks(3, [&](int r) {
    auto comm = gloo_rank(r, 3, port);
    auto t = torch::full({4}, double(r + 1), torch::kFloat64);
    comm->reduce_sum(t, 2)->wait();
    if (r == 2) {
      EXPECT_TRUE(torch::equal(t, torch::full({4}, 6.0, torch::kFloat64)));
    }
    auto in = torch::arange(2, torch::kFloat32) + 10 * r;
    auto out = torch::empty({6}, torch::kFloat32);
    comm->all_gather(out, in);
    EXPECT_TRUE(torch::equal(out, torch::tensor({0.f, 1.f, 10.f, 11.f, 20.f, 21.f}))) << out;
    auto wrong = torch::empty({5}, torch::kFloat32);
    EXPECT_THROW(comm->all_gather(wrong, in), std::exception);
  });
  for (const auto& e : errors) EXPECT_EQ(e, "");
}

// Parameters of 7, 5, 11 and 3 elements (26 in all) on 3 ranks: slices [0,8), [8,17), [17,26)
// cut through parameters 1 and 2; 4-byte buckets give one bucket per parameter, so buckets
// cross the slice bounds and at most three (the one being filled and two in flight) are
// alive. Two micro-batches, and the last one gives parameter 0 no gradient (the last bucket
// in launch order: buckets launch in index order, so one without a gradient holds the buckets
// after it until finish(), as DDP's reducer does — BucketOrder below).
void each_rank_gets_the_sum_of_its_slice(dist::ReduceScatterPolicy policy) {
  const int port = test::free_loopback_port();
  const int world = 3;
  const std::vector<int64_t> sizes = {7, 5, 11, 3}, bounds = {0, 8, 17, 26};
  // Rank r's gradient of parameter k in micro-batch m: (r + 1) * (m + 1) * (k + 1) * x_k.
  auto expected = [&](int64_t lo, int64_t hi) {
    std::vector<float> full;
    for (size_t k = 0; k < sizes.size(); ++k)
      for (int64_t i = 0; i < sizes[k]; ++i) {
        double sum = 0;
        for (int m = 0; m < 2; ++m)
          if (!(m == 1 && k == 0))
            for (int r = 0; r < world; ++r) sum += (r + 1) * (m + 1) * (k + 1) * (i + 1);
        full.push_back(static_cast<float>(sum));
      }
    return torch::tensor(std::vector<float>(full.begin() + lo, full.begin() + hi));
  };
  auto errors = run_ranks(world, [&](int r) {
    auto comm = gloo_rank(r, world, port);
    std::vector<torch::Tensor> params;
    for (auto n : sizes) params.push_back(torch::zeros({n}, torch::requires_grad()));
    dist::ShardedGradientSync sync(params, bounds, *comm, 4.0 / (1024 * 1024), 2, policy);
    EXPECT_EQ(sync.num_buckets(), 4u);
    sync.zero();
    for (int m = 0; m < 2; ++m) {
      sync.arm();
      auto loss = torch::zeros({}, torch::kFloat32);
      for (size_t k = 0; k < params.size(); ++k) {
        if (m == 1 && k == 0) continue;
        auto x = torch::arange(1, sizes[k] + 1, torch::kFloat32);
        loss = loss + (params[k] * x).sum() * float((r + 1) * (m + 1) * (k + 1));
      }
      loss.backward();
      sync.finish();
      for (size_t k = 0; k < params.size(); ++k) EXPECT_FALSE(params[k].grad().defined()) << "param " << k;
      EXPECT_EQ(sync.scattered_buckets(), policy == dist::ReduceScatterPolicy::kAlways ? 4u : 0u);
    }
    EXPECT_TRUE(torch::allclose(sync.slice(), expected(bounds[r], bounds[r + 1]))) << "rank " << r << sync.slice();
    if (policy == dist::ReduceScatterPolicy::kNever)  // padded parts may outgrow the bucket
      EXPECT_LT(sync.peak_bucket_elements(), 26) << "every bucket alive at once";
  });
  for (const auto& e : errors) EXPECT_EQ(e, "");
}

TEST(ShardedGradientSync, EachRankGetsTheSumOfItsSliceAndNoFullGradient) {
  each_rank_gets_the_sum_of_its_slice(dist::ReduceScatterPolicy::kNever);
}

// The same sums through one zero-padded reduce-scatter per bucket (native on NCCL and on
// Gloo from LibTorch 2.3; an all-reduce stand-in on Gloo 1.13, so the padding and the
// piece each rank keeps are checked here on every build).
TEST(ShardedGradientSync, PaddedReduceScatterGivesTheSameSlices) {
  each_rank_gets_the_sum_of_its_slice(dist::ReduceScatterPolicy::kAlways);
}

TEST(ShardedGradientSync, ReduceScatterOfEqualParts) {
  const int port = test::free_loopback_port();
  auto errors = run_ranks(3, [&](int r) {
    auto comm = gloo_rank(r, 3, port);
    auto in = torch::arange(6, torch::kFloat32) * float(r + 1);  // parts [0,1] [2,3] [4,5]
    auto out = torch::empty({2}, torch::kFloat32);
    comm->reduce_scatter_sum(out, in)->wait();
    EXPECT_TRUE(torch::equal(out, torch::tensor({0.f, 1.f}) * 6 + 12.f * r)) << "rank " << r << out;
    auto wrong = torch::empty({4}, torch::kFloat32);
    EXPECT_THROW(comm->reduce_scatter_sum(wrong, in), std::exception);
  });
  for (const auto& e : errors) EXPECT_EQ(e, "");
}

// kAuto: a bucket spread evenly over the three slices (8, 9, 9 of 26 elements: 2 x 9 <= 26)
// is one reduce-scatter where the backend has a native one; elsewhere per-owner reduces.
TEST(ShardedGradientSync, AutoScattersOnlyEvenlySpreadBucketsAndOnlyWhereNative) {
  const int port = test::free_loopback_port();
  auto errors = run_ranks(3, [&](int r) {
    auto comm = gloo_rank(r, 3, port);
    std::vector<torch::Tensor> params;
    for (int64_t n : {7, 5, 11, 3}) params.push_back(torch::zeros({n}, torch::requires_grad()));
    dist::ShardedGradientSync sync(params, {0, 8, 17, 26}, *comm);  // 25 MB: one bucket
    sync.zero();
    sync.arm();
    auto loss = torch::zeros({});
    for (auto& p : params) loss = loss + p.sum() * float(r + 1);
    loss.backward();
    sync.finish();
    EXPECT_EQ(sync.scattered_buckets(), comm->native_reduce_scatter() ? 1u : 0u);
    EXPECT_TRUE(torch::allclose(sync.slice(), torch::full({sync.slice().numel()}, 6.f)));
    // A bucket inside one slice: one reduce to its owner moves less than any reduce-scatter.
    dist::ShardedGradientSync lopsided(params, {0, 26, 26, 26}, *comm);
    lopsided.zero();
    lopsided.arm();
    auto l2 = torch::zeros({});
    for (auto& p : params) l2 = l2 + p.sum();
    l2.backward();
    lopsided.finish();
    EXPECT_EQ(lopsided.scattered_buckets(), 0u);
  });
  for (const auto& e : errors) EXPECT_EQ(e, "");
}

}  // namespace

// Collectives pair up across ranks by the order they are issued in. A rank that gives a
// stalled step up (train_step.cpp) fills no bucket from hooks and launches every bucket from
// finish(); the others launch as backward fills their buckets. Here parameter 0's gradient
// appears first, so backward fills bucket 1 (parameter 0: buckets run from the last
// parameter) before bucket 0: both syncs must still launch in bucket order, or the 3- and
// 5-element reductions meet their counterparts crossed.
namespace {
// Rank 1's gradients of p0 (3 elements) and p1 (5) for loss = sum(p1 * x1) * sum(p0 * x0) at
// p = 1: p0 gets sum(x1) * x0 = 15 * [1 2 3], p1 gets sum(x0) * x1 = 6 * [1 2 3 4 5].
torch::Tensor out_of_order_backward(std::vector<torch::Tensor>& params) {
  auto x0 = torch::arange(1, 4, torch::kFloat32), x1 = torch::arange(1, 6, torch::kFloat32);
  auto y = (params[1] * x1).sum();
  auto s0 = (params[0] * x0).sum();  // created later: its branch runs first in backward
  (y * s0).backward();
  return torch::cat({15 * x0, 6 * x1});
}
}  // namespace

TEST(BucketOrder, ARankThatOnlyFinishesPairsWithOneWhoseBackwardFillsBucketsOutOfOrder) {
  for (bool sharded : {false, true}) {
    const int port = test::free_loopback_port();
    auto errors = run_ranks(2, [&](int r) {
      auto comm = gloo_rank(r, 2, port, 10);
      std::vector<torch::Tensor> params = {torch::ones({3}, torch::requires_grad()),
                                           torch::ones({5}, torch::requires_grad())};
      const double tiny = 4.0 / (1024 * 1024);  // one bucket per parameter
      torch::Tensor expected = torch::cat({15 * torch::arange(1, 4, torch::kFloat32),
                                           6 * torch::arange(1, 6, torch::kFloat32)});
      if (sharded) {
        const std::vector<int64_t> bounds = {0, 4, 8};
        dist::ShardedGradientSync sync(params, bounds, *comm, tiny, 2, dist::ReduceScatterPolicy::kNever);
        ASSERT_EQ(sync.num_buckets(), 2u);
        sync.zero();
        sync.arm();
        if (r == 1) out_of_order_backward(params);
        sync.finish();
        EXPECT_TRUE(torch::equal(sync.slice(), expected.slice(0, bounds[r], bounds[r + 1])))
            << "rank " << r << " " << sync.slice();
      } else {
        dist::GradientSync sync(params, *comm, tiny);
        ASSERT_EQ(sync.num_buckets(), 2u);
        sync.arm();
        if (r == 1) out_of_order_backward(params);
        sync.finish();
        ASSERT_TRUE(params[0].grad().defined() && params[1].grad().defined());
        EXPECT_TRUE(torch::equal(torch::cat({params[0].grad(), params[1].grad()}), expected))
            << "rank " << r << " " << params[0].grad() << params[1].grad();
      }
    });
    for (const auto& e : errors) EXPECT_EQ(e, "") << (sharded ? "sharded" : "replicated");
  }
}
