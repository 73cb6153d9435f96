#pragma once
#include <torch/types.h>

#include <functional>

namespace aim::model {

/// A block's forward as a function of its one differentiable input; everything else it
/// needs (the block's parameters, the attention mask) it reaches by itself. It must be
/// RNG-free (AIM has no dropout): backward runs it a second time and relies on getting
/// the same result.
using BlockFn = std::function<torch::Tensor(const torch::Tensor&)>;

/// Activation checkpointing (train.activation_checkpointing=full): y = fn(x), but autograd
/// keeps only x. Backward re-runs fn on a detached copy of x with grad enabled (and CUDA
/// autocast as it was in the forward), back-propagates the incoming gradient through that
/// graph, and hands on x's gradient. The parameters inside fn get their gradients in that
/// inner backward, so their .grad and their hooks (GradientSync's buckets) see each
/// gradient exactly once, as without checkpointing.
///
/// Falls back to a plain fn(x) where nothing needs saving (grad mode off, or x does not
/// require grad: then the parameters would have no path into the graph).
torch::Tensor checkpoint(const BlockFn& fn, const torch::Tensor& x);

}  // namespace aim::model
