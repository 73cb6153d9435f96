#pragma once
// The probe's grid of heads (one per (lr, weight decay)) trained together on the same
// features, and the evaluation passes that score them (and the kNN classifier) on a split.
// Internal to src/probe: probe_runner.cpp composes these.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/nn/functional/loss.h>
#include <torch/optim/adamw.h>

#include "aim/config/probe_config.h"
#include "aim/data/loader.h"
#include "aim/dist/communicator.h"
#include "aim/probe/class_labels.h"
#include "aim/probe/feature_extractor.h"
#include "aim/probe/knn.h"
#include "aim/probe/probe_head.h"

namespace aim::probe::detail {

struct GridHead {
  double lr, weight_decay;
  ProbeHead head{nullptr};
  std::unique_ptr<torch::optim::AdamW> opt;
  torch::Tensor loss_sum;  // on the device: read only when logging, no sync per step
  int64_t loss_count = 0;
  double mean_loss() const;
};

/// Identical seeded heads, one AdamW each (probe.betas / eps, the pair's lr and decay).
std::vector<GridHead> make_grid(const config::ProbeConfig& pc, int64_t dim, int64_t heads, int64_t classes,
                                torch::Device device);

/// One optimizer step of every head on (feats, labels): schedule, loss, backward, gradients
/// averaged over ranks (with the LoRA tensors'), clipped per head (probe.grad_clip; with LoRA
/// the single head's norm includes its LoRA tensors), stepped.
struct GridStep {
  const config::ProbeConfig& pc;
  int64_t total_steps;
  std::vector<torch::Tensor> lora;           // empty without LoRA
  torch::optim::AdamW* lora_opt = nullptr;
  double lora_peak = 0;
  dist::Communicator* comm = nullptr;
  void operator()(std::vector<GridHead>& grid, const torch::Tensor& feats, const torch::Tensor& labels,
                  int64_t step) const;
};

/// Throws aim::Error naming `split` when a label lies outside [0, classes).
void check_labels(const torch::Tensor& labels, int64_t classes, const std::string& split);

/// Deterministic shuffle of [0, n) for (seed, epoch, rank), independent of torch's global RNG.
torch::Tensor epoch_permutation(int64_t n, uint64_t seed, int64_t epoch, int rank);

/// Every rank evaluates with rank 0's batch norm statistics.
void sync_buffers(ProbeHead& head, dist::Communicator* comm);

/// Sums of one evaluation pass, over all ranks: per head loss, top-1 hits, top-5 hits, count
/// ([H, 4] float64, host); kNN top-1 hits, top-5 hits, count ([3], undefined without kNN).
struct PassSums {
  torch::Tensor heads, knn;
  int64_t samples() const;
};

/// One pass over `loader` (its labels mapped by `labels`, checked against `classes`).
PassSums evaluate_loader(std::vector<ProbeHead>& heads, FeatureExtractor& fx, data::Loader& loader,
                         const LabelMap& labels, int64_t classes, const KnnClassifier* knn, torch::Device device,
                         dist::Communicator* comm, const std::string& split);

}  // namespace aim::probe::detail
