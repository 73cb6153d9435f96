#include "aim/scale/point_results.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "aim/config/run_config.h"
#include "aim/error.h"
#include "aim/io/json_lines.h"
#include "aim/model/model_stats.h"
#include "aim/scale/sweep_runner.h"
#include "aim/train/run_status.h"

namespace fs = std::filesystem;

namespace aim::scale {
namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string loss_text(double v) {
  std::ostringstream o;
  o.precision(4);
  o << v;
  return o.str();
}

std::string this_host() {
  char buf[256] = {};
  return ::gethostname(buf, sizeof buf - 1) == 0 ? buf : "";
}

/// A "running" status whose process is gone on this very host: killed without a word
/// (SIGKILL from a scheduler or the out-of-memory killer). On another host nothing is known.
bool process_gone(const train::RunStatus& s) {
  if (s.pid <= 0 || s.host.empty() || s.host != this_host()) return false;
  return ::kill(static_cast<pid_t>(s.pid), 0) != 0 && errno == ESRCH;
}

/// The run's numbers from its own config: the sweep may ask for something else by now.
void read_config_numbers(const config::RunConfig& cfg, PointResult& r) {
  const auto params = model::count_parameters(cfg.model);
  const auto flops = model::count_flops(cfg.model);
  r.trunk_params = params.trunk;
  r.total_params = params.total();
  r.flops_per_image = flops.training();
  r.trunk_flops_per_image = 3.0 * flops.trunk_forward;  // backward costs twice the forward
  r.steps = cfg.train.steps;
  r.batch_size = cfg.train.batch_size;  // the global batch: images per optimizer step over every rank
  r.seed = static_cast<int64_t>(cfg.train.seed);
  r.unique_images = 0;
  for (const auto& s : cfg.data.sources) {
    const int64_t n = s.limit > 0 ? s.limit : (s.kind == "synthetic" ? s.size : -1);
    if (n < 0 || r.unique_images < 0) r.unique_images = -1;
    else r.unique_images += n;
  }
}

}  // namespace

std::vector<PointResult> collect_results(const SweepConfig& sweep, const std::vector<SweepPoint>& points) {
  std::vector<PointResult> out;
  for (const auto& p : points) {
    PointResult r;
    r.name = p.name;
    r.values = p.values;
    for (const auto& [k, v] : p.values)
      if (k != "train.seed") r.setting += (r.setting.empty() ? "" : ",") + k + "=" + v;
    r.train_loss = r.val_loss = r.probe_top1 = kNaN;
    const fs::path dir(p.dir);
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
    read_config_numbers(cfg, r);

    std::vector<double> losses;  // NaN where the run logged a non-finite loss (null)
    int64_t last_step = 0;
    bool val_nonfinite = false;
    for (const auto& j : io::read_json_lines((dir / "metrics.jsonl").string())) {
      const int64_t step = j.value("step", int64_t(0));
      last_step = std::max(last_step, step);
      if (j.contains("loss")) losses.push_back(j["loss"].is_number() ? j["loss"].get<double>() : kNaN);
      if (j.contains("val_loss")) {
        val_nonfinite = !j["val_loss"].is_number() || !std::isfinite(j["val_loss"].get<double>());
        if (!val_nonfinite) {
          // Images seen up to `step`: step × the global batch (one optimizer step consumes it).
          const double images = static_cast<double>(step) * r.batch_size;
          r.val_curve.push_back({step, images * r.flops_per_image, images * r.trunk_flops_per_image,
                                 j["val_loss"].get<double>(), step == r.steps});
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
    r.trunk_train_flops = r.images_seen * r.trunk_flops_per_image;
    if (std::ifstream in{dir / "probe" / "results.json"}) {
      try {
        r.probe_top1 = nlohmann::json::parse(in)["best"]["top1"].get<double>();
      } catch (const std::exception&) {
      }
    }
    const auto run_status = train::read_run_status(p.dir);
    const bool stopped_badly = run_status && (run_status->status == "failed" || run_status->status == "interrupted");
    const bool finished = fs::is_regular_file(dir / "trunk.safetensors") &&
                          (!sweep.probe || std::isfinite(r.probe_top1)) && differences.empty() && !stopped_badly;
    r.status = finished ? "done" : (fs::exists(dir / "metrics.jsonl") ? "running" : "missing");
    if (r.status == "running")
      r.note = "unfinished: logged up to step " + std::to_string(last_step) + " of " + std::to_string(r.steps) +
               (fs::is_regular_file(dir / "trunk.safetensors") && sweep.probe ? ", no probe results" : "");
    if (r.status == "missing") r.note = "not run yet";
    // aim-train's own word on how it ended: what a scheduler's job leaves behind.
    if (run_status && !finished) {
      const auto& s = *run_status;
      const std::string where = " (pid " + std::to_string(s.pid) + " on " + s.host + ", " + s.time + ")";
      if (s.status == "failed") {
        r.status = "failed";
        r.error = s.reason + "\n";
        r.note = "aim-train failed (exit " + std::to_string(s.exit_code) + "): " + s.reason;
      } else if (s.status == "interrupted") {
        r.status = "interrupted";
        r.note = "interrupted: " + s.reason + "; run its command again to continue from the checkpoint";
      } else if (s.status == "running" && process_gone(s)) {
        r.status = "failed";
        r.error = "aim-train" + where + " is gone without writing its final status: killed (SIGKILL, out of memory?)\n";
        r.note = "aim-train was killed" + where + " after step " + std::to_string(last_step) + " of " +
                 std::to_string(r.steps) + " without writing its final status (SIGKILL, out of memory?)";
      } else if (s.status == "running") {
        r.status = "running";
        if (r.note.empty() || r.note == "not run yet") r.note = "unfinished";
        r.note += "; aim-train running" + where;
      }
    }
    if (std::ifstream in{dir / "point.json"}) {
      try {
        auto j = nlohmann::json::parse(in);
        if (!finished && r.status != "failed" && j.value("status", "") == "failed") {
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
        r.note = "diverged: final training loss " + loss_text(r.train_loss) + " (mean of the last logged) is above the first " +
                 loss_text(first);
      }
    }
    out.push_back(r);
  }
  return out;
}

std::string status_summary(const std::vector<PointResult>& results) {
  std::map<std::string, size_t> counts;
  for (const auto& r : results) ++counts[r.status];
  std::string out = std::to_string(results.size()) + (results.size() == 1 ? " point: " : " points: ") +
                    std::to_string(counts["done"]) + " done";
  for (const char* s : {"diverged", "failed", "interrupted", "stale", "running", "missing"})
    if (counts[s] > 0) out += ", " + std::to_string(counts[s]) + " " + s;
  return out;
}

}  // namespace aim::scale
