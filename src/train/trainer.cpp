// run_training: the pre-training loop. Setup, the step, validation and checkpoints live in
// training_run.cpp, train_step.cpp, validation.cpp and step_log.cpp; this file is the loop.
#include "aim/train/trainer.h"

#include <spdlog/spdlog.h>

#include <filesystem>

#include "aim/data/loader.h"
#include "aim/error.h"
#include "aim/runtime/process_clock.h"
#include "aim/runtime/stop_request.h"

#include "step_log.h"
#include "training_run.h"

namespace fs = std::filesystem;

namespace aim::train {

namespace {

// Errors inside a step say which step and what the run was doing or waiting for: a rank
// that froze shows up in its peers' logs as "step 812 (waiting for the gradient all-reduce
// ...): collective failed ...".
template <typename F>
auto with_context(TrainingRun& run, int64_t step, F&& f) {
  try {
    return f();
  } catch (const Error& e) {
    throw Error("step " + std::to_string(step) + " (" + run.phase + "): " + e.what());
  } catch (const c10::Error& e) {
    throw Error("step " + std::to_string(step) + " (" + run.phase + "): " + e.what_without_backtrace());
  }
}

// Every rank got here after the same step (the request rides on that step's reduction):
// checkpoint that step, unless a non-finite streak is running (then the newest checkpoint
// is the last clean state and stays the resume point), and stop without exporting.
void stop_on_signal(TrainingRun& run, TrainSummary& summary) {
  summary.stopped = true;
  summary.stop_signal = runtime::stop_signal();
  summary.steps_done = run.step;
  summary.skipped_steps = run.skipped_total;
  const std::string why = summary.stop_signal ? runtime::stop_signal_name(summary.stop_signal) : "a peer rank's signal";
  // A save in flight completes first (its checkpoint may be the newest complete one); then this
  // step's, and its write completes before the process exits.
  SaveTimes t;
  if (run.consecutive_bad == 0) {
    save_checkpoint(run);
    t = complete_checkpoint(run);
  } else {
    complete_checkpoint(run);
  }
  if (!run.is_rank0()) return;
  if (run.consecutive_bad == 0)
    spdlog::warn("stopping on {} after step {}: its checkpoint is written ({:.1f} s: waited {:.1f} s for the save in "
                 "flight, snapshot {:.2f} s, write {:.1f} s, completion {:.2f} s; {:.2f} GB per rank); run the same "
                 "command to continue",
                 why, run.step, t.waited + t.snapshot + t.write + t.finish, t.waited, t.snapshot, t.write, t.finish,
                 t.bytes / 1e9);
  else
    spdlog::warn("stopping on {} after step {} inside a run of non-finite steps: no checkpoint written, the newest in {} "
                 "is the last clean state; run the same command to continue from it",
                 why, run.step, run.ckpt->directory());
}

}  // namespace

TrainSummary run_training(const config::RunConfig& cfg, const dist::DistEnv& env, dist::Communicator* comm) {
  auto run_ptr = start_training_run(cfg, env, comm);
  TrainingRun& run = *run_ptr;
  const auto& tc = run.cfg.train;
  const double peak = run.peak.flops * env.world_size;
  StepLog log(run, peak);
  if (run.is_rank0()) {
    const std::string slow = slow_step_warning(run.cfg, peak);
    if (!slow.empty()) spdlog::warn("{}", slow);
    const std::string too_big = batch_exceeds_data_warning(run.cfg, run.loader->source_sizes());
    if (!too_big.empty()) spdlog::warn("{}", too_big);
  }

  TrainSummary summary;
  summary.resumed_from = run.resumed_from;
  bool first_logged = false;
  while (run.step < tc.steps) {
    const data::LoaderState at_step_start = run.loader->state();
    const StepResult r = with_context(run, run.step + 1, [&] { return train_step(run); });
    if (r.given_up) {
      // A rank was asked to stop while the step waited for its data (a stalled remote shard):
      // every rank dropped the step, gives its micro-batches back, and the last finished
      // step is saved.
      run.loader->load_state(at_step_start);
      stop_on_signal(run, summary);
      return summary;
    }
    log.step_done(run, r);
    if (run.resumed_from >= 0 && run.step == run.resumed_from + 1 && run.is_rank0())
      spdlog::info("first step after resuming from step {}: {:.1f} s after the process started",
                   run.resumed_from, runtime::seconds_since_process_start());
    // Every rank's background write has ended: complete the checkpoint (all ranks, this step).
    if (r.checkpoint_written && run.ckpt->in_flight())
      with_context(run, run.step, [&] {
        run.phase = "completing the checkpoint";
        return complete_checkpoint(run);
      });
    if (!first_logged && r.finite) {
      summary.first_loss = r.loss;
      first_logged = true;
    }
    summary.last_loss = r.loss;

    const bool last = run.step == tc.steps;
    if (r.stop_requested && !last) {
      stop_on_signal(run, summary);
      return summary;
    }
    if (run.cfg.data.val && tc.val_every > 0 && (run.step % tc.val_every == 0 || last)) {
      run.phase = "validation";
      summary.last_val_loss = with_context(run, run.step, [&] { return validation_loss(run); });
      if (run.metrics) run.metrics->write({{"step", run.step}, {"val_loss", summary.last_val_loss}});
      if (run.is_rank0()) spdlog::info("step {} | val_loss {:.4f}", run.step, summary.last_val_loss);
    }
    // Never checkpoint inside a streak of non-finite steps: the newest checkpoint stays the
    // last state that trained cleanly.
    if (run.consecutive_bad == 0 && ((tc.ckpt_every > 0 && run.step % tc.ckpt_every == 0) || last || r.checkpoint_due))
      with_context(run, run.step, [&] {
        run.phase = "saving the checkpoint";
        save_checkpoint(run);
        return 0;
      });
  }

  with_context(run, run.step, [&] {
    run.phase = "completing the checkpoint";
    return complete_checkpoint(run);  // the last step's, written in the background
  });
  summary.trunk_path = (fs::path(tc.out_dir) / "trunk.safetensors").string();
  export_final_trunk(run.cfg, *run.net, run.step, summary.trunk_path, env.rank, run.comm);
  summary.steps_done = run.step;
  summary.skipped_steps = run.skipped_total;
  return summary;
}

}  // namespace aim::train
