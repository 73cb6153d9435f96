#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "aim/loss/target_kind.h"

namespace aim::model {

/// How pre-training attention is masked (spec §3). Downstream always runs kBidirectional.
enum class AttentionMode { kPrefixCausal, kCausal, kBidirectional };

/// Regression target of the pre-training loss (spec §5).
// The loss owns the target definition; the model config names which one it trains on.
using TargetKind = loss::TargetKind;

/// Every shape and switch of an AIM model. Defaults are aim-600m at 224 px.
struct ModelConfig {
  std::string preset = "aim-600m";
  int64_t img_size = 224;
  int64_t patch_size = 14;
  int64_t channels = 3;
  int64_t width = 1536;
  int64_t depth = 24;
  int64_t heads = 12;
  int64_t mlp_ratio = 4;
  int64_t head_width = 2048;   // pre-training head width
  int64_t head_blocks = 12;    // residual MLP blocks in the pre-training head
  int64_t head_mlp_ratio = 4;
  // The released code's head blocks compute h + LN_a(h) in their (identity) attention
  // slot; the paper does not mention it. On by default to match the official recipe.
  bool head_identity_attn = true;
  double norm_eps = 1e-6;
  AttentionMode attention = AttentionMode::kPrefixCausal;
  std::string order = "raster";  // raster | spiral | checkerboard | random
  uint64_t order_seed = 0;       // seeds the fixed permutation of order=random
  TargetKind target = TargetKind::kNormalizedPixels;

  int64_t grid() const { return img_size / patch_size; }
  int64_t num_tokens() const { return grid() * grid(); }
  int64_t head_dim() const { return width / heads; }
  int64_t patch_dim() const { return patch_size * patch_size * channels; }

  /// Throws aim::Error naming the offending field when shapes are inconsistent.
  void validate() const;
};

/// Names of all built-in presets (official sizes first, then small CPU presets).
std::vector<std::string> preset_names();

/// The preset's config; throws aim::Error listing valid names for an unknown one.
ModelConfig preset_config(const std::string& name);

/// True for the four presets with released checkpoints (aim-600m/1b/3b/7b).
bool is_official_preset(const std::string& name);

std::string to_string(AttentionMode mode);
AttentionMode attention_mode_from_string(const std::string& s);
std::string to_string(TargetKind kind);
TargetKind target_kind_from_string(const std::string& s);

}  // namespace aim::model
