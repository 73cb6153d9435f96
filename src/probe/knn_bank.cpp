#include "knn_bank.h"

#include <torch/torch.h>

#include <algorithm>

#include "aim/error.h"
#include "head_grid.h"

namespace aim::probe::detail {

Rows pooled_pass(FeatureExtractor& fx, data::Loader& loader, int64_t classes, const std::string& split) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> feats, labels;
  while (auto batch = loader.next()) {
    check_labels(batch->labels, classes, split);
    feats.push_back(knn_pooled(fx(batch->images)));
    labels.push_back(batch->labels.to(feats.back().device()));
  }
  if (feats.empty()) return {torch::zeros({0, fx.dim()}), torch::zeros({0}, torch::kLong)};
  return {torch::cat(feats), torch::cat(labels)};
}

Rows gather_rows(const Rows& mine, dist::Communicator* comm) {
  if (!comm) return mine;
  const auto counts = comm->all_gather_host(mine.features.size(0));
  const int64_t most = *std::max_element(counts.begin(), counts.end()), d = mine.features.size(1);
  if (most == 0) return mine;
  const auto dev = comm->device();
  // One all-gather of [most, d + 1] per rank: the label rides along as a last column (exact in
  // float32 below 2^24 classes).
  auto padded = torch::zeros({most, d + 1}, torch::TensorOptions().dtype(torch::kFloat).device(dev));
  if (mine.features.size(0) > 0) {
    padded.narrow(0, 0, mine.features.size(0)).narrow(1, 0, d).copy_(mine.features);
    padded.narrow(0, 0, mine.features.size(0)).select(1, d).copy_(mine.labels);
  }
  // The collective gathers flat tensors: rank r's block is elements [r n, (r + 1) n).
  auto flat = padded.reshape({-1});
  auto gathered = torch::empty({comm->world_size() * flat.numel()}, padded.options());
  comm->all_gather(gathered, flat);
  const auto all = gathered.view({comm->world_size() * most, d + 1});
  std::vector<torch::Tensor> parts;
  for (int r = 0; r < comm->world_size(); ++r) parts.push_back(all.narrow(0, r * most, counts[r]));
  auto rows = torch::cat(parts);
  return {rows.narrow(1, 0, d).to(mine.features.device()), rows.select(1, d).to(mine.features.device(), torch::kLong)};
}

std::unique_ptr<KnnClassifier> make_knn(const Rows& mine, int64_t classes, int64_t k, double temperature,
                                        dist::Communicator* comm) {
  Rows all = gather_rows(mine, comm);
  if (all.features.size(0) == 0) throw Error("probe.knn: no training samples for the kNN bank");
  return std::make_unique<KnnClassifier>(all.features, all.labels, classes, k, temperature);
}

}  // namespace aim::probe::detail
