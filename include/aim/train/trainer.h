#pragma once
#include <cstdint>
#include <string>

#include "aim/config/run_config.h"
#include "aim/dist/communicator.h"
#include "aim/dist/dist_env.h"
#include <torch/nn/module.h>

namespace aim::train {

struct TrainSummary {
  int64_t steps_done = 0;       // optimizer steps completed (including resumed ones)
  int64_t resumed_from = -1;    // step of the checkpoint resumed from, -1 for a fresh run
  double first_loss = 0;        // first logged loss of this process's run
  double last_loss = 0;
  double last_val_loss = -1;    // -1 when no validation ran
  int64_t skipped_steps = 0;    // non-finite steps skipped
  std::string trunk_path;       // the exported trunk, present and identical for every rank
  // Stopped early by a stop signal (runtime/stop_request.h) on any rank: a checkpoint at
  // steps_done holds the state, no trunk was exported, and re-running the command resumes.
  bool stopped = false;
  int stop_signal = 0;          // the signal this process received (0: a peer rank's)
};

/// The communicator settings a run's config asks for (device, train.dist_timeout_s).
dist::ConnectOptions connect_options(const config::RunConfig& cfg, const torch::Device& device);

/// Rank 0 writes the trunk export (official naming, with the step and a parameter digest
/// in its metadata); then every rank waits for it and checks it reads the same digest, so
/// what follows (probe.at_end) reads the file every rank agrees on. Throws aim::Error
/// naming the ranks that see another file.
void export_final_trunk(const config::RunConfig& cfg, const torch::nn::Module& net, int64_t step,
                        const std::string& path, int rank, dist::Communicator* comm);

/// Pre-trains an AIM model as `cfg` says (spec §3-7), on this process's slice of the job
/// described by `env`: data-parallel over c10d, gradient accumulation, warmup+cosine AdamW,
/// clipping, validation, metrics.jsonl, atomic checkpoints and exact resume from the newest
/// complete checkpoint in train.out_dir, and a final trunk export in the official naming.
/// Throws aim::Error on bad input or when too many consecutive steps are non-finite.
/// `comm` joins an existing process group (aim-train keeps one for the probe that may
/// follow); when null and the job is distributed, a group is created for this call.
TrainSummary run_training(const config::RunConfig& cfg, const dist::DistEnv& env,
                          dist::Communicator* comm = nullptr);

/// Human-readable summary for --dry-run and the start of a run: parameters of trunk and
/// head, FLOPs per image, tokens, global batch, accumulation, steps, images seen.
std::string describe_run(const config::RunConfig& cfg, int world_size);

/// "45 s", "12 min", "3.5 h", "2.1 days".
std::string human_duration(double seconds);

/// The --dry-run report: the run's summary, the memory plan with what would fit, the data
/// checks a dry run can make without the data being there (it names what it did not check),
/// the slow-step warning, then the resolved config. Throws aim::Error on invalid values.
std::string describe_dry_run(const config::RunConfig& cfg, int world_size, int local_ranks);

/// A warning when one optimizer step needs more than three minutes even at `peak` FLOP/s over
/// all ranks (a global batch sized for a cluster on a laptop: nothing is logged for
/// log_every x that long), with the settings that change it; "" otherwise or when peak <= 0.
std::string slow_step_warning(const config::RunConfig& cfg, double peak);

/// A warning when train.batch_size is larger than all training sources together (each step
/// then repeats images), naming each source's count and the settings to change; "" otherwise,
/// or when a count cannot be known before reading (remote shards). `known_sizes[i] >= 0`
/// (the loader's per-source sizes) is used instead of counting source i again; streaming
/// sources are counted by their tar headers, at most batch_size samples in all.
std::string batch_exceeds_data_warning(const config::RunConfig& cfg, const std::vector<int64_t>& known_sizes = {});

}  // namespace aim::train
