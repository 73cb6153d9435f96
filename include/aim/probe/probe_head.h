#pragma once
#include <map>
#include <string>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "aim/model/probes.h"

namespace aim::probe {

/// A trainable probe in the official naming: its single child is `head` (the attentive
/// probe, spec §8, or the linear probe), so its state dict reads head.cls_token, head.k.weight,
/// ... exactly like the `head.*` entries of the official checkpoints.
class ProbeHeadImpl : public torch::nn::Module {
 public:
  /// kind: "attentive" (heads = trunk heads) or "linear".
  ProbeHeadImpl(const std::string& kind, int64_t dim, int64_t heads, int64_t classes);
  /// features [B, K, d] -> logits [B, classes]
  torch::Tensor forward(const torch::Tensor& features);

  const std::string& kind() const { return kind_; }
  int64_t dim() const { return dim_; }
  int64_t classes() const { return classes_; }

 private:
  std::string kind_;
  int64_t dim_, classes_;
  model::AttentionPoolingProbe attentive_{nullptr};
  model::LinearProbe linear_{nullptr};
};
TORCH_MODULE(ProbeHead);

/// Writes the probe's head.* tensors with metadata (kind, classes, heads, plus `extra`).
void save_probe(const std::string& path, ProbeHead& head, int64_t heads,
                const std::map<std::string, std::string>& extra = {});

/// Reads a probe written by save_probe, or an official checkpoint's head.* (attentive; the
/// class count comes from head.linear.weight), or a hub model directory's (its model.safetensors). `heads` is used when the file does not say.
/// The head keeps the file's floating-point dtype; callers convert it (->to(device, kFloat)).
/// Errors name the file and what is missing or mismatched.
ProbeHead load_probe(const std::string& path, int64_t heads, std::map<std::string, std::string>* metadata = nullptr);

}  // namespace aim::probe
