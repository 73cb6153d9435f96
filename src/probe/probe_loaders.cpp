#include "aim/probe/probe_loaders.h"

namespace aim::probe {
namespace {

data::LoaderConfig with_holdout(data::LoaderConfig lc, const config::ProbeConfig& pc, bool held) {
  if (pc.select_fraction > 0) lc.holdout = data::HoldOut{pc.select_fraction, pc.seed, held};
  return lc;
}

}  // namespace

data::LoaderConfig probe_training_loader(const config::RunConfig& cfg, TrainView view, int rank, int world) {
  // kCachePass: eval mode, one ordered pass; the others: train mode, shuffled and endless.
  auto lc = config::probe_loader_config(cfg, true, view != TrainView::kCachePass, rank, world);
  // Endless centre crops, unflipped: the view the cached path and evaluation see.
  if (view == TrainView::kCentreCrops) lc.augment.eval_view = true;
  return with_holdout(lc, cfg.probe, false);
}

data::LoaderConfig probe_holdout_loader(const config::RunConfig& cfg, int rank, int world) {
  return with_holdout(config::probe_loader_config(cfg, true, false, rank, world), cfg.probe, true);
}

}  // namespace aim::probe
