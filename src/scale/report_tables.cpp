// The machine-readable half of the report: results.csv, curves.csv and fits.json.
#include <algorithm>
#include <cmath>
#include <sstream>

#include "report_parts.h"

namespace aim::scale {
namespace {

nlohmann::json number(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

nlohmann::json interval(const Interval& i) {
  return i.valid() ? nlohmann::json::array({i.lo, i.hi}) : nlohmann::json(nullptr);
}

nlohmann::json text_or_null(const std::string& s) { return s.empty() ? nlohmann::json(nullptr) : nlohmann::json(s); }

nlohmann::json law_json(const LawFit& f) {
  const ScalingLaw& l = f.law;
  if (!l.valid) return {{"valid", false}, {"why", l.why}};
  return {{"valid", true},
          {"E", l.E},
          {"A", l.A},
          {"alpha", l.alpha},
          {"alpha_at_bound", l.alpha_at_bound},
          {"rss", l.rss},
          {"rms", number(l.rms())},
          {"aicc", number(l.aicc())},
          {"n", l.n},
          {"E_ci", interval(f.E)},
          {"A_ci", interval(f.A)},
          {"alpha_ci", interval(f.alpha)},
          {"band", {{"x", f.band_x}, {"lo", f.band_lo}, {"hi", f.band_hi}}}};
}

nlohmann::json trend_json(const Trend& t) {
  nlohmann::json steps = nlohmann::json::array();
  for (const auto& s : t.steps)
    steps.push_back({{"from", s.from},
                     {"to", s.to},
                     {"loss_from", s.loss_from},
                     {"loss_to", s.loss_to},
                     {"drop_ci", interval(s.drop)},
                     {"verdict", s.verdict}});
  return {{"group", t.group}, {"verdict", t.verdict}, {"steps", steps}};
}

}  // namespace

std::string num(double v, int digits) {
  if (!std::isfinite(v)) return "";
  std::ostringstream o;
  o.precision(digits);
  o << v;
  return o.str();
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string results_csv(const std::vector<PointResult>& results) {
  std::vector<std::string> axis_keys;
  for (const auto& r : results)
    for (const auto& [k, v] : r.values)
      if (std::find(axis_keys.begin(), axis_keys.end(), k) == axis_keys.end()) axis_keys.push_back(k);
  std::ostringstream csv;
  csv << "point,status";
  for (const auto& k : axis_keys) csv << "," << csv_field(k);
  csv << ",setting,seed,trunk_params,total_params,train_flops_per_image,trunk_train_flops_per_image,steps,batch_size,"
         "images_seen,train_flops,trunk_train_flops,unique_images,final_train_loss,final_val_loss,probe_top1\n";
  for (const auto& r : results) {
    csv << csv_field(r.name) << "," << r.status;
    for (const auto& k : axis_keys) {
      std::string v;
      for (const auto& [kk, vv] : r.values)
        if (kk == k) v = vv;
      csv << "," << csv_field(v);
    }
    csv << "," << csv_field(r.setting) << "," << r.seed << "," << r.trunk_params << "," << r.total_params << ","
        << num(r.flops_per_image, 12) << "," << num(r.trunk_flops_per_image, 12) << "," << r.steps << ","
        << r.batch_size << "," << num(r.images_seen, 15) << "," << num(r.train_flops, 12) << ","
        << num(r.trunk_train_flops, 12) << "," << (r.unique_images > 0 ? std::to_string(r.unique_images) : "") << ","
        << num(r.train_loss, 6) << "," << num(r.val_loss, 6) << "," << num(r.probe_top1, 6) << "\n";
  }
  return csv.str();
}

std::string curves_csv(const std::vector<PointResult>& results) {
  std::ostringstream curves;
  curves << "point,status,setting,seed,trunk_params,unique_images,step,final,train_flops,trunk_train_flops,val_loss\n";
  for (const auto& r : results)
    for (const auto& c : r.val_curve)
      curves << csv_field(r.name) << "," << r.status << "," << csv_field(r.setting) << "," << r.seed << ","
             << r.trunk_params << "," << (r.unique_images > 0 ? std::to_string(r.unique_images) : "") << "," << c.step
             << "," << (c.final ? 1 : 0) << "," << num(c.train_flops, 12) << "," << num(c.trunk_train_flops, 12) << ","
             << num(c.val_loss, 6) << "\n";
  return curves.str();
}

nlohmann::json fits_json(const StudyFits& f, int resamples) {
  nlohmann::json fits = nlohmann::json::array();
  for (const auto& a : f.fits)
    fits.push_back({{"id", a.id},
                    {"axis", a.axis},
                    {"symbol", a.symbol},
                    {"where", a.where},
                    {"runs", a.runs},
                    {"distinct_x", a.distinct_x},
                    {"too_few", text_or_null(a.too_few)},
                    {"no_interval", text_or_null(a.no_interval)},
                    {"saturating", a.too_few.empty() ? law_json(a.saturating) : nlohmann::json(nullptr)},
                    {"power_law", a.too_few.empty() ? law_json(a.power_law) : nlohmann::json(nullptr)},
                    {"delta_aicc", number(a.delta_aicc)},
                    {"preferred", a.preferred()}});
  nlohmann::json wider = nlohmann::json::array(), more_data = nlohmann::json::array();
  for (const auto& t : f.wider) wider.push_back(trend_json(t));
  for (const auto& t : f.more_data) more_data.push_back(trend_json(t));
  const Correlation& c = f.accuracy;
  return {{"method",
           {{"resamples", resamples},
            {"level", 0.95},
            {"intervals", "percentile; stratified bootstrap over the runs of each setting (runs differing only in "
                          "train.seed), every choice and fit redone per resample"},
            {"least_squares", "on L itself, E >= 0, A >= 0, 0 <= alpha <= 4; AICc on the same residuals"},
            {"validation_images", "not resampled: aim-train records the mean validation loss only"}}},
          {"fits", fits},
          {"trends", {{"wider", wider}, {"more_data", more_data}}},
          {"accuracy_loss",
           {{"n", c.n},
            {"pearson", number(c.r)},
            {"pearson_ci", interval(c.interval)},
            {"verdict", c.verdict},
            {"slope", c.n >= 3 && c.line.n >= 2 ? number(c.line.slope) : nlohmann::json(nullptr)},
            {"intercept", c.n >= 3 && c.line.n >= 2 ? number(c.line.intercept) : nlohmann::json(nullptr)}}}};
}

}  // namespace aim::scale
