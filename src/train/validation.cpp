#include <algorithm>

#include "training_run.h"

namespace aim::train {

// Validation covers the first val_batches x micro_batch_size images of data.val (all of it
// when val_batches = 0): the loader's eval pass with that `limit`, which keeps the first
// samples by position (image_folder, idx, synthetic) or in shard-list order (webdataset) and
// deals them over the ranks, each to one rank (a rank may get none). The sums are added over
// ranks, so the images and the number do not depend on the world size; prefixes are keyed by
// the samples' world-invariant indices with their own seed. The loader is built once per run
// (a webdataset limit scans shard headers to find the cut) and rewound for each validation.
double validation_loss(TrainingRun& run) {
  const auto& cfg = run.cfg;
  const auto& tc = cfg.train;
  if (!cfg.data.val) return -1;
  torch::NoGradGuard ng;
  if (!run.val_loader) {
    data::LoaderConfig lc = config::loader_config(cfg, false, run.env.rank, run.env.world_size);
    if (tc.val_batches > 0) {
      const int64_t n = tc.val_batches * tc.micro_batch_size;
      int64_t& limit = lc.sources.at(0).limit;
      limit = limit > 0 ? std::min(limit, n) : n;
    }
    run.val_loader = std::make_unique<data::Loader>(lc);
    run.val_start = run.val_loader->state();
  } else {
    run.val_loader->load_state(run.val_start);
  }
  auto sum = torch::zeros({2}, torch::TensorOptions().dtype(torch::kFloat64).device(run.device));
  while (auto batch = run.val_loader->next()) {
    auto terms = forward_loss(run, *batch, tc.seed ^ 0x76616cULL);
    sum[0] += terms.sum.detach().to(torch::kFloat64);
    sum[1] += terms.count.detach().to(torch::kFloat64);
  }
  if (run.comm) run.comm->all_reduce_sum_now(sum);
  auto host = sum.cpu();
  return host[0].item<double>() / std::max(1.0, host[1].item<double>());
}

}  // namespace aim::train
