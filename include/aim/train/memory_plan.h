#pragma once
// The per-rank memory plan that `aim-train --dry-run` prints: what the parameters, their
// gradients, AdamW's state and one micro-batch's activations take on one device, whether that
// fits train.memory_gb, and the largest micro-batch that would. Pure arithmetic on the config
// (nothing is allocated), derived from what this code keeps alive: see memory_plan.cpp.
#include <cstdint>
#include <string>

#include "aim/config/run_config.h"

namespace aim::train {

/// What the plan is for: the device decides the precision (bf16 autocast only on CUDA), the
/// attention kernel (fused SDPA on CUDA with LibTorch 2.x, explicit softmax(QK^T)V
/// otherwise) and what else lives in the same memory (CUDA context, or the process on CPU).
struct PlanTarget {
  bool cuda = false;
  bool fused_attention = false;  // SDPA: no K x K probabilities kept
};

struct MemoryPlan {
  PlanTarget target;
  int world_size = 1;
  int64_t micro_batch = 0;
  bool bf16 = false;
  bool checkpointing = false;
  bool sharded_optimizer = false;  // train.sharding=optimizer or gradients
  bool sharded_gradients = false;  // train.sharding=gradients
  int64_t parameters = 0;

  // Bytes per rank.
  double params = 0;        // fp32 weights
  double grads = 0;         // fp32 .grad (this rank's slice with train.sharding=gradients)
  double optimizer = 0;     // AdamW exp_avg + exp_avg_sq, fp32 (this rank's slice when sharded)
  double grad_buckets = 0;  // GradientSync's flat all-reduce buffers (more than one rank), or
                            // ShardedGradientSync's in-flight buckets (sharding=gradients)
  double weight_casts = 0;  // bf16 copies of the weights that autocast makes and backward keeps
                            // (one block's under activation checkpointing: no cast cache)
  double activations_full = 0;          // one micro-batch, no checkpointing
  double activations_checkpointed = 0;  // one micro-batch, activation_checkpointing=full
  double workspace = 0;  // transient peaks (attention scores, their gradients, a recomputed block,
                         // targets, mask, AdamW temporaries) and the runtime (CUDA context / process)
  double checkpoint_buffers = 0;  // host memory of an asynchronous checkpoint's snapshot (train.ckpt_async
                                 // not false); in `total` on CPU, beside it on CUDA
  double total = 0;      // everything at the configured checkpointing
  double budget = 0;     // train.memory_gb in bytes; 0 = no budget
  std::string budget_source;  // where the budget came from, for the verdict line
  int64_t max_micro_batch = 0;  // largest micro-batch within the budget (0: none; -1: no budget)

  double activations() const { return checkpointing ? activations_checkpointed : activations_full; }
  bool has_budget() const { return budget > 0; }
  bool fits() const { return !has_budget() || total <= budget; }
};

/// The plan for `cfg` on `world_size` data-parallel ranks. budget_bytes = 0: no budget.
MemoryPlan plan_memory(const config::RunConfig& cfg, int world_size, PlanTarget target, double budget_bytes);

/// The plan for the device the config selects (train.device; auto = CUDA when available, as
/// runtime::select_device) and its budget: train.memory_gb; else the GPU's memory on CUDA;
/// else, for a CPU plan, this machine's available memory shared by its `local_ranks` ranks;
/// none for a CUDA plan made on a machine without CUDA. What --dry-run prints and a training
/// run checks at its start (train.memory_check).
MemoryPlan plan_memory_for_config(const config::RunConfig& cfg, int world_size, int local_ranks = 1);

/// MemAvailable of /proc/meminfo in bytes (0 when unreadable): what a CPU run can still take.
double host_available_memory_bytes();

/// The plan as printed by --dry-run: one line per term, the total, and a verdict line that
/// says `fits` or `does not fit` (with the largest micro-batch that fits).
std::string describe_memory_plan(const MemoryPlan& plan);

}  // namespace aim::train
