// The `train:` section: steps, the batch split, precision, the run directory, cadences,
// the device and the distributed timeout.
#include "sections.h"

#include <cmath>
#include <tuple>

namespace aim::config {

bool TrainConfig::operator==(const TrainConfig& o) const {
  return std::tie(steps, batch_size, micro_batch_size, precision, seed, out_dir, log_every, ckpt_every,
                  keep_checkpoints, val_every, val_batches, max_nonfinite, peak_tflops, device, threads,
                  dist_timeout_s, resume, bucket_mb, tensorboard, activation_checkpointing, memory_gb, sharding,
                  memory_check, ckpt_every_min, ckpt_async) ==
         std::tie(o.steps, o.batch_size, o.micro_batch_size, o.precision, o.seed, o.out_dir, o.log_every,
                  o.ckpt_every, o.keep_checkpoints, o.val_every, o.val_batches, o.max_nonfinite,
                  o.peak_tflops, o.device, o.threads, o.dist_timeout_s, o.resume, o.bucket_mb,
                  o.tensorboard, o.activation_checkpointing, o.memory_gb, o.sharding, o.memory_check,
                  o.ckpt_every_min, o.ckpt_async);
}

TrainConfig train_defaults(const std::string& preset) {
  TrainConfig t;
  t.out_dir = "runs/" + preset;
  if (model::is_official_preset(preset)) return t;  // the paper's recipe
  // Small presets train at ~100 img/s on two CPU cores (docs/benchmarks.md): a 64-image step
  // takes under a second, so the first log line comes within seconds and a checkpoint every
  // 100 steps costs ~1 min of work at most when a laptop run is interrupted.
  t.steps = 1000;
  t.batch_size = 64;
  t.micro_batch_size = 64;
  t.ckpt_every = 100;
  t.val_every = 100;
  t.val_batches = 10;
  return t;
}

namespace detail {
namespace {

const std::vector<std::string> kPrecisions = {"bf16", "fp32"};
const std::vector<std::string> kDevices = {"auto", "cpu", "cuda"};
const std::vector<std::string> kResumeModes = {"auto", "force"};
const std::vector<std::string> kCheckpointingModes = {"none", "full"};
const std::vector<std::string> kShardingModes = {"none", "optimizer", "gradients"};
const std::vector<std::string> kMemoryChecks = {"enforce", "warn", "off"};
const std::vector<std::string> kCkptAsyncModes = {"auto", "true", "false"};

std::string micro_batch_suggestions(int64_t batch, int world) {
  if (batch % world != 0) return "";
  int64_t per_rank = batch / world;
  std::vector<std::string> ok;
  for (int64_t d = per_rank; d >= 1 && ok.size() < 8; --d)
    if (per_rank % d == 0) ok.push_back(std::to_string(d));
  return "; micro-batch sizes that work at world size " + std::to_string(world) + ": " + join(ok) +
         (ok.size() == 8 ? ", ..." : "");
}

}  // namespace

const std::vector<Field<TrainConfig>>& train_fields() {
  using T = TrainConfig;
  static const std::vector<Field<T>> f = {
      plain("steps", &T::steps),
      plain("batch_size", &T::batch_size),
      plain("micro_batch_size", &T::micro_batch_size),
      choice("precision", &T::precision, kPrecisions),
      plain("seed", &T::seed),
      plain("out_dir", &T::out_dir),
      plain("log_every", &T::log_every),
      plain("ckpt_every", &T::ckpt_every),
      plain("keep_checkpoints", &T::keep_checkpoints),
      plain("val_every", &T::val_every),
      plain("val_batches", &T::val_batches),
      plain("max_nonfinite", &T::max_nonfinite),
      plain("peak_tflops", &T::peak_tflops),
      choice("device", &T::device, kDevices),
      plain("threads", &T::threads),
      plain("dist_timeout_s", &T::dist_timeout_s),
      choice("resume", &T::resume, kResumeModes),
      plain("bucket_mb", &T::bucket_mb),
      plain("tensorboard", &T::tensorboard),
      choice("activation_checkpointing", &T::activation_checkpointing, kCheckpointingModes),
      choice("sharding", &T::sharding, kShardingModes),
      plain("memory_gb", &T::memory_gb),
      choice("memory_check", &T::memory_check, kMemoryChecks),
      plain("ckpt_every_min", &T::ckpt_every_min),
      choice("ckpt_async", &T::ckpt_async, kCkptAsyncModes),
  };
  return f;
}

void validate_train_section(const TrainConfig& t, int world_size) {
  if (t.steps <= 0) fail("train.steps", "must be > 0, got " + num(t.steps));
  if (t.batch_size <= 0) fail("train.batch_size", "must be > 0, got " + num(t.batch_size));
  if (t.micro_batch_size <= 0) fail("train.micro_batch_size", "must be > 0, got " + num(t.micro_batch_size));
  if (t.batch_size % world_size != 0)
    fail("train.batch_size", num(t.batch_size) + " is not divisible by the world size " + std::to_string(world_size) +
                                 "; the global batch must be a multiple of world size × train.micro_batch_size");
  if (t.batch_size % (t.micro_batch_size * world_size) != 0)
    fail("train.batch_size", num(t.batch_size) + " must be divisible by train.micro_batch_size × world size = " +
                                 num(t.micro_batch_size) + " × " + std::to_string(world_size) + " = " +
                                 num(t.micro_batch_size * world_size) +
                                 " (gradient accumulation needs whole micro-batches)" +
                                 micro_batch_suggestions(t.batch_size, world_size));
  if (std::find(kPrecisions.begin(), kPrecisions.end(), t.precision) == kPrecisions.end())
    fail("train.precision", expect_one_of(t.precision, kPrecisions));
  if (std::find(kDevices.begin(), kDevices.end(), t.device) == kDevices.end())
    fail("train.device", expect_one_of(t.device, kDevices));
  if (t.out_dir.empty()) fail("train.out_dir", "must not be empty");
  if (t.log_every <= 0) fail("train.log_every", "must be > 0, got " + num(t.log_every));
  if (t.ckpt_every < 0) fail("train.ckpt_every", "must be >= 0 (0 = no periodic checkpoints), got " + num(t.ckpt_every));
  if (t.keep_checkpoints < 1) fail("train.keep_checkpoints", "must be >= 1, got " + num(t.keep_checkpoints));
  if (t.val_every < 0) fail("train.val_every", "must be >= 0 (0 = never), got " + num(t.val_every));
  if (t.val_batches < 0) fail("train.val_batches", "must be >= 0 (0 = one full pass), got " + num(t.val_batches));
  if (t.max_nonfinite < 1) fail("train.max_nonfinite", "must be >= 1, got " + num(t.max_nonfinite));
  if (!(t.peak_tflops >= 0) || !std::isfinite(t.peak_tflops))
    fail("train.peak_tflops", "must be >= 0 (0 = detect), got " + num(t.peak_tflops));
  if (t.threads < 0) fail("train.threads", "must be >= 0 (0 = default), got " + std::to_string(t.threads));
  if (t.dist_timeout_s < 1) fail("train.dist_timeout_s", "must be >= 1 (seconds), got " + num(t.dist_timeout_s));
  if (std::find(kResumeModes.begin(), kResumeModes.end(), t.resume) == kResumeModes.end())
    fail("train.resume", expect_one_of(t.resume, kResumeModes));
  if (!(t.bucket_mb > 0) || !std::isfinite(t.bucket_mb))
    fail("train.bucket_mb", "must be > 0 (MiB per gradient all-reduce bucket), got " + num(t.bucket_mb));
  if (std::find(kCheckpointingModes.begin(), kCheckpointingModes.end(), t.activation_checkpointing) ==
      kCheckpointingModes.end())
    fail("train.activation_checkpointing", expect_one_of(t.activation_checkpointing, kCheckpointingModes));
  if (std::find(kShardingModes.begin(), kShardingModes.end(), t.sharding) == kShardingModes.end())
    fail("train.sharding", expect_one_of(t.sharding, kShardingModes));
  if (std::find(kCkptAsyncModes.begin(), kCkptAsyncModes.end(), t.ckpt_async) == kCkptAsyncModes.end())
    fail("train.ckpt_async", expect_one_of(t.ckpt_async, kCkptAsyncModes));
  if (!(t.memory_gb >= 0) || !std::isfinite(t.memory_gb))
    fail("train.memory_gb", "must be >= 0 (GB per device; 0 = the GPU's memory, or this machine's available memory "
                            "per local rank on CPU), got " + num(t.memory_gb));
  if (std::find(kMemoryChecks.begin(), kMemoryChecks.end(), t.memory_check) == kMemoryChecks.end())
    fail("train.memory_check", expect_one_of(t.memory_check, kMemoryChecks));
  if (!(t.ckpt_every_min >= 0) || !std::isfinite(t.ckpt_every_min))
    fail("train.ckpt_every_min", "must be >= 0 (minutes of wall-clock time between checkpoints; 0 = off), got " +
                                     num(t.ckpt_every_min));
}

}  // namespace detail
}  // namespace aim::config
