#pragma once
// Internal to src/scale: the pieces write_report (sweep_report.cpp) is made of, one file each.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "aim/scale/point_results.h"
#include "aim/scale/study_fits.h"
#include "aim/scale/sweep.h"

namespace aim::scale {

/// A number for a table: `digits` significant digits, "" when not finite.
std::string num(double v, int digits = 4);
/// A CSV field, quoted when it holds a comma, quote or newline (RFC 4180).
std::string csv_field(const std::string& s);

/// One row per point (every status), with the run's own numbers.
std::string results_csv(const std::vector<PointResult>& results);
/// Every validation record of every point, with its compute (total and trunk) and whether it
/// is the run's final one.
std::string curves_csv(const std::vector<PointResult>& results);
/// The fits, intervals, bands, trends and correlation, for plot_scaling.py and other readers.
nlohmann::json fits_json(const StudyFits& fits, int resamples);
/// report.md; `plots` are the PNG files that exist.
std::string report_markdown(const SweepConfig& sweep, const std::vector<PointResult>& results, const StudyFits& fits,
                            int resamples, const std::vector<std::string>& plots);

}  // namespace aim::scale
