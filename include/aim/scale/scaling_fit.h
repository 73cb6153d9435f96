#pragma once
// The curve fits a scaling study needs: L = E + A·x^−α (a loss with a floor, the form
// Chinchilla-style studies fit) and the pure power law L = A·x^−α, both by least squares on L;
// the compute-optimal frontier; correlation and a straight line.
#include <cmath>
#include <string>
#include <utility>
#include <vector>

namespace aim::scale {

/// A fit needs this many distinct x: through two x values a power law always passes exactly,
/// so its exponent says nothing about the form.
inline constexpr int kMinDistinctX = 3;

/// L = E + A·x^−α with E ≥ 0, A ≥ 0 and α in [0, kMaxExponent] (saturating), or with E = 0
/// (pure power law). Fitted by least squares on L itself, so both forms are compared on the
/// same residuals. A fit whose best A is 0 is flat: α = 0 (the loss does not fall with x).
struct ScalingLaw {
  static constexpr double kMinExponent = 1e-3, kMaxExponent = 4.0;  // the range searched
  bool saturating = true;
  double E = 0, A = 0, alpha = 0;
  double rss = 0;       // residual sum of squares over the n points
  int n = 0;            // points used (x > 0, finite y)
  int distinct_x = 0;
  bool valid = false;   // false: too few points; `why` says so
  bool alpha_at_bound = false;  // α at an end of the searched range: a step or a line, no power law
  std::string why;
  int parameters() const { return saturating ? 3 : 2; }
  double operator()(double x) const { return E + A * std::pow(x, -alpha); }
  double rms() const { return n > 0 ? std::sqrt(rss / n) : NAN; }
  /// Akaike's criterion with the small-sample correction, n·ln(RSS/n) + 2k + 2k(k+1)/(n−k−1);
  /// NaN when n ≤ k + 1. Lower is better; a difference above ~2 is a preference.
  double aicc() const;
};

/// Fits one form to the points with x > 0 and finite y. Needs kMinDistinctX distinct x, and the
/// saturating form also n ≥ 4 (one residual degree of freedom beyond its three parameters).
ScalingLaw fit_scaling_law(const std::vector<std::pair<double, double>>& xy, bool saturating);

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
