#pragma once
#include <cstdint>

#include "aim/model/model_config.h"

namespace aim::model {

/// Analytic parameter counts: exact for the modules we build, computed from shapes
/// alone so aim-7b can be summarised without allocating 26 GB of weights.
struct ParamCounts {
  int64_t patch_embed = 0;  // conv weight + bias + LayerNorm
  int64_t trunk = 0;        // patch embed + blocks + post-trunk norm (spec §2 table)
  int64_t pretrain_head = 0;
  int64_t total() const { return trunk + pretrain_head; }
};
ParamCounts count_parameters(const ModelConfig& cfg);

/// Attentive probe: 2d^2 + d + d*classes. Linear probe: d*classes + classes.
int64_t attentive_probe_parameters(int64_t width, int64_t classes);
int64_t linear_probe_parameters(int64_t width, int64_t classes);

/// Analytic FLOPs per image (one multiply-add = 2 FLOPs), counting every matmul:
/// patch embedding, qkv/proj/MLP, the attention score and value products at full K x K
/// (what dense kernels execute; masked entries are not subtracted), and the pre-training
/// head, which is ~37 % of aim-600m's training compute and must be in MFU (spec §4).
/// Norms, softmax and element-wise ops are excluded, as in the usual MFU convention.
/// forward()/training() are the recipe's FLOPs (head on all K tokens, as the paper and
/// official code count them; aim-scale's compute axis). Training runs the head only on the
/// tokens whose output reaches the loss (HeadTokens::kLossOnly), so what the hardware
/// executes -- the numerator of MFU -- is executed_training().
struct FlopCounts {
  double trunk_forward = 0;     // patch embed + blocks
  double head_forward = 0;      // pre-training head on all K tokens
  double head_token_share = 1;  // expected share of the K tokens that reach the loss
  double forward() const { return trunk_forward + head_forward; }
  /// Backward costs twice the forward (gradients w.r.t. activations and weights).
  double training() const { return 3.0 * forward(); }
  double executed_training() const { return 3.0 * (trunk_forward + head_token_share * head_forward); }
};
FlopCounts count_flops(const ModelConfig& cfg);

}  // namespace aim::model
