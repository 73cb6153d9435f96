#pragma once
// DINO's weighted k-nearest-neighbour classifier on frozen features (Caron et al. 2021,
// eval_knn.py): features L2-normalized, the k most cosine-similar training samples vote for
// their class with weight exp(similarity / T); the class scores rank the predictions.
#include <cstdint>

#include <torch/types.h>

namespace aim::probe {

/// The vector kNN compares: the probe's token features [B, K, d] averaged over tokens, [B, d]
/// (AIM has no class token; this is the linear probe's pooling). Pixel features are one token.
torch::Tensor knn_pooled(const torch::Tensor& features);

class KnnClassifier {
 public:
  /// bank: [N, d] training features (normalized here), labels: int64 [N] in [0, classes).
  /// k is capped at N. The bank stays on its device; queries go to it.
  KnnClassifier(const torch::Tensor& bank, const torch::Tensor& labels, int64_t classes, int64_t k, double temperature);

  /// queries [B, d] -> vote scores [B, classes] (sum over the k neighbours of
  /// exp(cos / T) per class, 0 for classes no neighbour has), on the bank's device.
  /// The bank is compared in chunks, so memory stays O(B * chunk), not O(B * N).
  torch::Tensor scores(const torch::Tensor& queries) const;

  int64_t k() const { return k_; }
  int64_t size() const { return bank_.size(0); }

 private:
  torch::Tensor bank_, labels_;
  int64_t classes_, k_;
  double temperature_;
};

}  // namespace aim::probe
