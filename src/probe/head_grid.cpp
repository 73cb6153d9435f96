#include "head_grid.h"

#include <torch/torch.h>

#include "aim/data/rng.h"
#include "aim/error.h"
#include "aim/optim/multi_tensor.h"
#include "aim/optim/optimizer.h"

namespace aim::probe::detail {
namespace {

/// Adds one batch's loss sum, top-1 and top-5 hits and count per head to acc [H, 4] (top-5
/// means top-min(5, classes)), and the kNN's hits to knn_acc [3].
void accumulate_batch(std::vector<ProbeHead>& heads, const torch::Tensor& feats, const torch::Tensor& labels,
                      int64_t classes, const KnnClassifier* knn, torch::Tensor& acc, torch::Tensor& knn_acc) {
  const int64_t k5 = std::min<int64_t>(5, classes);
  auto hits = [&](const torch::Tensor& scores) {
    auto top = std::get<1>(scores.topk(k5, 1)).eq(labels.unsqueeze(1));
    return std::make_pair(top.narrow(1, 0, 1).any(1).sum().to(torch::kFloat64), top.any(1).sum().to(torch::kFloat64));
  };
  const auto n = torch::scalar_tensor(static_cast<double>(labels.size(0)), acc.options());
  for (size_t i = 0; i < heads.size(); ++i) {
    auto logits = heads[i]->forward(feats).to(torch::kFloat);
    auto loss = torch::nn::functional::cross_entropy(
        logits, labels, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
    auto [h1, h5] = hits(logits);
    acc[i] += torch::stack({loss.to(torch::kFloat64), h1, h5, n});
  }
  if (knn) {
    auto [h1, h5] = hits(knn->scores(knn_pooled(feats)).to(labels.device()));
    knn_acc += torch::stack({h1, h5, n});
  }
}

}  // namespace

double GridHead::mean_loss() const { return loss_count > 0 ? loss_sum.item<double>() / loss_count : 0.0; }

std::vector<GridHead> make_grid(const config::ProbeConfig& pc, int64_t dim, int64_t heads, int64_t classes,
                                torch::Device device) {
  std::vector<GridHead> grid;
  for (double lr : pc.lrs)
    for (double wd : pc.weight_decays) {
      torch::manual_seed(pc.seed);
      GridHead g{lr, wd, ProbeHead(pc.kind, dim, heads, classes), nullptr, torch::Tensor(), 0};
      g.head->to(device);
      optim::OptimConfig oc;
      oc.lr = lr;
      oc.weight_decay = wd;
      oc.beta1 = pc.beta1;
      oc.beta2 = pc.beta2;
      oc.eps = pc.eps;
      g.opt = optim::make_adamw(*g.head, oc);
      grid.push_back(std::move(g));
    }
  return grid;
}

void GridStep::operator()(std::vector<GridHead>& grid, const torch::Tensor& feats, const torch::Tensor& labels,
                          int64_t step) const {
  optim::OptimConfig schedule;
  schedule.warmup = pc.warmup;
  schedule.warmup_start = 0;
  const auto ce = torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(pc.label_smoothing);
  for (auto& g : grid) {
    g.head->train();
    schedule.lr = g.lr;
    optim::set_learning_rate(*g.opt, optim::learning_rate(step, total_steps, schedule));
    optim::clear_gradients(*g.opt);
    auto loss = torch::nn::functional::cross_entropy(g.head->forward(feats), labels, ce);
    loss.backward();
    g.loss_sum += loss.detach().to(torch::kFloat64);
    ++g.loss_count;
  }
  if (lora_opt) {
    schedule.lr = lora_peak;
    optim::set_learning_rate(*lora_opt, optim::learning_rate(step, total_steps, schedule));
  }
  // All heads' gradients (and the LoRA tensors') averaged over ranks in one flat all-reduce.
  if (comm) {
    std::vector<torch::Tensor> grads;
    for (auto& g : grid)
      for (auto& p : g.head->parameters())
        if (p.grad().defined()) grads.push_back(p.grad());
    for (const auto& p : lora)
      if (p.grad().defined()) grads.push_back(p.grad());
    std::vector<torch::Tensor> flat_parts;
    for (auto& t : grads) flat_parts.push_back(t.reshape({-1}));
    auto flat = torch::cat(flat_parts);
    comm->all_reduce_sum_now(flat);
    flat.div_(comm->world_size());
    int64_t off = 0;
    for (auto& t : grads) {
      t.copy_(flat.narrow(0, off, t.numel()).view_as(t));
      off += t.numel();
    }
  }
  for (auto& g : grid) {
    if (pc.grad_clip > 0) {
      std::vector<torch::Tensor> params = g.head->parameters();
      params.insert(params.end(), lora.begin(), lora.end());  // LoRA runs have one head
      optim::clip_grad_norm(params, pc.grad_clip);
    }
    g.opt->step();
  }
  if (lora_opt) {
    lora_opt->step();
    optim::clear_gradients(*lora_opt);
  }
}

void check_labels(const torch::Tensor& labels, int64_t classes, const std::string& split) {
  if (labels.numel() == 0) return;
  const int64_t lo = labels.min().item<int64_t>(), hi = labels.max().item<int64_t>();
  if (lo < 0 || hi >= classes)
    throw Error(split + ": label " + std::to_string(lo < 0 ? lo : hi) + " is outside [0, " +
                std::to_string(classes) + ") (unlabelled samples, or set probe.classes)");
}

torch::Tensor epoch_permutation(int64_t n, uint64_t seed, int64_t epoch, int rank) {
  std::vector<int64_t> idx(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) idx[i] = i;
  data::Rng rng(data::hash_key(seed, 0x70726f6265ull, static_cast<uint64_t>(epoch), static_cast<uint64_t>(rank)));
  for (int64_t i = n - 1; i > 0; --i) std::swap(idx[i], idx[rng.next() % static_cast<uint64_t>(i + 1)]);
  return torch::tensor(idx, torch::kLong);
}

void sync_buffers(ProbeHead& head, dist::Communicator* comm) {
  if (!comm) return;
  torch::NoGradGuard no_grad;
  for (auto& b : head->buffers()) comm->broadcast(b, 0);
}

int64_t PassSums::samples() const { return static_cast<int64_t>(heads[0][3].item<double>()); }

PassSums evaluate_loader(std::vector<ProbeHead>& heads, FeatureExtractor& fx, data::Loader& loader,
                         const LabelMap& labels, int64_t classes, const KnnClassifier* knn, torch::Device device,
                         dist::Communicator* comm, const std::string& split) {
  torch::NoGradGuard no_grad;
  for (auto& h : heads) h->eval();
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(device);
  // Sums stay on the device; one copy to the host after the pass.
  auto acc = torch::zeros({static_cast<int64_t>(heads.size()), 4}, f64);
  auto knn_acc = torch::zeros({3}, f64);
  while (auto batch = loader.next()) {
    auto y = labels.apply(batch->labels);
    check_labels(y, classes, split);
    accumulate_batch(heads, fx(batch->images), y.to(device), classes, knn, acc, knn_acc);
  }
  if (comm) {
    auto both = torch::cat({acc.reshape({-1}), knn_acc});
    comm->all_reduce_sum_now(both);
    acc = both.narrow(0, 0, acc.numel()).view_as(acc);
    knn_acc = both.narrow(0, acc.numel(), 3);
  }
  PassSums out{acc.cpu(), knn ? knn_acc.cpu() : torch::Tensor()};
  return out;
}

}  // namespace aim::probe::detail
