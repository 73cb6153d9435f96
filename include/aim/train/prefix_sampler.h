#pragma once
#include <cstdint>

#include <torch/types.h>

#include "aim/model/model_config.h"

namespace aim::train {

/// Prefix length S of global sample g (spec §3: uniform on 1..K-1; 0 for causal), a pure
/// function of (seed, g). Every rank can therefore compute the number of kept loss tokens
/// of the whole global batch before the forward pass, and normalise its loss by it, so
/// data-parallel and accumulated steps equal one big batch, and resume is exact.
int64_t prefix_length(uint64_t seed, int64_t g, int64_t num_tokens, model::AttentionMode mode);

/// Prefix lengths for a batch of global sample indices (int64 [B]).
torch::Tensor prefix_lengths(uint64_t seed, const torch::Tensor& global_index, int64_t num_tokens,
                             model::AttentionMode mode);

/// Number of loss targets kept over global samples [first, first + count): sum of K - max(S, 1).
int64_t kept_targets(uint64_t seed, int64_t first, int64_t count, int64_t num_tokens, model::AttentionMode mode);

}  // namespace aim::train
