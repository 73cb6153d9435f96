#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <optional>

#include "aim/data/loader.h"
#include "aim/error.h"
#include "aim/optim/multi_tensor.h"
#include "aim/optim/optimizer.h"
#include "aim/runtime/stop_request.h"
#include "aim/train/prefix_sampler.h"
#include "aim/stopwatch.h"
#include "training_run.h"

namespace aim::train {
namespace {

// Gradients of the global batch's mean loss, summed over micro-batches and ranks; returns
// the [loss sum, kept count, ranks asked to stop, ranks whose checkpoint clock ran out, ranks
// that gave the step up, ranks done writing their checkpoint part] of the global batch.
torch::Tensor accumulate_gradients(TrainingRun& run, double& data_wait) {
  const auto& tc = run.cfg.train;
  const auto& mc = run.cfg.model;
  const int64_t GB = tc.batch_size, accum = run.accumulation();
  // Every micro-batch's loss is divided by the global batch's kept-target count, so the
  // summed gradient is that of one big batch, whatever the split.
  const double global_kept =
      static_cast<double>(kept_targets(tc.seed, run.step * GB, GB, mc.num_tokens(), mc.attention));
  // [loss sum, kept count, ranks asked to stop, checkpoint due, ranks that gave up, ranks whose
  // checkpoint write has ended]: the stop request, the wall-clock checkpoint cadence, a given-up
  // step and the background checkpoint's progress ride on the reduction every step already
  // makes, so all ranks see the same answer after the same step (each rank's clock may read
  // differently, and each rank's writer threads end at their own time).
  auto loss_sum = torch::zeros({6}, torch::TensorOptions().dtype(torch::kFloat64).device(run.device));
  if (run.grad_shards) run.grad_shards->zero();
  for (int64_t a = 0; a < accum; ++a) {
    const auto t_wait = std::chrono::steady_clock::now();
    run.phase = "waiting for the next batch";
    std::optional<data::Batch> batch;
    try {
      batch = run.loader->next();
    } catch (const data::LoaderInterrupted&) {
      // Asked to stop while this rank's data stalls (a remote shard): the step is given up.
      // The other ranks are inside this step's collectives, so they get them, empty (every
      // bucket of zeros), and the vote below makes every rank drop the step and checkpoint
      // the last finished one, instead of waiting for the stalled shard's timeout.
      data_wait += seconds_since(t_wait);
      run.phase = "giving up the step (stop requested while the data stalled)";
      for (; a < accum; ++a) {
        if (run.grad_shards) {
          run.grad_shards->arm();
          run.grad_shards->finish();
        } else if (run.grad_sync && a == accum - 1) {
          run.grad_sync->arm();
        }
      }
      loss_sum[4] += 1;
      break;
    }
    data_wait += seconds_since(t_wait);
    if (!batch) throw Error("training data ran out (a train-mode loader should never end)");
    run.phase = "forward and backward";
    auto terms = forward_loss(run, *batch, tc.seed);
    if (run.grad_shards) run.grad_shards->arm();  // ZeRO-2: every micro-batch goes to its owners' slices
    else if (run.grad_sync && a == accum - 1) run.grad_sync->arm();  // reduce during the last backward only
    (terms.sum / global_kept).backward();
    if (run.grad_shards) run.grad_shards->finish();
    loss_sum[0] += terms.sum.detach().to(torch::kFloat64);
    loss_sum[1] += terms.count.detach().to(torch::kFloat64);
  }
  if (runtime::stop_signal() != 0) loss_sum[2] += 1;
  if (tc.ckpt_every_min > 0 && seconds_since(run.last_checkpoint) >= 60 * tc.ckpt_every_min) loss_sum[3] += 1;
  if (run.ckpt->write_done()) loss_sum[5] += 1;
  if (run.comm) {
    const bool first = run.step == std::max<int64_t>(run.resumed_from, 0);
    run.phase = "waiting for the gradient all-reduce (every rank must reach it)";
    if (run.grad_sync) run.grad_sync->finish();
    if (first && run.is_rank0() && run.grad_sync)
      spdlog::info("gradient all-reduce: {} buckets, {} started during backward", run.grad_sync->num_buckets(),
                   run.grad_sync->overlapped_buckets());
    if (first && run.is_rank0() && run.grad_shards)
      spdlog::info("gradient reduction to the owning ranks (train.sharding=gradients): {} buckets ({} as one "
                   "reduce-scatter, the rest reduced to their owners), {} started during the last backward, at most "
                   "{:.1f} MB of buckets alive",
                   run.grad_shards->num_buckets(), run.grad_shards->scattered_buckets(),
                   run.grad_shards->overlapped_buckets(), run.grad_shards->peak_bucket_elements() * 4 / 1e6);
    run.phase = "waiting for the loss all-reduce (every rank must reach it)";
    run.comm->all_reduce_sum_now(loss_sum);
  }
  return loss_sum;
}

}  // namespace

StepResult train_step(TrainingRun& run) {
  const auto& tc = run.cfg.train;
  const auto t_step = std::chrono::steady_clock::now();
  StepResult r;
  r.lr = optim::learning_rate(run.step, tc.steps, run.cfg.optim);
  optim::set_learning_rate(*run.opt, r.lr);
  optim::clear_gradients(*run.opt);
  for (auto& p : run.params) p.mutable_grad() = torch::Tensor();  // the model's own (differ from opt's when sharded)

  auto loss_sum = accumulate_gradients(run, r.data_wait);
  run.phase = "clipping and the optimizer step";
  const double clip = run.cfg.optim.grad_clip > 0 ? run.cfg.optim.grad_clip : std::numeric_limits<double>::infinity();
  // Sharded gradients (ZeRO-2): the global norm over every rank's slice; otherwise one
  // multi-tensor norm over the full gradients.
  const auto grad_norm = run.grad_shards
                             ? torch::tensor(clip_sharded_gradients(run, clip), loss_sum.options())
                             : optim::clip_grad_norm(run.params, clip);
  // The step's one device-to-host copy: loss sum, kept count, the votes and the gradient
  // norm together (the update needs the finite check on the host before it runs).
  auto ls = torch::cat({loss_sum, grad_norm.to(loss_sum.options()).reshape({1})}).cpu();
  r.grad_norm = ls[6].item<double>();
  r.loss = ls[0].item<double>() / std::max(1.0, ls[1].item<double>());
  r.finite = std::isfinite(r.loss) && std::isfinite(r.grad_norm);
  r.stop_requested = ls[2].item<double>() > 0;
  r.checkpoint_due = ls[3].item<double>() > 0;
  r.given_up = ls[4].item<double>() > 0;
  r.checkpoint_written = ls[5].item<double>() == static_cast<double>(run.env.world_size);
  if (r.given_up) {  // no update, no step: the trainer restores the loaders and checkpoints
    r.finite = true;
    r.seconds = seconds_since(t_step);
    return r;
  }
  if (r.finite) {
    if (!run.shards.empty()) shard_gradients(run);  // after clipping, which scaled the full gradients
    optim::adamw_step(*run.opt);
    if (!run.shards.empty()) gather_updated_shards(run);
    run.consecutive_bad = 0;
  } else {
    ++run.consecutive_bad;
    ++run.skipped_total;
    if (run.is_rank0())
      spdlog::warn("step {}: non-finite loss ({}) or gradient norm ({}); update skipped ({} in a row)", run.step + 1,
                   r.loss, r.grad_norm, run.consecutive_bad);
    if (run.consecutive_bad >= tc.max_nonfinite)
      throw Error("stopping: " + std::to_string(run.consecutive_bad) +
                  " consecutive non-finite steps (train.max_nonfinite); the last good checkpoint in " +
                  run.ckpt->directory() + " is intact");
  }
  ++run.step;
  if (run.device.is_cuda()) torch::cuda::synchronize(run.device.index());
  r.seconds = seconds_since(t_step);
  return r;
}

}  // namespace aim::train
