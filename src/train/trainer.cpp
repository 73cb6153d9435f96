// run_training: the pre-training loop. Setup, the step, validation and checkpoints live in
// training_run.cpp, train_step.cpp, validation.cpp and step_log.cpp; this file is the loop.
#include "aim/train/trainer.h"

#include <spdlog/spdlog.h>

#include <filesystem>

#include "step_log.h"
#include "training_run.h"

namespace fs = std::filesystem;

namespace aim::train {

TrainSummary run_training(const config::RunConfig& cfg, const dist::DistEnv& env, dist::Communicator* comm) {
  auto run_ptr = start_training_run(cfg, env, comm);
  TrainingRun& run = *run_ptr;
  const auto& tc = run.cfg.train;
  StepLog log(run, peak_flops(run.cfg, run.device.is_cuda()) * env.world_size);

  TrainSummary summary;
  summary.resumed_from = run.resumed_from;
  bool first_logged = false;
  while (run.step < tc.steps) {
    const StepResult r = train_step(run);
    log.step_done(run, r);
    if (!first_logged && r.finite) {
      summary.first_loss = r.loss;
      first_logged = true;
    }
    summary.last_loss = r.loss;

    const bool last = run.step == tc.steps;
    if (run.cfg.data.val && tc.val_every > 0 && (run.step % tc.val_every == 0 || last)) {
      summary.last_val_loss = validation_loss(run);
      if (run.metrics) run.metrics->write({{"step", run.step}, {"val_loss", summary.last_val_loss}});
      if (run.is_rank0()) spdlog::info("step {} | val_loss {:.4f}", run.step, summary.last_val_loss);
    }
    // Never checkpoint inside a streak of non-finite steps: the newest checkpoint stays the
    // last state that trained cleanly.
    if (run.consecutive_bad == 0 && ((tc.ckpt_every > 0 && run.step % tc.ckpt_every == 0) || last))
      save_checkpoint(run);
  }

  summary.trunk_path = (fs::path(tc.out_dir) / "trunk.safetensors").string();
  export_final_trunk(run.cfg, *run.net, run.step, summary.trunk_path, env.rank, run.comm);
  summary.steps_done = run.step;
  summary.skipped_steps = run.skipped_total;
  return summary;
}

}  // namespace aim::train
