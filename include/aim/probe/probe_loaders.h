#pragma once
// The loaders of probe.train in a probe run. Every one carries the hold-out
// (probe.select_fraction, data/holdout.h), so no path trains on the images the head is
// chosen on: the training side — one ordered pass to cache (`kCachePass`), endless centre crops
// (`kCentreCrops`, features above probe.cache_gb), or augmented views (`kAugmented`,
// probe.augment; LoRA without augmentation uses kCentreCrops) — and the held-out side, one
// ordered pass of centre crops.
#include "aim/config/run_config.h"
#include "aim/data/loader.h"

namespace aim::probe {

enum class TrainView { kCachePass, kCentreCrops, kAugmented };

data::LoaderConfig probe_training_loader(const config::RunConfig& cfg, TrainView view, int rank, int world);
data::LoaderConfig probe_holdout_loader(const config::RunConfig& cfg, int rank, int world);

}  // namespace aim::probe
