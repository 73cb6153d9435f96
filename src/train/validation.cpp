#include <limits>

#include "training_run.h"

namespace aim::train {

// Validation covers the first val_batches x micro_batch_size images of the held-out pass
// (all of it when val_batches = 0), split over ranks by position, so the number is the
// same whatever the world size. Prefixes are keyed by position with their own seed.
double validation_loss(TrainingRun& run) {
  const auto& cfg = run.cfg;
  const auto& tc = cfg.train;
  if (!cfg.data.val) return -1;
  torch::NoGradGuard ng;
  const int world = run.env.world_size;
  data::Loader val(config::loader_config(cfg, false, run.env.rank, world));
  const int64_t limit =
      tc.val_batches > 0 ? tc.val_batches * tc.micro_batch_size : std::numeric_limits<int64_t>::max();
  const int64_t stream_batches = tc.val_batches > 0 ? (tc.val_batches + world - 1) / world : -1;
  auto sum = torch::zeros({2}, torch::TensorOptions().dtype(torch::kFloat64).device(run.device));
  int64_t streamed = 0;  // streaming sources carry no position (index -1): count per rank
  for (int64_t b = 0;; ++b) {
    auto batch = val.next();
    if (!batch) break;
    auto idx = batch->index;
    auto positional = idx >= 0;
    auto keep = positional.logical_and(idx < limit).logical_or(positional.logical_not().logical_and(
        torch::full_like(positional, stream_batches < 0 || b < stream_batches)));
    if (!keep.any().item<bool>()) break;
    auto rows = keep.nonzero().view({-1});
    data::Batch part = *batch;
    part.images = batch->images.index_select(0, rows);
    part.index = torch::where(positional, idx, torch::arange(streamed, streamed + idx.numel()) + (int64_t(1) << 40))
                     .index_select(0, rows);
    streamed += idx.numel();
    auto terms = forward_loss(run, part, tc.seed ^ 0x76616cULL);
    sum[0] += terms.sum.detach().to(torch::kFloat64);
    sum[1] += terms.count.detach().to(torch::kFloat64);
  }
  if (run.comm) run.comm->all_reduce_sum_now(sum);
  auto host = sum.cpu();
  return host[0].item<double>() / std::max(1.0, host[1].item<double>());
}

}  // namespace aim::train
