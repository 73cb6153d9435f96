#pragma once
// The configuration of an aim-train run: YAML file + dotted key=value overrides, resolved
// into typed structs and validated before any compute. docs/config.md lists every key.
//
//   model:  ModelConfig (presets via model.preset; explicit keys override the preset)
//   data:   sources (weighted mixture), val, augment, loader threads
//   optim:  OptimConfig (spec §7)
//   train:  TrainConfig (steps, batch split, precision, run directory, cadences)
//   probe:  config::ProbeConfig (aim-probe; aim-train's optional probe at the end)
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "aim/data/loader.h"
#include "aim/data/transforms.h"
#include "aim/model/model_config.h"
#include "aim/config/probe_config.h"
#include "aim/optim/optimizer.h"

namespace aim::config {

struct TrainConfig {
  int64_t steps = 500000;           // optimizer steps (iterations of the lr schedule)
  int64_t batch_size = 4096;        // global, over all ranks and accumulation micro-steps
  int64_t micro_batch_size = 256;   // per rank, per forward/backward
  std::string precision = "bf16";   // bf16 | fp32 (the trainer uses fp32 on CPU and logs it)
  uint64_t seed = 0;                // model init, data order, augmentation, prefix lengths
  std::string out_dir = "runs/aim-600m";
  int64_t log_every = 10;           // steps between metrics.jsonl records
  int64_t ckpt_every = 5000;        // steps between checkpoints; 0 = no periodic checkpoints
  int64_t keep_checkpoints = 3;     // newest complete checkpoints kept on disk
  int64_t val_every = 25000;        // steps between validations (needs data.val); 0 = never
  int64_t val_batches = 50;         // validation images = val_batches x micro_batch_size; 0 = full pass
  int64_t max_nonfinite = 5;        // consecutive non-finite steps before the run stops
  double peak_tflops = 0;           // per-device peak for MFU; 0 = detect
  std::string device = "auto";      // auto | cpu | cuda
  int threads = 0;                  // CPU intra-op threads; 0 = LibTorch's default
  int64_t dist_timeout_s = 600;     // rendezvous and collective timeout: a dead or frozen rank ends the job
  std::string resume = "auto";      // auto: this config's checkpoints only | force: newest usable, any config
  double bucket_mb = 25;            // gradient all-reduce bucket size (MiB) on more than one rank
  bool tensorboard = false;         // TensorBoard event files in <out_dir>/tb/ (aim-probe: <probe out_dir>/tb/)
  std::string activation_checkpointing = "none";  // none | full: keep only block inputs, recompute in backward
  std::string sharding = "none";    // none | optimizer (ZeRO-1: AdamW state for 1/N of the parameters) | gradients (ZeRO-2: also the gradients)
  double memory_gb = 0;             // per-device budget of the memory plan; 0 = the GPU's memory, or this machine's available RAM / local ranks
  std::string memory_check = "enforce";  // enforce: refuse to start when the plan does not fit | warn | off
  double ckpt_every_min = 0;        // also checkpoint when this many minutes passed since the last one; 0 = off
  std::string ckpt_async = "auto";  // auto | true | false: checkpoint writes on background threads (auto: where host memory allows)

  bool operator==(const TrainConfig& o) const;
};

/// The train section's defaults for a model preset. The member initializers above are the
/// paper's cluster recipe (global batch 4096, checkpoints every 5000 steps), which the four
/// official presets keep; the small CPU presets (aim-fmnist-*, aim-small-*) get CPU-sized ones
/// (batch 64, 1000 steps, checkpoints and validation every 100), since a 4096-image step takes
/// many minutes on a laptop. out_dir is runs/<preset>. Keys the config sets always win.
TrainConfig train_defaults(const std::string& preset);

struct DataSection {
  std::vector<data::SourceConfig> sources;  // required: at least one
  std::optional<data::SourceConfig> val;    // held-out validation source; none = no validation
  data::AugmentConfig augment = default_augment();
  int workers = 8;       // decode threads per rank
  int prefetch = 3;      // batches in flight ahead of the trainer
  int stream_lanes = 8;  // sequential readers per streaming source and rank
  int64_t max_member_mb = 256;  // webdataset members above this are bad samples, skipped unread
  int64_t max_bad_streak = 64;  // bad samples in a row from one source that stop the run
  int64_t shard_retries = 3;           // re-opens of a failing pipe:/http(s) shard before it is skipped
  double shard_retry_backoff_s = 2.0;  // wait before the first re-open; doubles, at most 30 s
  double shard_timeout_s = 120.0;      // a remote shard silent this long has failed

  /// AugmentConfig's defaults with the released recipe's ColorJitter probability (0.8).
  static data::AugmentConfig default_augment();
  bool operator==(const DataSection& o) const;
};

struct RunConfig {
  model::ModelConfig model;
  DataSection data;
  optim::OptimConfig optim;
  TrainConfig train;
  config::ProbeConfig probe;

  bool operator==(const RunConfig& o) const;
  bool operator!=(const RunConfig& o) const { return !(*this == o); }
};

/// Reads a YAML config file, applies `key=value` overrides (dotted paths; list entries as
/// `data.sources.1.weight` or `data.sources[1].weight`; values parsed as YAML, so
/// `optim.betas=[0.9,0.99]` works), and converts it with type checks. Throws aim::Error
/// naming the file/override, the key and the expectation (unknown keys get a did-you-mean).
/// Does not validate ranges or paths: call validate().
RunConfig load_run_config(const std::string& yaml_path, const std::vector<std::string>& overrides = {});

/// The same from YAML text; `origin` names it in error messages.
RunConfig config_from_yaml_string(const std::string& yaml, const std::vector<std::string>& overrides = {},
                                  const std::string& origin = "<string>");

/// Checks every value against its allowed range and the cross-key rules (patch divides image,
/// heads divide width, batch_size divisible by micro_batch_size × world_size, source kinds and
/// weights, ...). With check_paths, also that data paths exist (image_folder roots, idx files,
/// the first shard of each webdataset pattern). Throws aim::Error naming the key.
void validate(const RunConfig& cfg, int world_size = 1, bool check_paths = true);

/// Checks the probe section (and the model it probes) for aim-probe: splits present, kinds,
/// block spec, grid values, batch divisible by the world size; with check_paths, the data and
/// weight paths. `needs_train_split` = false for evaluating or applying a saved probe
/// (--eval-only, --predict), which never reads probe.train. Throws aim::Error naming the key.
void validate_probe(const RunConfig& cfg, int world_size = 1, bool check_paths = true, bool needs_train_split = true);

/// The fully resolved config as YAML: every key, re-loadable into an equal RunConfig.
std::string to_yaml(const RunConfig& cfg);

/// Stable 64-bit hash (16 hex digits) of the resolved config, to compare configs across ranks.
std::string fingerprint(const RunConfig& cfg);

/// One key whose value differs between two resolved configs (values as YAML text).
struct KeyChange {
  std::string key, before, after;  // "train.steps", "50", "100"; "data.sources[0].weight"
};
/// The keys whose values differ between two to_yaml() texts, in the order of `after` (keys only
/// one side has are listed with "(absent)"). Throws aim::Error if either is not YAML.
std::vector<KeyChange> config_changes(const std::string& before_yaml, const std::string& after_yaml);

/// The fingerprint of what a checkpoint's state depends on: model, data mixture, optimizer
/// and the training trajectory (steps, global batch, seed, precision). Operational keys
/// (out_dir, logging/checkpoint/validation intervals, micro-batch size, device, threads,
/// timeouts, data workers, probe: affects_training) are left out, so changing them keeps
/// resuming; so are keys at their defaults, so a key added in a later version keeps old
/// checkpoints resumable.
std::string run_identity(const RunConfig& cfg);

/// False for the operational keys run_identity leaves out ("train.log_every",
/// "probe.lr", "data.workers", ...): changing them cannot change what training computes.
bool affects_training(const std::string& dotted_key);

/// The loader settings for the training mixture (train=true) or the validation source
/// (train=false; throws aim::Error when data.val is not set). Batch size is the per-rank
/// micro-batch; image size and channels come from the model; the seed from train.seed.
data::LoaderConfig loader_config(const RunConfig& cfg, bool train, int rank, int world_size);

/// Loader settings for a probe split: `train_split` picks probe.train (else probe.val);
/// `augment` gives the training transform (RandomResizedCrop + flip, an endless shuffled
/// stream), otherwise one ordered pass with the evaluation transform. Batch size is the
/// per-rank share of probe.batch_size.
data::LoaderConfig probe_loader_config(const RunConfig& cfg, bool train_split, bool augment, int rank, int world_size);

/// Every valid dotted key ("train.steps", "data.sources[].weight", ...), in schema order.
std::vector<std::string> config_keys();

/// Edit distance, for did-you-mean suggestions.
size_t levenshtein(const std::string& a, const std::string& b);

}  // namespace aim::config
