// fit_study: the settings of every axis, built from a sweep's finished runs, fitted and checked
// (the statistics themselves are in axis_fit.cpp).
#include <cmath>
#include <map>
#include <set>
#include <sstream>

#include "aim/scale/study_fits.h"

namespace aim::scale {
namespace {

/// One setting's runs (replicates: the same point values but train.seed) with its coordinates.
struct Group {
  int64_t trunk_params = 0, total_params = 0, unique_images = -1;
  double train_flops = 0, trunk_train_flops = 0;
  std::string name;
  std::vector<double> losses;
  std::vector<double> top1;
};

/// Unbounded data (-1) sorts after every known size.
double data_order(int64_t unique_images) { return unique_images < 0 ? INFINITY : double(unique_images); }

std::string data_label(int64_t unique_images) {
  return unique_images < 0 ? std::string("all images") : human(double(unique_images)) + " unique images";
}

template <typename Pick, typename X>
std::vector<Setting> settings_where(const std::vector<Group>& groups, Pick pick, X x) {
  std::vector<Setting> out;
  for (const auto& g : groups)
    if (pick(g)) out.push_back({g.name, x(g), g.losses});
  return out;
}

size_t distinct_x(const std::vector<Setting>& s) {
  std::set<double> xs;
  for (const auto& v : s) xs.insert(v.x);
  return xs.size();
}

}  // namespace

std::string human(double v) {
  const char* units[] = {"", "k", "M", "G", "T", "P", "E"};
  int u = 0;
  while (std::fabs(v) >= 1000 && u < 6) v /= 1000, ++u;
  std::ostringstream o;
  o.precision(3);
  o << v << units[u];
  return o.str();
}

StudyFits fit_study(const std::vector<PointResult>& results, int resamples) {
  // Settings: runs of one point-without-seed, with the same model, data and compute.
  std::map<std::string, Group> by_key;
  std::vector<std::pair<double, double>> loss_top1;
  for (const auto& r : results) {
    if (r.status != "done" || !std::isfinite(r.val_loss)) continue;  // no evidence
    std::ostringstream key;
    key.precision(17);
    key << r.setting << '|' << r.trunk_params << '|' << r.total_params << '|' << r.unique_images << '|'
        << r.train_flops;
    Group& g = by_key[key.str()];
    g.name = r.setting;
    g.trunk_params = r.trunk_params, g.total_params = r.total_params, g.unique_images = r.unique_images;
    g.train_flops = r.train_flops, g.trunk_train_flops = r.trunk_train_flops;
    g.losses.push_back(r.val_loss);
    if (std::isfinite(r.probe_top1)) loss_top1.emplace_back(r.val_loss, r.probe_top1);
  }
  std::vector<Group> groups;
  for (auto& [k, g] : by_key) groups.push_back(std::move(g));

  StudyFits f;
  auto add = [&](AxisFit fit, const char* id, const char* axis, const char* symbol, const std::string& where) {
    fit.id = id, fit.axis = axis, fit.symbol = symbol, fit.where = where;
    f.fits.push_back(std::move(fit));
  };
  std::set<int64_t> data_sizes, model_sizes;
  for (const auto& g : groups) data_sizes.insert(g.unique_images), model_sizes.insert(g.trunk_params);

  // Loss vs parameters at the largest data size: the least data-limited runs.
  if (!groups.empty()) {
    int64_t most = *data_sizes.begin();
    for (int64_t d : data_sizes)
      if (data_order(d) > data_order(most)) most = d;
    f.params_data_group = data_label(most);
    auto at_most = [&](const Group& g) { return g.unique_images == most; };
    const auto trunk = settings_where(groups, at_most, [](const Group& g) { return double(g.trunk_params); });
    if (distinct_x(trunk) >= 2) {
      add(fit_axis(trunk, false, resamples), "loss_vs_trunk_params", "trunk parameters", "N", "at " + f.params_data_group);
      add(fit_axis(settings_where(groups, at_most, [](const Group& g) { return double(g.total_params); }), false,
                   resamples),
          "loss_vs_total_params", "total parameters (trunk + head)", "N", "at " + f.params_data_group);
    }
  }
  // Loss vs unique images, per model size.
  for (int64_t n : model_sizes) {
    const auto s = settings_where(
        groups, [&](const Group& g) { return g.trunk_params == n && g.unique_images > 0; },
        [](const Group& g) { return double(g.unique_images); });
    if (distinct_x(s) >= 2)
      add(fit_axis(s, false, resamples), "loss_vs_data", "unique images", "D", "at " + human(double(n)) + " trunk parameters");
  }
  // Loss vs compute: the frontier of final points (a run's end, not its intermediate validations).
  const auto compute = settings_where(groups, [](const Group& g) { return g.train_flops > 0; },
                                      [](const Group& g) { return g.train_flops; });
  if (distinct_x(compute) >= 2) {
    add(fit_axis(compute, true, resamples), "loss_vs_compute", "training FLOPs", "C", "frontier of final points");
    add(fit_axis(settings_where(groups, [](const Group& g) { return g.trunk_train_flops > 0; },
                                [](const Group& g) { return g.trunk_train_flops; }),
                 true, resamples),
        "loss_vs_trunk_compute", "trunk training FLOPs", "C", "frontier of final points");
  }

  for (int64_t d : data_sizes) {
    const auto s = settings_where(groups, [&](const Group& g) { return g.unique_images == d; },
                                  [](const Group& g) { return double(g.trunk_params); });
    if (distinct_x(s) >= 2) f.wider.push_back(trend(data_label(d), s, resamples));
  }
  for (int64_t n : model_sizes) {
    const auto s = settings_where(
        groups, [&](const Group& g) { return g.trunk_params == n && g.unique_images > 0; },
        [](const Group& g) { return double(g.unique_images); });
    if (distinct_x(s) >= 2) f.more_data.push_back(trend(human(double(n)) + " parameters", s, resamples));
  }
  f.accuracy = loss_accuracy(loss_top1, resamples);
  return f;
}

}  // namespace aim::scale
