// aim-train --dry-run: everything that can be known before any rank starts, summary first.
#include <spdlog/fmt/fmt.h>

#include <sstream>

#include "aim/error.h"
#include "aim/train/memory_advice.h"
#include "aim/train/memory_plan.h"
#include "aim/train/peak_flops.h"
#include "aim/train/trainer.h"

namespace aim::train {

std::string describe_dry_run(const config::RunConfig& cfg, int world_size, int local_ranks) {
  // Values first: a bad key is an error here as at the start of training. Paths are not:
  // "ask the plan before booking GPUs" must work on a laptop without the dataset.
  config::validate(cfg, world_size, /*check_paths=*/false);
  std::ostringstream o;
  o << describe_run(cfg, world_size);
  const auto plan = plan_memory_for_config(cfg, world_size, local_ranks);
  o << describe_memory_plan(plan);
  if (plan.has_budget()) o << "  budget: " << plan.budget_source << "\n";
  o << describe_fitting_options(cfg, plan);
  if (plan.has_budget() && !plan.fits())
    o << (cfg.train.memory_check == "enforce"
              ? "  training refuses to start with this plan (train.memory_check=enforce; =warn starts anyway)\n"
              : "  training starts anyway (train.memory_check=" + cfg.train.memory_check + ")\n");

  std::string missing;
  try {
    config::validate(cfg, world_size, /*check_paths=*/true);
  } catch (const Error& e) {
    missing = e.what();
  }
  if (!missing.empty()) {
    o << "  data: not checked here (" << missing
      << "); a dry run plans without the data, training checks every path and shard at its start\n";
  } else {
    const std::string too_big = batch_exceeds_data_warning(cfg);
    if (!too_big.empty()) o << "warning: " << too_big << "\n";
  }
  const bool cuda = cfg.train.device == "cuda" || (cfg.train.device == "auto" && plan.target.cuda);
  const auto peak = device_peak_flops(cfg, cuda);
  const std::string slow = slow_step_warning(cfg, peak.flops * world_size);
  if (!slow.empty()) o << "warning: " << slow << "\n";
  o << "\nresolved config (every key, after presets and overrides):\n" << config::to_yaml(cfg);
  return o.str();
}

}  // namespace aim::train
