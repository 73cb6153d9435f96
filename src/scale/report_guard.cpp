// poorer_report: a report is never replaced by one with fewer finished points. `--collect`
// without the overrides a sweep was run with used to turn every point "stale" and overwrite a
// good report (and its plots) with "0 done"; this says which overrides the runs were made with.
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "aim/scale/sweep_report.h"
#include "aim/scale/sweep_runner.h"
#include "report_parts.h"

namespace fs = std::filesystem;

namespace aim::scale {
namespace {

/// RFC 4180 rows: fields split at commas outside double quotes, "" inside quotes is ".
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

/// Done points in an existing results.csv; -1 when there is none (or it cannot be read).
long done_in_existing_report(const fs::path& csv) {
  std::ifstream in(csv);
  if (!in) return -1;
  const auto rows = parse_csv(std::string(std::istreambuf_iterator<char>(in), {}));
  if (rows.empty()) return -1;
  long status = -1;
  for (size_t i = 0; i < rows[0].size(); ++i)
    if (rows[0][i] == "status") status = static_cast<long>(i);
  if (status < 0) return -1;
  long done = 0;
  for (size_t r = 1; r < rows.size(); ++r) done += rows[r].size() > size_t(status) && rows[r][status] == "done";
  return done;
}

}  // namespace

std::string poorer_report(const SweepConfig& sweep, const std::vector<SweepPoint>& points,
                          const std::vector<PointResult>& results) {
  const fs::path out(sweep.out_dir);
  const long before = done_in_existing_report(out / "results.csv");
  long now = 0;
  for (const auto& r : results) now += r.status == "done";
  if (before < 0 || now >= before) return "";

  // What the runs in the directories were made with, where the sweep now asks otherwise: each
  // difference reads "key: run's value -> sweep's value".
  std::map<std::string, std::map<std::string, int>> was;  // key -> run's value -> points
  for (const auto& p : points)
    for (const auto& d : point_config_differences(sweep, p)) {
      const size_t colon = d.find(": "), arrow = d.find(" -> ");
      if (colon == std::string::npos || arrow == std::string::npos || arrow < colon) continue;
      ++was[d.substr(0, colon)][d.substr(colon + 2, arrow - colon - 2)];
    }
  std::string msg = "refusing to replace the report in " + out.string() + ": it has " + std::to_string(before) +
                    " done point(s), this collection " + std::to_string(now) + " (" + status_summary(results) + ").";
  std::string same, mixed;
  for (const auto& [key, values] : was) {
    if (values.size() == 1 && values.begin()->first != "(not in the run's config)") {
      same += " " + shell_quote(key + "=" + values.begin()->first);
    } else {
      mixed += (mixed.empty() ? " " : "; ") + key + ":";
      for (const auto& [v, n] : values) mixed += " " + v + " (" + std::to_string(n) + " point(s))";
    }
  }
  if (!same.empty()) {
    std::string cmd = "aim-scale --config " + shell_quote(sweep.origin) + " --collect";
    for (const auto& o : sweep.extra_overrides)
      if (!was.count(o.substr(0, o.find('=')))) cmd += " " + shell_quote(o);
    msg += " The points' own config.yaml says they were run with" + same +
           ", which this command does not ask for. Collect them with: " + cmd + same + ".";
  }
  if (!mixed.empty()) msg += " Keys whose runs differ from point to point:" + mixed + ".";
  msg += " To write the poorer report anyway, add --replace-report.";
  return msg;
}

}  // namespace aim::scale
