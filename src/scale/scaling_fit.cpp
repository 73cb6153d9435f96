#include "aim/scale/scaling_fit.h"

#include <algorithm>
#include <limits>
#include <set>

namespace aim::scale {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

struct Linear {
  double E = 0, A = 0, rss = kInf;
};

// For one exponent the model is linear in (E, A): y ≈ E + A·z. The least squares with E ≥ 0 and
// A ≥ 0 is the unconstrained optimum when it is feasible, else the best of the faces E = 0 and
// A = 0 (each clamped at 0, which covers the corner). The pure power law is the face E = 0.
Linear solve_linear(const std::vector<double>& z, const std::vector<double>& y, bool saturating) {
  const double n = static_cast<double>(z.size());
  double sz = 0, szz = 0, sy = 0, szy = 0;
  for (size_t i = 0; i < z.size(); ++i) sz += z[i], szz += z[i] * z[i], sy += y[i], szy += z[i] * y[i];
  Linear best;
  auto consider = [&](double E, double A) {
    if (!(E >= 0) || !(A >= 0)) return;
    double rss = 0;
    for (size_t i = 0; i < z.size(); ++i) rss += (y[i] - E - A * z[i]) * (y[i] - E - A * z[i]);
    if (rss < best.rss) best = {E, A, rss};
  };
  consider(0, szz > 0 ? std::max(0.0, szy / szz) : 0);
  if (saturating) {
    consider(std::max(0.0, sy / n), 0);
    const double det = n * szz - sz * sz;
    if (det > 1e-12 * n * szz) {
      const double A = (n * szy - sz * sy) / det;
      consider((sy - A * sz) / n, A);
    }
  }
  return best;
}

}  // namespace

double ScalingLaw::aicc() const {
  const int k = parameters();
  if (!valid || n - k - 1 <= 0) return NAN;
  const double per_point = std::max(rss / n, 1e-300);  // an exact fit: ln 0 would be -inf
  return n * std::log(per_point) + 2.0 * k + 2.0 * k * (k + 1) / (n - k - 1);
}

ScalingLaw fit_scaling_law(const std::vector<std::pair<double, double>>& xy, bool saturating) {
  ScalingLaw law;
  law.saturating = saturating;
  std::vector<double> lx, y;
  std::set<double> distinct;
  for (const auto& [xv, yv] : xy)
    if (xv > 0 && std::isfinite(xv) && std::isfinite(yv)) lx.push_back(std::log(xv)), y.push_back(yv), distinct.insert(xv);
  law.n = static_cast<int>(y.size());
  law.distinct_x = static_cast<int>(distinct.size());
  if (law.distinct_x < kMinDistinctX) {
    law.why = "too few points to fit: " + std::to_string(law.distinct_x) + " distinct x (a fit needs " +
              std::to_string(kMinDistinctX) + ")";
    return law;
  }
  if (saturating && law.n < 4) {
    law.why = "too few points to fit: " + std::to_string(law.n) + " points for 3 parameters (E, A, α) and no residual";
    return law;
  }
  // x relative to its geometric mean keeps x^−α near 1 for every α searched.
  double log_x0 = 0;
  for (double v : lx) log_x0 += v;
  log_x0 /= lx.size();
  std::vector<double> z(lx.size());
  auto solve_at = [&](double alpha) {
    for (size_t i = 0; i < lx.size(); ++i) z[i] = std::exp(-alpha * (lx[i] - log_x0));
    return solve_linear(z, y, saturating);
  };
  // The residual is not convex in α: a log-spaced grid finds the basin, golden section refines.
  const int grid = 160;
  const double lo = ScalingLaw::kMinExponent, hi = ScalingLaw::kMaxExponent;
  std::vector<double> alphas(grid);
  for (int i = 0; i < grid; ++i) alphas[i] = lo * std::pow(hi / lo, double(i) / (grid - 1));
  int best = 0;
  double best_rss = kInf;
  for (int i = 0; i < grid; ++i) {
    const double r = solve_at(alphas[i]).rss;
    if (r < best_rss) best_rss = r, best = i;
  }
  double a = alphas[std::max(0, best - 1)], b = alphas[std::min(grid - 1, best + 1)];
  const double g = (std::sqrt(5.0) - 1) / 2;
  double c = b - g * (b - a), d = a + g * (b - a);
  double fc = solve_at(c).rss, fd = solve_at(d).rss;
  for (int it = 0; it < 100 && b - a > 1e-12 * b; ++it) {
    if (fc < fd) {
      b = d, d = c, fd = fc, c = b - g * (b - a), fc = solve_at(c).rss;
    } else {
      a = c, c = d, fc = fd, d = a + g * (b - a), fd = solve_at(d).rss;
    }
  }
  double alpha = fc < fd ? c : d;
  if (solve_at(alphas[best]).rss < std::min(fc, fd)) alpha = alphas[best];
  const Linear l = solve_at(alpha);
  law.valid = true;
  law.rss = l.rss;
  law.E = l.E;
  if (l.A <= 0) {  // flat: nothing falls with x, so there is no exponent
    law.A = 0;
    law.alpha = 0;
  } else {
    law.alpha = alpha;
    law.A = l.A * std::exp(alpha * log_x0);  // A'·(x/x0)^−α = A'·x0^α·x^−α
    law.alpha_at_bound = alpha <= lo * 1.01 || alpha >= hi * 0.99;
  }
  return law;
}

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

std::vector<std::pair<double, double>> pareto_frontier(std::vector<std::pair<double, double>> xy) {
  std::sort(xy.begin(), xy.end());
  std::vector<std::pair<double, double>> out;
  double best = kInf;
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
