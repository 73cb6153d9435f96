#include "aim/train/prefix_sampler.h"

#include <torch/torch.h>

#include "aim/data/rng.h"

namespace aim::train {
namespace {
constexpr uint64_t kPrefixStream = 0x707265666978;  // "prefix"
}

int64_t prefix_length(uint64_t seed, int64_t g, int64_t num_tokens, model::AttentionMode mode) {
  if (mode != model::AttentionMode::kPrefixCausal) return 0;
  data::Rng rng(data::hash_key(seed, kPrefixStream, static_cast<uint64_t>(g)));
  return rng.between(1, num_tokens - 1);
}

torch::Tensor prefix_lengths(uint64_t seed, const torch::Tensor& global_index, int64_t num_tokens,
                             model::AttentionMode mode) {
  auto idx = global_index.to(torch::kCPU, torch::kInt64).contiguous();
  auto out = torch::empty({idx.numel()}, torch::kInt64);
  auto src = idx.data_ptr<int64_t>();
  auto dst = out.data_ptr<int64_t>();
  for (int64_t i = 0; i < idx.numel(); ++i) dst[i] = prefix_length(seed, src[i], num_tokens, mode);
  return out;
}

int64_t kept_targets(uint64_t seed, int64_t first, int64_t count, int64_t num_tokens, model::AttentionMode mode) {
  int64_t kept = 0;
  for (int64_t g = first; g < first + count; ++g)
    kept += num_tokens - std::max<int64_t>(prefix_length(seed, g, num_tokens, mode), 1);
  return kept;
}

}  // namespace aim::train
