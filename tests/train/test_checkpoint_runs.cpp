// Checkpoints in real aim-train runs (tiny model, CPU ranks through --nproc-per-node):
//  * a rank killed at several points of a background checkpoint write: the run resumes from
//    the newest complete checkpoint and its losses are bit-exact against an uninterrupted run;
//  * a run resumed 3 -> 2 -> 4 ranks, with and without optimizer sharding, on a mixture of a
//    streaming webdataset source (several lanes and workers) and a random-access one, follows
//    the uninterrupted 3-rank run's losses;
//  * asynchronous and synchronous checkpoints give identical runs and identical parts;
//  * SIGTERM while a background save is in flight: that save and the stop step's complete
//    before the exit, and the log says where the time went.
// The kill points and the slow write come from the test hook AIM_TEST_CHECKPOINT_FAULT
// (src/train/checkpoint_writer.h).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "aim/data/tar_reader.h"
#include "aim/io/safetensors.h"
#include <torch/torch.h>
#include "data/data_test_util.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace aim;

namespace {

// Starts aim-train with `args` (and `fault` in AIM_TEST_CHECKPOINT_FAULT); output to `log`.
pid_t spawn_trainer(const std::vector<std::string>& args, const std::string& log, const std::string& fault = "") {
  pid_t pid = fork();
  if (pid == 0) {
    if (fault.empty()) ::unsetenv("AIM_TEST_CHECKPOINT_FAULT");
    else ::setenv("AIM_TEST_CHECKPOINT_FAULT", fault.c_str(), 1);
    std::vector<std::string> all = {test::kTrainBin};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (const auto& a : all) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    if (!freopen(log.c_str(), "w", stdout)) _exit(126);
    dup2(fileno(stdout), 2);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

int wait_exit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int run_trainer(const std::vector<std::string>& args, const std::string& log, const std::string& fault = "") {
  return wait_exit(spawn_trainer(args, log, fault));
}

std::vector<std::string> tiny(const std::string& out, int ranks, std::vector<std::string> extra) {
  std::vector<std::string> a;
  if (ranks > 1) a = {"--nproc-per-node", std::to_string(ranks)};
  a.insert(a.end(), {"--config", test::kTinyYaml, "train.log_every=1", "train.val_every=0", "train.out_dir=" + out});
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

std::string ckpt(const std::string& out, int64_t step) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "/checkpoints/step_%09lld", static_cast<long long>(step));
  return out + buf;
}

void expect_same_losses(const std::string& a, const std::string& b, size_t steps, double rel) {
  auto la = test::metric_by_step(a), lb = test::metric_by_step(b);
  ASSERT_EQ(la.size(), steps);
  ASSERT_EQ(lb.size(), steps);
  for (auto& [step, loss] : la) {
    if (rel == 0) EXPECT_EQ(lb[step], loss) << "step " << step;
    else EXPECT_NEAR(lb[step], loss, rel * std::abs(loss)) << "step " << step;
  }
}

TEST(CheckpointRuns, KilledDuringTheBackgroundWriteResumesBitExact) {
  test::TempDir dir;
  const std::vector<std::string> common = {"train.steps=12", "train.ckpt_every=4", "train.ckpt_async=true",
                                           "train.batch_size=8", "train.micro_batch_size=2"};
  ASSERT_EQ(run_trainer(tiny(dir.file("straight"), 2, common), dir.file("straight.log")), 0) << test::slurp(dir.file("straight.log"));
  struct Point {
    std::string fault;
    int64_t resumes_from;
  };
  // Rank 1 with half its part written; rank 0 with every file written but the checkpoint not
  // complete; rank 0 after the manifest, before the directory's rename (complete already).
  const std::vector<Point> points = {{"kill:part-half:8:1", 4}, {"kill:written:8:0", 4}, {"kill:manifest:8:0", 8}};
  for (size_t i = 0; i < points.size(); ++i) {
    const Point& p = points[i];
    SCOPED_TRACE(p.fault);
    const std::string out = dir.file("killed" + std::to_string(i));
    EXPECT_NE(run_trainer(tiny(out, 2, common), dir.file("killed.log"), p.fault), 0) << test::slurp(dir.file("killed.log"));
    EXPECT_TRUE(fs::exists(ckpt(out, 4) + "/manifest.json"));
    EXPECT_FALSE(fs::exists(ckpt(out, 8))) << "the kill came after the rename";
    EXPECT_FALSE(fs::exists(out + "/trunk.safetensors"));
    ASSERT_EQ(run_trainer(tiny(out, 2, common), dir.file("resume.log")), 0) << test::slurp(dir.file("resume.log"));
    const std::string log = test::slurp(dir.file("resume.log"));
    EXPECT_NE(log.find("resumed from " + ckpt(out, p.resumes_from)), std::string::npos) << log;
    EXPECT_NE(log.find("first step after resuming from step " + std::to_string(p.resumes_from) + ": "),
              std::string::npos)
        << log;
    expect_same_losses(dir.file("straight"), out, 12, 0);
  }
}

// webdataset shards whose images are photos, for a streaming source.
std::string write_run_shards(const test::TempDir& dir) {
  fs::create_directories(dir.file("wds"));
  for (int s = 0; s < 12; ++s) {
    char name[32];
    std::snprintf(name, sizeof name, "wds/%06d.tar", s);
    data::TarWriter w(dir.file(name));
    for (int k = 0; k < 2 + s % 4; ++k) {
      const auto jpg = data::testing::jpeg(20 + 2 * k, 20, 100 * s + k);
      const std::string key = std::to_string(1000 * s + k);
      w.add(key + ".jpg", jpg.data(), jpg.size());
    }
  }
  return "data.sources=[{name: stream, kind: webdataset, shards: '" + dir.file("wds") +
         "/{000000..000011}.tar', weight: 0.6}, {name: synth, kind: synthetic, size: 64, height: 20, width: 20, "
         "weight: 0.4}]";
}

TEST(CheckpointRuns, ThreeToTwoToFourRanksOnStreamsFollowTheUninterruptedRun) {
  test::TempDir dir;
  const std::string sources = write_run_shards(dir);
  for (const std::string sharding : {"none", "optimizer"}) {
    SCOPED_TRACE("train.sharding=" + sharding);
    // Global batch 24: micro-batch 4 on 3 and 2 ranks (accumulating 2 and 3), 3 on 4 ranks.
    auto args = [&](const std::string& out, int ranks, int micro) {
      return tiny(out, ranks,
                  {"train.steps=16", "train.ckpt_every=4", "train.batch_size=24",
                   "train.micro_batch_size=" + std::to_string(micro), "train.sharding=" + sharding, sources,
                   "data.workers=2", "data.stream_lanes=4"});
    };
    const std::string straight = dir.file(sharding + "-straight"), out = dir.file(sharding);
    ASSERT_EQ(run_trainer(args(straight, 3, 4), dir.file("s.log")), 0) << test::slurp(dir.file("s.log"));
    // 3 ranks until the save of step 8 dies half written, then 2 until the save of step 12, then 4.
    EXPECT_NE(run_trainer(args(out, 3, 4), dir.file("p1.log"), "kill:part-half:8:2"), 0);
    EXPECT_NE(run_trainer(args(out, 2, 4), dir.file("p2.log"), "kill:part-half:12:1"), 0) << test::slurp(dir.file("p2.log"));
    ASSERT_EQ(run_trainer(args(out, 4, 3), dir.file("p3.log")), 0) << test::slurp(dir.file("p3.log"));
    const std::string p2 = test::slurp(dir.file("p2.log")), p3 = test::slurp(dir.file("p3.log"));
    EXPECT_NE(p2.find("resumed from " + ckpt(out, 4)), std::string::npos) << p2;
    EXPECT_NE(p2.find("its 12 stream lanes continue exactly on 2 ranks (6 per rank)"), std::string::npos) << p2;
    EXPECT_NE(p3.find("resumed from " + ckpt(out, 8)), std::string::npos) << p3;
    EXPECT_NE(p3.find("its 12 stream lanes continue exactly on 4 ranks (3 per rank)"), std::string::npos) << p3;
    EXPECT_EQ(p3.find("cannot be continued"), std::string::npos) << p3;
    expect_same_losses(straight, out, 16, 1e-4);
  }
}

TEST(CheckpointRuns, AsyncAndSyncCheckpointsGiveIdenticalRunsAndParts) {
  test::TempDir dir;
  for (const std::string mode : {"true", "false"})
    ASSERT_EQ(run_trainer(tiny(dir.file(mode), 1, {"train.steps=9", "train.ckpt_every=3", "train.ckpt_async=" + mode}),
                  dir.file(mode + ".log")),
              0)
        << test::slurp(dir.file(mode + ".log"));
  EXPECT_NE(test::slurp(dir.file("true.log")).find("writing"), std::string::npos);
  expect_same_losses(dir.file("true"), dir.file("false"), 9, 0);
  const auto ta = io::load_safetensors(dir.file("true/trunk.safetensors")).tensors;
  const auto tb = io::load_safetensors(dir.file("false/trunk.safetensors")).tensors;
  ASSERT_EQ(ta.size(), tb.size());
  for (size_t i = 0; i < ta.size(); ++i) EXPECT_TRUE(torch::equal(ta[i].second, tb[i].second)) << ta[i].first;
  // The checkpoints' parts and loader positions, byte for byte (meta.json holds the config).
  for (int step : {6, 9})
    for (const char* f : {"/part_rank0.safetensors", "/loader_rank0.json"})
      EXPECT_TRUE(test::slurp(ckpt(dir.file("true"), step) + f) == test::slurp(ckpt(dir.file("false"), step) + f))
          << step << f;
}

TEST(CheckpointRuns, SigtermDuringABackgroundSaveCompletesItBeforeTheExit) {
  test::TempDir dir;
  const std::string out = dir.file("run");
  const std::vector<std::string> common = {"train.steps=30", "train.ckpt_every=4", "train.ckpt_async=true"};
  // Every background write takes at least 2 s: the signal lands while the save of step 4 is in flight.
  const pid_t pid = spawn_trainer(tiny(out, 2, common), dir.file("stop.log"), "delay:2");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!fs::exists(ckpt(out, 4) + ".partial/loader_rank0.json") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_FALSE(fs::exists(ckpt(out, 4))) << "the save of step 4 completed before the signal";
  ::kill(pid, SIGTERM);
  EXPECT_EQ(wait_exit(pid), 128 + SIGTERM);
  const std::string log = test::slurp(dir.file("stop.log"));
  EXPECT_TRUE(fs::exists(ckpt(out, 4) + "/manifest.json")) << log;
  const auto at = log.find("stopping on SIGTERM after step ");
  ASSERT_NE(at, std::string::npos) << log;
  const int64_t stop_step = std::stoll(log.substr(at + 31));
  EXPECT_LT(stop_step, 8) << "the stop waited for the save instead of stopping after the step in flight";
  EXPECT_TRUE(fs::exists(ckpt(out, stop_step) + "/manifest.json")) << log;
  double waited = 0;
  const auto w = log.find("waited ", at);
  ASSERT_NE(w, std::string::npos) << log;
  waited = std::stod(log.substr(w + 7));
  EXPECT_GT(waited, 0.5) << "the save in flight was not waited for: " << log;
  EXPECT_NE(log.find("snapshot ", at), std::string::npos) << log;
  // And the run continues from the stop step.
  ASSERT_EQ(run_trainer(tiny(out, 2, common), dir.file("resume.log")), 0) << test::slurp(dir.file("resume.log"));
  EXPECT_NE(test::slurp(dir.file("resume.log")).find("resumed from " + ckpt(out, stop_step)), std::string::npos);
}

}  // namespace
