// aim-scale: width/data scaling sweeps (a base aim-train config x axes of overrides).
//   aim-scale --config SWEEP.yaml [key=value ...]   run unfinished points, then collect + report
//   aim-scale --config SWEEP.yaml --plan            print one aim-train command line per point
//   aim-scale --config SWEEP.yaml --plan --pending  only the points not done yet
//   aim-scale --config SWEEP.yaml --collect         only gather results, fit, plot, report
// Trailing key=value pairs override every point (e.g. train.steps=50 for a quick pass).
// Exit status: 0, or 1 when a point failed, 2 on an error (bad sweep, a report that would
// replace a better one), 128 + signal when stopped.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>

#include "aim/error.h"
#include "aim/scale/point_results.h"
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

/// scripts/plot_scaling.py of the checkout this binary was built in: the first ancestor of the
/// binary's directory that holds one (build/bin -> the repository root); "" when none does.
std::string find_plot_script() {
  for (fs::path d = own_directory(); !d.empty(); d = d.parent_path()) {
    const fs::path script = d / "scripts" / "plot_scaling.py";
    if (fs::is_regular_file(script)) return script.string();
    if (d == d.parent_path()) break;
  }
  return "";
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

/// The points a scheduler still has to run: not started, failed, interrupted, or holding a run
/// of another config. Running ones are left out (a second job in one directory would collide),
/// and what a line alone cannot fix is said on stderr.
std::vector<aim::scale::SweepPoint> pending_points(const aim::scale::SweepConfig& sweep,
                                                   const std::vector<aim::scale::SweepPoint>& points) {
  const auto results = aim::scale::collect_results(sweep, points);
  std::vector<aim::scale::SweepPoint> out;
  for (size_t i = 0; i < points.size(); ++i) {
    const auto& r = results[i];
    if (r.status == "missing" || r.status == "failed" || r.status == "interrupted") out.push_back(points[i]);
    if (r.status == "stale") {
      out.push_back(points[i]);
      std::cerr << "aim-scale: point " << r.name << ": " << points[i].dir
                << " holds a run of another config, which aim-train will refuse to continue; move it away before "
                   "running its line (" << r.note << ")\n";
    }
    if (r.status == "running")
      std::cerr << "aim-scale: point " << r.name << " left out: " << r.note
                << " (if its job is gone, move its directory away or run it with aim-scale)\n";
  }
  std::cerr << "aim-scale: " << out.size() << " of " << points.size() << " points pending ("
            << aim::scale::status_summary(results) << ")\n";
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Run, plan or collect an AIM scaling sweep"};
  std::string config_path;
  std::vector<std::string> overrides;
  bool plan = false, pending = false, collect = false, replace_report = false;
  int jobs = 0;
  std::string aim_train = (own_directory() / "aim-train").string();
  std::string python = AIM_PYTHON, plot_script = find_plot_script();
  app.add_option("--config", config_path, "Sweep YAML (base, overrides, axes/points, out_dir, jobs, probe, launcher)")
      ->required();
  app.add_option("overrides", overrides, "key=value overrides applied to every point");
  app.add_flag("--plan", plan, "Print the aim-train command of every point (absolute paths) and exit");
  app.add_flag("--pending", pending, "With --plan: only the points not done yet (not run, failed, interrupted, stale)");
  app.add_flag("--collect", collect, "Only collect results from existing run directories and write the report");
  app.add_flag("--replace-report", replace_report,
               "Write the report even when the existing one has more done points");
  app.add_option("--jobs", jobs, "Points run at once (overrides the sweep file's jobs)");
  app.add_option("--aim-train", aim_train, "aim-train binary to run");
  app.add_option("--python", python, "Python with matplotlib for the plots ('' = no plots)");
  app.add_option("--plot-script", plot_script, "scripts/plot_scaling.py (default: found above this binary)");
  CLI11_PARSE(app, argc, argv);

  try {
    if (pending && !plan) throw aim::Error("--pending goes with --plan (the lines of the points not done yet)");
    auto sweep = aim::scale::load_sweep(config_path, overrides);
    if (jobs > 0) sweep.jobs = jobs;
    const auto points = aim::scale::expand_points(sweep);
    // A plan line the real run would reject (3 heads for width 64) fails here, naming the point.
    if (!collect) aim::scale::validate_points(sweep, points);
    if (plan) {
      for (const auto& p : aim::scale::relative_data_paths(sweep, points.front()))
        std::cerr << "aim-scale: warning: " << p << " is relative: a job started in another directory will not find "
                  << "it (make it absolute in " << sweep.base << ")\n";
      const auto listed = pending ? pending_points(sweep, points) : points;
      for (const auto& line : aim::scale::plan_commands(sweep, listed, aim_train)) std::cout << line << "\n";
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
    if (!python.empty() && !fs::is_regular_file(plot_script))
      spdlog::warn("no plots: scripts/plot_scaling.py not found above {} (pass --plot-script)", own_directory().string());
    const auto results = aim::scale::collect_results(sweep, points);
    if (!replace_report) {
      const std::string poorer = aim::scale::poorer_report(sweep, points, results);
      if (!poorer.empty()) throw aim::Error(poorer);
    }
    const std::string report = aim::scale::write_report(sweep, results, python, plot_script);
    std::cout << "report: " << report << " (" << aim::scale::status_summary(results) << ")\n";
    size_t failed = 0;
    for (const auto& r : results) {
      if (r.status != "failed") continue;
      ++failed;
      std::cerr << "aim-scale: point " << r.name << " failed: " << r.note << "\n";
    }
    return failed > 0 ? 1 : 0;
  } catch (const aim::Error& e) {
    std::cerr << "aim-scale: error: " << e.what() << std::endl;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "aim-scale: internal error: " << e.what() << std::endl;
    return 3;
  }
}
