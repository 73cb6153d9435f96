// write_report: the report's files in order (tables and fits first, then the plots that read
// them, then report.md, which says which plots exist).
#include "aim/scale/sweep_report.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <filesystem>

#include "aim/io/atomic_file.h"
#include "aim/scale/sweep_runner.h"
#include "report_parts.h"

namespace fs = std::filesystem;

namespace aim::scale {
namespace {

const char* const kPlots[] = {"loss_vs_compute.png", "loss_vs_params.png", "loss_vs_data.png", "accuracy_vs_loss.png"};

}  // namespace

std::string write_report(const SweepConfig& sweep, const std::vector<PointResult>& results, const std::string& python,
                         const std::string& plot_script, int resamples) {
  const fs::path out(sweep.out_dir);
  fs::create_directories(out);
  io::write_file_atomic((out / "results.csv").string(), results_csv(results));
  io::write_file_atomic((out / "curves.csv").string(), curves_csv(results));
  const StudyFits fits = fit_study(results, resamples);
  io::write_file_atomic((out / "fits.json").string(), fits_json(fits, resamples).dump(2) + "\n");

  // Plots first, so the report can say which exist; a plot with nothing to show is not drawn
  // (and an old one of that name is removed, so no picture outlives its data).
  for (const char* png : kPlots) fs::remove(out / png);
  std::vector<std::string> plots;
  if (!python.empty() && fs::is_regular_file(plot_script)) {
    const std::string cmd = python + " '" + plot_script + "' '" + out.string() + "'";
    if (std::system(cmd.c_str()) != 0) spdlog::warn("plotting failed ({}); the report has the tables and fits only", cmd);
    for (const char* png : kPlots)
      if (fs::is_regular_file(out / png)) plots.push_back(png);
  }
  const std::string report = (out / "report.md").string();
  io::write_file_atomic(report, report_markdown(sweep, results, fits, resamples, plots));
  return report;
}

}  // namespace aim::scale
