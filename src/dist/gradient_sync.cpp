#include "aim/dist/gradient_sync.h"

#include <torch/torch.h>

namespace aim::dist {

GradientSync::GradientSync(std::vector<torch::Tensor> params, double bucket_mb) : params_(std::move(params)) {
  const double cap = bucket_mb * 1024 * 1024;
  double filled = 0;
  for (size_t k = params_.size(); k-- > 0;) {
    if (buckets_.empty() || filled >= cap) {
      buckets_.emplace_back();
      filled = 0;
    }
    buckets_.back().push_back(k);
    filled += static_cast<double>(params_[k].numel() * params_[k].element_size());
  }
}

void GradientSync::all_reduce(Communicator& comm) {
  std::vector<torch::Tensor> flats;
  std::vector<std::unique_ptr<PendingWork>> works;
  for (const auto& bucket : buckets_) {
    std::vector<torch::Tensor> grads;
    for (auto k : bucket) {
      auto& p = params_[k];
      if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
      grads.push_back(p.grad().reshape({-1}));
    }
    flats.push_back(torch::cat(grads));
    works.push_back(comm.all_reduce_sum(flats.back()));
  }
  for (size_t b = 0; b < buckets_.size(); ++b) {
    works[b]->wait();
    int64_t offset = 0;
    for (auto k : buckets_[b]) {
      auto& g = params_[k].mutable_grad();
      g.copy_(flats[b].slice(0, offset, offset + g.numel()).view_as(g));
      offset += g.numel();
    }
  }
}

}  // namespace aim::dist
