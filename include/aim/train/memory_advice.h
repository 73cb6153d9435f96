#pragma once
// What to change when the memory plan says "does not fit": the options that would fit, each
// with the plan's own number, and the start-of-training check (train.memory_check).
#include <string>
#include <vector>

#include "aim/config/run_config.h"
#include "aim/train/memory_plan.h"

namespace aim::train {

/// One change of the config (the global batch kept) that the plan says fits the budget.
struct FittingOption {
  std::string change;  // overrides as typed on the command line, e.g. "train.sharding=gradients train.micro_batch_size=32"
  int world_size = 1;  // more ranks than configured for the "more GPUs" options
  double total = 0;    // the plan's bytes per rank
};

/// The options that fit `plan.budget`, least change first: a smaller micro-batch; optimizer
/// or gradient sharding; full activation checkpointing; both; and, when nothing on this many
/// ranks fits, 2/4/8 times the ranks with gradient sharding and checkpointing. Each uses the
/// largest micro-batch that fits and divides the per-rank batch. Empty when the plan fits or
/// has no budget.
std::vector<FittingOption> fitting_options(const config::RunConfig& cfg, const MemoryPlan& plan);

/// The options as lines for --dry-run and the refusal ("  would fit: ..."), or a line saying
/// nothing would.
std::string describe_fitting_options(const config::RunConfig& cfg, const MemoryPlan& plan);

/// At the start of training: when the plan does not fit, train.memory_check=enforce throws
/// aim::Error naming the options (and the key to override), `warn` logs them, `off` is quiet.
void check_memory_plan(const config::RunConfig& cfg, const MemoryPlan& plan, bool log);

}  // namespace aim::train
