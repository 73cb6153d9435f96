#pragma once
// aim-scale's report: results.csv, curves.csv, fits.json, report.md and the plots, written from
// the points' results (point_results.h) and the study's statistics (study_fits.h).
#include <string>
#include <vector>

#include "aim/scale/bootstrap.h"
#include "aim/scale/point_results.h"
#include "aim/scale/study_fits.h"
#include "aim/scale/sweep.h"

namespace aim::scale {

/// Writes results.csv, curves.csv, fits.json and report.md under sweep.out_dir, then draws
/// the plots with scripts/plot_scaling.py (matplotlib) when `python` is given. Returns the
/// report's path.
std::string write_report(const SweepConfig& sweep, const std::vector<PointResult>& results, const std::string& python,
                         const std::string& plot_script, int resamples = kBootstrapResamples);

/// Why writing a report from `results` would replace a better one in sweep.out_dir (its
/// results.csv has more done points than `results`), naming the overrides the existing runs were
/// made with (from their own config.yaml) and the command that collects them; "" when the new
/// report is at least as complete, or there is none yet.
std::string poorer_report(const SweepConfig& sweep, const std::vector<SweepPoint>& points,
                          const std::vector<PointResult>& results);

}  // namespace aim::scale
