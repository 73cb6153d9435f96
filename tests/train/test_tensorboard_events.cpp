// train.tensorboard end to end: the event files aim-train writes, read back by the
// independent Python reader (tests/io/read_tfevents.py), hold every metrics.jsonl scalar
// at its step, and a run resumed from an older checkpoint leaves each step once.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "aim/config/run_config.h"
#include "aim/io/tensorboard_writer.h"
#include "aim/train/metrics_log.h"
#include "aim/train/trainer.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace aim;

namespace {

const std::string kEventReader = std::string(AIM_SOURCE_DIR) + "/tests/io/read_tfevents.py";

// read_tfevents.py on <out>/tb compared with <out>/metrics.jsonl; its JSON and exit status.
std::pair<nlohmann::json, int> check_against_metrics(const std::string& out) {
  const auto text = test::capture(std::string(AIM_PYTHON) + " " + kEventReader + " " + out + "/tb --metrics " + out +
                                  "/metrics.jsonl");
  const auto exit_at = text.rfind("\n[exit ");
  return {nlohmann::json::parse(text.substr(0, exit_at), nullptr, /*allow_exceptions=*/false),
          std::stoi(text.substr(exit_at + 7))};
}

// The steps that carry `tag`, per event file index.
std::map<int, std::set<int64_t>> steps_by_file(const nlohmann::json& read, const std::string& tag) {
  std::map<int, std::set<int64_t>> out;
  for (const auto& s : read["scalars"])
    if (s[2] == tag) out[s[0].get<int>()].insert(s[1].get<int64_t>());
  return out;
}

}  // namespace

TEST(TensorBoardRun, ScalarsMatchMetricsAndResumeLeavesEachStepOnce) {
  test::TempDir dir;
  const auto out = dir.file("run");
  const auto cfg = config::load_run_config(
      test::kTinyYaml, {"train.out_dir=" + out, "train.steps=12", "train.ckpt_every=4", "train.keep_checkpoints=3",
                  "train.val_every=4", "train.log_every=1", "train.tensorboard=true"});
  train::run_training(cfg, {});

  auto [first, status] = check_against_metrics(out);
  AIM_REQUIRE_DEPENDENCY(first.contains("files"), "python3 for tests/io/read_tfevents.py");
  ASSERT_EQ(status, 0) << first["problems"].dump(1);
  ASSERT_EQ(first["files"].size(), 1u);
  // 12 step records of >= 9 numeric fields, 3 validation records.
  EXPECT_GE(first["compared"].get<int>(), 12 * 9 + 3);
  for (const char* tag : {"loss", "lr", "grad_norm", "img_per_s", "data_wait", "peak_mem_gb"})
    EXPECT_EQ(steps_by_file(first, tag)[0].size(), 12u) << tag;
  EXPECT_EQ(steps_by_file(first, "val_loss")[0], (std::set<int64_t>{4, 8, 12}));
  EXPECT_EQ(first["starts"], nlohmann::json::parse("[[0, 1]]"));

  // A crash that lost checkpoints 8 and 12 after steps 5..12 were logged: the rerun resumes
  // at step 4 and trains 5..12 again.
  fs::remove_all(out + "/checkpoints/step_000000008");
  fs::remove_all(out + "/checkpoints/step_000000012");
  const auto resumed = train::run_training(cfg, {});
  ASSERT_EQ(resumed.resumed_from, 4);

  auto [second, status2] = check_against_metrics(out);
  ASSERT_EQ(status2, 0) << "duplicate, missing or differing scalars: " << second["problems"].dump(1);
  ASSERT_EQ(second["files"].size(), 2u);  // the first run's file, cut at step 4, and the resumed run's
  std::set<int64_t> all;
  for (int64_t s = 1; s <= 12; ++s) all.insert(s);
  const auto loss = steps_by_file(second, "loss");
  std::set<int64_t> seen;
  for (const auto& [file, steps] : loss) seen.insert(steps.begin(), steps.end());
  EXPECT_EQ(seen, all);
  // Files sort by creation time in their names: the older one now ends at step 4.
  EXPECT_EQ(loss.at(0), (std::set<int64_t>{1, 2, 3, 4}));
  EXPECT_EQ(loss.at(1), (std::set<int64_t>{5, 6, 7, 8, 9, 10, 11, 12}));
  EXPECT_EQ(steps_by_file(second, "val_loss").at(1), (std::set<int64_t>{8, 12}));
  // The resumed file opens with a SessionLog START at step 5: a TensorBoard that had read
  // steps 5..12 of the lost tail drops them.
  EXPECT_EQ(second["starts"], nlohmann::json::parse("[[0, 1], [1, 5]]"));
}

// Two ranks, one writer: only rank 0 (the one that writes metrics.jsonl) writes events.
TEST(TensorBoardRun, OnlyRankZeroWrites) {
  test::TempDir dir;
  const auto out = dir.file("run");
  const auto log = test::capture(test::kTrainBin + " --nproc-per-node 2 --config " + test::kTinyYaml + " train.out_dir=" + out +
                                 " train.steps=4 train.batch_size=16 train.tensorboard=true");
  ASSERT_NE(log.find("[exit 0]"), std::string::npos) << log;
  auto [read, status] = check_against_metrics(out);
  AIM_REQUIRE_DEPENDENCY(read.contains("files"), "python3 for tests/io/read_tfevents.py");
  EXPECT_EQ(status, 0) << read["problems"].dump(1);
  EXPECT_EQ(read["files"].size(), 1u);
  EXPECT_EQ(steps_by_file(read, "loss")[0], (std::set<int64_t>{1, 2, 3, 4}));
}

// Exactly the numbers metrics.jsonl shows: NaN and infinity (dumped as null), null, booleans
// and strings are no scalars; integers are.
TEST(TensorBoardRun, MetricsLogMirrorsWhatTheFileShowsAsNumbers) {
  test::TempDir dir;
  {
    train::MetricsLog log(dir.file("metrics.jsonl"), 0, dir.file("tb"));
    log.write({{"step", 3}, {"loss", std::nan("")}, {"grad_norm", INFINITY}, {"mfu", nullptr}, {"lr", 0.25},
               {"flag", true}, {"name", "x"}, {"images_seen", 24}});
  }
  std::set<std::string> tags;
  for (const auto& f : fs::directory_iterator(dir.file("tb")))
    for (const auto& s : io::read_scalars(f.path().string())) {
      EXPECT_EQ(s.step, 3);
      tags.insert(s.tag);
    }
  EXPECT_EQ(tags, (std::set<std::string>{"lr", "images_seen"}));
  auto [read, status] = check_against_metrics(dir.path().string());
  AIM_REQUIRE_DEPENDENCY(read.contains("files"), "python3 for tests/io/read_tfevents.py");
  EXPECT_EQ(status, 0) << read["problems"].dump(1);
}

TEST(TensorBoardRun, OffByDefault) {
  test::TempDir dir;
  auto cfg = config::load_run_config(test::kTinyYaml, {"train.out_dir=" + dir.file("run"), "train.steps=2"});
  EXPECT_FALSE(cfg.train.tensorboard);
  train::run_training(cfg, {});
  EXPECT_TRUE(fs::exists(dir.file("run/metrics.jsonl")));
  EXPECT_FALSE(fs::exists(dir.file("run/tb")));
}
