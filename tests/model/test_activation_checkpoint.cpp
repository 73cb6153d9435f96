// Activation checkpointing (model::checkpoint, train.activation_checkpointing=full) changes
// what backward keeps, never what it computes: gradients equal the plain graph's, and every
// parameter's gradient arrives once, through its hooks, as GradientSync needs.
#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>

#include "aim/compat.h"
#include "aim/model/activation_checkpoint.h"
#include "aim/model/aim_pretrain.h"
#include "aim/model/attention_mask.h"
#include "test_util.h"

using namespace aim;

namespace {

struct Grads {
  torch::Tensor loss;
  std::map<std::string, torch::Tensor> by_name;
  torch::Tensor input;  // gradient w.r.t. the images
};

// One float64 forward/backward of the tiny model, weights from seed 0, with or without
// checkpointing; kLossOnly is the training path, kAll runs the head on every token.
Grads grads_of(bool checkpointing, model::HeadTokens head_tokens, model::AttentionMode attention) {
  auto cfg = test::tiny_config();
  cfg.attention = attention;
  torch::manual_seed(0);
  model::AimPretrainModel net(cfg);
  net->to(torch::kFloat64);
  net->set_activation_checkpointing(checkpointing);
  torch::manual_seed(1);
  auto images = torch::randn({3, 3, 16, 16}, torch::kFloat64).requires_grad_(true);
  auto prefix = torch::tensor({1, 5, 14}, torch::kInt64);
  if (attention == model::AttentionMode::kCausal) prefix.zero_();
  auto out = net->forward(images, prefix, head_tokens);
  (out.loss.sum / out.loss.count).backward();
  Grads g;
  g.loss = out.loss.sum.detach();
  for (const auto& p : net->named_parameters()) g.by_name[p.key()] = p.value().grad().clone();
  g.input = images.grad().clone();
  return g;
}

void expect_same_gradients(const Grads& plain, const Grads& ckpt) {
  EXPECT_TRUE(torch::equal(plain.loss, ckpt.loss)) << "the forward changed";
  ASSERT_EQ(plain.by_name.size(), ckpt.by_name.size());
  for (const auto& [name, g] : plain.by_name) {
    ASSERT_TRUE(ckpt.by_name.at(name).defined()) << name << " got no gradient with checkpointing";
    const double scale = g.abs().max().item<double>();
    const double diff = (g - ckpt.by_name.at(name)).abs().max().item<double>();
    EXPECT_LE(diff, 1e-13 * std::max(scale, 1e-30)) << name << ": max |diff| " << diff << " of " << scale;
    EXPECT_GT(scale, 0) << name << " has an all-zero gradient: the check would be empty";
  }
  EXPECT_LE((plain.input - ckpt.input).abs().max().item<double>(), 1e-13 * plain.input.abs().max().item<double>());
}

}  // namespace

TEST(ActivationCheckpoint, Float64GradientsEqualThePlainGraph) {
  for (auto tokens : {model::HeadTokens::kLossOnly, model::HeadTokens::kAll})
    for (auto attention : {model::AttentionMode::kPrefixCausal, model::AttentionMode::kCausal}) {
      SCOPED_TRACE(std::string(tokens == model::HeadTokens::kAll ? "head on all tokens" : "head on loss rows") +
                   (attention == model::AttentionMode::kCausal ? ", causal" : ", prefix"));
      expect_same_gradients(grads_of(false, tokens, attention), grads_of(true, tokens, attention));
    }
}

// GradientSync copies a gradient into its bucket from the parameter's hook: with
// checkpointing the gradient is produced inside the recompute's own backward, and the hook
// must still fire there, exactly once per parameter per backward, with the final value.
TEST(ActivationCheckpoint, ParameterHooksFireOncePerBackward) {
  auto cfg = test::tiny_config();
  torch::manual_seed(0);
  model::AimPretrainModel net(cfg);
  net->set_activation_checkpointing(true);
  auto params = net->parameters();
  std::vector<int> fired(params.size(), 0);
  std::vector<torch::Tensor> seen(params.size());
  for (size_t k = 0; k < params.size(); ++k)
    params[k].register_hook([&fired, &seen, k](torch::Tensor g) {
      ++fired[k];
      seen[k] = g.clone();
    });
  auto images = torch::randn({2, 3, 16, 16});
  auto prefix = torch::tensor({3, 9}, torch::kInt64);
  for (int round = 1; round <= 2; ++round) {  // two micro-batches: .grad accumulates
    auto out = net->forward(images, prefix, model::HeadTokens::kLossOnly);
    out.loss.sum.backward();
    for (size_t k = 0; k < params.size(); ++k) {
      EXPECT_EQ(fired[k], round) << "parameter " << k;
      ASSERT_TRUE(seen[k].defined());
      EXPECT_TRUE(torch::allclose(params[k].grad(), round * seen[k], 1e-5, 1e-7)) << "parameter " << k;
    }
  }
}

// The checkpointed block keeps only its input: the function is run once in forward (no
// graph inside it) and once in backward; without grad (validation) it is a plain call.
TEST(ActivationCheckpoint, RecomputesOnceInBackwardAndNotWithoutGrad) {
  int calls = 0;
  auto w = torch::randn({4, 4}, torch::requires_grad());
  model::BlockFn fn = [&](const torch::Tensor& x) {
    ++calls;
    return torch::tanh(x.matmul(w));
  };
  auto x = torch::randn({3, 4}, torch::requires_grad());
  auto y = model::checkpoint(fn, x);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(y.requires_grad());
  EXPECT_EQ(y.grad_fn()->next_edges().size(), 1u) << "the graph reaches x only, not the block's insides";
  y.sum().backward();
  EXPECT_EQ(calls, 2);
  auto x2 = x.detach().requires_grad_(true);
  auto w_grad = w.grad().clone();
  w.mutable_grad() = torch::Tensor();
  torch::tanh(x2.matmul(w)).sum().backward();
  EXPECT_TRUE(torch::allclose(x.grad(), x2.grad()));
  EXPECT_TRUE(torch::allclose(w_grad, w.grad()));
  {
    torch::NoGradGuard ng;
    model::checkpoint(fn, x);
  }
  EXPECT_EQ(calls, 3);
}

// The bf16 training forward under checkpointing runs without autocast's cast cache (it would
// hold a bf16 copy of every weight through the whole forward: nothing else keeps them), in
// the forward and in the recompute, which re-enters the forward's state; the thread's own
// setting is back afterwards. Without checkpointing the cache stays on (backward keeps the
// copies anyway, and a weight used twice is cast once).
TEST(ActivationCheckpoint, NoAutocastWeightCacheInTheCheckpointedForwardOrItsRecompute) {
  ASSERT_TRUE(at::autocast::is_autocast_cache_enabled());
  EXPECT_TRUE(compat::bf16_training_autocast(false).cache);
  EXPECT_TRUE(compat::bf16_training_autocast(false).enabled);
  std::vector<bool> cache_seen;
  model::BlockFn fn = [&](const torch::Tensor& x) {
    cache_seen.push_back(at::autocast::is_autocast_cache_enabled());
    return x * 2;
  };
  auto x = torch::ones({2}, torch::requires_grad());
  torch::Tensor y;
  {
    compat::AutocastGuard autocast(compat::bf16_training_autocast(true));
    EXPECT_TRUE(compat::cuda_autocast_state().enabled);
    y = model::checkpoint(fn, x);
  }
  EXPECT_TRUE(at::autocast::is_autocast_cache_enabled()) << "the guard left the cache off";
  EXPECT_FALSE(compat::cuda_autocast_state().enabled);
  y.sum().backward();  // the recompute
  ASSERT_EQ(cache_seen.size(), 2u);
  EXPECT_FALSE(cache_seen[0]) << "forward";
  EXPECT_FALSE(cache_seen[1]) << "recompute";
  EXPECT_TRUE(at::autocast::is_autocast_cache_enabled());
}
