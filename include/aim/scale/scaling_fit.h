#pragma once
// The small statistics a scaling study needs: power laws fitted by least squares in log-log
// space, the compute-optimal frontier, and correlation.
#include <utility>
#include <vector>

namespace aim::scale {

/// y = a * x^b, fitted on (log x, log y); r2 is the coefficient of determination in log space.
struct PowerLaw {
  double a = 0, b = 0, r2 = 0;
  int n = 0;  // points used; < 2 means no fit
  bool valid() const { return n >= 2; }
  double operator()(double x) const;
};

/// Fits y = a x^b to the points with x > 0 and y > 0. Fewer than two distinct x give n < 2.
PowerLaw fit_power_law(const std::vector<std::pair<double, double>>& xy);

/// The lower envelope: points (x, y) sorted by x, keeping each one whose y is below every y
/// at smaller or equal x (the best loss reachable with at most this much compute).
std::vector<std::pair<double, double>> pareto_frontier(std::vector<std::pair<double, double>> xy);

/// Pearson correlation of the pairs; NaN with fewer than 2 points or zero variance.
double pearson(const std::vector<std::pair<double, double>>& xy);

/// y = slope * x + intercept by least squares.
struct LinearFit {
  double slope = 0, intercept = 0;
  int n = 0;
};
LinearFit fit_line(const std::vector<std::pair<double, double>>& xy);

}  // namespace aim::scale
