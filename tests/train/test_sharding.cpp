// train.sharding end to end on Gloo ranks: ZeRO-1 and ZeRO-2 follow the replicated run, and
// sharded checkpoints resume on another world size. The updated slices travel in all-gathers
// of train.bucket_mb-sized chunks (src/train/sharding.cpp); the tiny model's slices would fit
// in one chunk at the default 25 MiB, so these runs use chunks of ~1300 floats: a dozen or
// more per slice, the last one partial, as for any model over ~6.5 M parameters per rank.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <thread>

#include "aim/config/run_config.h"
#include "aim/io/safetensors.h"
#include "aim/model/model_stats.h"
#include "test_util.h"
#include "train/train_test_util.h"

namespace fs = std::filesystem;
using namespace aim;
using test::slurp;
using test::train_runs::expect_same_trunks;
using test::train_runs::newest_checkpoint;
using test::train_runs::run;
using test::train_runs::spawn;

namespace {

// 0.005 MiB = 1310 floats per all-gather chunk (and gradient buckets of a few parameters).
const std::string kSmallChunks = "train.bucket_mb=0.005";
constexpr int64_t kChunkFloats = static_cast<int64_t>(0.005 * 1024 * 1024 / 4);

std::map<int64_t, double> sharded_losses(const std::string& out_dir, const char* key = "loss") {
  return test::metric_by_step(out_dir, key);
}

// All-gather chunks in the widest of `world` slices of the tiny model.
int64_t chunks_per_slice(int world) {
  const int64_t n = model::count_parameters(config::load_run_config(test::kTinyYaml).model).total();
  const int64_t widest = (n + world - 1) / world;
  return (widest + kChunkFloats - 1) / kChunkFloats;
}

}  // namespace

// train.sharding=optimizer (ZeRO-1): each rank keeps AdamW state for its slice of the
// flattened parameters (uneven on 3 ranks), updates it and all-gathers it; gradients
// (ZeRO-2): each rank also keeps only its slice of the gradients, reduced micro-batch by
// micro-batch (3 micro-batches per rank on 2 ranks). With clipping active the losses,
// gradient norms and final weights equal the replicated run's on the same world size (1e-5)
// and one process with the same global batch (1e-4). Every run has the same small buckets,
// so the sharded runs exchange their slices in many chunks.
TEST(Sharding, ManyChunksMatchReplicatedOnTwoAndThreeRanks) {
  test::TempDir dir;
  const auto cfg = config::load_run_config(test::kTinyYaml);
  const int64_t n = model::count_parameters(cfg.model).total();
  EXPECT_NE(n % 3, 0) << "the 3-rank case should have uneven slices";
  EXPECT_GE(chunks_per_slice(3), 10) << "the slices should travel in many chunks";
  const std::vector<std::string> common = {test::kTinyYaml, "train.steps=8", "train.log_every=1", "train.val_every=0",
                                           "train.batch_size=24", "train.micro_batch_size=4", "train.ckpt_every=0",
                                           "optim.grad_clip=0.05", "optim.warmup=0", kSmallChunks};
  auto with = [&](const std::string& name, int ranks, const std::string& sharding) {
    std::vector<std::string> a = {test::kTrainBin, "--config"};
    if (ranks > 1) a.insert(a.begin() + 1, {"--nproc-per-node", std::to_string(ranks)});
    a.insert(a.end(), common.begin(), common.end());
    a.push_back("train.sharding=" + sharding);
    a.push_back("train.out_dir=" + dir.file(name));
    EXPECT_EQ(run(a, dir.file(name + ".log")), 0) << slurp(dir.file(name + ".log"));
  };
  with("one", 1, "none");
  const auto g1 = sharded_losses(dir.file("one"), "grad_norm");
  ASSERT_EQ(g1.size(), 8u);
  EXPECT_GT(g1.begin()->second, 0.05 * 2) << "clipping should be active";
  for (int ranks : {2, 3}) {
    SCOPED_TRACE(std::to_string(ranks) + " ranks");
    const std::string rep = "rep" + std::to_string(ranks);
    with(rep, ranks, "none");
    for (const std::string mode : {"optimizer", "gradients"}) {
      SCOPED_TRACE("train.sharding=" + mode);
      const std::string sh = mode + std::to_string(ranks);
      with(sh, ranks, mode);
      for (const char* key : {"loss", "grad_norm"}) {
        auto a = sharded_losses(dir.file(rep), key), b = sharded_losses(dir.file(sh), key), o = sharded_losses(dir.file("one"), key);
        ASSERT_EQ(a.size(), 8u) << key;
        ASSERT_EQ(b.size(), 8u) << key;
        for (auto& [step, v] : a) {
          EXPECT_NEAR(b[step], v, 1e-5 * std::abs(v)) << key << " at step " << step;
          EXPECT_NEAR(b[step], o[step], 1e-4 * std::abs(v)) << key << " against one process at step " << step;
        }
      }
      expect_same_trunks(dir.file(rep), dir.file(sh), 1e-5, 1e-7);
    }
    if (ranks == 2) {
      const auto log = slurp(dir.file("gradients2.log"));
      EXPECT_NE(log.find("gradient reduction to the owning ranks"), std::string::npos) << log;
    }
  }
}

// Sharded checkpoints: every rank writes its own slice; a 3-rank run killed mid-way
// resumes on 2 ranks (the slices re-cut on load) and continues with the uninterrupted 3-rank
// run's losses; on 3 ranks again the resume is bit-exact. For both sharding modes, in many
// all-gather chunks per slice (re-sliced on 2 ranks, the chunks fall elsewhere).
static void expect_sharded_checkpoint_resumes_on_another_world_size(const std::string& sharding) {
  test::TempDir dir;
  ASSERT_GE(chunks_per_slice(3), 10);
  auto args = [&](int ranks, const std::string& out) {
    return std::vector<std::string>{test::kTrainBin, "--nproc-per-node", std::to_string(ranks), "--config", test::kTinyYaml,
                                    "train.steps=40", "train.log_every=1", "train.val_every=0", "train.batch_size=24",
                                    "train.micro_batch_size=4", "train.ckpt_every=4", "train.sharding=" + sharding,
                                    kSmallChunks, "train.out_dir=" + out};
  };
  ASSERT_EQ(run(args(3, dir.file("straight")), dir.file("straight.log")), 0) << slurp(dir.file("straight.log"));
  pid_t pid = spawn(args(3, dir.file("killed")));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!fs::exists(dir.file("killed/checkpoints/step_000000008")) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  const std::string ckpt = dir.file("killed/checkpoints/step_000000008");
  ASSERT_TRUE(fs::exists(ckpt)) << "no checkpoint within the deadline";
  // Every rank wrote its own part: a third of the weights and of the optimizer state each.
  for (int r = 0; r < 3; ++r) {
    int64_t weights = 0;
    for (const auto& [name, t] : io::load_safetensors(ckpt + "/part_rank" + std::to_string(r) + ".safetensors").tensors)
      if (name.rfind("model.", 0) == 0) weights += t.numel();
    EXPECT_GT(weights, 0) << r;
    EXPECT_LT(weights, 2 * model::count_parameters(test::tiny_config()).total() / 3) << r;
  }
  // Let the killed ranks' checkpoint writes settle (the launcher's ranks die with it).
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const int64_t resume_step = newest_checkpoint(dir.file("killed"));
  ASSERT_LT(resume_step, 40) << "the run finished before it could be killed";
  ASSERT_EQ(run(args(2, dir.file("killed")), dir.file("resume.log")), 0) << slurp(dir.file("resume.log"));
  const auto log = slurp(dir.file("resume.log"));
  EXPECT_NE(log.find("(step " + std::to_string(resume_step) + ")"), std::string::npos) << log;
  auto a = sharded_losses(dir.file("straight")), b = sharded_losses(dir.file("killed"));
  ASSERT_EQ(a.size(), 40u);
  ASSERT_EQ(b.size(), 40u);
  for (auto& [step, loss] : a) {
    if (step > resume_step) {
      EXPECT_NEAR(b[step], loss, 1e-4 * std::abs(loss)) << "step " << step;
    }
  }

  // On the same world size the sharded resume is bit-exact.
  pid = spawn(args(3, dir.file("again")));
  const auto deadline2 = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!fs::exists(dir.file("again/checkpoints/step_000000008")) && std::chrono::steady_clock::now() < deadline2)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_LT(newest_checkpoint(dir.file("again")), 40);
  ASSERT_EQ(run(args(3, dir.file("again")), dir.file("again.log")), 0) << slurp(dir.file("again.log"));
  auto c = sharded_losses(dir.file("again"));
  ASSERT_EQ(c.size(), 40u);
  for (auto& [step, loss] : a) EXPECT_EQ(c[step], loss) << "step " << step;
}

TEST(Sharding, OptimizerShardedCheckpointResumesOnADifferentWorldSize) {
  expect_sharded_checkpoint_resumes_on_another_world_size("optimizer");
}

TEST(Sharding, GradientShardedCheckpointResumesOnADifferentWorldSize) {
  expect_sharded_checkpoint_resumes_on_another_world_size("gradients");
}
