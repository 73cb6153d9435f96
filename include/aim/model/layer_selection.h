#pragma once
#include <string>
#include <vector>

#include <torch/types.h>

#include "aim/model/model_config.h"

namespace aim::model {

/// Which trunk blocks feed a probe (spec §8), 0-indexed:
///  "last"  -> the final 6 blocks
///  "best"  -> the paper's best 6 for an official preset (600m: 14-19, 1b/3b: 12-17,
///             7b: 14-19); an error for other presets, and for an official preset whose
///             trunk shape (width, depth, heads, mlp_ratio, patch_size, channels) was overridden:
///             the list was measured on the released trunk, not on a reshaped one
///  "3,5,7" or "14-19" -> an explicit list / range (may be mixed: "0,4-6").
/// Throws aim::Error naming `key` for malformed or out-of-range specs.
std::vector<int64_t> select_blocks(const std::string& spec, const ModelConfig& model,
                                   const std::string& key = "probe.blocks");

/// Element-wise mean of block outputs (all [B, K, d]).
torch::Tensor average_blocks(const std::vector<torch::Tensor>& outputs);

}  // namespace aim::model
