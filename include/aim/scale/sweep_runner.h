#pragma once
#include <string>
#include <vector>

#include "aim/scale/sweep.h"

namespace aim::scale {

/// A point is finished when its run exported the trunk and, for probed sweeps, wrote the
/// probe's results.json — whoever ran it (aim-scale, or a scheduler running --plan's lines).
bool point_finished(const SweepConfig& sweep, const SweepPoint& point);

struct PointOutcome {
  std::string name;
  std::string status;  // done | failed | skipped (already finished) | interrupted (stopped by a signal)
  int exit_code = 0;
  double seconds = 0;
  std::string error;   // the tail of the point's log when it failed
};

/// Runs every unfinished point as `launcher aim_train args...`, `sweep.jobs` at a time, each
/// with stdout/stderr appended to <point>/log.txt. A failed point is recorded in
/// <point>/point.json with its exit code and log tail, and the sweep goes on; re-running
/// retries it (aim-train resumes from its newest checkpoint). `on_finish` reports progress.
std::vector<PointOutcome> run_sweep(const SweepConfig& sweep, const std::vector<SweepPoint>& points,
                                    const std::string& aim_train,
                                    void (*on_finish)(const PointOutcome&, size_t done, size_t total) = nullptr);

/// The stop signal (SIGTERM, SIGUSR1, SIGINT) the last run_sweep received, 0 if none. Such a
/// signal is passed once to every running aim-train, which checkpoints and exits; points not
/// started stay unfinished and points stopped are "interrupted": re-running continues them.
int sweep_stop_signal();

}  // namespace aim::scale
