// The --dry-run memory plan. Every term below is what this code keeps alive, read off the
// modules' forward passes (src/model/*.cpp) and the trainer, not a rule of thumb.
//
// Notation per image: K tokens, d width, H heads, r mlp_ratio; head: w head_width, q
// head_mlp_ratio; D = P*P*C values per patch; R head rows (tokens whose next patch is a kept
// target: K - max(S,1)). a = bytes of the compute dtype (2 under bf16 autocast, 4 in fp32),
// f = 4 (fp32: the residual stream, LayerNorm inputs and statistics stay fp32 under autocast).
//
// Saved for backward by one trunk block, per token (block.cpp, attention.cpp, mlp.cpp):
//   norm_1 input x and norm_2 input h (the residual stream)          2d f + 2 x 2 stats f
//   qkv's input norm_1(x), proj's input (heads re-joined), fc2... :
//   norm_1(x), norm_2(h), the attention output re-joined for proj     3d a
//   fc1 output (GELU's input) and GELU output (fc2's input)           2rd a
//   attention, explicit path (LibTorch 1.13, or CPU): q, k, v copies  3d a
//            for the two bmm plus the softmax output                  H K a
//   attention, fused SDPA (LibTorch 2.x on CUDA): q, k, v (views of
//            the qkv output), its output and logsumexp                4d a + H f
// Saved by one head block, per row (MlpBlock): x for norm_1, h = x + norm_1(x) for norm_2
//   (2w f; w f without the identity-attention slot), norm_2(h) w a, fc1 and GELU outputs 2qw a.
// Once per image: the normalized image for the patch conv (CHW a), the conv output for its
//   LayerNorm (K d f), the last block's output for the post-trunk norm (K d f), the picked rows
//   for proj_in (R d a), the head norm's input (R w f), proj_out's input (R w a) and the
//   loss's (pred - target) for pow (R D f).
// With activation_checkpointing=full a block keeps only its input (K d f per trunk block,
//   R w f per head block) and backward holds one recomputed block at a time.
// Transient (workspace, per image): the additive mask [H, K, K] in a (explicit path; [K, K]
// bool for SDPA), the score matrix and then its gradient next to the softmax output
// (2 H K^2 a, explicit path), the MLP's gradients (2rd a per token), the patch targets
// (K D f), and the loader's uint8 batches on CPU. Fixed: AdamW's step temporaries (two of
// the largest parameter) and the runtime around the tensors: the CUDA context with
// cuBLAS/NCCL workspaces on a GPU, the process itself (libraries, allocator) on CPU; with
// train.sharding on more than one rank, the all-gather buffers that carry the updated slices
// (sharding.cpp: one chunk of min(slice, bucket_mb) elements in, N chunks out, and Gloo's
// own flat copy of the N chunks on CPU).
//
// Model state per parameter: 4 B weights + 4 B gradients + 8 B AdamW moments, plus 4 B of
// GradientSync buckets on more than one rank and, under bf16, 2 B of autocast's bf16 weight
// copies (kept by backward as the matmuls' inputs). With activation checkpointing nothing keeps
// them: the trainer turns autocast's cast cache off (compat::bf16_training_autocast), so only
// the block being recomputed holds its copies (2 B x the largest block's parameters). train.sharding=optimizer: the moments are 8 B / N (each rank keeps
// them for its 1/N slice). train.sharding=gradients: the gradients are 4 B / N too, and the
// persistent buckets are replaced by ShardedGradientSync's in-flight ones (at most three
// buckets of bucket_mb alive at once) plus one parameter's own gradient before it is released.
#include "aim/train/memory_plan.h"
#include "aim/train/checkpoint.h"

#include <spdlog/fmt/fmt.h>
#include <torch/cuda.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "aim/compat.h"
#include "aim/model/model_stats.h"

namespace aim::train {
namespace {

constexpr double kF = 4;                  // fp32 bytes
constexpr double kCudaRuntime = 1.0e9;    // CUDA context, cuBLAS and NCCL workspaces, allocator slack
constexpr double kCpuRuntime = 0.20e9;    // the aim-train process without tensors: 0.19 GB peak RSS of test-tiny

// Head rows for a micro-batch of `batch` images: prefix lengths S are independent and uniform
// on 1..K-1, so rows per image K - S have mean K/2; plan for the mean plus six standard
// deviations of the micro-batch's sum (a larger batch happens about once in 10^9), capped at
// every row. Causal pre-training always has K - 1.
double head_rows(const model::ModelConfig& m, int64_t batch) {
  const double K = static_cast<double>(m.num_tokens()), B = static_cast<double>(batch);
  const double all = B * (K - 1);
  if (m.attention != model::AttentionMode::kPrefixCausal) return all;
  const double var = ((K - 1) * (K - 1) - 1) / 12.0;
  return std::min(all, B * K / 2 + 6 * std::sqrt(B * var));
}

struct Activations {
  double full = 0, kept = 0, transient = 0;
};

Activations activations(const config::RunConfig& cfg, int64_t batch, PlanTarget t, bool bf16) {
  const auto& m = cfg.model;
  const double a = bf16 ? 2 : 4, B = static_cast<double>(batch);
  const double K = static_cast<double>(m.num_tokens()), d = static_cast<double>(m.width);
  const double H = static_cast<double>(m.heads), r = static_cast<double>(m.mlp_ratio);
  const double w = static_cast<double>(m.head_width), q = static_cast<double>(m.head_mlp_ratio);
  const double D = static_cast<double>(m.patch_dim());
  const double pixels = static_cast<double>(m.channels * m.img_size * m.img_size);
  const double R = head_rows(m, batch);  // over the micro-batch
  const double tokens = B * K;

  const double attention = t.fused_attention ? 4 * d * a + H * kF : 3 * d * a + H * K * a;
  const double trunk_block = 2 * d * kF + 4 * kF + 3 * d * a + 2 * r * d * a + attention;  // per token
  const double head_norms = m.head_identity_attn ? 2 : 1;
  const double head_block = head_norms * (w * kF + 2 * kF) + w * a + 2 * q * w * a;  // per row
  const double once = B * pixels * a + 2 * tokens * (d * kF + 2 * kF) + R * (d * a + w * kF + 2 * kF + w * a + D * kF);

  const double depth = static_cast<double>(m.depth), hblocks = static_cast<double>(m.head_blocks);
  Activations out;
  out.full = depth * tokens * trunk_block + hblocks * R * head_block + once;
  const double recompute = std::max(tokens * trunk_block, R * head_block);
  out.kept = depth * tokens * d * kF + hblocks * R * w * kF + once + recompute;
  const double mask = t.fused_attention ? B * K * K : B * H * K * K * a;
  const double scores = t.fused_attention ? 0 : 2 * B * H * K * K * a;
  const double grads = std::max(scores + 2 * r * d * a * tokens, 2 * q * w * a * R);
  const double loader = t.cuda ? 0 : (cfg.data.prefetch + 2) * B * pixels;  // uint8 batches in host memory
  out.transient = mask + grads + tokens * D * kF + loader;
  return out;
}

double largest_parameter(const model::ModelConfig& m) {
  const double d = static_cast<double>(m.width), w = static_cast<double>(m.head_width);
  return std::max({3 * d * d, static_cast<double>(m.mlp_ratio) * d * d, static_cast<double>(m.head_mlp_ratio) * w * w,
                   d * w, w * static_cast<double>(m.patch_dim())});
}

}  // namespace

MemoryPlan plan_memory(const config::RunConfig& cfg, int world_size, PlanTarget target, double budget_bytes) {
  MemoryPlan p;
  p.target = target;
  p.world_size = world_size;
  p.micro_batch = cfg.train.micro_batch_size;
  p.bf16 = target.cuda && cfg.train.precision == "bf16";
  p.checkpointing = cfg.train.activation_checkpointing == "full";
  p.parameters = model::count_parameters(cfg.model).total();
  const double n = static_cast<double>(p.parameters);
  p.params = 4 * n;
  p.grads = 4 * n;
  const bool sharded = cfg.train.sharding != "none" && world_size > 1;
  p.sharded_optimizer = cfg.train.sharding != "none";
  p.sharded_gradients = cfg.train.sharding == "gradients";
  p.optimizer = 8 * n / (p.sharded_optimizer ? world_size : 1);  // ZeRO-1: this rank's slice only
  const double N = world_size;
  const double bucket = cfg.train.bucket_mb * 1024 * 1024;  // bytes
  if (p.sharded_gradients && world_size > 1) {
    p.grads = 4 * n / N;  // ZeRO-2: this rank's slice
    p.grad_buckets = std::min(4 * n, 3 * bucket) + kF * largest_parameter(cfg.model);
  } else {
    p.grad_buckets = world_size > 1 ? 4 * n : 0;
  }
  const auto counts = model::count_parameters(cfg.model);
  const double block = std::max(
      static_cast<double>(counts.trunk - counts.patch_embed) / static_cast<double>(std::max<int64_t>(cfg.model.depth, 1)),
      static_cast<double>(counts.pretrain_head) / static_cast<double>(std::max<int64_t>(cfg.model.head_blocks, 1)));
  p.weight_casts = p.bf16 ? 2 * (p.checkpointing ? block : n) : 0;
  p.budget = budget_bytes;
  // Sharded: the all-gather's chunk in, N chunks out (and Gloo's flat copy of those on CPU).
  const double chunk = std::min(4 * std::ceil(n / N), bucket);
  const double gather = sharded ? chunk * (1 + N * (target.cuda ? 1 : 2)) : 0;
  const double fixed_ws =
      2 * kF * largest_parameter(cfg.model) + (target.cuda ? kCudaRuntime : kCpuRuntime) + gather;
  // Asynchronous checkpoints keep a snapshot of this rank's slice in host memory: part of the
  // process's memory on CPU, beside the GPU's on CUDA (train.ckpt_async=auto decides at start).
  p.checkpoint_buffers = cfg.train.ckpt_async == "false"
                             ? 0
                             : static_cast<double>(checkpoint_snapshot_bytes(p.parameters, world_size));
  const double model_state = p.params + p.grads + p.optimizer + p.grad_buckets + p.weight_casts;
  double state = model_state + (target.cuda ? 0 : p.checkpoint_buffers);
  auto total_at = [&](int64_t batch, Activations* keep) {
    const auto act = activations(cfg, batch, target, p.bf16);
    if (keep) *keep = act;
    return state + (p.checkpointing ? act.kept : act.full) + act.transient + fixed_ws;
  };
  // train.ckpt_async=auto takes no snapshot buffers where they would not fit (its saves are then
  // synchronous): on CPU, where they share the budget, they count only when the run fits with them.
  if (cfg.train.ckpt_async == "auto" && !target.cuda && budget_bytes > 0 &&
      total_at(p.micro_batch, nullptr) > budget_bytes) {
    p.checkpoint_buffers = 0;
    state = model_state;
  }
  Activations act;
  p.total = total_at(p.micro_batch, &act);
  p.activations_full = act.full;
  p.activations_checkpointed = act.kept;
  p.workspace = act.transient + fixed_ws;
  if (!p.has_budget()) {
    p.max_micro_batch = -1;
  } else if (total_at(1, nullptr) > budget_bytes) {
    p.max_micro_batch = 0;
  } else {
    int64_t lo = 1, hi = 2;  // total_at(lo) fits; grow hi until it does not
    while (hi < (int64_t(1) << 40) && total_at(hi, nullptr) <= budget_bytes) {
      lo = hi;
      hi *= 2;
    }
    while (hi - lo > 1) {
      const int64_t mid = lo + (hi - lo) / 2;
      (total_at(mid, nullptr) <= budget_bytes ? lo : hi) = mid;
    }
    p.max_micro_batch = lo;
  }
  return p;
}

double host_available_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  double kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return 0;
}

MemoryPlan plan_memory_for_config(const config::RunConfig& cfg, int world_size, int local_ranks) {
  const auto& want = cfg.train.device;
  const bool cuda_here = want != "cpu" && torch::cuda::is_available();
  PlanTarget t;
  t.cuda = want == "cuda" || cuda_here;
  t.fused_attention = t.cuda && AIM_HAS_SDPA;
  double budget = cfg.train.memory_gb * 1e9;
  std::string source = "train.memory_gb";
  if (budget <= 0 && cuda_here) {
    budget = compat::cuda_total_memory_bytes();
    source = "the GPU's memory";
  } else if (budget <= 0 && !t.cuda) {
    const double avail = host_available_memory_bytes();
    const int n = std::max(local_ranks, 1);
    budget = avail / n;
    source = fmt::format("this machine's available memory, {:.2f} GB{}", avail / 1e9,
                         n > 1 ? fmt::format(", shared by {} local ranks", n) : std::string());
  }
  auto p = plan_memory(cfg, world_size, t, budget);
  p.budget_source = source;
  return p;
}

std::string describe_memory_plan(const MemoryPlan& p) {
  auto gb = [](double b) { return fmt::format("{:.2f} GB", b / 1e9); };
  std::ostringstream o;
  o << "  memory plan per rank (" << (p.target.cuda ? "CUDA" : "CPU") << ", " << (p.bf16 ? "bf16 autocast" : "fp32")
    << ", " << (p.target.fused_attention ? "fused attention" : "explicit attention") << ", " << p.world_size
    << (p.world_size == 1 ? " rank" : " ranks") << ", micro-batch " << p.micro_batch << ", activation checkpointing "
    << (p.checkpointing ? "full" : "none") << "):\n"
    << "    parameters " << gb(p.params) << " (" << fmt::format("{:.3f}", p.parameters / 1e9) << " G x 4 B)\n"
    << "    gradients " << gb(p.grads)
    << (p.sharded_gradients && p.world_size > 1 ? " (this rank's 1/" + std::to_string(p.world_size) + " slice)"
                                                 : std::string())
    << "\n"
    << "    optimizer state " << gb(p.optimizer) << " (AdamW: 2 fp32 moments"
    << (p.sharded_optimizer ? ", sharded over " + std::to_string(p.world_size) + " ranks" : std::string()) << ")\n";
  if (p.grad_buckets > 0)
    o << (p.sharded_gradients ? "    gradient buckets in flight " : "    gradient all-reduce buckets ")
      << gb(p.grad_buckets) << "\n";
  if (p.weight_casts > 0) o << "    bf16 weight copies " << gb(p.weight_casts) << "\n";
  o << "    activations per micro-batch " << gb(p.activations()) << " (no checkpointing " << gb(p.activations_full)
    << ", full checkpointing " << gb(p.activations_checkpointed) << ")\n"
    << "    workspace " << gb(p.workspace) << "\n";
  if (p.checkpoint_buffers > 0)
    o << (p.target.cuda ? "    host memory (not in the total): " : "    ") << "checkpoint snapshot buffers "
      << gb(p.checkpoint_buffers) << " (train.ckpt_async" << (p.target.cuda ? ", pinned" : "") << ")\n";
  o
    << "    total " << gb(p.total) << "\n";
  if (!p.has_budget()) {
    o << "  memory verdict: no budget to check against (set train.memory_gb)\n";
  } else if (p.fits()) {
    o << "  memory verdict: fits in " << gb(p.budget) << " per device (largest micro-batch that fits: "
      << p.max_micro_batch << ")\n";
  } else {
    o << "  memory verdict: does not fit in " << gb(p.budget) << " per device ("
      << (p.max_micro_batch > 0 ? "largest micro-batch that fits: " + std::to_string(p.max_micro_batch)
                                : std::string("no micro-batch fits: the model state alone needs ") +
                                      gb(p.params + p.grads + p.optimizer + p.grad_buckets + p.weight_casts))
      << ")\n";
  }
  return o.str();
}

}  // namespace aim::train
