#pragma once
// The `probe:` section of a run config: how aim-probe (and aim-train's optional probe at the
// end) evaluates a frozen trunk on a labelled dataset (spec §8). docs/config.md lists every key.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "aim/data/loader.h"

namespace aim::config {

/// DINO's weighted k-nearest-neighbour classifier on the frozen features (probe.knn).
struct KnnConfig {
  int64_t k = 20;              // neighbours; 0 = no kNN evaluation
  double temperature = 0.07;   // votes weigh exp(cosine similarity / temperature)
  bool operator==(const KnnConfig& o) const { return k == o.k && temperature == o.temperature; }
};

struct ProbeConfig {
  /// Trunk weights: a .safetensors file (our trunk export or an official checkpoint; only
  /// preprocessor.* and trunk.* are read), a run directory (its trunk.safetensors, else its
  /// newest checkpoint), or "random" for a seeded random trunk (the baseline). Empty: aim-train's
  /// own export when run at the end of training; aim-probe requires it.
  std::string weights;
  std::string kind = "attentive";   // attentive | linear
  std::string features = "trunk";   // trunk | pixels (a linear probe on raw pixels: the baseline)
  std::string blocks = "last";      // last | best | explicit list "3,5,7" / "14-19"
  std::optional<data::SourceConfig> train_data;  // YAML key `train`: labelled training split
  std::optional<data::SourceConfig> val_data;    // YAML key `val`: labelled evaluation split
  int64_t classes = 0;              // 0 = from the data (folder count, IDX labels)
  int64_t epochs = 10;
  int64_t batch_size = 256;         // global, over all ranks
  std::vector<double> lrs = {3e-4, 1e-3, 3e-3};   // one head per (lr, weight decay) pair
  std::vector<double> weight_decays = {0.05};
  /// The probe's AdamW: PyTorch's defaults, what probe and fine-tuning recipes use (MAE,
  /// timm); pre-training's beta2 = 0.95 is a large-batch stability choice a probe does not need.
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double grad_clip = 0.0;           // per head (and its LoRA tensors): global L2 norm; 0 = off
  double warmup = 0.1;              // fraction of the probe's steps in linear warmup, then cosine
  double label_smoothing = 0.0;
  bool augment = false;             // RandomResizedCrop + flip on the training split (no caching)
  double crop_scale_min = 0.4, crop_scale_max = 1.0;
  double hflip = 0.5;
  double cache_gb = 4.0;            // largest per-rank feature cache; bigger sets recompute features
  int64_t epoch_size = 0;           // samples per epoch; 0 = the training split's size
  uint64_t seed = 0;
  std::string out_dir;              // empty = <train.out_dir>/probe
  bool at_end = false;              // aim-train: probe the exported trunk when training ends
  int64_t lora_rank = 0;            // LoRA on the trunk's attention (q, v, proj); 0 = frozen trunk
  double lora_alpha = 1.0;          // loralib's lora_alpha: updates scaled by alpha / rank
  double lora_lr = 0.0;             // peak learning rate of the LoRA tensors; 0 = the head's
  std::string export_hub;           // after training: write a hub model directory here
  /// Share of the (cached) training split held out to choose the best head of the grid, so
  /// the head reported on probe.val was not chosen on probe.val (DINOv2's practice).
  /// 0 = choose on probe.val, and the report says so.
  double select_fraction = 0.1;
  KnnConfig knn;
  /// How class labels of probe.train, probe.val and a saved probe's class names are matched:
  /// "names" (the same class names on every side, labels mapped by name), "subset" (probe.val
  /// and a saved probe's data may hold a subset of the names), "position" (labels as they are:
  /// class i is class i, for splits whose names differ on purpose).
  std::string class_match = "names";

  bool operator==(const ProbeConfig& o) const;
};

}  // namespace aim::config
