#pragma once
#include <string>
#include <vector>

#include "aim/scale/sweep.h"

namespace aim::scale {

/// What differs between the run in a point's directory (the config.yaml aim-train wrote) and
/// the config the sweep asks for now (base + overrides + the point's values), one
/// "key: run's value -> sweep's value" per key. Keys that cannot change a result are not
/// compared: paths (train.out_dir, probe.out_dir, probe.weights), logging and checkpoint
/// cadence, device, threads, micro-batch size, loader workers and retries. Empty when they
/// agree or when the directory holds no run (no config.yaml and no trunk.safetensors).
/// Point names leave out the sweep-wide overrides; this check is what catches a change there.
std::vector<std::string> point_config_differences(const SweepConfig& sweep, const SweepPoint& point);

/// A point is finished when its run exported the trunk, wrote the probe's results.json (for
/// probed sweeps), was made with the config the sweep asks for now (no
/// point_config_differences) and its last aim-train did not record "failed" or "interrupted" in
/// run_status.json — whoever ran it (aim-scale, or a scheduler running --plan's lines).
bool point_finished(const SweepConfig& sweep, const SweepPoint& point);

struct PointOutcome {
  std::string name;
  std::string status;  // done | failed | skipped (already finished) | interrupted (stopped by a signal)
  int exit_code = 0;
  double seconds = 0;
  std::string error;   // the tail of the point's log when it failed
  std::string replaced;  // where an older run of another config was moved ("" if none)
};

/// Runs every unfinished point as `launcher aim_train args...`, `sweep.jobs` at a time, each
/// with stdout/stderr appended to <point>/log.txt. A point whose directory holds a run of
/// another config (point_config_differences) is run again from scratch: its old directory is
/// moved to <out_dir>/replaced/<point> (then .2, .3, ...) with a warning naming the keys. A failed point is recorded in
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
