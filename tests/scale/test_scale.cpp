// aim-scale: sweep expansion and commands, power-law fits, and a real (tiny) sweep end to end:
// runs, failure recorded while the sweep goes on, resume skips finished points, report + plots.
#include <gtest/gtest.h>
#include <unistd.h>
#include <sys/wait.h>
#include <signal.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <set>
#include <nlohmann/json.hpp>
#include <thread>

#include "aim/config/run_config.h"
#include "aim/error.h"
#include "aim/scale/scaling_fit.h"
#include "aim/scale/sweep.h"
#include "aim/scale/sweep_report.h"
#include "aim/scale/sweep_runner.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace aim;

namespace {

const std::string kScaleBin = std::string(AIM_BIN_DIR) + "/aim-scale";

std::string read(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// RFC 4180 rows: fields split at commas outside double quotes, "" inside quotes is ".
std::vector<std::vector<std::string>> parse_csv(const std::string& text) {
  std::vector<std::vector<std::string>> rows(1);
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') field += '"', ++i;
      else if (c == '"') quoted = false;
      else field += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      rows.back().push_back(field), field.clear();
    } else if (c == '\n') {
      rows.back().push_back(field), field.clear();
      rows.emplace_back();
    } else {
      field += c;
    }
  }
  if (rows.back().empty()) rows.pop_back();
  return rows;
}

// collect_results reads each run's own files: a run whose last losses rose above its first, or
// went non-finite, is "diverged"; a run of another config than the sweep asks now is "stale",
// naming the key; the report lists every point left out of the fits and why.
TEST(SweepReport, DivergedAndStaleRunsAreLeftOutAndNamed) {
  test::TempDir dir;
  std::ofstream(dir.file("sweep.yaml")) << "base: " << AIM_SOURCE_DIR << "/configs/test-tiny.yaml\n"
                                        << "overrides: [train.steps=4]\n"
                                        << "points: [{model.width: 16}, {model.width: 32}, {model.width: 48}]\n"
                                        << "out_dir: " << dir.file("out") << "\nprobe: false\n";
  const auto s = scale::load_sweep(dir.file("sweep.yaml"));
  const auto pts = scale::expand_points(s);
  const std::vector<std::string> metrics = {
      R"({"step": 1, "loss": 2.0})" "\n" R"({"step": 4, "loss": 1.0, "val_loss": 1.1})" "\n",
      R"({"step": 1, "loss": 2.0})" "\n" R"({"step": 4, "loss": null})" "\n",  // NaN, as metrics.jsonl writes it
      R"({"step": 1, "loss": 1.0})" "\n" R"({"step": 4, "loss": 9.0, "val_loss": 9.5})" "\n"};
  for (size_t i = 0; i < pts.size(); ++i) {
    fs::create_directories(pts[i].dir);
    std::ofstream(pts[i].dir + "/config.yaml")
        << config::to_yaml(config::load_run_config(s.base, scale::point_overrides(s, pts[i])));
    std::ofstream(pts[i].dir + "/trunk.safetensors") << "x";
    std::ofstream(pts[i].dir + "/metrics.jsonl") << metrics[i];
  }
  auto rs = scale::collect_results(s, pts);
  ASSERT_EQ(rs.size(), 3u);
  EXPECT_EQ(rs[0].status, "done");
  EXPECT_EQ(rs[1].status, "diverged");
  EXPECT_NE(rs[1].note.find("non-finite"), std::string::npos) << rs[1].note;
  EXPECT_EQ(rs[2].status, "diverged");
  EXPECT_NE(rs[2].note.find("above the first"), std::string::npos) << rs[2].note;
  EXPECT_TRUE(scale::point_finished(s, pts[0]));
  scale::write_report(s, rs, "", "");
  const std::string report = read(dir.file("out/report.md"));
  EXPECT_NE(report.find("- model.width=32 (diverged): diverged: non-finite"), std::string::npos) << report;
  EXPECT_NE(report.find("- model.width=48 (diverged)"), std::string::npos) << report;
  EXPECT_NE(report.find("no data axis"), std::string::npos) << report;
  EXPECT_EQ(report.find("0 of 0"), std::string::npos) << report;

  // The same sweep asked with train.steps=5: every run is stale, by name of the key.
  const auto s5 = scale::load_sweep(dir.file("sweep.yaml"), {"train.steps=5"});
  EXPECT_FALSE(scale::point_finished(s5, pts[0]));
  const auto diff = scale::point_config_differences(s5, pts[0]);
  ASSERT_EQ(diff.size(), 1u);
  EXPECT_EQ(diff[0], "train.steps: 4 -> 5");
  // Keys that cannot change a number are not compared.
  EXPECT_TRUE(scale::point_config_differences(scale::load_sweep(dir.file("sweep.yaml"), {"train.log_every=7", "data.workers=3"}), pts[0]).empty());
  rs = scale::collect_results(s5, pts);
  for (const auto& r : rs) {
    EXPECT_EQ(r.status, "stale") << r.name;
    EXPECT_NE(r.note.find("train.steps: 4 -> 5"), std::string::npos) << r.note;
    EXPECT_EQ(r.steps, 4) << "the report takes steps from the run's own config.yaml";
  }
}

TEST(Sweep, ExpandsAxesThenPointsAndQuotesPlans) {
  test::TempDir dir;
  std::ofstream(dir.file("sweep.yaml")) << "base: " << AIM_SOURCE_DIR << "/configs/test-tiny.yaml\n"
                                        << "overrides: [train.steps=2]\n"
                                        << "axes: {model.width: [16, 32], 'optim.betas': [[0.9, 0.95]]}\n"
                                        << "points: [{model.width: 48, train.steps: 3}]\n"
                                        << "out_dir: " << dir.file("out") << "\nlauncher: srun -n1\n";
  auto s = scale::load_sweep(dir.file("sweep.yaml"), {"train.seed=4"});
  auto pts = scale::expand_points(s);
  ASSERT_EQ(pts.size(), 3u);
  EXPECT_EQ(pts[0].name, "model.width=16,optim.betas=[0.9,0.95]");
  EXPECT_EQ(pts[2].name, "model.width=48,train.steps=3");
  auto args = scale::train_arguments(s, pts[1]);
  EXPECT_NE(std::find(args.begin(), args.end(), "train.seed=4"), args.end());
  EXPECT_NE(std::find(args.begin(), args.end(), "optim.betas=[0.9, 0.95]"), args.end());
  EXPECT_NE(std::find(args.begin(), args.end(), "train.out_dir=" + dir.file("out") + "/" + pts[1].name), args.end());
  auto plan = scale::plan_commands(s, pts, "/bin/aim-train");
  ASSERT_EQ(plan.size(), 3u);
  EXPECT_EQ(plan[0].rfind("srun -n1 /bin/aim-train --config ", 0), 0u) << plan[0];
  EXPECT_NE(plan[0].find("'optim.betas=[0.9, 0.95]'"), std::string::npos) << plan[0];

  std::ofstream(dir.file("bad.yaml")) << "base: " << AIM_SOURCE_DIR << "/configs/test-tiny.yaml\naxis: {}\n";
  EXPECT_THROW(scale::load_sweep(dir.file("bad.yaml")), Error);  // unknown key (axes)
  std::ofstream(dir.file("bad2.yaml")) << "base: " << AIM_SOURCE_DIR << "/configs/test-tiny.yaml\n"
                                       << "axes: {model.width: [30]}\nout_dir: " << dir.file("o2") << "\n";
  auto s2 = scale::load_sweep(dir.file("bad2.yaml"));
  try {
    scale::validate_points(s2, scale::expand_points(s2));  // 30 is not divisible by 2 heads x 4
    FAIL() << "width 30 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("point model.width=30: model."), std::string::npos) << e.what();
  }
}

// A relative data path in the base config would resolve against wherever a scheduler's job
// starts: --plan names it (absolute, remote and synthetic sources are fine).
TEST(Sweep, NamesRelativeDataPaths) {
  test::TempDir dir;
  std::ofstream(dir.file("sweep.yaml")) << "base: " << AIM_SOURCE_DIR << "/configs/fmnist-scale-base.yaml\n"
                                        << "overrides: [data.val.path=fmnist]\n"
                                        << "points: [{model.width: 64}]\nout_dir: " << dir.file("out") << "\n";
  auto s = scale::load_sweep(dir.file("sweep.yaml"));
  const auto rel = scale::relative_data_paths(s, scale::expand_points(s)[0]);
  ASSERT_EQ(rel.size(), 1u);
  EXPECT_EQ(rel[0], "data.val.path = fmnist");
  std::ofstream(dir.file("tiny.yaml")) << "base: " << AIM_SOURCE_DIR << "/configs/test-tiny.yaml\n"
                                       << "points: [{model.width: 16}]\nout_dir: " << dir.file("out") << "\n";
  const auto tiny = scale::load_sweep(dir.file("tiny.yaml"));
  EXPECT_TRUE(scale::relative_data_paths(tiny, scale::expand_points(tiny)[0]).empty());
}

// SIGINT to aim-scale alone (a scheduler, `kill -INT`): the running aim-train gets it once,
// checkpoints and exits; the point is recorded as interrupted, not failed; aim-scale exits
// 130; re-running the sweep continues the point from its checkpoint to the end.
TEST(SweepCli, SigintStopsTheRunningPointWhichTheNextRunContinues) {
  test::TempDir dir;
  std::ofstream(dir.file("sweep.yaml")) << "base: " << AIM_SOURCE_DIR << "/configs/test-tiny.yaml\n"
                                        << "overrides: [train.val_every=0, train.ckpt_every=0, train.log_every=1]\n"
                                        << "points: [{train.steps: 600}, {train.steps: 3}]\n"
                                        << "out_dir: " << dir.file("out") << "\njobs: 1\nprobe: false\n";
  const std::string point = dir.file("out/train.steps=600");
  const pid_t pid = fork();
  if (pid == 0) {
    freopen(dir.file("scale.log").c_str(), "w", stdout);
    freopen(dir.file("scale.log").c_str(), "a", stderr);
    execl(kScaleBin.c_str(), kScaleBin.c_str(), "--config", dir.file("sweep.yaml").c_str(), "--python", "",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (read(point + "/metrics.jsonl").size() < 200 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_EQ(::kill(pid, SIGINT), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  const std::string log = read(dir.file("scale.log"));
  ASSERT_TRUE(WIFEXITED(status)) << log;
  EXPECT_EQ(WEXITSTATUS(status), 128 + SIGINT) << log;
  auto pj = nlohmann::json::parse(std::ifstream(point + "/point.json"));
  EXPECT_EQ(pj["status"], "interrupted") << pj.dump(2);
  EXPECT_FALSE(fs::exists(dir.file("out/train.steps=3/metrics.jsonl"))) << "a new point started after the signal";
  EXPECT_NE(read(point + "/log.txt").find("stopping on SIGINT after step "), std::string::npos) << read(point + "/log.txt");
  EXPECT_FALSE(fs::exists(point + "/trunk.safetensors"));

  const std::string again = test::capture(kScaleBin + " --config " + dir.file("sweep.yaml") + " --python ''");
  EXPECT_NE(again.find("[exit 0]"), std::string::npos) << again;
  EXPECT_NE(read(point + "/log.txt").find("resumed from "), std::string::npos);
  EXPECT_TRUE(fs::exists(point + "/trunk.safetensors"));
}

TEST(SweepCli, RunsRecordsFailuresResumesAndReports) {
  test::TempDir dir;
  std::ofstream(dir.file("sweep.yaml"))
      << "base: " << AIM_SOURCE_DIR << "/configs/test-tiny.yaml\n"
      << "overrides: [train.val_every=2, 'probe.train={kind: synthetic, size: 64, classes: 4}',"
      << " 'probe.val={kind: synthetic, size: 32, classes: 4}', probe.epochs=1, probe.batch_size=16]\n"
      << "axes: {model.width: [16, 32], data.sources.0.limit: [32, 128]}\n"
      << "points: [{optim.lr: 1.0e+30, train.max_nonfinite: 1}]\n"  // diverges at once: a runtime failure
      << "out_dir: " << dir.file("out") << "\njobs: 2\n";
  std::string out = test::capture(kScaleBin + " --config " + dir.file("sweep.yaml"));
  EXPECT_NE(out.find("[exit 1]"), std::string::npos) << out;  // one point failed
  EXPECT_NE(out.find("failed"), std::string::npos) << out;

  const std::string failed = dir.file("out/optim.lr=1.0e+30,train.max_nonfinite=1");
  auto pj = nlohmann::json::parse(std::ifstream(failed + "/point.json"));
  EXPECT_EQ(pj["status"], "failed");
  EXPECT_NE(pj["error"].get<std::string>().find("non-finite"), std::string::npos) << pj.dump(2);

  const std::string csv = read(dir.file("out/results.csv"));
  const auto rows = parse_csv(csv);
  ASSERT_EQ(rows.size(), 6u) << csv;  // header + 5 points
  const auto& header = rows[0];
  auto col = [&](const std::string& name) {
    auto it = std::find(header.begin(), header.end(), name);
    EXPECT_NE(it, header.end()) << name << " missing from " << csv;
    return static_cast<size_t>(it - header.begin());
  };
  size_t done = 0;
  for (size_t i = 1; i < rows.size(); ++i) {
    const auto& r = rows[i];
    SCOPED_TRACE(r[0]);
    ASSERT_EQ(r.size(), header.size()) << csv;
    if (r[col("status")] != "done") continue;
    ++done;
    // The bookkeeping columns against hand-computed values: test-tiny runs 6 steps of 8
    // images; FLOPs = images x FLOPs per image; unique images = synth-a's limit + synth-b's
    // 128 (test-tiny's second source).
    EXPECT_EQ(r[col("steps")], "6");
    EXPECT_EQ(r[col("batch_size")], "8");
    EXPECT_EQ(std::stod(r[col("images_seen")]), 48.0);
    EXPECT_NEAR(std::stod(r[col("train_flops")]), 48.0 * std::stod(r[col("train_flops_per_image")]),
                1e-6 * std::stod(r[col("train_flops")]));
    EXPECT_EQ(std::stoll(r[col("unique_images")]), std::stoll(r[col("data.sources.0.limit")]) + 128);
    EXPECT_GT(std::stod(r[col("final_val_loss")]), 0);
  }
  EXPECT_EQ(done, 4u) << csv;
  const std::string report = read(dir.file("out/report.md"));
  EXPECT_NE(report.find("| trunk parameters | at 256 unique images | — | too few points to fit: 2 distinct values"),
            std::string::npos)
      << report;
  EXPECT_NE(report.find("## Failed points"), std::string::npos) << report;
  EXPECT_NE(report.find("Pearson r"), std::string::npos) << report;
  auto fits = nlohmann::json::parse(std::ifstream(dir.file("out/fits.json")));
  std::set<std::string> ids;
  for (const auto& f : fits["fits"]) ids.insert(f["id"].get<std::string>());
  for (const char* id : {"loss_vs_trunk_params", "loss_vs_total_params", "loss_vs_data", "loss_vs_compute",
                         "loss_vs_trunk_compute"})
    EXPECT_TRUE(ids.count(id)) << id << " missing from " << fits.dump(1);
  EXPECT_EQ(fits["accuracy_loss"]["n"], 4);
  for (const char* png : {"loss_vs_compute.png", "loss_vs_params.png", "accuracy_vs_loss.png"})
    EXPECT_GT(fs::file_size(dir.path() / "out" / png), 1000u) << png;

  // Re-running skips the four finished points (their files stay as they were, byte for
  // byte and untouched) and retries only the failed one.
  std::map<std::string, std::pair<std::string, fs::file_time_type>> before;
  for (const auto& e : fs::recursive_directory_iterator(dir.file("out")))
    if (e.is_regular_file() && e.path().string().find("max_nonfinite") == std::string::npos &&
        e.path().parent_path() != dir.path() / "out")
      before[e.path().string()] = {read(e.path().string()), fs::last_write_time(e.path())};
  ASSERT_GT(before.size(), 4u * 4u);
  const auto failed_time = fs::last_write_time(failed + "/point.json");
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // distinct timestamps
  out = test::capture(kScaleBin + " --config " + dir.file("sweep.yaml"));
  EXPECT_NE(out.find("4 already done"), std::string::npos) << out;
  for (const auto& [path, was] : before) {
    ASSERT_TRUE(fs::exists(path)) << path;
    EXPECT_EQ(read(path), was.first) << path << " changed";
    EXPECT_EQ(fs::last_write_time(path), was.second) << path << " rewritten";
  }
  EXPECT_NE(fs::last_write_time(failed + "/point.json"), failed_time) << "the failed point was not retried";

  out = test::capture(kScaleBin + " --config " + dir.file("sweep.yaml") + " --plan");
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 6) << out;  // 5 commands + the exit line
  EXPECT_NE(out.find("train.out_dir="), std::string::npos);
}

// A sweep re-run with another sweep-wide override (not part of the point names) does not pass
// the old runs off as new: they are run again (the old ones kept under replaced/), and the
// report's steps and images come from the runs' own config.yaml. --plan validates every point.
TEST(SweepCli, ChangedOverrideRunsPointsAgainAndReportsTheirOwnSteps) {
  test::TempDir dir;
  std::ofstream(dir.file("sweep.yaml")) << "base: " << AIM_SOURCE_DIR << "/configs/test-tiny.yaml\n"
                                        << "overrides: [train.val_every=0, train.ckpt_every=0]\n"
                                        << "points: [{model.width: 16}]\n"
                                        << "out_dir: " << dir.file("out") << "\nprobe: false\n";
  const std::string cmd = kScaleBin + " --config " + dir.file("sweep.yaml") + " --python ''";
  const std::string point = dir.file("out/model.width=16");
  auto csv_value = [&](const std::string& column) {
    const auto rows = parse_csv(read(dir.file("out/results.csv")));
    EXPECT_EQ(rows.size(), 2u);
    const auto it = std::find(rows[0].begin(), rows[0].end(), column);
    EXPECT_NE(it, rows[0].end()) << column;
    return rows.size() < 2 || it == rows[0].end() ? std::string() : rows[1][it - rows[0].begin()];
  };
  std::string out = test::capture(cmd + " train.steps=2");
  ASSERT_NE(out.find("[exit 0]"), std::string::npos) << out;
  EXPECT_EQ(csv_value("steps"), "2");
  EXPECT_EQ(std::stod(csv_value("images_seen")), 16.0);

  // Not run yet: the point would be stale and the report poorer, so it is left alone, naming
  // what the run was made with.
  out = test::capture(cmd + " --collect train.steps=3");
  EXPECT_NE(out.find("[exit 2]"), std::string::npos) << out;
  EXPECT_NE(out.find("were run with train.steps=2"), std::string::npos) << out;
  EXPECT_EQ(csv_value("status"), "done") << out;
  EXPECT_EQ(csv_value("steps"), "2");

  out = test::capture(cmd + " train.steps=3");
  ASSERT_NE(out.find("[exit 0]"), std::string::npos) << out;
  EXPECT_NE(out.find("another config (train.steps: 2 -> 3)"), std::string::npos) << out;
  EXPECT_NE(out.find("1 run (1 again"), std::string::npos) << out;
  EXPECT_NE(out.find("0 already done"), std::string::npos) << out;
  EXPECT_EQ(csv_value("status"), "done");
  EXPECT_EQ(csv_value("steps"), "3");
  EXPECT_EQ(std::stod(csv_value("images_seen")), 24.0);
  EXPECT_NE(read(dir.file("out/report.md")).find("| model.width=16 | done | 0 | 7.12k | 47.6k | 3 |"), std::string::npos)
      << read(dir.file("out/report.md"));
  const auto now = test::metric_by_step(point), old = test::metric_by_step(dir.file("out/replaced/model.width=16"));
  ASSERT_FALSE(now.empty());
  ASSERT_FALSE(old.empty());  // kept aside, not deleted
  EXPECT_EQ(now.rbegin()->first, 3);
  EXPECT_EQ(old.rbegin()->first, 2);

  out = test::capture(cmd + " train.steps=3");  // now current: skipped
  EXPECT_NE(out.find("1 already done"), std::string::npos) << out;

  std::ofstream(dir.file("bad.yaml")) << "base: " << AIM_SOURCE_DIR << "/configs/test-tiny.yaml\n"
                                      << "points: [{model.width: 16}, {model.width: 64, model.heads: 3}]\n"
                                      << "out_dir: " << dir.file("bad") << "\nprobe: false\n";
  out = test::capture(kScaleBin + " --config " + dir.file("bad.yaml") + " --plan");
  EXPECT_NE(out.find("[exit 2]"), std::string::npos) << out;
  EXPECT_NE(out.find("point model.width=64,model.heads=3: model."), std::string::npos) << out;

  // Pictures of both runs (scripts/plot_runs.py): loss, lr, throughput; no validation here.
  const bool mpl = std::system((std::string(AIM_PYTHON) + " -c 'import matplotlib' 2>/dev/null").c_str()) == 0;
  AIM_REQUIRE_DEPENDENCY(mpl, "matplotlib (python3-matplotlib)");
  out = test::capture(std::string(AIM_PYTHON) + " " + AIM_SOURCE_DIR + "/scripts/plot_runs.py " + point + " " +
                      dir.file("out/replaced/model.width=16") + " --out " + dir.file("plots"));
  ASSERT_NE(out.find("[exit 0]"), std::string::npos) << out;
  for (const char* png : {"loss.png", "lr.png", "throughput.png"}) {
    ASSERT_TRUE(fs::exists(dir.path() / "plots" / png)) << png << out;
    EXPECT_GT(fs::file_size(dir.path() / "plots" / png), 1000u) << png;
  }
  EXPECT_FALSE(fs::exists(dir.path() / "plots" / "val_loss.png"));
  EXPECT_NE(out.find("validation loss: no data"), std::string::npos) << out;
  out = test::capture(std::string(AIM_PYTHON) + " " + AIM_SOURCE_DIR + "/scripts/plot_runs.py " + dir.file("nothing"));
  EXPECT_NE(out.find("does not exist"), std::string::npos) << out;
  EXPECT_EQ(out.find("[exit 0]"), std::string::npos) << out;

}

// Under a scheduler: the --plan lines (absolute paths) run from another directory, one of them
// fails; aim-train's own run_status.json says so, --collect exits 1 naming the reason, and
// --plan --pending lists only that point.
TEST(SweepCli, FailedPlanLineMakesCollectExitNonZeroAndPendingListsIt) {
  test::TempDir dir;
  fs::copy_file(std::string(AIM_SOURCE_DIR) + "/configs/test-tiny.yaml", dir.file("base.yaml"));
  std::ofstream(dir.file("sweep.yaml")) << "base: base.yaml\n"  // relative to where aim-scale runs
                                        << "overrides: [train.ckpt_every=0]\n"
                                        << "points: [{model.width: 16}, {optim.lr: 1.0e+30, train.max_nonfinite: 1}]\n"
                                        << "out_dir: out\nprobe: false\n";
  fs::create_directories(dir.file("elsewhere"));
  const std::string scale = "cd " + dir.path().string() + " && " + kScaleBin + " --config sweep.yaml --python ''";
  std::string out = test::capture(scale + " --plan");
  ASSERT_NE(out.find("[exit 0]"), std::string::npos) << out;
  std::vector<std::string> lines;
  std::istringstream in(out);
  for (std::string l; std::getline(in, l);)
    if (l.find("aim-train") != std::string::npos) lines.push_back(l);
  ASSERT_EQ(lines.size(), 2u) << out;
  for (const auto& l : lines) {
    EXPECT_NE(l.find("--config " + dir.file("base.yaml")), std::string::npos) << l;
    EXPECT_NE(l.find("train.out_dir=" + dir.file("out") + "/"), std::string::npos) << l;
  }
  // What a scheduler does: each line on its own, from wherever the job starts.
  for (const auto& l : lines) test::capture("cd " + dir.file("elsewhere") + " && " + l);
  const std::string failed = dir.file("out/optim.lr=1.0e+30,train.max_nonfinite=1");
  auto status = nlohmann::json::parse(std::ifstream(failed + "/run_status.json"));
  EXPECT_EQ(status["status"], "failed") << status.dump(2);
  EXPECT_EQ(status["exit_code"], 2);
  EXPECT_NE(status["reason"].get<std::string>().find("non-finite"), std::string::npos) << status.dump(2);
  EXPECT_EQ(nlohmann::json::parse(std::ifstream(dir.file("out/model.width=16/run_status.json")))["status"], "done");
  EXPECT_FALSE(fs::exists(dir.file("elsewhere/out"))) << "a plan line wrote relative to where it ran";

  out = test::capture(scale + " --collect");
  EXPECT_NE(out.find("[exit 1]"), std::string::npos) << out;
  EXPECT_NE(out.find("2 points: 1 done, 1 failed"), std::string::npos) << out;
  EXPECT_NE(out.find("point optim.lr=1.0e+30,train.max_nonfinite=1 failed: aim-train failed (exit 2): "),
            std::string::npos)
      << out;
  EXPECT_NE(read(dir.file("out/report.md")).find("## Failed points"), std::string::npos);

  out = test::capture(scale + " --plan --pending");
  EXPECT_NE(out.find("[exit 0]"), std::string::npos) << out;
  EXPECT_NE(out.find("1 of 2 points pending"), std::string::npos) << out;
  EXPECT_EQ(out.find("model.width=16"), std::string::npos) << out;
  EXPECT_NE(out.find("train.out_dir=" + failed), std::string::npos) << out;
}

}  // namespace

namespace {

TEST(SweepFiles, EveryCommittedSweepExpandsAndValidates) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(fs::path(AIM_SOURCE_DIR) / "configs" / "sweeps")) {
    if (e.path().extension() != ".yaml") continue;
    SCOPED_TRACE(e.path().string());
    ++n;
    // Sweep files name their base relative to the repository root, like the README commands.
    const auto cwd = fs::current_path();
    fs::current_path(AIM_SOURCE_DIR);
    try {
      auto s = scale::load_sweep(e.path().string());
      auto pts = scale::expand_points(s);
      EXPECT_GE(pts.size(), 2u);
      EXPECT_NO_THROW(scale::validate_points(s, pts));
    } catch (const Error& err) {
      ADD_FAILURE() << err.what();
    }
    fs::current_path(cwd);
  }
  EXPECT_GE(n, 1);
}

}  // namespace
