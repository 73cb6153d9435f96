#include "aim/model/trunk.h"

#include <torch/torch.h>

#include <algorithm>

#include "aim/error.h"
#include "aim/model/activation_checkpoint.h"

namespace aim::model {

TrunkImpl::TrunkImpl(const ModelConfig& cfg) {
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.depth; ++i)
    blocks->push_back(Block(cfg.width, cfg.heads, cfg.mlp_ratio, cfg.norm_eps));
  post_trunk_norm = register_module("post_trunk_norm", make_layer_norm(cfg.width, cfg.norm_eps));
}

void TrunkImpl::enable_lora(const LoraSpec& spec) {
  for (const auto& b : *blocks) b->as<BlockImpl>()->attn->enable_lora(spec);
}

std::vector<torch::Tensor> TrunkImpl::lora_parameters() const {
  std::vector<torch::Tensor> out;
  for (const auto& b : *blocks) {
    const auto& w = b->as<BlockImpl>()->attn->lora();
    if (w.on()) out.insert(out.end(), {w.qkv_A, w.qkv_B, w.proj_A, w.proj_B});
  }
  return out;
}

TrunkOutput TrunkImpl::forward(const torch::Tensor& tokens, const AttentionMask& mask,
                               const std::vector<int64_t>& capture, bool normed_output) {
  const int64_t depth = static_cast<int64_t>(blocks->size());
  int64_t last = normed_output ? depth - 1 : -1;
  for (auto id : capture) {
    if (id < 0 || id >= depth)
      throw Error("trunk: block " + std::to_string(id) + " requested, but the trunk has blocks 0.." +
                  std::to_string(depth - 1));
    last = std::max(last, id);
  }
  TrunkOutput out;
  out.blocks.resize(capture.size());
  // A checkpointed block recomputes in backward, after this frame is gone: it shares one
  // copy of the mask (and so one cached mask tensor) with the other blocks.
  std::shared_ptr<const AttentionMask> kept_mask;
  if (checkpointing_) kept_mask = std::make_shared<const AttentionMask>(mask);
  auto x = tokens;
  for (int64_t i = 0; i <= last; ++i) {
    if (kept_mask) {
      auto block = blocks->ptr<BlockImpl>(i);
      x = checkpoint([block, kept_mask](const torch::Tensor& t) { return block->forward(t, *kept_mask); }, x);
    } else {
      x = blocks[i]->as<BlockImpl>()->forward(x, mask);
    }
    for (size_t c = 0; c < capture.size(); ++c)
      if (capture[c] == i) out.blocks[c] = x;
  }
  if (normed_output) out.normed = post_trunk_norm->forward(x);
  return out;
}

}  // namespace aim::model
