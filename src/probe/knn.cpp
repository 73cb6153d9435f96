#include "aim/probe/knn.h"

#include <torch/torch.h>

#include <algorithm>

#include "aim/error.h"

namespace aim::probe {
namespace {

constexpr int64_t kBankRowsPerChunk = 65536;  // bank rows compared at once

torch::Tensor normalized(const torch::Tensor& x) {
  return torch::nn::functional::normalize(x.to(torch::kFloat), torch::nn::functional::NormalizeFuncOptions().dim(1));
}

}  // namespace

torch::Tensor knn_pooled(const torch::Tensor& features) { return features.to(torch::kFloat).mean(1); }

KnnClassifier::KnnClassifier(const torch::Tensor& bank, const torch::Tensor& labels, int64_t classes, int64_t k,
                             double temperature)
    : bank_(normalized(bank)),
      labels_(labels.to(bank.device(), torch::kLong)),
      classes_(classes),
      k_(std::min<int64_t>(k, bank.size(0))),
      temperature_(temperature) {
  if (bank.dim() != 2 || labels.dim() != 1 || labels.size(0) != bank.size(0))
    throw Error("kNN: the bank needs [N, d] features and N labels");
  if (bank.size(0) == 0) throw Error("kNN: no training samples to compare with");
  if (k < 1 || temperature <= 0) throw Error("kNN: k must be >= 1 and the temperature > 0");
}

torch::Tensor KnnClassifier::scores(const torch::Tensor& queries) const {
  torch::NoGradGuard no_grad;
  const auto q = normalized(queries.to(bank_.device()));
  const int64_t b = q.size(0);
  // Running top-k over bank chunks: the best k of (best so far, this chunk's best).
  torch::Tensor best_sim, best_idx;
  for (int64_t start = 0; start < bank_.size(0); start += kBankRowsPerChunk) {
    const int64_t n = std::min(kBankRowsPerChunk, bank_.size(0) - start);
    auto sim = q.matmul(bank_.narrow(0, start, n).t());
    auto [s, i] = sim.topk(std::min(k_, n), 1);
    i = i + start;
    if (best_sim.defined()) {
      s = torch::cat({best_sim, s}, 1);
      i = torch::cat({best_idx, i}, 1);
      auto [s2, pos] = s.topk(k_, 1);
      i = i.gather(1, pos);
      s = s2;
    }
    best_sim = s;
    best_idx = i;
  }
  auto votes = labels_.index_select(0, best_idx.reshape({-1})).view({b, -1});  // [B, k]
  auto weights = best_sim.div(temperature_).exp();
  return torch::zeros({b, classes_}, weights.options()).scatter_add_(1, votes, weights);
}

}  // namespace aim::probe
