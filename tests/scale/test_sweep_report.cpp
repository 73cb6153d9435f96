// aim-scale's report against hand-computed numbers (compute per curve point, trunk vs total,
// what each fit used), no fit or verdict from a 2-point sweep, aim-train's own final status
// read back, and a good report never replaced by a poorer one.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "aim/config/run_config.h"
#include "aim/scale/point_results.h"
#include "aim/scale/sweep.h"
#include "aim/scale/sweep_report.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace aim;

namespace {

const std::string kSweepScaleBin = std::string(AIM_BIN_DIR) + "/aim-scale";

std::string read_report_file(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<std::vector<std::string>> parse_report_csv(const std::string& text) {
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

// Rows as maps from column name to field.
std::vector<std::map<std::string, std::string>> csv_records(const std::string& path) {
  const auto rows = parse_report_csv(read_report_file(path));
  std::vector<std::map<std::string, std::string>> out;
  for (size_t r = 1; r < rows.size(); ++r) {
    std::map<std::string, std::string> m;
    for (size_t c = 0; c < rows[0].size() && c < rows[r].size(); ++c) m[rows[0][c]] = rows[r][c];
    out.push_back(m);
  }
  return out;
}

// test-tiny at width w, by hand (K = 16 tokens, patch dim 48, depth 2, MLP ratio 4, head width
// 48, 2 head blocks; one multiply-add = 2 FLOPs, training = 3 × forward):
//   trunk forward = embed 2·16·48·w + 2 blocks × (2·16·12w² linears + 4·16²·w attention)
//                 = 768w² + 3584w
//   head forward  = 2·16·w·48 + 2 × 2·16·(8·48²) + 2·16·48·48 = 1536w + 1253376
double trunk_training_flops(double w) { return 3 * (768 * w * w + 3584 * w); }
double total_training_flops(double w) { return trunk_training_flops(w) + 3 * (1536 * w + 1253376); }
// Trunk parameters: patch embed 48w + w + 2w, 2 blocks × (4w + 12w²), final norm 2w.
double trunk_parameters(double w) { return 24 * w * w + 61 * w; }

// A finished point made by hand: the config the sweep asks for, a trunk, and metrics.
void fake_run(const scale::SweepConfig& s, const scale::SweepPoint& p, const std::string& metrics,
              double probe_top1 = NAN) {
  fs::create_directories(p.dir);
  std::ofstream(p.dir + "/config.yaml") << config::to_yaml(config::load_run_config(s.base, scale::point_overrides(s, p)));
  std::ofstream(p.dir + "/trunk.safetensors") << "x";
  std::ofstream(p.dir + "/metrics.jsonl") << metrics;
  if (std::isfinite(probe_top1)) {
    fs::create_directories(p.dir + "/probe");
    std::ofstream(p.dir + "/probe/results.json") << nlohmann::json{{"best", {{"top1", probe_top1}}}}.dump();
  }
}

std::string metrics_for(double final_val) {
  return R"({"step": 1, "loss": 2.0})" "\n"
         R"({"step": 3, "loss": 1.5, "val_loss": )" + std::to_string(final_val + 0.1) + "}\n" +
         R"({"step": 6, "loss": 1.0, "val_loss": )" + std::to_string(final_val) + "}\n";
}

TEST(SweepReport, CurvesResultsAndFitsMatchHandComputedCompute) {
  ASSERT_EQ(total_training_flops(32), 6610944.0);  // the hand formula, anchored once
  ASSERT_EQ(trunk_training_flops(32), 2703360.0);
  test::TempDir dir;
  std::ofstream(dir.file("sweep.yaml")) << "base: " << AIM_SOURCE_DIR << "/configs/test-tiny.yaml\n"
                                        << "overrides: [train.steps=6]\naxes: {model.width: [16, 32, 48]}\n"
                                        << "out_dir: " << dir.file("out") << "\nprobe: false\n";
  const auto s = scale::load_sweep(dir.file("sweep.yaml"));
  const auto pts = scale::expand_points(s);
  const std::map<int, double> final_loss = {{16, 0.9}, {32, 0.8}, {48, 0.75}};
  for (const auto& p : pts) fake_run(s, p, metrics_for(final_loss.at(std::stoi(p.values[0].second))));
  scale::write_report(s, scale::collect_results(s, pts), "", "", 100);

  // Every validation record: compute = step × batch (8 images) × FLOPs per image.
  const auto curves = csv_records(dir.file("out/curves.csv"));
  ASSERT_EQ(curves.size(), 6u);
  for (const auto& c : curves) {
    SCOPED_TRACE(c.at("point") + " step " + c.at("step"));
    const double w = std::stod(c.at("point").substr(c.at("point").find('=') + 1));
    const double step = std::stod(c.at("step"));
    EXPECT_NEAR(std::stod(c.at("train_flops")), step * 8 * total_training_flops(w), 1e-9 * step * 8 * total_training_flops(w));
    EXPECT_NEAR(std::stod(c.at("trunk_train_flops")), step * 8 * trunk_training_flops(w),
                1e-9 * step * 8 * trunk_training_flops(w));
    EXPECT_EQ(c.at("final"), step == 6 ? "1" : "0");
  }
  for (const auto& r : csv_records(dir.file("out/results.csv"))) {
    SCOPED_TRACE(r.at("point"));
    const double w = std::stod(r.at("model.width"));
    EXPECT_EQ(r.at("status"), "done");
    EXPECT_EQ(std::stod(r.at("images_seen")), 48.0);
    EXPECT_EQ(std::stod(r.at("train_flops_per_image")), total_training_flops(w));
    EXPECT_EQ(std::stod(r.at("trunk_train_flops_per_image")), trunk_training_flops(w));
    EXPECT_NEAR(std::stod(r.at("train_flops")), 48 * total_training_flops(w), 1e-9 * 48 * total_training_flops(w));
    EXPECT_NEAR(std::stod(r.at("trunk_train_flops")), 48 * trunk_training_flops(w), 1e-9 * 48 * trunk_training_flops(w));
    EXPECT_EQ(std::stod(r.at("trunk_params")), trunk_parameters(w));
  }

  // What each fit used: the final points only, at the hand-computed compute and parameters.
  const auto fits = nlohmann::json::parse(std::ifstream(dir.file("out/fits.json")));
  std::map<std::string, nlohmann::json> by_id;
  for (const auto& f : fits["fits"]) by_id[f["id"].get<std::string>()] = f;
  ASSERT_TRUE(by_id.count("loss_vs_compute")) << fits.dump(1);
  const auto compute_runs = by_id["loss_vs_compute"]["runs"];
  const auto trunk_runs = by_id["loss_vs_trunk_compute"]["runs"];
  const auto param_runs = by_id["loss_vs_trunk_params"]["runs"];
  ASSERT_EQ(compute_runs.size(), 3u);
  ASSERT_EQ(trunk_runs.size(), 3u);
  ASSERT_EQ(param_runs.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const double w = 16.0 * (i + 1);
    EXPECT_NEAR(compute_runs[i][0].get<double>(), 48 * total_training_flops(w), 1e-9 * 48 * total_training_flops(w)) << w;
    EXPECT_NEAR(trunk_runs[i][0].get<double>(), 48 * trunk_training_flops(w), 1e-9 * 48 * trunk_training_flops(w)) << w;
    EXPECT_EQ(param_runs[i][0].get<double>(), trunk_parameters(w));
    EXPECT_DOUBLE_EQ(compute_runs[i][1].get<double>(), final_loss.at(int(w))) << "not the final point";
  }
  // One seed: fitted, but no intervals and no verdict.
  EXPECT_FALSE(by_id["loss_vs_compute"]["no_interval"].is_null());
  EXPECT_TRUE(by_id["loss_vs_compute"]["power_law"]["alpha_ci"].is_null());
  EXPECT_EQ(fits["trends"]["wider"][0]["verdict"].get<std::string>().rfind("no verdict", 0), 0u);
}

// The issue's example: two widths, one run each. Points only, "too few points to fit", no
// exponent, and no verdict anywhere in the report.
TEST(SweepReport, TwoPointSweepPrintsNoFitAndNoVerdict) {
  test::TempDir dir;
  std::ofstream(dir.file("sweep.yaml")) << "base: " << AIM_SOURCE_DIR << "/configs/test-tiny.yaml\n"
                                        << "overrides: [train.steps=6]\naxes: {model.width: [16, 32]}\n"
                                        << "out_dir: " << dir.file("out") << "\nprobe: true\n";
  const auto s = scale::load_sweep(dir.file("sweep.yaml"));
  const auto pts = scale::expand_points(s);
  fake_run(s, pts[0], metrics_for(0.7376), 0.70);
  fake_run(s, pts[1], metrics_for(0.7325), 0.72);
  const auto rs = scale::collect_results(s, pts);
  ASSERT_EQ(rs[0].status, "done") << rs[0].note;
  scale::write_report(s, rs, "", "", 100);
  const std::string report = read_report_file(dir.file("out/report.md"));
  EXPECT_NE(report.find("too few points to fit: 2 distinct values"), std::string::npos) << report;
  EXPECT_NE(report.find("too few points (2 runs with a probe"), std::string::npos) << report;
  EXPECT_NE(report.find("no verdict"), std::string::npos) << report;
  for (const char* verdict : {"holds", "reversed", "L = ", "Pearson r", "falls", "rises"})
    EXPECT_EQ(report.find(verdict), std::string::npos) << verdict << " in\n" << report;
  const auto fits = nlohmann::json::parse(std::ifstream(dir.file("out/fits.json")));
  for (const auto& f : fits["fits"]) {
    EXPECT_FALSE(f["too_few"].is_null()) << f.dump();
    EXPECT_TRUE(f["power_law"].is_null()) << f.dump();
  }
  EXPECT_TRUE(fits["accuracy_loss"]["pearson"].is_null());
}

// aim-train's run_status.json decides a point a scheduler ran: failed with its reason,
// interrupted, running, or killed (a "running" status whose process is gone on this host).
TEST(SweepReport, RunStatusTellsFailedInterruptedRunningAndKilledPoints) {
  test::TempDir dir;
  std::ofstream(dir.file("sweep.yaml")) << "base: " << AIM_SOURCE_DIR << "/configs/test-tiny.yaml\n"
                                        << "axes: {model.width: [16, 32, 48, 64], train.seed: [3]}\n"
                                        << "out_dir: " << dir.file("out") << "\nprobe: false\n";
  const auto s = scale::load_sweep(dir.file("sweep.yaml"));
  const auto pts = scale::expand_points(s);
  const pid_t gone = fork();
  if (gone == 0) _exit(0);
  ASSERT_EQ(waitpid(gone, nullptr, 0), gone);
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  auto status = [&](const scale::SweepPoint& p, const std::string& st, const std::string& reason, long pid) {
    fs::create_directories(p.dir);
    std::ofstream(p.dir + "/config.yaml") << config::to_yaml(config::load_run_config(s.base, scale::point_overrides(s, p)));
    std::ofstream(p.dir + "/metrics.jsonl") << R"({"step": 1, "loss": 2.0})" "\n";
    std::ofstream(p.dir + "/run_status.json")
        << nlohmann::json{{"status", st}, {"reason", reason}, {"exit_code", st == "failed" ? 2 : 143},
                          {"pid", pid}, {"host", host}, {"time", "2026-12-01T10:00:00Z"}}.dump();
  };
  status(pts[0], "failed", "data.sources[0]: '/nope' does not exist", 1);
  status(pts[1], "interrupted", "stopped by SIGTERM after step 1 (checkpoint written)", 1);
  status(pts[2], "running", "", static_cast<long>(getpid()));
  status(pts[3], "running", "", static_cast<long>(gone));
  const auto rs = scale::collect_results(s, pts);
  EXPECT_EQ(rs[0].status, "failed");
  EXPECT_NE(rs[0].note.find("'/nope' does not exist"), std::string::npos) << rs[0].note;
  EXPECT_EQ(rs[1].status, "interrupted");
  EXPECT_NE(rs[1].note.find("SIGTERM"), std::string::npos) << rs[1].note;
  EXPECT_EQ(rs[2].status, "running");
  EXPECT_NE(rs[2].note.find("step 1 of 6"), std::string::npos) << rs[2].note;
  EXPECT_EQ(rs[3].status, "failed");
  EXPECT_NE(rs[3].note.find("killed"), std::string::npos) << rs[3].note;
  EXPECT_EQ(scale::status_summary(rs), "4 points: 0 done, 2 failed, 1 interrupted, 1 running");
  // The seed is the run's, and not part of the setting its replicates share.
  EXPECT_EQ(rs[0].seed, 3);
  EXPECT_EQ(rs[0].setting, "model.width=16");
}

// A sweep run with `train.steps=4` on the command line, collected without it: every point
// would be "stale" and the report "0 done". aim-scale refuses, names the override from the
// points' own config, and leaves every report file as it was.
TEST(SweepCli, CollectNeverReplacesABetterReport) {
  test::TempDir dir;
  std::ofstream(dir.file("sweep.yaml")) << "base: " << AIM_SOURCE_DIR << "/configs/test-tiny.yaml\n"
                                        << "axes: {model.width: [16, 32]}\n"
                                        << "out_dir: " << dir.file("out") << "\nprobe: false\n";
  const auto s = scale::load_sweep(dir.file("sweep.yaml"), {"train.steps=4"});
  const auto pts = scale::expand_points(s);
  for (const auto& p : pts)
    fake_run(s, p, R"({"step": 1, "loss": 2.0})" "\n" R"({"step": 4, "loss": 1.0, "val_loss": 0.9})" "\n");
  const std::string cmd = kSweepScaleBin + " --config " + dir.file("sweep.yaml") + " --python ''";
  std::string out = test::capture(cmd + " --collect train.steps=4");
  ASSERT_NE(out.find("[exit 0]"), std::string::npos) << out;
  const std::string report = read_report_file(dir.file("out/report.md")), results = read_report_file(dir.file("out/results.csv"));
  ASSERT_NE(report.find("2 points: 2 done"), std::string::npos) << report;

  out = test::capture(cmd + " --collect");
  EXPECT_NE(out.find("[exit 2]"), std::string::npos) << out;
  EXPECT_NE(out.find("refusing to replace the report"), std::string::npos) << out;
  EXPECT_NE(out.find("it has 2 done point(s), this collection 0 (2 points: 0 done, 2 stale)"), std::string::npos) << out;
  EXPECT_NE(out.find("were run with train.steps=4"), std::string::npos) << out;
  EXPECT_NE(out.find("--collect train.steps=4."), std::string::npos) << out;
  EXPECT_EQ(read_report_file(dir.file("out/report.md")), report);
  EXPECT_EQ(read_report_file(dir.file("out/results.csv")), results);

  out = test::capture(cmd + " --collect --replace-report");  // said on purpose
  EXPECT_NE(out.find("[exit 0]"), std::string::npos) << out;
  EXPECT_NE(read_report_file(dir.file("out/report.md")).find("2 points: 0 done, 2 stale"), std::string::npos);
}

}  // namespace
