// train.sharding (ZeRO stages 1 and 2) on the trainer's side: which slice of the flattened
// parameters this rank owns, where its gradient comes from, the global-norm clipping of a
// sharded gradient, and the exchange of the updated slices after the optimizer step.
#include <algorithm>
#include <cmath>

#include "aim/optim/optimizer.h"
#include "training_run.h"

namespace aim::train {
namespace {

int64_t total_elements(const std::vector<torch::Tensor>& params) {
  int64_t total = 0;
  for (const auto& p : params) total += p.numel();
  return total;
}

// Elements [a, b) of this rank's slice (slice-relative), read from its shard pieces.
void copy_from_shards(const std::vector<ShardPiece>& shards, int64_t a, int64_t b, torch::Tensor dst) {
  int64_t at = 0;
  for (const auto& s : shards) {
    const int64_t n = s.end - s.begin, x = std::max(a, at), y = std::min(b, at + n);
    if (x < y) dst.slice(0, x - a, y - a).copy_(s.leaf.slice(0, x - at, y - at));
    at += n;
  }
}

// `src` holds the flattened parameters' elements [a, a + src.numel()): write them into the
// parameters they belong to.
void copy_into_params(std::vector<torch::Tensor>& params, int64_t a, const torch::Tensor& src) {
  const int64_t b = a + src.numel();
  int64_t offset = 0;
  for (auto& p : params) {
    const int64_t n = p.numel(), x = std::max(a, offset), y = std::min(b, offset + n);
    if (x < y) p.view({-1}).slice(0, x - offset, y - offset).copy_(src.slice(0, x - a, y - a));
    offset += n;
    if (offset >= b) break;
  }
}

}  // namespace

std::vector<int64_t> shard_bounds(const std::vector<torch::Tensor>& params, int world) {
  const int64_t total = total_elements(params);
  std::vector<int64_t> bounds;
  for (int r = 0; r < world; ++r) bounds.push_back(shard_range(total, r, world).first);
  bounds.push_back(total);
  return bounds;
}

void shard_optimizer(TrainingRun& run) {
  const auto named = run.net->named_parameters();
  int64_t total = 0;
  for (const auto& p : named) total += p.value().numel();
  const auto [lo, hi] = shard_range(total, run.env.rank, run.env.world_size);
  std::vector<torch::Tensor> decay, no_decay;
  int64_t offset = 0;
  for (size_t k = 0; k < named.size(); ++k) {
    const auto& p = named[k].value();
    const int64_t n = p.numel();
    const int64_t a = std::max(lo, offset) - offset, b = std::min(hi, offset + n) - offset;
    offset += n;
    if (a >= b) continue;
    auto leaf = p.detach().view({-1}).slice(0, a, b);
    leaf.requires_grad_(true);
    run.shards.push_back({static_cast<int64_t>(k), a, b, leaf});
    (optim::decays(named[k].key(), p) ? decay : no_decay).push_back(leaf);
  }
  run.opt = optim::make_adamw(std::move(decay), std::move(no_decay), run.cfg.optim);
}

void shard_gradients(TrainingRun& run) {
  if (run.grad_shards) {  // ZeRO-2: the pieces' gradients are consecutive views of the reduced slice
    auto& slice = run.grad_shards->slice();
    int64_t at = 0;
    for (auto& s : run.shards) {
      s.leaf.mutable_grad() = slice.slice(0, at, at + s.end - s.begin);
      at += s.end - s.begin;
    }
    return;
  }
  for (auto& s : run.shards) {
    const auto& g = run.params[s.param].grad();
    s.leaf.mutable_grad() = g.defined() ? g.view({-1}).slice(0, s.begin, s.end) : torch::Tensor();
  }
}

double clip_sharded_gradients(TrainingRun& run, double max_norm) {
  torch::NoGradGuard ng;
  auto& slice = run.grad_shards->slice();
  // The global norm from every rank's partial sum of squares. As clip_grad_norm_ does, one
  // fp32 norm per parameter piece (no temporary the size of the slice: a float64 copy of it
  // cost 16 B per owned parameter at the step's peak), their squares summed in float64.
  std::vector<torch::Tensor> norms;
  int64_t at = 0;
  for (const auto& s : run.shards) {
    norms.push_back(slice.slice(0, at, at + s.end - s.begin).norm());
    at += s.end - s.begin;
  }
  auto sq = norms.empty() ? torch::zeros({1}, torch::kFloat64)
                          : torch::stack(norms).to(torch::kFloat64).pow(2).sum().reshape({1});
  sq = sq.to(run.comm->device());
  run.comm->all_reduce_sum_now(sq);
  const double norm = std::sqrt(sq.cpu().item<double>());
  // As torch::nn::utils::clip_grad_norm_: scale by max_norm / (norm + 1e-6) when below 1.
  const double coef = max_norm / (norm + 1e-6);
  if (std::isfinite(norm) && coef < 1) slice.mul_(coef);
  return norm;
}

void gather_updated_shards(TrainingRun& run) {
  if (!run.comm) return;
  torch::NoGradGuard ng;
  const int world = run.env.world_size, me = run.env.rank;
  const auto bounds = shard_bounds(run.params, world);
  int64_t widest = 0;
  for (int r = 0; r < world; ++r) widest = std::max(widest, bounds[r + 1] - bounds[r]);
  // One all-gather per chunk of every rank's slice, each chunk padded to the widest slice's
  // length: the temporary stays at world_size x chunk (about train.bucket_mb per rank)
  // however large the model, instead of a buffer of all the parameters.
  const int64_t per_chunk = std::max<int64_t>(
      1, std::min<int64_t>(widest, static_cast<int64_t>(run.cfg.train.bucket_mb * 1024 * 1024 / 4)));
  const auto opts = run.params.front().options().requires_grad(false);
  auto in = torch::empty({per_chunk}, opts);
  auto out = torch::empty({per_chunk * world}, opts);
  const int64_t mine = bounds[me + 1] - bounds[me];
  for (int64_t c = 0; c < widest; c += per_chunk) {
    if (c < mine) copy_from_shards(run.shards, c, std::min(mine, c + per_chunk), in.slice(0, 0, std::min(mine - c, per_chunk)));
    run.comm->all_gather(out, in);
    for (int r = 0; r < world; ++r) {
      const int64_t len = std::min(bounds[r + 1] - bounds[r] - c, per_chunk);
      if (r == me || len <= 0) continue;
      copy_into_params(run.params, bounds[r] + c, out.slice(0, r * per_chunk, r * per_chunk + len));
    }
  }
}

}  // namespace aim::train
