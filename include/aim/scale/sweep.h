#pragma once
// An aim-scale sweep: a base aim-train config plus axes of overrides. Each point is one
// aim-train run (then its probe) in its own directory under out_dir.
//
//   base: configs/fmnist-scale-base.yaml   # an aim-train config (relative to the working dir)
//   overrides: [train.steps=300]           # applied to every point
//   axes:                                  # cartesian product, in the order written
//     model.width: [64, 128, 192]
//     data.sources.0.limit: [1000, 60000]
//   points: [{model.width: 256, train.steps: 600}]   # explicit extra points
//   out_dir: runs/scale-fmnist
//   jobs: 1                                # points run at once on this machine
//   probe: true                            # aim-train probes each trunk at the end
//   launcher: ""                           # command prefix per job, e.g. "srun --ntasks=1"
#include <string>
#include <utility>
#include <vector>

namespace aim::scale {

struct SweepConfig {
  std::string base;
  std::vector<std::string> overrides;        // the file's, then the command line's
  std::vector<std::string> extra_overrides;  // the command line's alone
  std::vector<std::pair<std::string, std::vector<std::string>>> axes;  // key -> values (YAML text)
  std::vector<std::vector<std::pair<std::string, std::string>>> points;
  std::string out_dir = "runs/scale";
  int jobs = 1;
  bool probe = true;
  std::string launcher;
  std::string origin;  // the sweep file, for messages
};

/// Reads a sweep file; `extra_overrides` (from the command line) are appended to `overrides`.
/// Unknown keys, wrong types, empty axes and a missing base config are aim::Errors naming
/// the file and key.
SweepConfig load_sweep(const std::string& path, const std::vector<std::string>& extra_overrides = {});

struct SweepPoint {
  std::string name;                                      // "model.width=64,data.sources.0.limit=1000"
  std::vector<std::pair<std::string, std::string>> values;  // the point's own settings
  std::string dir;                                       // <out_dir>/<name>
};

/// The cartesian product of the axes (first axis outermost), then the explicit points.
/// Duplicate points (same name) are an error.
std::vector<SweepPoint> expand_points(const SweepConfig& sweep);

/// aim-train's arguments for one point (without the program): --config base, the sweep's
/// overrides, the point's values, train.out_dir, and the probe switches.
std::vector<std::string> train_arguments(const SweepConfig& sweep, const SweepPoint& point);

/// The run-config overrides of one point: the sweep's, the point's values, its out_dir and
/// the probe switches (train_arguments without "--config base").
std::vector<std::string> point_overrides(const SweepConfig& sweep, const SweepPoint& point);

/// Resolves and validates every point's config before anything runs, so a bad axis value
/// fails the sweep at once, naming the point and the key.
void validate_points(const SweepConfig& sweep, const std::vector<SweepPoint>& points);

/// One shell command line per point (launcher + aim-train + quoted arguments), for a
/// cluster scheduler (e.g. a SLURM array indexing these lines). Paths (aim-train, the base
/// config, each point's train.out_dir) are absolute, so a line works from any directory.
std::vector<std::string> plan_commands(const SweepConfig& sweep, const std::vector<SweepPoint>& points,
                                       const std::string& aim_train);

/// The data paths of a point's config that are relative ("data.sources.0.path = fmnist"): they
/// resolve against the directory a job starts in, so a plan line run elsewhere would miss them.
std::vector<std::string> relative_data_paths(const SweepConfig& sweep, const SweepPoint& point);

/// Single-quotes a word for a POSIX shell when it needs it.
std::string shell_quote(const std::string& word);

}  // namespace aim::scale
