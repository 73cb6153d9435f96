#include "aim/model/model_stats.h"

namespace aim::model {

ParamCounts count_parameters(const ModelConfig& cfg) {
  const int64_t d = cfg.width, hw = cfg.head_width;
  ParamCounts p;
  p.patch_embed = cfg.patch_dim() * d + d + 2 * d;
  const int64_t block = 2 * 2 * d + 3 * d * d + d * d + 2 * cfg.mlp_ratio * d * d;
  p.trunk = p.patch_embed + cfg.depth * block + 2 * d;
  const int64_t head_block = (cfg.head_identity_attn ? 4 : 2) * hw + 2 * cfg.head_mlp_ratio * hw * hw;
  p.pretrain_head = (d * hw + hw) + cfg.head_blocks * head_block + 2 * hw +
                    (hw * cfg.patch_dim() + cfg.patch_dim());
  return p;
}

int64_t attentive_probe_parameters(int64_t width, int64_t classes) {
  return 2 * width * width + width + width * classes;
}

int64_t linear_probe_parameters(int64_t width, int64_t classes) { return width * classes + classes; }

FlopCounts count_flops(const ModelConfig& cfg) {
  const double K = static_cast<double>(cfg.num_tokens());
  const double d = static_cast<double>(cfg.width), hw = static_cast<double>(cfg.head_width);
  const double r = static_cast<double>(cfg.mlp_ratio), rh = static_cast<double>(cfg.head_mlp_ratio);
  const double pd = static_cast<double>(cfg.patch_dim());
  FlopCounts f;
  const double embed = 2 * K * pd * d;
  const double linears = 2 * K * (3 * d * d + d * d + 2 * r * d * d);
  const double attention = 2 * 2 * K * K * d;  // q k^T and attn v
  f.trunk_forward = embed + static_cast<double>(cfg.depth) * (linears + attention);
  f.head_forward = 2 * K * d * hw + static_cast<double>(cfg.head_blocks) * 2 * K * (2 * rh * hw * hw) + 2 * K * hw * pd;
  // Loss tokens per image: K - max(S, 1). Prefix: S uniform on 1..K-1, mean K/2 -> K/2
  // tokens; causal: K - 1.
  if (cfg.attention == AttentionMode::kPrefixCausal) f.head_token_share = 0.5;
  if (cfg.attention == AttentionMode::kCausal) f.head_token_share = (K - 1) / K;
  return f;
}

}  // namespace aim::model
