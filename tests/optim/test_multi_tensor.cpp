// The multi-tensor AdamW step and clipping against LibTorch's own (issue 17): on CPU the
// _foreach_* ops run the per-tensor kernels, so the two must agree bit for bit, over many
// steps, across the schedule, with a parameter that sometimes has no gradient, and when a
// run switches from one to the other (a checkpoint written by either loads into both).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <limits>

#include "aim/compat.h"
#include "aim/model/aim_pretrain.h"
#include "aim/optim/multi_tensor.h"
#include "aim/optim/optimizer.h"
#include "test_util.h"

using namespace aim;

namespace {

// Seeded gradients for step `s`; parameter 0 gets none on every third step.
void set_gradients(const std::vector<torch::Tensor>& params, int64_t s) {
  torch::manual_seed(1000 + s);
  for (size_t i = 0; i < params.size(); ++i) {
    auto g = torch::randn(params[i].sizes()) * (1.0 + 0.1 * static_cast<double>(i % 7));
    params[i].mutable_grad() = (i == 0 && s % 3 == 0) ? torch::Tensor() : g;
  }
}

void expect_same_state(torch::optim::AdamW& a, torch::optim::AdamW& b) {
  for (size_t g = 0; g < a.param_groups().size(); ++g)
    for (size_t i = 0; i < a.param_groups()[g].params().size(); ++i) {
      const auto& pa = a.param_groups()[g].params()[i];
      const auto& pb = b.param_groups()[g].params()[i];
      ASSERT_TRUE(torch::equal(pa, pb)) << "group " << g << " param " << i;
      auto& sa = static_cast<torch::optim::AdamWParamState&>(*a.state().find(compat::optimizer_state_key(pa))->second);
      auto& sb = static_cast<torch::optim::AdamWParamState&>(*b.state().find(compat::optimizer_state_key(pb))->second);
      ASSERT_EQ(sa.step(), sb.step());
      ASSERT_TRUE(torch::equal(sa.exp_avg(), sb.exp_avg()));
      ASSERT_TRUE(torch::equal(sa.exp_avg_sq(), sb.exp_avg_sq()));
    }
}

}  // namespace

TEST(MultiTensorAdamW, BitIdenticalToTorchAdamWOverManySteps) {
  const auto cfg = test::tiny_config();
  torch::manual_seed(0);
  model::AimPretrainModel ref(cfg);
  torch::manual_seed(0);
  model::AimPretrainModel ours(cfg);
  optim::OptimConfig oc;
  oc.weight_decay = 0.1;
  auto opt_ref = optim::make_adamw(*ref, oc);
  auto opt_ours = optim::make_adamw(*ours, oc);
  const auto p_ref = ref->parameters(), p_ours = ours->parameters();
  const int64_t total = 60;
  for (int64_t s = 0; s < total; ++s) {
    const double lr = optim::learning_rate(s, total, oc);
    optim::set_learning_rate(*opt_ref, lr);
    optim::set_learning_rate(*opt_ours, lr);
    set_gradients(p_ref, s);
    set_gradients(p_ours, s);
    opt_ref->step();
    // Small chunks: several per group, so the chunk boundaries are exercised too.
    optim::adamw_step(*opt_ours, /*chunk_elements=*/1000);
  }
  expect_same_state(*opt_ref, *opt_ours);
}

TEST(MultiTensorAdamW, ContinuesTorchAdamWState) {
  const auto cfg = test::tiny_config();
  torch::manual_seed(0);
  model::AimPretrainModel ref(cfg);
  torch::manual_seed(0);
  model::AimPretrainModel ours(cfg);
  auto opt_ref = optim::make_adamw(*ref, {});
  auto opt_ours = optim::make_adamw(*ours, {});
  const auto p_ref = ref->parameters(), p_ours = ours->parameters();
  for (int64_t s = 0; s < 20; ++s) {
    set_gradients(p_ref, s);
    set_gradients(p_ours, s);
    opt_ref->step();
    if (s < 10) opt_ours->step();  // the first half as an old checkpoint would have it
    else optim::adamw_step(*opt_ours);
  }
  expect_same_state(*opt_ref, *opt_ours);
}

TEST(MultiTensorClip, EqualsClipGradNorm) {
  const auto cfg = test::tiny_config();
  model::AimPretrainModel net(cfg);
  const auto params = net->parameters();
  for (double max_norm : {1.0, 1e9, std::numeric_limits<double>::infinity()}) {
    set_gradients(params, 1);
    std::vector<torch::Tensor> copies;
    for (const auto& p : params) copies.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
    const double ref = torch::nn::utils::clip_grad_norm_(params, max_norm);
    std::vector<torch::Tensor> clipped;
    for (const auto& p : params) clipped.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
    for (size_t i = 0; i < params.size(); ++i) params[i].mutable_grad() = copies[i];
    const auto ours = optim::clip_grad_norm(params, max_norm);
    ASSERT_EQ(ours.dim(), 0);
    EXPECT_EQ(ours.item<double>(), ref) << "max_norm " << max_norm;
    for (size_t i = 0; i < params.size(); ++i)
      if (clipped[i].defined()) ASSERT_TRUE(torch::equal(params[i].grad(), clipped[i])) << "param " << i;
  }
  EXPECT_GT(optim::clip_grad_norm(params, 1.0).item<double>(), 1.0);  // the test clipped for real
}
