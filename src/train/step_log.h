#pragma once
// Internal to src/train: what a run reports every train.log_every steps (metrics.jsonl on
// rank 0 and a console line), averaged over the steps since the last report.
#include <chrono>
#include <cstdint>

#include "training_run.h"

namespace aim::train {

class StepLog {
 public:
  /// `peak_flops`: the job's peak FLOP/s for MFU (0 = unknown).
  StepLog(const TrainingRun& run, double peak_flops);

  /// Adds one finished step and, when the step is due, writes the record.
  void step_done(const TrainingRun& run, const StepResult& r);

 private:
  double peak_ = 0;
  double flops_per_image_ = 0;  // executed training FLOPs
  int64_t start_step_ = 0;
  std::chrono::steady_clock::time_point run_start_;
  double window_time_ = 0, window_wait_ = 0;
  int64_t window_steps_ = 0;
  int64_t bad_logged_ = 0;  // loader bad-sample count at the last "data:" line
};

}  // namespace aim::train
