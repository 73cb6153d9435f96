#pragma once
// The data pipeline that feeds aim-train and aim-probe: a weighted mixture of sources,
// decoded and augmented by worker threads into a bounded queue of ready batches.
//
// Determinism contract. Train mode lays out optimizer steps: step t's global batch holds the
// global samples g = t * GB + j, j < GB (GB = batch_size x world_size x accumulation), and rank
// r's micro-batch a takes j in [r * GB / W + a * batch_size, ... + batch_size). g's source is a
// hash of (seed, g); its item, for random-access sources, is the k-th entry of a seeded
// per-epoch permutation (k = how many earlier global samples chose that source); for a
// streaming source, the next sample of the lane that serves g's block of the global batch
// (loader_state.h, train_plan.h); its crop/flip/jitter is a hash of (seed, g). Hence:
//  * a restored LoaderState replays exactly the batches an uninterrupted run would produce;
//  * the samples of optimizer step t, and the index each one has, are the same whatever the
//    world size, batch split or gradient accumulation, for random-access sources always and
//    for streams on every world size that divides their lane count (world_size x stream_lanes
//    of the run's first start);
//  * none of it depends on the number of worker threads.
// Eval mode is one ordered pass. Random-access sources are split over ranks by position;
// a streaming source's shards are dealt by list position (shard j to rank j % world), and
// its `limit` keeps the first N samples in list order. Either way the pass holds the same
// samples, each once, under the same index, whatever the world size; a rank that owns none
// simply ends its pass early.
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "aim/data/bad_sample_log.h"
#include "aim/data/holdout.h"
#include "aim/data/loader_state.h"
#include "aim/data/shard_stream.h"
#include "aim/data/transforms.h"
#include "aim/data/webdataset_source.h"
#include "aim/error.h"

namespace aim::data {

/// Thrown by Loader::next when its interrupt check turned true before a batch was ready.
struct LoaderInterrupted : Error {
  using Error::Error;
};

struct SourceConfig {
  std::string name;
  std::string kind;                 // webdataset | image_folder | idx | synthetic
  std::vector<std::string> shards;  // webdataset: brace patterns, "::" lists, globs
  std::string root;                 // image_folder
  std::string path = "/usr/share/datasets/fashion-mnist";  // idx: directory or images file
  std::string split = "train";      // idx: train | test
  double weight = 1.0;              // mixture weight (> 0); normalized over sources
  int64_t limit = -1;               // keep only the first N samples (data-scaling studies)
  // synthetic
  int64_t size = 10000, classes = 10;
  int height = 64, width = 64;
};

struct LoaderConfig {
  std::vector<SourceConfig> sources;
  int img_size = 224;
  int channels = 3;
  bool train = true;            // train: infinite augmented mixture; eval: one ordered pass
  AugmentConfig augment;
  int64_t batch_size = 256;     // per rank
  int64_t accumulation = 1;     // train: micro-batches (of batch_size) per optimizer step
  int rank = 0, world_size = 1;
  int workers = 4;              // decode threads; 0 decodes on the calling thread
  int prefetch = 3;             // batches in flight ahead of the consumer
  uint64_t seed = 0;
  int stream_lanes = 8;         // sequential readers per streaming source and rank (train: at the first start)
  uint64_t max_member_bytes = kDefaultMaxMemberBytes;  // larger tar members: bad samples, skipped unread
  int64_t max_bad_streak = 64;  // train: this many bad samples in a row from one source stop the run
  RemoteShardOptions remote;    // retries and timeout of "pipe:" and http(s) shards
  int64_t max_pixels = 1ll << 26;
  double dct_min_ratio = 1.0;
  bool pin_memory = true;       // page-locked batches when CUDA is available
  // Benchmarks only: called by the worker after each sample's decode (with its global index
  // in train mode), to stand in for a decoder of another cost (aim-bench-loader --skew).
  std::function<void(int64_t)> decode_cost;
  /// Only one side of a seeded hold-out of every source (data/holdout.h): random-access
  /// sources draw from (train) or pass over (eval) that side's items, streams skip the other
  /// side's samples. Off by default.
  HoldOut holdout;
};

/// One batch. images is uint8 [B, C, H, W], contiguous (normalize on the device with
/// normalize_images); labels int64 [B] (-1 if unlabeled); source int64 [B] (index into
/// config.sources); index int64 [B]: the global sample index in train mode; in eval mode the
/// position in the pass (random access) or stream_sample_key(shard, offset) (streaming),
/// both independent of the world size. It keys per-sample randomness elsewhere (e.g. the
/// prefix length) on the same counter.
struct Batch {
  torch::Tensor images, labels, source, index;
  int64_t step = 0;
  int64_t size() const { return images.defined() ? images.size(0) : 0; }
};

class Loader {
 public:
  /// Opens every source and validates the config; throws aim::Error with a specific message
  /// (missing root, pattern matching nothing, weight <= 0, ...) before any work starts.
  explicit Loader(LoaderConfig config);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  /// The next batch. Train mode never ends; eval mode returns nullopt after one pass (the
  /// last batch may be short, bad samples are dropped rather than replaced). Throws
  /// LoaderInterrupted if the interrupt check (set_interrupt) turns true while it waits.
  std::optional<Batch> next();

  /// A check next() polls (every 0.1 s) while it waits for a batch, e.g. "a stop signal came":
  /// a stalled remote shard can then not hold a stopping run. The position stays that of the
  /// last batch returned. Set before the first next(); empty: never interrupted.
  void set_interrupt(std::function<bool()> interrupted);

  /// Position after the last batch returned by next(). Per rank: with streaming sources each
  /// rank must save its own.
  LoaderState state() const;
  /// Continues from a saved position (any time; in-flight work is discarded): this rank's own
  /// state, or every rank's merged (merge_loader_states), which continues on any world size
  /// (streams: any that divides their lane count; on others a stream restarts at a fresh epoch,
  /// with a warning). Throws aim::Error if the state belongs to a different source list or
  /// seed, or when a stream position would be lost on an unchanged world size.
  void load_state(const LoaderState& state);
  /// load_state's checks alone: throws what load_state would, changes nothing.
  void check_state(const LoaderState& state) const;

  const LoaderConfig& config() const;
  std::vector<std::string> source_names() const;
  /// Samples delivered by this rank, per source (restored with the state).
  std::vector<int64_t> source_counts() const;
  const BadSampleLog& bad_samples() const;
  /// Samples per epoch of each source as used (after `limit`, on this loader's side of
  /// `holdout`); -1 for streaming sources.
  std::vector<int64_t> source_sizes() const;
  /// Number of classes of each source (0 when unknown or unlabeled).
  std::vector<int64_t> source_classes() const;
  /// "dfn2b 80.1% (8012), imagenet 19.9% (1990); bad samples: 3" for the training log.
  std::string summary() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// uint8 [B,C,H,W] -> float (x/255 - mean) / std on `device`; the cast happens after the
/// copy, so 4x fewer bytes cross the host-device link.
torch::Tensor normalize_images(const torch::Tensor& images_u8, const torch::Device& device,
                               const std::vector<double>& mean = {0.485, 0.456, 0.406},
                               const std::vector<double>& std = {0.229, 0.224, 0.225},
                               torch::ScalarType dtype = torch::kFloat);

/// The per-channel map of normalize_images, x * scale + shift, as [1, C, 1, 1] float32 on a
/// device. Made once per run: building it per batch cost two blocking host-to-device copies
/// of pageable memory per micro-batch, each a stall of the GPU stream.
struct ChannelAffine {
  torch::Tensor scale, shift;
};
ChannelAffine channel_affine(int64_t channels, const torch::Device& device,
                             const std::vector<double>& mean = {0.485, 0.456, 0.406},
                             const std::vector<double>& std = {0.229, 0.224, 0.225});
/// normalize_images with a map made once; the images go to the map's device.
torch::Tensor normalize_images(const torch::Tensor& images_u8, const ChannelAffine& affine,
                               torch::ScalarType dtype = torch::kFloat);

/// ImageNet channel statistics (and their gray-scale means for 1-channel models): the
/// normalization every model input gets, in training and downstream.
std::vector<double> channel_mean(int64_t channels);
std::vector<double> channel_std(int64_t channels);

}  // namespace aim::data
