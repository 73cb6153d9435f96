#include "aim/scale/scaling_fit.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace aim::scale {

double PowerLaw::operator()(double x) const { return a * std::pow(x, b); }

LinearFit fit_line(const std::vector<std::pair<double, double>>& xy) {
  LinearFit f;
  f.n = static_cast<int>(xy.size());
  if (xy.size() < 2) return f;
  double mx = 0, my = 0;
  for (const auto& [x, y] : xy) mx += x, my += y;
  mx /= xy.size(), my /= xy.size();
  double sxx = 0, sxy = 0;
  for (const auto& [x, y] : xy) sxx += (x - mx) * (x - mx), sxy += (x - mx) * (y - my);
  if (sxx == 0) {
    f.n = 1;  // all x equal: no slope to fit
    return f;
  }
  f.slope = sxy / sxx;
  f.intercept = my - f.slope * mx;
  return f;
}

PowerLaw fit_power_law(const std::vector<std::pair<double, double>>& xy) {
  std::vector<std::pair<double, double>> logs;
  for (const auto& [x, y] : xy)
    if (x > 0 && y > 0 && std::isfinite(x) && std::isfinite(y)) logs.emplace_back(std::log(x), std::log(y));
  PowerLaw p;
  const LinearFit l = fit_line(logs);
  p.n = l.n;
  if (l.n < 2) return p;
  p.b = l.slope;
  p.a = std::exp(l.intercept);
  double my = 0;
  for (const auto& q : logs) my += q.second;
  my /= logs.size();
  double ss_res = 0, ss_tot = 0;
  for (const auto& [lx, ly] : logs) {
    const double pred = l.intercept + l.slope * lx;
    ss_res += (ly - pred) * (ly - pred);
    ss_tot += (ly - my) * (ly - my);
  }
  p.r2 = ss_tot > 0 ? 1 - ss_res / ss_tot : 1.0;
  return p;
}

std::vector<std::pair<double, double>> pareto_frontier(std::vector<std::pair<double, double>> xy) {
  std::sort(xy.begin(), xy.end());
  std::vector<std::pair<double, double>> out;
  double best = std::numeric_limits<double>::infinity();
  for (const auto& p : xy) {
    if (!std::isfinite(p.second)) continue;
    if (p.second < best) {
      // Same x as the last kept point: the lower y replaces it.
      if (!out.empty() && out.back().first == p.first) out.pop_back();
      out.push_back(p);
      best = p.second;
    }
  }
  return out;
}

double pearson(const std::vector<std::pair<double, double>>& xy) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (xy.size() < 2) return nan;
  double mx = 0, my = 0;
  for (const auto& [x, y] : xy) mx += x, my += y;
  mx /= xy.size(), my /= xy.size();
  double sxx = 0, syy = 0, sxy = 0;
  for (const auto& [x, y] : xy) sxx += (x - mx) * (x - mx), syy += (y - my) * (y - my), sxy += (x - mx) * (y - my);
  if (sxx == 0 || syy == 0) return nan;
  return sxy / std::sqrt(sxx * syy);
}

}  // namespace aim::scale
