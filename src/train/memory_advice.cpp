#include "aim/train/memory_advice.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "aim/error.h"

namespace aim::train {
namespace {

// The largest micro-batch that fits the budget and splits the per-rank batch into whole
// micro-batches (what validation demands); 0 when none does.
int64_t largest_valid_micro_batch(const config::RunConfig& cfg, int world, const MemoryPlan& at) {
  if (at.max_micro_batch <= 0 || cfg.train.batch_size % world != 0) return 0;
  const int64_t per_rank = cfg.train.batch_size / world;
  for (int64_t m = std::min(at.max_micro_batch, per_rank); m >= 1; --m)
    if (per_rank % m == 0) return m;
  return 0;
}

struct Variant {
  std::string sharding, checkpointing;
  int world;
};

std::string gb(double bytes) { return fmt::format("{:.2f} GB", bytes / 1e9); }

}  // namespace

std::vector<FittingOption> fitting_options(const config::RunConfig& cfg, const MemoryPlan& plan) {
  std::vector<FittingOption> out;
  if (!plan.has_budget() || plan.fits()) return out;
  const auto& tc = cfg.train;
  const int world = plan.world_size;
  // Least change first; a variant that undoes what the config already chose is never offered.
  std::vector<Variant> variants = {{tc.sharding, tc.activation_checkpointing, world}};
  const bool sharded_grads = tc.sharding == "gradients";
  const bool ckpt = tc.activation_checkpointing == "full";
  if (world > 1 && tc.sharding == "none") variants.push_back({"optimizer", tc.activation_checkpointing, world});
  if (world > 1 && !sharded_grads) variants.push_back({"gradients", tc.activation_checkpointing, world});
  if (!ckpt) variants.push_back({tc.sharding, "full", world});
  if (world > 1 && tc.sharding == "none" && !ckpt) variants.push_back({"optimizer", "full", world});
  if (world > 1 && !sharded_grads && !ckpt) variants.push_back({"gradients", "full", world});
  for (const auto& v : variants) {
    auto c = cfg;
    c.train.sharding = v.sharding;
    c.train.activation_checkpointing = v.checkpointing;
    const auto at = plan_memory(c, v.world, plan.target, plan.budget);
    const int64_t micro = largest_valid_micro_batch(c, v.world, at);
    if (micro <= 0) continue;
    c.train.micro_batch_size = micro;
    FittingOption o;
    if (v.sharding != tc.sharding) o.change += "train.sharding=" + v.sharding + " ";
    if (v.checkpointing != tc.activation_checkpointing) o.change += "train.activation_checkpointing=" + v.checkpointing + " ";
    if (micro != tc.micro_batch_size) o.change += "train.micro_batch_size=" + std::to_string(micro) + " ";
    o.change.pop_back();
    o.world_size = v.world;
    o.total = plan_memory(c, v.world, plan.target, plan.budget).total;
    out.push_back(o);
  }
  if (!out.empty()) return out;
  // Nothing fits on these ranks: more of them, each holding less (sharded state), with the
  // most frugal settings.
  for (int times : {2, 4, 8}) {
    const int w = world * times;
    if (cfg.train.batch_size % w != 0) break;
    auto c = cfg;
    c.train.sharding = "gradients";
    c.train.activation_checkpointing = "full";
    const auto at = plan_memory(c, w, plan.target, plan.budget);
    const int64_t micro = largest_valid_micro_batch(c, w, at);
    if (micro <= 0) continue;
    c.train.micro_batch_size = micro;
    out.push_back({fmt::format("{} ranks instead of {}, with train.sharding=gradients "
                               "train.activation_checkpointing=full train.micro_batch_size={}",
                               w, world, micro),
                   w, plan_memory(c, w, plan.target, plan.budget).total});
    break;
  }
  return out;
}

std::string describe_fitting_options(const config::RunConfig& cfg, const MemoryPlan& plan) {
  if (!plan.has_budget() || plan.fits()) return "";
  const auto options = fitting_options(cfg, plan);
  if (options.empty())
    return "  would fit: nothing the plan knows (sharding, checkpointing, micro-batch, up to 8x the ranks): a larger "
           "device, or a smaller model\n";
  std::string out;
  for (const auto& o : options) out += "  would fit: " + o.change + " (" + gb(o.total) + " per rank)\n";
  return out;
}

void check_memory_plan(const config::RunConfig& cfg, const MemoryPlan& plan, bool log) {
  if (!plan.has_budget() || plan.fits() || cfg.train.memory_check == "off") return;
  const std::string what = fmt::format("the memory plan needs {} per rank but {} is available ({}); ", gb(plan.total),
                                       gb(plan.budget), plan.budget_source);
  const auto options = fitting_options(cfg, plan);
  std::string advice;
  for (const auto& o : options) advice += (advice.empty() ? "" : "; or ") + o.change + " (" + gb(o.total) + ")";
  if (advice.empty()) advice = "nothing the plan knows fits: use a larger device or a smaller model";
  if (cfg.train.memory_check == "enforce")
    throw Error(what + "it would run out of memory in the first steps. What fits: " + advice +
                ". aim-train --dry-run prints the plan; train.memory_check=warn starts anyway (if you know the plan "
                "overestimates), train.memory_gb sets the budget");
  if (log) spdlog::warn("{}starting anyway (train.memory_check=warn). What fits: {}", what, advice);
}

}  // namespace aim::train
