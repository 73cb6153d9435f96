#pragma once
#include <vector>

#include <torch/types.h>

#include "aim/dist/communicator.h"

namespace aim::dist {

/// Sums gradients across ranks in flat buckets of ~bucket_mb each. Buckets are filled in
/// reverse parameter order (the order backward produces gradients) and each bucket's
/// all-reduce starts as soon as it is packed, so communication of early buckets overlaps
/// packing and reduction of later ones. Parameters without a gradient contribute zeros.
class GradientSync {
 public:
  GradientSync(std::vector<torch::Tensor> params, double bucket_mb = 25.0);
  /// In-place: every param.grad() becomes the sum over ranks.
  void all_reduce(Communicator& comm);
  size_t num_buckets() const { return buckets_.size(); }

 private:
  std::vector<torch::Tensor> params_;
  std::vector<std::vector<size_t>> buckets_;  // indices into params_
};

}  // namespace aim::dist
