#include "aim/scale/sweep_report.h"

#include <spdlog/spdlog.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "aim/config/run_config.h"
#include "aim/error.h"
#include "aim/io/atomic_file.h"
#include "aim/io/json_lines.h"
#include "aim/model/model_stats.h"
#include "aim/scale/sweep_runner.h"

namespace fs = std::filesystem;

namespace aim::scale {
namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

/// Several runs at one (size, data) (other lrs, seeds): the best one is what the size and data
/// can reach.
void keep_best(std::map<int64_t, double>& m, int64_t key, double loss) {
  auto it = m.find(key);
  if (it == m.end() || loss < it->second) m[key] = loss;
}

std::string num(double v, int digits = 4) {
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

std::string human(double v) {
  const char* units[] = {"", "k", "M", "G", "T", "P", "E"};
  int u = 0;
  while (std::fabs(v) >= 1000 && u < 6) v /= 1000, ++u;
  std::ostringstream o;
  o.precision(3);
  o << v << units[u];
  return o.str();
}

}  // namespace

std::vector<PointResult> collect_results(const SweepConfig& sweep, const std::vector<SweepPoint>& points) {
  std::vector<PointResult> out;
  for (const auto& p : points) {
    PointResult r;
    r.name = p.name;
    r.values = p.values;
    r.train_loss = r.val_loss = r.probe_top1 = kNaN;
    const fs::path dir(p.dir);
    // Every number from the run's own config: the sweep may ask for something else by now.
    const auto differences = point_config_differences(sweep, p);
    config::RunConfig cfg;
    bool own_config = false;
    if (fs::is_regular_file(dir / "config.yaml")) {
      try {
        cfg = config::load_run_config((dir / "config.yaml").string());
        own_config = true;
      } catch (const Error& e) {
        spdlog::warn("point {}: its config.yaml does not load ({}); using the sweep's config", p.name, e.what());
      }
    }
    if (!own_config) cfg = config::load_run_config(sweep.base, point_overrides(sweep, p));
    const auto params = model::count_parameters(cfg.model);
    r.trunk_params = params.trunk;
    r.total_params = params.total();
    r.flops_per_image = model::count_flops(cfg.model).training();
    r.steps = cfg.train.steps;
    r.batch_size = cfg.train.batch_size;
    r.unique_images = 0;
    for (const auto& s : cfg.data.sources) {
      const int64_t n = s.limit > 0 ? s.limit : (s.kind == "synthetic" ? s.size : -1);
      if (n < 0 || r.unique_images < 0) r.unique_images = -1;
      else r.unique_images += n;
    }

    std::vector<double> losses;  // NaN where the run logged a non-finite loss (null)
    int64_t last_step = 0;
    bool val_nonfinite = false;
    {
      for (const auto& j : io::read_json_lines((dir / "metrics.jsonl").string())) {
        const int64_t step = j.value("step", int64_t(0));
        last_step = std::max(last_step, step);
        if (j.contains("loss")) losses.push_back(j["loss"].is_number() ? j["loss"].get<double>() : kNaN);
        if (j.contains("val_loss")) {
          val_nonfinite = !j["val_loss"].is_number() || !std::isfinite(j["val_loss"].get<double>());
          if (!val_nonfinite)
            r.val_curve.push_back({step, static_cast<double>(step) * r.batch_size * r.flops_per_image,
                                   j["val_loss"].get<double>()});
        }
      }
    }
    if (!losses.empty()) {  // mean of the last 5 logged losses: less noise than one batch
      const size_t k = std::min<size_t>(5, losses.size());
      double s = 0;
      for (size_t i = losses.size() - k; i < losses.size(); ++i) s += losses[i];
      r.train_loss = s / k;
    }
    if (!r.val_curve.empty()) r.val_loss = r.val_curve.back().val_loss;
    r.images_seen = static_cast<double>(last_step) * r.batch_size;
    r.train_flops = r.images_seen * r.flops_per_image;
    if (std::ifstream in{dir / "probe" / "results.json"}) {
      try {
        r.probe_top1 = nlohmann::json::parse(in)["best"]["top1"].get<double>();
      } catch (const std::exception&) {
      }
    }
    const bool finished = fs::is_regular_file(dir / "trunk.safetensors") &&
                          (!sweep.probe || std::isfinite(r.probe_top1)) && differences.empty();
    r.status = finished ? "done" : (fs::exists(dir / "metrics.jsonl") ? "running" : "missing");
    if (r.status == "running")
      r.note = "unfinished: logged up to step " + std::to_string(last_step) + " of " + std::to_string(r.steps) +
               (fs::is_regular_file(dir / "trunk.safetensors") && sweep.probe ? ", no probe results" : "");
    if (r.status == "missing") r.note = "not run yet";
    if (std::ifstream in{dir / "point.json"}) {
      try {
        auto j = nlohmann::json::parse(in);
        if (!finished && j.value("status", "") == "failed") {
          r.status = "failed";
          r.error = j.value("error", "");
          r.note = "aim-train failed (exit " + std::to_string(j.value("exit_code", 0)) + "; log tail below)";
        }
      } catch (const std::exception&) {
      }
    }
    if (!differences.empty()) {
      r.status = "stale";
      r.note = "its run was made with another config than the sweep asks now:";
      for (const auto& d : differences) r.note += " " + d + ";";
      r.note += " run aim-scale without --collect to run it again";
    }
    // A run that blew up still finishes (non-finite steps are skipped up to train.max_nonfinite)
    // but its numbers would bend every fit.
    if (r.status == "done" && !losses.empty()) {
      const double first = losses.front();
      if (!std::isfinite(r.train_loss) || val_nonfinite) {
        r.status = "diverged";
        r.note = std::string("diverged: non-finite final ") + (val_nonfinite ? "validation" : "training") + " loss";
      } else if (r.train_loss > first) {
        r.status = "diverged";
        r.note = "diverged: final training loss " + num(r.train_loss) + " (mean of the last logged) is above the first " +
                 num(first);
      }
    }
    out.push_back(r);
  }
  return out;
}

ScalingFits fit_scaling(const std::vector<PointResult>& results) {
  ScalingFits f;
  std::map<int64_t, double> best_by_size;
  std::map<int64_t, std::map<int64_t, double>> by_size_data;
  std::vector<std::pair<double, double>> curve, acc;
  for (const auto& r : results) {
    if (r.status != "done") continue;  // failed, diverged, stale or unfinished: no evidence
    for (const auto& c : r.val_curve) curve.emplace_back(c.train_flops, c.val_loss);
    if (!std::isfinite(r.val_loss)) continue;
    auto it = best_by_size.find(r.trunk_params);
    if (it == best_by_size.end() || r.val_loss < it->second) best_by_size[r.trunk_params] = r.val_loss;
    if (r.unique_images > 0) keep_best(by_size_data[r.trunk_params], r.unique_images, r.val_loss);
    if (std::isfinite(r.probe_top1)) acc.emplace_back(r.val_loss, r.probe_top1);
  }
  std::vector<std::pair<double, double>> sizes;
  for (const auto& [n, l] : best_by_size) sizes.emplace_back(static_cast<double>(n), l);
  f.loss_vs_params = fit_power_law(sizes);
  f.frontier = pareto_frontier(curve);
  f.loss_vs_compute = fit_power_law(f.frontier);
  for (const auto& [n, m] : by_size_data) {
    std::vector<std::pair<double, double>> xy;
    for (const auto& [d, l] : m) xy.emplace_back(static_cast<double>(d), l);
    if (xy.size() >= 2) f.loss_vs_data.emplace_back(n, fit_power_law(xy));
  }
  f.accuracy_loss_pearson = pearson(acc);
  f.accuracy_vs_loss = fit_line(acc);
  return f;
}

std::string write_report(const SweepConfig& sweep, const std::vector<PointResult>& results, const std::string& python,
                         const std::string& plot_script) {
  const fs::path out(sweep.out_dir);
  fs::create_directories(out);
  std::vector<std::string> axis_keys;
  for (const auto& r : results)
    for (const auto& [k, v] : r.values)
      if (std::find(axis_keys.begin(), axis_keys.end(), k) == axis_keys.end()) axis_keys.push_back(k);

  // results.csv: one row per point.
  std::ostringstream csv;
  csv << "point,status";
  for (const auto& k : axis_keys) csv << "," << csv_field(k);
  csv << ",trunk_params,total_params,train_flops_per_image,steps,batch_size,images_seen,train_flops,unique_images,"
         "final_train_loss,final_val_loss,probe_top1\n";
  for (const auto& r : results) {
    csv << csv_field(r.name) << "," << r.status;
    for (const auto& k : axis_keys) {
      std::string v;
      for (const auto& [kk, vv] : r.values)
        if (kk == k) v = vv;
      csv << "," << csv_field(v);
    }
    csv << "," << r.trunk_params << "," << r.total_params << "," << num(r.flops_per_image, 8) << "," << r.steps << ","
        << r.batch_size << "," << num(r.images_seen, 12) << "," << num(r.train_flops, 8) << ","
        << (r.unique_images > 0 ? std::to_string(r.unique_images) : "") << "," << num(r.train_loss, 6) << ","
        << num(r.val_loss, 6) << "," << num(r.probe_top1, 6) << "\n";
  }
  io::write_file_atomic((out / "results.csv").string(), csv.str());

  // curves.csv: every validation record, for the loss-vs-compute plot.
  std::ostringstream curves;
  curves << "point,trunk_params,unique_images,step,train_flops,val_loss\n";
  for (const auto& r : results)
    for (const auto& c : r.val_curve)
      curves << csv_field(r.name) << "," << r.trunk_params << "," << (r.unique_images > 0 ? std::to_string(r.unique_images) : "")
             << "," << c.step << "," << num(c.train_flops, 8) << "," << num(c.val_loss, 6) << "\n";
  io::write_file_atomic((out / "curves.csv").string(), curves.str());

  const ScalingFits f = fit_scaling(results);
  auto law = [](const PowerLaw& p) {
    return p.valid() ? nlohmann::json{{"a", p.a}, {"b", p.b}, {"r2", p.r2}, {"n", p.n}} : nlohmann::json(nullptr);
  };
  nlohmann::json fits = {{"loss_vs_params", law(f.loss_vs_params)},
                         {"loss_vs_compute", law(f.loss_vs_compute)},
                         {"frontier", f.frontier},
                         {"accuracy_loss_pearson", std::isfinite(f.accuracy_loss_pearson)
                                                       ? nlohmann::json(f.accuracy_loss_pearson)
                                                       : nlohmann::json(nullptr)},
                         {"accuracy_vs_loss", f.accuracy_vs_loss.n >= 2
                                                  ? nlohmann::json{{"slope", f.accuracy_vs_loss.slope},
                                                                   {"intercept", f.accuracy_vs_loss.intercept}}
                                                  : nlohmann::json(nullptr)}};
  nlohmann::json per_size = nlohmann::json::object();
  for (const auto& [n, p] : f.loss_vs_data) per_size[std::to_string(n)] = law(p);
  fits["loss_vs_data"] = per_size;
  io::write_file_atomic((out / "fits.json").string(), fits.dump(2) + "\n");

  // Plots first, so the report can say whether they exist.
  bool plotted = false;
  if (!python.empty() && fs::is_regular_file(plot_script)) {
    const std::string cmd = python + " '" + plot_script + "' '" + out.string() + "'";
    plotted = std::system(cmd.c_str()) == 0;
    if (!plotted) spdlog::warn("plotting failed ({}); the report has the tables and fits only", cmd);
  }

  // report.md
  std::ostringstream md;
  md << "# Scaling study: " << sweep.origin << "\n\n";
  md << "Base config `" << sweep.base << "`";
  if (!sweep.overrides.empty()) {
    md << " with";
    for (const auto& o : sweep.overrides) md << " `" << o << "`";
  }
  md << "; " << results.size() << " points";
  size_t done = 0;
  for (const auto& r : results) done += r.status == "done";
  md << " (" << done << " done).\n\n";
  md << "| point | status | trunk params | steps | training FLOPs | images seen | unique images | train loss | val loss | "
        "probe top-1 % |\n";
  md << "|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& r : results)
    md << "| " << r.name << " | " << r.status << " | " << human(r.trunk_params) << " | " << r.steps << " | "
       << human(r.train_flops) << " | "
       << human(r.images_seen) << " | " << (r.unique_images > 0 ? human(r.unique_images) : "all") << " | "
       << num(r.train_loss) << " | " << num(r.val_loss) << " | "
       << (std::isfinite(r.probe_top1) ? num(100 * r.probe_top1) : "") << " |\n";

  md << "\n## Fits\n\n";
  size_t left_out = 0;
  for (const auto& r : results) left_out += r.status != "done";
  if (left_out > 0) {
    md << "Fits and trends use the " << done << " done point(s); left out:\n\n";
    for (const auto& r : results)
      if (r.status != "done") md << "- " << r.name << " (" << r.status << "): " << r.note << "\n";
    md << "\n";
  }
  auto law_text = [](const PowerLaw& p, const char* x) {
    if (!p.valid()) return std::string("not enough points");
    std::ostringstream o;
    o.precision(4);
    o << "L = " << p.a << " · " << x << "^" << p.b << " (R² " << p.r2 << ", " << p.n << " points)";
    return o.str();
  };
  md << "- Validation loss vs trunk parameters (best run per size): " << law_text(f.loss_vs_params, "N") << "\n";
  md << "- Validation loss vs training compute (Pareto frontier of every validation point): "
     << law_text(f.loss_vs_compute, "C") << "\n";
  for (const auto& [n, p] : f.loss_vs_data)
    md << "- Validation loss vs unique images at " << human(n) << " trunk parameters: " << law_text(p, "D") << "\n";
  md << "- Probe top-1 vs validation loss: Pearson r = " << num(f.accuracy_loss_pearson, 3);
  if (f.accuracy_vs_loss.n >= 2)
    md << "; top-1 ≈ " << num(f.accuracy_vs_loss.intercept) << (f.accuracy_vs_loss.slope < 0 ? " − " : " + ")
       << num(std::fabs(f.accuracy_vs_loss.slope)) << " · L";
  md << "\n";

  // The paper's claims, checked on this sweep: a claim holds for a group when the ordering is
  // strictly monotone in it.
  md << "\n## Trends (the paper's claims, checked here)\n\n";
  std::map<int64_t, std::map<int64_t, double>> by_data_size;  // unique images -> params -> loss
  std::map<int64_t, std::map<int64_t, double>> by_size_data;  // params -> unique images -> loss
  for (const auto& r : results)
    if (r.status == "done" && std::isfinite(r.val_loss)) {
      keep_best(by_data_size[r.unique_images], r.trunk_params, r.val_loss);
      keep_best(by_size_data[r.trunk_params], r.unique_images, r.val_loss);
    }
  auto monotone_falls = [](const std::map<int64_t, double>& m) {
    double prev = std::numeric_limits<double>::infinity();
    for (const auto& [k, v] : m) {
      if (!(v < prev)) return false;
      prev = v;
    }
    return true;
  };
  int wide_total = 0, wide_ok = 0, data_total = 0, data_ok = 0;
  std::ostringstream detail;
  for (const auto& [d, m] : by_data_size)
    if (m.size() >= 2) {
      ++wide_total;
      const bool ok = monotone_falls(m);
      wide_ok += ok;
      detail << "  - " << (d > 0 ? human(d) : std::string("all")) << " unique images: ";
      for (const auto& [n, l] : m) detail << human(n) << " → " << num(l) << "; ";
      detail << (ok ? "falls with size" : "**does not fall monotonically**") << "\n";
    }
  if (wide_total == 0)
    md << "- Wider/larger model ⇒ lower validation loss: not checked: no data size has two or more model sizes "
          "that finished (no model-size axis).\n";
  else
    md << "- Wider/larger model ⇒ lower validation loss: holds for " << wide_ok << " of " << wide_total
       << " data sizes.\n" << detail.str();
  detail.str("");
  for (const auto& [n, m] : by_size_data) {
    std::map<int64_t, double> known;
    for (const auto& [d, l] : m)
      if (d > 0) known[d] = l;
    if (known.size() >= 2) {
      ++data_total;
      const bool ok = monotone_falls(known);
      data_ok += ok;
      detail << "  - " << human(n) << " parameters: ";
      for (const auto& [d, l] : known) detail << human(d) << " images → " << num(l) << "; ";
      detail << (ok ? "falls with data" : "**does not fall monotonically**") << "\n";
    }
  }
  if (data_total == 0)
    md << "- More unique data ⇒ lower validation loss: not checked: no model size has two or more known data sizes "
          "(source limits) that finished (no data axis).\n";
  else
    md << "- More unique data ⇒ lower validation loss: holds for " << data_ok << " of " << data_total
       << " model sizes.\n" << detail.str();
  if (std::isfinite(f.accuracy_loss_pearson))
    md << "- Lower loss ⇒ higher probe accuracy: Pearson r(val loss, top-1) = " << num(f.accuracy_loss_pearson, 3)
       << (f.accuracy_loss_pearson < -0.5  ? " (holds)"
           : f.accuracy_loss_pearson > 0.5 ? " (**reversed at this scale**: higher loss came with higher accuracy)"
                                           : " (**weak at this scale**)")
       << ".\n";

  if (plotted) {
    md << "\n## Plots\n\n";
    for (const auto& [file, title] : std::vector<std::pair<std::string, std::string>>{
             {"loss_vs_compute.png", "Validation loss vs training compute, per model size, with the fitted frontier"},
             {"loss_vs_params.png", "Final validation loss vs trunk parameters, per data size"},
             {"accuracy_vs_loss.png", "Probe top-1 vs final validation loss"}})
      if (fs::exists(out / file)) md << "![" << title << "](" << file << ")\n\n";
  }
  bool any_failed = false;
  for (const auto& r : results) any_failed |= r.status == "failed";
  if (any_failed) {
    md << "\n## Failed points\n\n";
    for (const auto& r : results)
      if (r.status == "failed") md << "### " << r.name << "\n\n```\n" << r.error << "```\n\n";
  }
  md << "\nFiles: `results.csv` (one row per point), `curves.csv` (every validation record), `fits.json`.\n";
  const std::string report = (out / "report.md").string();
  io::write_file_atomic(report, md.str());
  return report;
}

}  // namespace aim::scale
