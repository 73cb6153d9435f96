// The --dry-run memory plan: its arithmetic on shapes worked out by hand, its verdict on the
// paper's aim-7b, and the largest micro-batch it reports.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "aim/config/run_config.h"
#include "aim/model/model_stats.h"
#include "aim/train/memory_plan.h"
#include "test_util.h"

using namespace aim;

namespace {

const std::string k7bYaml = std::string(AIM_SOURCE_DIR) + "/configs/aim-7b.yaml";

// The plan's workspace written out term by term, each a buffer named in memory_plan.cpp's
// header comment and computed by hand in the tests below: the transient peak of backward
// (the additive mask; next to it either the attention scores and their gradient plus the
// trunk MLP's gradients, or the head MLP's gradients, whichever is larger), the patch
// targets, the loader's uint8 batches on CPU, AdamW's temporaries, the runtime, and the
// all-gather buffers of train.sharding.
struct Workspace {
  double mask = 0, scores = 0, trunk_mlp_grads = 0, head_mlp_grads = 0, targets = 0, loader = 0, adamw = 0,
         runtime = 0, gather = 0;
  double total() const {
    return mask + std::max(scores + trunk_mlp_grads, head_mlp_grads) + targets + loader + adamw + runtime + gather;
  }
};

// test-tiny's largest parameter is a head MLP matrix, 4 x 48 x 48 = 9216 floats; AdamW's step
// keeps two temporaries of its size.
constexpr double kTinyAdamw = 2 * 9216 * 4.0;
constexpr double kCpuRuntime = 0.20e9, kCudaRuntime = 1.0e9;

}  // namespace

// test-tiny (every image has K - 1 = 15 head rows), fp32 on CPU, explicit attention:
// K = 16, d = 32, H = 2, r = 4, w = 48, q = 4, D = 48, 3x16x16 images, depth 2, 2 head blocks.
TEST(MemoryPlan, ArithmeticOnKnownShapes) {
  auto cfg = config::load_run_config(test::kTinyYaml, {"model.attention=causal", "train.micro_batch_size=4"});
  const int64_t n = model::count_parameters(cfg.model).total();
  auto p = train::plan_memory(cfg, 1, train::PlanTarget{}, 0);
  EXPECT_EQ(p.parameters, n);
  EXPECT_DOUBLE_EQ(p.params, 4.0 * n);
  EXPECT_DOUBLE_EQ(p.grads, 4.0 * n);
  EXPECT_DOUBLE_EQ(p.optimizer, 8.0 * n);
  EXPECT_DOUBLE_EQ(p.grad_buckets, 0);
  EXPECT_DOUBLE_EQ(p.weight_casts, 0);
  // Per token of a trunk block: x, h (2*32) + 4 LN stats + norm_1, norm_2, joined heads
  // (3*32) + fc1/GELU outputs (2*128) + q, k, v (3*32) + probabilities (2*16) = 548 floats.
  const double trunk_block = 548 * 4.0, tokens = 4 * 16;
  // Per head row: x, h (2*48) + 4 LN stats + norm_2 (48) + fc1/GELU (2*192) = 532 floats.
  const double head_block = 532 * 4.0, rows = 4 * 15;
  // Once: images 4*768 + conv output and last block output 2*64*(32+2) + per row
  // (picked 32 + head norm input 48 + 2 stats + proj_out input 48 + loss diff 48 = 178).
  const double once = (4 * 768 + 2 * 64 * 34 + 60 * 178) * 4.0;
  EXPECT_DOUBLE_EQ(p.activations_full, 2 * tokens * trunk_block + 2 * rows * head_block + once);
  // Checkpointed: inputs only (64*32 per trunk block, 60*48 per head block) + one recomputed block.
  EXPECT_DOUBLE_EQ(p.activations_checkpointed,
                   (2 * 64 * 32 + 2 * 60 * 48) * 4.0 + once + std::max(tokens * trunk_block, rows * head_block));
  EXPECT_FALSE(p.checkpointing);
  // train.ckpt_async (auto) keeps a snapshot of the rank's slice: 12 B per parameter plus 1 MiB
  // for the part's header, in whole chunks of the smallest power of two from 4 KiB that holds
  // the 12 B per parameter.
  double snapshot = 12.0 * n + 1048576, chunk_bytes = 4096;
  while (chunk_bytes < 12.0 * n) chunk_bytes *= 2;
  EXPECT_DOUBLE_EQ(p.checkpoint_buffers, std::ceil(snapshot / chunk_bytes) * chunk_bytes);
  EXPECT_DOUBLE_EQ(p.total, p.params + p.grads + p.optimizer + p.activations_full + p.workspace + p.checkpoint_buffers);
  auto sync = cfg;
  sync.train.ckpt_async = "false";
  EXPECT_DOUBLE_EQ(train::plan_memory(sync, 1, train::PlanTarget{}, 0).total, p.total - p.checkpoint_buffers);
  train::PlanTarget cuda_target;
  cuda_target.cuda = true;
  const auto on_gpu = train::plan_memory(cfg, 1, cuda_target, 0);
  EXPECT_DOUBLE_EQ(on_gpu.checkpoint_buffers, p.checkpoint_buffers) << "host memory beside the GPU's";
  EXPECT_DOUBLE_EQ(on_gpu.total - on_gpu.params - on_gpu.grads - on_gpu.optimizer - on_gpu.activations_full,
                   on_gpu.workspace) << "the snapshot is not in the GPU's total";
  // A CPU budget that holds the run but not its snapshot: auto takes no buffers (its saves are
  // then synchronous) and fits; true keeps them and does not fit.
  const double tight = p.total - p.checkpoint_buffers / 2;
  const auto tight_auto = train::plan_memory(cfg, 1, train::PlanTarget{}, tight);
  EXPECT_EQ(tight_auto.checkpoint_buffers, 0);
  EXPECT_DOUBLE_EQ(tight_auto.total, p.total - p.checkpoint_buffers);
  EXPECT_TRUE(tight_auto.fits());
  auto forced = cfg;
  forced.train.ckpt_async = "true";
  const auto tight_true = train::plan_memory(forced, 1, train::PlanTarget{}, tight);
  EXPECT_DOUBLE_EQ(tight_true.checkpoint_buffers, p.checkpoint_buffers);
  EXPECT_FALSE(tight_true.fits());
  EXPECT_DOUBLE_EQ(train::plan_memory(cfg, 1, train::PlanTarget{}, p.total).checkpoint_buffers, p.checkpoint_buffers)
      << "where the run fits with them, auto keeps them";

  // More ranks add the all-reduce buckets; bf16 on CUDA adds the weight copies and halves the
  // compute-dtype activations.
  auto two = train::plan_memory(cfg, 2, train::PlanTarget{}, 0);
  EXPECT_DOUBLE_EQ(two.grad_buckets, 4.0 * n);
  // train.sharding=optimizer keeps AdamW's moments for this rank's slice only.
  cfg.train.sharding = "optimizer";
  EXPECT_DOUBLE_EQ(train::plan_memory(cfg, 3, train::PlanTarget{}, 0).optimizer, 8.0 * n / 3);
  EXPECT_DOUBLE_EQ(train::plan_memory(cfg, 3, train::PlanTarget{}, 0).grads, 4.0 * n);
  // train.sharding=gradients also keeps this rank's slice of the gradients, and in place of the
  // persistent buckets at most three in flight (here the whole model is smaller than one, so
  // capped at 4 B x n) plus the largest parameter's own gradient (fc1/fc2 of the head, 4 x 48 x 48).
  cfg.train.sharding = "gradients";
  const auto z2 = train::plan_memory(cfg, 3, train::PlanTarget{}, 0);
  EXPECT_DOUBLE_EQ(z2.optimizer, 8.0 * n / 3);
  EXPECT_DOUBLE_EQ(z2.grads, 4.0 * n / 3);
  EXPECT_DOUBLE_EQ(z2.grad_buckets, 4.0 * n + 4.0 * 4 * 48 * 48);
  // The all-gather of the updated slices on CPU (Gloo): one chunk in, 3 out, 3 more in Gloo's
  // copy; a chunk is the widest slice, ceil(n / 3) floats, when that is below bucket_mb.
  const double chunk = 4.0 * std::ceil(n / 3.0);
  EXPECT_DOUBLE_EQ(z2.total - z2.params - z2.grads - z2.optimizer - z2.grad_buckets - z2.activations_full -
                       z2.checkpoint_buffers,
                   p.workspace + 7 * chunk);
  EXPECT_DOUBLE_EQ(train::plan_memory(cfg, 1, train::PlanTarget{}, 0).grads, 4.0 * n) << "one rank has no slices";
  cfg.train.sharding = "none";
  cfg.train.precision = "bf16";
  auto gpu = train::plan_memory(cfg, 1, train::PlanTarget{true, true}, 0);
  EXPECT_TRUE(gpu.bf16);
  EXPECT_DOUBLE_EQ(gpu.weight_casts, 2.0 * n);
  EXPECT_LT(gpu.activations_full, p.activations_full);
}

// The workspace term by term on CPU (fp32, explicit attention), at two shapes: 32 px images
// (K = 64 tokens), where the attention scores and their gradient make the trunk's side of the
// backward peak the larger, and test-tiny's 16 px (K = 16), where the head MLP's is.
// Shapes: d = 32, H = 2, r = 4, w = 48, q = 4, D = 48, micro-batch B = 4, causal (B (K - 1)
// head rows), data.prefetch = 2.
TEST(MemoryPlan, WorkspaceTermByTermOnCpu) {
  {
    SCOPED_TRACE("K = 64");
    auto cfg = config::load_run_config(test::kTinyYaml, {"model.attention=causal", "model.img_size=32",
                                                   "train.micro_batch_size=4"});
    ASSERT_EQ(cfg.model.num_tokens(), 64);
    const auto p = train::plan_memory(cfg, 1, train::PlanTarget{}, 0);
    Workspace ws;
    ws.mask = 4 * 2 * 64 * 64 * 4.0;              // [B, H, K, K] additive mask, fp32
    ws.scores = 2 * (4 * 2 * 64 * 64 * 4.0);      // the scores, then their gradient beside them
    ws.trunk_mlp_grads = 2 * 128 * 4.0 * 4 * 64;  // fc1 / GELU gradients: 2 x r d per token, B K tokens
    ws.head_mlp_grads = 2 * 192 * 4.0 * 4 * 63;   // 2 x q w per head row, B (K - 1) rows
    ws.targets = 4 * 64 * 48 * 4.0;               // [B, K, D] fp32
    ws.loader = (2 + 2) * 4 * 3 * 32 * 32;        // prefetch + 2 uint8 batches of B images
    ws.adamw = kTinyAdamw;
    ws.runtime = kCpuRuntime;
    ASSERT_GT(ws.scores + ws.trunk_mlp_grads, ws.head_mlp_grads) << "this shape is meant to test the trunk's side";
    EXPECT_DOUBLE_EQ(p.workspace, ws.total());
    EXPECT_DOUBLE_EQ(p.workspace, 827392 + 0.2e9);
    EXPECT_DOUBLE_EQ(p.total, p.params + p.grads + p.optimizer + p.activations_full + p.workspace +
                                  p.checkpoint_buffers);  // train.ckpt_async=auto: see ArithmeticOnKnownShapes
  }
  {
    SCOPED_TRACE("K = 16");
    auto cfg = config::load_run_config(test::kTinyYaml, {"model.attention=causal", "train.micro_batch_size=4"});
    const auto p = train::plan_memory(cfg, 1, train::PlanTarget{}, 0);
    Workspace ws;
    ws.mask = 4 * 2 * 16 * 16 * 4.0;
    ws.scores = 2 * (4 * 2 * 16 * 16 * 4.0);
    ws.trunk_mlp_grads = 2 * 128 * 4.0 * 4 * 16;
    ws.head_mlp_grads = 2 * 192 * 4.0 * 4 * 15;
    ws.targets = 4 * 16 * 48 * 4.0;
    ws.loader = (2 + 2) * 4 * 3 * 16 * 16;
    ws.adamw = kTinyAdamw;
    ws.runtime = kCpuRuntime;
    ASSERT_LT(ws.scores + ws.trunk_mlp_grads, ws.head_mlp_grads) << "this shape is meant to test the head's side";
    EXPECT_DOUBLE_EQ(p.workspace, ws.total());
  }
}

// Every term of the plan on CUDA with bf16 autocast and fused attention (SDPA), 2 replicated
// ranks, 32 px images (K = 64), causal, micro-batch 4: a = 2 bytes for what autocast computes
// in bf16, 4 for the fp32 residual stream and LayerNorm statistics.
TEST(MemoryPlan, EveryTermOnCudaWithBf16AndFusedAttention) {
  auto cfg = config::load_run_config(test::kTinyYaml, {"model.attention=causal", "model.img_size=32",
                                                 "train.micro_batch_size=4", "train.precision=bf16"});
  const double n = static_cast<double>(model::count_parameters(cfg.model).total());
  const auto p = train::plan_memory(cfg, 2, train::PlanTarget{true, true}, 0);
  ASSERT_TRUE(p.bf16);
  EXPECT_DOUBLE_EQ(p.params, 4 * n);
  EXPECT_DOUBLE_EQ(p.grads, 4 * n);
  EXPECT_DOUBLE_EQ(p.optimizer, 8 * n);
  EXPECT_DOUBLE_EQ(p.grad_buckets, 4 * n);  // GradientSync's flat buckets on 2 ranks
  EXPECT_DOUBLE_EQ(p.weight_casts, 2 * n);  // autocast's bf16 weight copies
  // Per token of a trunk block: x, h (2 x 32 x 4 B) + 4 LN stats (16 B) + norm_1, norm_2, the
  // joined heads (3 x 32 x 2 B) + fc1/GELU outputs (2 x 128 x 2 B) + SDPA's q, k, v and output
  // (4 x 32 x 2 B) + its logsumexp per head (2 x 4 B) = 1240 B.
  const double trunk_block = 256 + 16 + 192 + 512 + 256 + 8, tokens = 4 * 64;
  // Per head row: x, h with their stats (2 x (48 x 4 + 8) B) + norm_2 (48 x 2 B) + fc1/GELU
  // outputs (2 x 192 x 2 B) = 1264 B; B (K - 1) = 252 rows.
  const double head_block = 2 * (192 + 8) + 96 + 768, rows = 4 * 63;
  // Once: the images (4 x 3072 x 2 B), the conv output and the last block's output with stats
  // (2 x 256 x (128 + 8) B), and per row the picked token (64 B), the head norm's input with
  // stats (192 + 8 B), proj_out's input (96 B) and the loss's difference (192 B).
  const double once = 4 * 3072 * 2 + 2 * 256 * 136 + rows * (64 + 200 + 96 + 192);
  EXPECT_DOUBLE_EQ(p.activations_full, 2 * tokens * trunk_block + 2 * rows * head_block + once);
  // Checkpointed: each block's fp32 input (256 x 32 x 4 B per trunk block, 252 x 48 x 4 B per
  // head block) and one block recomputed at a time (the larger: a head block, 318528 B).
  EXPECT_DOUBLE_EQ(p.activations_checkpointed,
                   2 * 256 * 128 + 2 * 252 * 192 + once + std::max(tokens * trunk_block, rows * head_block));
  Workspace ws;
  ws.mask = 4 * 64 * 64;                      // SDPA's [K, K] bool mask per image
  ws.scores = 0;                              // fused: no probabilities, no score gradient
  ws.trunk_mlp_grads = 2 * 128 * 2.0 * 256;   // bf16
  ws.head_mlp_grads = 2 * 192 * 2.0 * 252;
  ws.targets = 4 * 64 * 48 * 4.0;             // fp32 targets
  ws.loader = 0;                              // the uint8 batches live in host memory
  ws.adamw = kTinyAdamw;
  ws.runtime = kCudaRuntime;
  EXPECT_DOUBLE_EQ(p.workspace, ws.total());
  EXPECT_DOUBLE_EQ(p.workspace, 332800 + 1e9);
  EXPECT_DOUBLE_EQ(p.total, p.params + p.grads + p.optimizer + p.grad_buckets + p.weight_casts + p.activations_full +
                                p.workspace);
}

// train.sharding with a bucket smaller than the slice (train.bucket_mb = 0.005 MiB = 5242.88 B,
// test-tiny's slices on 3 ranks are ~92 KB): ZeRO-2 keeps three buckets in flight plus the
// largest parameter's gradient, and the all-gather of the updated slices holds one
// bucket-sized chunk in, 3 out and, on Gloo, 3 more in its flat copy; on NCCL no copy.
TEST(MemoryPlan, ShardedTermsWhenTheSliceSpansManyChunks) {
  auto cfg = config::load_run_config(test::kTinyYaml, {"model.attention=causal", "train.micro_batch_size=4",
                                                 "train.bucket_mb=0.005", "train.sharding=gradients"});
  const double n = static_cast<double>(model::count_parameters(cfg.model).total());
  const double bucket = 0.005 * 1024 * 1024;
  ASSERT_LT(bucket, 4 * std::ceil(n / 3)) << "the slice should span several chunks";
  const auto cpu = train::plan_memory(cfg, 3, train::PlanTarget{}, 0);
  EXPECT_DOUBLE_EQ(cpu.params, 4 * n);
  EXPECT_DOUBLE_EQ(cpu.grads, 4 * n / 3);
  EXPECT_DOUBLE_EQ(cpu.optimizer, 8 * n / 3);
  EXPECT_DOUBLE_EQ(cpu.grad_buckets, 3 * bucket + 4 * 9216.0);
  Workspace ws;  // test-tiny's K = 16 shapes, as in WorkspaceTermByTermOnCpu
  ws.mask = 4 * 2 * 16 * 16 * 4.0;
  ws.scores = 2 * (4 * 2 * 16 * 16 * 4.0);
  ws.trunk_mlp_grads = 2 * 128 * 4.0 * 4 * 16;
  ws.head_mlp_grads = 2 * 192 * 4.0 * 4 * 15;
  ws.targets = 4 * 16 * 48 * 4.0;
  ws.loader = (2 + 2) * 4 * 3 * 16 * 16;
  ws.adamw = kTinyAdamw;
  ws.runtime = kCpuRuntime;
  ws.gather = (1 + 3 + 3) * bucket;
  EXPECT_DOUBLE_EQ(cpu.workspace, ws.total());
  EXPECT_DOUBLE_EQ(cpu.total, cpu.params + cpu.grads + cpu.optimizer + cpu.grad_buckets + cpu.activations_full +
                                  cpu.checkpoint_buffers +
                                  cpu.workspace);
  // ZeRO-1 keeps the full gradients and GradientSync's buckets; the all-gather is the same.
  cfg.train.sharding = "optimizer";
  const auto z1 = train::plan_memory(cfg, 3, train::PlanTarget{}, 0);
  EXPECT_DOUBLE_EQ(z1.grads, 4 * n);
  EXPECT_DOUBLE_EQ(z1.grad_buckets, 4 * n);
  EXPECT_DOUBLE_EQ(z1.workspace, ws.total());
}

TEST(MemoryPlan, CheckpointingShrinksActivationsAndTheLargestMicroBatchIsTight) {
  auto cfg = config::load_run_config(k7bYaml, {"data.sources=[{kind: synthetic}]", "data.val=null"});
  cfg.train.precision = "bf16";
  cfg.train.sharding = "none";
  cfg.train.activation_checkpointing = "none";
  auto none = train::plan_memory(cfg, 8, train::PlanTarget{true, true}, 400e9);
  cfg.train.activation_checkpointing = "full";
  auto full = train::plan_memory(cfg, 8, train::PlanTarget{true, true}, 400e9);
  EXPECT_EQ(none.activations_full, full.activations_full);
  EXPECT_LT(full.activations(), 0.25 * none.activations());
  EXPECT_LT(full.total, none.total);
  ASSERT_GT(full.max_micro_batch, none.max_micro_batch);
  ASSERT_GT(none.max_micro_batch, 0);
  for (auto* plan : {&none, &full}) {
    auto c = cfg;
    c.train.activation_checkpointing = plan->checkpointing ? "full" : "none";
    c.train.micro_batch_size = plan->max_micro_batch;
    EXPECT_TRUE(train::plan_memory(c, 8, train::PlanTarget{true, true}, 400e9).fits());
    c.train.micro_batch_size = plan->max_micro_batch + 1;
    EXPECT_FALSE(train::plan_memory(c, 8, train::PlanTarget{true, true}, 400e9).fits());
  }
}

// The paper's aim-7b replicated on 8 x 80 GB: weights, gradients, AdamW and buckets alone
// are 20 B x 6.9 G parameters. The dry run plans for --nproc-per-node ranks without starting them.
TEST(MemoryPlan, DryRunSaysAim7bDoesNotFitReplicatedOn80GB) {
  test::TempDir dir;
  const auto out = test::capture(test::kTrainBin + " --config " + k7bYaml +
                                 " --dry-run --nproc-per-node 8 train.memory_gb=80 train.device=cuda"
                                 " train.sharding=none train.activation_checkpointing=none"
                                 " 'data.sources=[{kind: synthetic}]' data.val=null");
  EXPECT_NE(out.find("[exit 0]"), std::string::npos) << out;
  EXPECT_NE(out.find("8 ranks"), std::string::npos) << out;
  EXPECT_NE(out.find("memory verdict: does not fit in 80.00 GB"), std::string::npos) << out;
  EXPECT_EQ(out.find("aim-train: rank"), std::string::npos) << "no rank may start:\n" << out;
  // It names what would fit, least change first, each with the plan's own number.
  EXPECT_NE(out.find("  would fit: train.sharding=gradients train.activation_checkpointing=full "
                     "train.micro_batch_size="),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("training refuses to start with this plan"), std::string::npos) << out;
  // A tiny model fits, and says which micro-batch is the largest that would.
  const auto tiny = test::capture(test::kTrainBin + " --config " + test::kTinyYaml + " --dry-run train.memory_gb=1");
  EXPECT_NE(tiny.find("memory verdict: fits in 1.00 GB per device (largest micro-batch that fits: "),
            std::string::npos)
      << tiny;
  // A CPU plan without train.memory_gb has this machine's available memory as its budget; a
  // CUDA plan made without a GPU has none.
  const auto cpu = test::capture(test::kTrainBin + " --config " + test::kTinyYaml + " --dry-run");
  EXPECT_NE(cpu.find("  budget: this machine's available memory, "), std::string::npos) << cpu;
  const auto none = test::capture(test::kTrainBin + " --config " + test::kTinyYaml + " --dry-run train.device=cuda");
  EXPECT_NE(none.find("memory verdict: no budget"), std::string::npos) << none;
}

// The recipe for aim-7b: 8 x 80 GB with ZeRO-2 and full activation checkpointing at the
// config's micro-batch fits; --nnodes multiplies the ranks the plan is for.
TEST(MemoryPlan, DryRunSaysAim7bFitsOn80GBWithGradientShardingAndCheckpointing) {
  const std::string base = test::kTrainBin + " --config " + k7bYaml +
                           " --dry-run train.memory_gb=80 train.device=cuda"
                           " 'data.sources=[{kind: synthetic}]' data.val=null";
  const auto out = test::capture(base + " --nproc-per-node 8 train.sharding=gradients train.activation_checkpointing=full");
  EXPECT_NE(out.find("[exit 0]"), std::string::npos) << out;
  EXPECT_NE(out.find("micro-batch 64,"), std::string::npos) << out;
  EXPECT_NE(out.find("gradients 3.43 GB (this rank's 1/8 slice)"), std::string::npos) << out;
  EXPECT_NE(out.find("memory verdict: fits in 80.00 GB"), std::string::npos) << out;
  // Sharded gradients without checkpointing do not: a micro-batch's activations are too big.
  const auto no_ckpt =
      test::capture(base + " --nproc-per-node 8 train.sharding=gradients train.activation_checkpointing=none");
  EXPECT_NE(no_ckpt.find("memory verdict: does not fit in 80.00 GB"), std::string::npos) << no_ckpt;
  const auto nodes = test::capture(base + " --nnodes 4 --nproc-per-node 8 train.sharding=gradients");
  EXPECT_NE(nodes.find("32 ranks"), std::string::npos) << nodes;
  EXPECT_NE(nodes.find("(this rank's 1/32 slice)"), std::string::npos) << nodes;
  const auto bad = test::capture(test::kTrainBin + " --config " + test::kTinyYaml + " --dry-run --nnodes 2");
  EXPECT_NE(bad.find("--nnodes needs --nproc-per-node"), std::string::npos) << bad;
}

// Every shipped preset config, as shipped, fits one node of 8 x 80 GB GPUs, with the paper's
// global batch (4096) kept: micro-batch, sharding and activation checkpointing are chosen
// for it. Without this, the first real run dies of CUDA out-of-memory in step 1.
TEST(MemoryPlan, EveryShippedPresetConfigFitsAnEightGpuNode) {
  for (const char* name : {"aim-600m", "aim-1b", "aim-3b", "aim-7b"}) {
    const std::string yaml = std::string(AIM_SOURCE_DIR) + "/configs/" + name + ".yaml";
    const auto out = test::capture(test::kTrainBin + " --config " + yaml +
                                   " --dry-run --nproc-per-node 8 train.memory_gb=80 train.device=cuda");
    EXPECT_NE(out.find("[exit 0]"), std::string::npos) << name << "\n" << out;
    EXPECT_NE(out.find("memory verdict: fits in 80.00 GB"), std::string::npos) << name << "\n" << out;
    EXPECT_NE(out.find("batch: global 4096 = micro "), std::string::npos) << name << "\n" << out;
    auto cfg = config::load_run_config(yaml, {"train.device=cuda", "train.memory_gb=80"});
    const auto plan = train::plan_memory(cfg, 8, train::PlanTarget{true, false}, 80e9);
    EXPECT_TRUE(plan.fits()) << name << ": fits only with fused attention (" << plan.total / 1e9 << " GB)";
  }
}
