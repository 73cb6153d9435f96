// aim-scale: width/data scaling sweeps (a base aim-train config x axes of overrides).
//   aim-scale --config SWEEP.yaml [key=value ...]   run unfinished points, then collect + report
//   aim-scale --config SWEEP.yaml --plan            print one aim-train command line per point
//   aim-scale --config SWEEP.yaml --collect         only gather results, fit, plot, report
// Trailing key=value pairs override every point (e.g. train.steps=50 for a quick pass).
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>

#include "aim/error.h"
#include "aim/scale/sweep.h"
#include "aim/scale/sweep_report.h"
#include "aim/scale/sweep_runner.h"

namespace fs = std::filesystem;

namespace {

fs::path own_directory() {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::current_path() : p.parent_path();
}

void report_progress(const aim::scale::PointOutcome& o, size_t done, size_t total) {
  if (o.status == "done")
    spdlog::info("[{}/{}] {} done in {:.0f} s", done, total, o.name, o.seconds);
  else if (o.status == "interrupted")
    spdlog::warn("[{}/{}] {} interrupted after {:.0f} s (checkpoint written)", done, total, o.name, o.seconds);
  else
    spdlog::error("[{}/{}] {} failed (exit {}) after {:.0f} s; the sweep goes on. Log tail:\n{}", done, total, o.name,
                  o.exit_code, o.seconds, o.error);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Run, plan or collect an AIM scaling sweep"};
  std::string config_path;
  std::vector<std::string> overrides;
  bool plan = false, collect = false;
  int jobs = 0;
  std::string aim_train = (own_directory() / "aim-train").string();
  std::string python = AIM_PYTHON, plot_script = std::string(AIM_SOURCE_DIR) + "/scripts/plot_scaling.py";
  app.add_option("--config", config_path, "Sweep YAML (base, overrides, axes/points, out_dir, jobs, probe, launcher)")
      ->required();
  app.add_option("overrides", overrides, "key=value overrides applied to every point");
  app.add_flag("--plan", plan, "Print the aim-train command of every point and exit");
  app.add_flag("--collect", collect, "Only collect results from existing run directories and write the report");
  app.add_option("--jobs", jobs, "Points run at once (overrides the sweep file's jobs)");
  app.add_option("--aim-train", aim_train, "aim-train binary to run");
  app.add_option("--python", python, "Python with matplotlib for the plots ('' = no plots)");
  CLI11_PARSE(app, argc, argv);

  try {
    auto sweep = aim::scale::load_sweep(config_path, overrides);
    if (jobs > 0) sweep.jobs = jobs;
    const auto points = aim::scale::expand_points(sweep);
    // A plan line the real run would reject (3 heads for width 64) fails here, naming the point.
    if (!collect) aim::scale::validate_points(sweep, points);
    if (plan) {
      for (const auto& line : aim::scale::plan_commands(sweep, points, aim_train)) std::cout << line << "\n";
      return 0;
    }
    if (!collect) {
      spdlog::info("sweep {}: {} points, {} at a time, runs under {}", config_path, points.size(), sweep.jobs,
                   sweep.out_dir);
      auto outcomes = aim::scale::run_sweep(sweep, points, aim_train, report_progress);
      size_t skipped = 0, failed = 0, replaced = 0;
      for (const auto& o : outcomes)
        skipped += o.status == "skipped", failed += o.status == "failed", replaced += !o.replaced.empty();
      if (const int sig = aim::scale::sweep_stop_signal()) {
        size_t interrupted = 0;
        for (const auto& o : outcomes) interrupted += o.status == "interrupted";
        spdlog::warn("sweep stopped by signal {}: {} point(s) interrupted after a checkpoint, {} failed; run the same "
                     "command to continue",
                     sig, interrupted, failed);
        return 128 + sig;
      }
      spdlog::info("sweep finished: {} run{}, {} already done, {} failed", outcomes.size() - skipped,
                   replaced > 0 ? fmt::format(" ({} again: their old runs had another config)", replaced) : "",
                   skipped, failed);
    }
    const auto results = aim::scale::collect_results(sweep, points);
    const std::string report = aim::scale::write_report(sweep, results, python, plot_script);
    std::cout << "report: " << report << "\n";
    size_t failed = 0;
    for (const auto& r : results) failed += r.status == "failed";
    return failed > 0 ? 1 : 0;
  } catch (const aim::Error& e) {
    std::cerr << "aim-scale: error: " << e.what() << std::endl;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "aim-scale: internal error: " << e.what() << std::endl;
    return 3;
  }
}
