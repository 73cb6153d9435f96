#pragma once
// Internal to src/train: the state one pre-training run carries from step to step, and the
// pieces run_training (trainer.cpp) is made of. Each piece fits on a screen.
#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "aim/config/run_config.h"
#include "aim/data/loader.h"
#include "aim/dist/communicator.h"
#include "aim/dist/dist_env.h"
#include "aim/dist/gradient_sync.h"
#include "aim/train/peak_flops.h"
#include "aim/dist/sharded_gradient_sync.h"
#include "aim/loss/next_patch_loss.h"
#include "aim/model/aim_pretrain.h"
#include "aim/train/checkpoint.h"
#include "aim/train/metrics_log.h"

namespace aim::train {

struct TrainingRun {
  config::RunConfig cfg;
  dist::DistEnv env;
  dist::Communicator* comm = nullptr;  // null for one process
  std::unique_ptr<dist::Communicator> owned_comm;
  torch::Device device{torch::kCPU};
  bool bf16 = false;  // autocast on CUDA
  model::AimPretrainModel net{nullptr};
  std::vector<torch::Tensor> params;
  std::unique_ptr<torch::optim::AdamW> opt;  // over `params`, or over `shards` (train.sharding != none)
  std::vector<ShardPiece> shards;            // this rank's pieces of the flattened parameters; empty = replicated
  std::unique_ptr<CheckpointManager> ckpt;
  std::unique_ptr<data::Loader> loader;
  std::unique_ptr<data::Loader> val_loader;  // data.val's limited eval pass, built at the first validation
  data::LoaderState val_start;               // where each validation rewinds it to
  std::unique_ptr<dist::GradientSync> grad_sync;           // gradients all-reduced (sharding none, optimizer)
  std::unique_ptr<dist::ShardedGradientSync> grad_shards;  // sharding=gradients on > 1 rank: this rank's slice only
  std::unique_ptr<MetricsLog> metrics;  // rank 0 only
  data::ChannelAffine normalize;        // input normalization, made on the device once

  int64_t step = 0;             // optimizer steps completed
  int64_t resumed_from = -1;    // checkpoint step, -1 for a fresh run
  int64_t skipped_total = 0;    // non-finite steps skipped, over the whole run
  PeakFlops peak;               // what MFU is measured against (per device)
  // When the newest checkpoint was written (or the run started): train.ckpt_every_min.
  std::chrono::steady_clock::time_point last_checkpoint = std::chrono::steady_clock::now();
  int64_t consecutive_bad = 0;  // the current streak of non-finite steps
  const char* phase = "";       // what the run is doing or waiting for, for error messages
  uint64_t ckpt_snapshot_bytes = 0;  // host memory of one checkpoint snapshot on this rank

  bool is_rank0() const { return env.rank == 0; }
  int64_t accumulation() const { return cfg.train.batch_size / (cfg.train.micro_batch_size * env.world_size); }
};

/// Device, process group, config agreement across ranks, the run directory, the model, the
/// optimizer, the loader, the restore from the newest checkpoint, identical weights on every
/// rank, gradient buckets and metrics.jsonl. `comm` may be null (connects when distributed).
std::unique_ptr<TrainingRun> start_training_run(const config::RunConfig& cfg, const dist::DistEnv& env,
                                                dist::Communicator* comm);

/// The model's loss terms on one batch (normalize on the device, prefix lengths keyed by
/// the samples' global positions and `prefix_seed`, bf16 autocast on CUDA).
loss::LossTerms forward_loss(TrainingRun& run, const data::Batch& batch, uint64_t prefix_seed);

/// What one optimizer step reports.
struct StepResult {
  double loss = 0;       // global mean over every kept target of the global batch
  double grad_norm = 0;  // before clipping
  double lr = 0;
  double data_wait = 0;  // seconds spent waiting for batches
  double seconds = 0;    // wall time of the step, device work included
  bool finite = true;    // false: the update was skipped
  bool stop_requested = false;  // a stop signal reached some rank before this step's reduction
  bool checkpoint_written = false;  // every rank's background checkpoint write has ended (or none runs)
  bool checkpoint_due = false;  // train.ckpt_every_min passed on some rank before this step's reduction
  bool given_up = false;  // some rank was asked to stop while its data stalled: nobody took this step
};

/// One optimizer step over the global batch: accumulation micro-batches, the gradient
/// all-reduce overlapped with the last backward, clipping, AdamW, or a skipped update when
/// the loss or gradient norm is not finite (throws aim::Error after train.max_nonfinite in a
/// row). Advances run.step.
StepResult train_step(TrainingRun& run);

/// The validation loss (see validation.cpp for which images), -1 without data.val.
double validation_loss(TrainingRun& run);

/// train.sharding (sharding.cpp). shard_bounds: where each rank's slice of the flattened
/// `params` starts (world + 1 entries). shard_optimizer: the AdamW over this rank's pieces.
/// shard_gradients: before the optimizer step, each piece's gradient becomes a view of its
/// parameter's all-reduced gradient (optimizer) or of this rank's reduced slice (gradients).
/// clip_sharded_gradients: train.sharding=gradients' clip_grad_norm_, on the norm over every
/// rank's slice; returns that norm. gather_updated_shards: after the step, every rank's
/// updated slice reaches all ranks (all-gathers of bucket-sized chunks).
std::vector<int64_t> shard_bounds(const std::vector<torch::Tensor>& params, int world);
void shard_optimizer(TrainingRun& run);
void shard_gradients(TrainingRun& run);
double clip_sharded_gradients(TrainingRun& run, double max_norm);
void gather_updated_shards(TrainingRun& run);

/// Saves a resumable checkpoint at run.step (with train.ckpt_async the write goes on in the
/// background, and complete_checkpoint finishes it once every rank's write has ended: the
/// step's reduction says when, StepResult::checkpoint_written). Both log where the time went.
SaveTimes save_checkpoint(TrainingRun& run);
SaveTimes complete_checkpoint(TrainingRun& run);
/// How this run writes checkpoints: train.ckpt_async resolved against host memory, pinned
/// buffers on CUDA; sets run.ckpt_snapshot_bytes.
CheckpointOptions checkpoint_options(TrainingRun& run);

}  // namespace aim::train
