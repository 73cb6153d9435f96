#pragma once
// aim-train's own record of how its last invocation in a run directory ended, in
// <train.out_dir>/run_status.json. A run started by a scheduler from an `aim-scale --plan` line
// has no parent watching its exit code: this file is what `aim-scale --collect` reads to tell a
// failed point (with the reason) from one still running or stopped by a signal.
//
//   {"status": "failed", "reason": "data.sources[0].path: ... does not exist", "exit_code": 2,
//    "pid": 4121, "host": "node17", "time": "2026-12-01T10:22:03Z"}
//
// status: running (written when training starts) | done (trained, exported, probed if asked)
//         | failed (with the error) | interrupted (stopped by a signal after a checkpoint).
// A process killed outright (SIGKILL, out of memory) leaves "running" behind; the pid and host
// let a reader on the same host see that it is gone.
#include <optional>
#include <string>
#include <vector>

namespace aim::train {

inline constexpr const char* kRunStatusFile = "run_status.json";

struct RunStatus {
  std::string status;  // running | done | failed | interrupted
  std::string reason;  // the error of a failed run, the signal of an interrupted one
  int exit_code = 0;
  long pid = 0;
  std::string host;
  std::string time;  // UTC, ISO 8601
};

/// Reads <dir>/run_status.json; nullopt when absent or unreadable (a torn file is no status).
std::optional<RunStatus> read_run_status(const std::string& dir);

/// Writes run_status.json for one aim-train invocation (rank 0 only; other ranks never open
/// it). Writing never throws: a status that cannot be written is a warning, not a second error
/// hiding the first.
class RunStatusFile {
 public:
  /// Where a failure goes before the config has loaded: the `train.out_dir=...` override (every
  /// aim-scale plan line has one); nothing when there is none.
  void set_dir_from_overrides(const std::vector<std::string>& overrides);
  /// The run's directory, known: records "running".
  void start(const std::string& out_dir);
  /// Records the final status and returns `exit_code` (so `return status.end(...)`).
  int end(const std::string& status, int exit_code, const std::string& reason = "");

 private:
  std::string dir_;
};

}  // namespace aim::train
