// The --dry-run memory plan: its arithmetic on shapes worked out by hand, its verdict on the
// paper's aim-7b, and the largest micro-batch it reports.
#include <gtest/gtest.h>

#include "aim/config/run_config.h"
#include "aim/model/model_stats.h"
#include "aim/train/memory_plan.h"
#include "test_util.h"

using namespace aim;

namespace {

const std::string kTinyYaml = std::string(AIM_SOURCE_DIR) + "/configs/test-tiny.yaml";
const std::string k7bYaml = std::string(AIM_SOURCE_DIR) + "/configs/aim-7b.yaml";
const std::string kTrainBin = std::string(AIM_BIN_DIR) + "/aim-train";

}  // namespace

// test-tiny, causal (every image has K - 1 = 15 head rows), fp32 on CPU, explicit attention:
// K = 16, d = 32, H = 2, r = 4, w = 48, q = 4, D = 48, 3x16x16 images, depth 2, 2 head blocks.
TEST(MemoryPlan, ArithmeticOnKnownShapes) {
  auto cfg = config::load_run_config(kTinyYaml, {"model.attention=causal", "train.micro_batch_size=4"});
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
  EXPECT_DOUBLE_EQ(p.total, p.params + p.grads + p.optimizer + p.activations_full + p.workspace);

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
  EXPECT_DOUBLE_EQ(z2.total - z2.params - z2.grads - z2.optimizer - z2.grad_buckets - z2.activations_full,
                   p.workspace + 7 * chunk);
  EXPECT_DOUBLE_EQ(train::plan_memory(cfg, 1, train::PlanTarget{}, 0).grads, 4.0 * n) << "one rank has no slices";
  cfg.train.sharding = "none";
  cfg.train.precision = "bf16";
  auto gpu = train::plan_memory(cfg, 1, train::PlanTarget{true, true}, 0);
  EXPECT_TRUE(gpu.bf16);
  EXPECT_DOUBLE_EQ(gpu.weight_casts, 2.0 * n);
  EXPECT_LT(gpu.activations_full, p.activations_full);
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
  const auto out = test::capture(kTrainBin + " --config " + k7bYaml +
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
  const auto tiny = test::capture(kTrainBin + " --config " + kTinyYaml + " --dry-run train.memory_gb=1");
  EXPECT_NE(tiny.find("memory verdict: fits in 1.00 GB per device (largest micro-batch that fits: "),
            std::string::npos)
      << tiny;
  // A CPU plan without train.memory_gb has this machine's available memory as its budget; a
  // CUDA plan made without a GPU has none.
  const auto cpu = test::capture(kTrainBin + " --config " + kTinyYaml + " --dry-run");
  EXPECT_NE(cpu.find("  budget: this machine's available memory, "), std::string::npos) << cpu;
  const auto none = test::capture(kTrainBin + " --config " + kTinyYaml + " --dry-run train.device=cuda");
  EXPECT_NE(none.find("memory verdict: no budget"), std::string::npos) << none;
}

// The recipe for aim-7b: 8 x 80 GB with ZeRO-2 and full activation checkpointing at the
// config's micro-batch fits; --nnodes multiplies the ranks the plan is for.
TEST(MemoryPlan, DryRunSaysAim7bFitsOn80GBWithGradientShardingAndCheckpointing) {
  const std::string base = kTrainBin + " --config " + k7bYaml +
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
  const auto bad = test::capture(kTrainBin + " --config " + kTinyYaml + " --dry-run --nnodes 2");
  EXPECT_NE(bad.find("--nnodes needs --nproc-per-node"), std::string::npos) << bad;
}

// Every shipped preset config, as shipped, fits one node of 8 x 80 GB GPUs, with the paper's
// global batch (4096) kept: micro-batch, sharding and activation checkpointing are chosen
// for it. Without this, the first real run dies of CUDA out-of-memory in step 1.
TEST(MemoryPlan, EveryShippedPresetConfigFitsAnEightGpuNode) {
  for (const char* name : {"aim-600m", "aim-1b", "aim-3b", "aim-7b"}) {
    const std::string yaml = std::string(AIM_SOURCE_DIR) + "/configs/" + name + ".yaml";
    const auto out = test::capture(kTrainBin + " --config " + yaml +
                                   " --dry-run --nproc-per-node 8 train.memory_gb=80 train.device=cuda");
    EXPECT_NE(out.find("[exit 0]"), std::string::npos) << name << "\n" << out;
    EXPECT_NE(out.find("memory verdict: fits in 80.00 GB"), std::string::npos) << name << "\n" << out;
    EXPECT_NE(out.find("batch: global 4096 = micro "), std::string::npos) << name << "\n" << out;
    auto cfg = config::load_run_config(yaml, {"train.device=cuda", "train.memory_gb=80"});
    const auto plan = train::plan_memory(cfg, 8, train::PlanTarget{true, false}, 80e9);
    EXPECT_TRUE(plan.fits()) << name << ": fits only with fused attention (" << plan.total / 1e9 << " GB)";
  }
}
