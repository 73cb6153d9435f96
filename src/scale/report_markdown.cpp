// report.md: the points, the fits with their intervals, the trends with verdicts only where the
// effect exceeds its uncertainty, the plots and the failures.
#include <cmath>
#include <map>
#include <sstream>

#include "report_parts.h"

namespace aim::scale {
namespace {

std::string with_interval(double v, const Interval& i, int digits = 3) {
  std::string s = num(v, digits);
  if (i.valid()) s += " [" + num(i.lo, digits) + ", " + num(i.hi, digits) + "]";
  return s;
}

std::string formula(const ScalingLaw& l, const std::string& x) {
  if (!l.valid) return l.why;
  if (l.A == 0) return "L = " + num(l.E, 4) + " (flat: no fall with " + x + ")";
  return "L = " + (l.saturating ? num(l.E, 4) + " + " : std::string()) + num(l.A, 4) + " · " + x + "^−" +
         num(l.alpha, 3) +
         (l.alpha_at_bound ? " (α at an end of the range searched, [" + num(ScalingLaw::kMinExponent, 1) + ", " +
                                 num(ScalingLaw::kMaxExponent, 1) + "]: a step or a line, not a power law here)"
                           : "");
}

void fit_rows(std::ostringstream& md, const AxisFit& a) {
  const std::string lead = "| " + a.axis + " | " + a.where + " | ";
  if (!a.too_few.empty()) {
    md << lead << "— | " << a.too_few << " (points only) | | | | | " << a.runs.size() << " |\n";
    return;
  }
  for (const LawFit* f : {&a.saturating, &a.power_law}) {
    const ScalingLaw& l = f->law;
    md << lead << (l.saturating ? "saturating" : "power law") << " | " << formula(l, a.symbol) << " | ";
    if (l.valid) {
      md << (l.saturating ? with_interval(l.E, f->E, 4) : "0") << " | " << with_interval(l.alpha, f->alpha) << " | "
         << num(l.rms(), 3) << " | " << num(l.aicc(), 4) << " | " << l.n << " |\n";
    } else {
      md << " | | | | " << l.n << " |\n";
    }
  }
}

/// "holds at 2 of 3 data sizes; not resolved at 1": only the verdicts that occur.
std::string tally(const std::vector<Trend>& trends, const std::string& unit) {
  std::map<std::string, int> count;
  std::vector<std::string> order;
  for (const auto& t : trends) {
    const std::string head = t.verdict.substr(0, t.verdict.find(" ("));
    if (!count[head]++) order.push_back(head);
  }
  std::string out;
  for (const auto& v : order)
    out += (out.empty() ? "" : "; ") + v + " at " + std::to_string(count[v]) + " of " + std::to_string(trends.size()) +
           " " + unit;
  return out;
}

void trend_lines(std::ostringstream& md, const std::string& claim, const std::vector<Trend>& trends,
                 const std::string& unit, const std::string& x_unit, const std::string& none) {
  if (trends.empty()) {
    md << "- " << claim << ": not checked: " << none << ".\n";
    return;
  }
  md << "- " << claim << ": " << tally(trends, unit) << ".\n";
  for (const auto& t : trends) {
    md << "  - " << t.group << ": ";
    for (size_t k = 0; k < t.steps.size(); ++k) {
      const auto& s = t.steps[k];
      if (k == 0) md << human(s.from) << x_unit << " → " << num(s.loss_from);
      md << "; " << human(s.to) << x_unit << " → " << num(s.loss_to) << " (" << s.verdict;
      if (s.drop.valid()) md << ", drop " << num(s.loss_from - s.loss_to, 3) << " [" << num(s.drop.lo, 3) << ", " << num(s.drop.hi, 3) << "]";
      md << ")";
    }
    md << ": **" << t.verdict << "**\n";
  }
}

}  // namespace

std::string report_markdown(const SweepConfig& sweep, const std::vector<PointResult>& results, const StudyFits& f,
                            int resamples, const std::vector<std::string>& plots) {
  std::ostringstream md;
  md << "# Scaling study: " << sweep.origin << "\n\n";
  md << "Base config `" << sweep.base << "`";
  if (!sweep.overrides.empty()) {
    md << " with";
    for (const auto& o : sweep.overrides) md << " `" << o << "`";
  }
  md << "; " << status_summary(results) << ".\n\n";
  md << "| point | status | seed | trunk params | total params | steps | training FLOPs (trunk) | images seen | "
        "unique images | train loss | val loss | probe top-1 % |\n";
  md << "|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& r : results)
    md << "| " << r.name << " | " << r.status << " | " << r.seed << " | " << human(r.trunk_params) << " | "
       << human(r.total_params) << " | " << r.steps << " | " << human(r.train_flops) << " ("
       << human(r.trunk_train_flops) << ") | " << human(r.images_seen) << " | "
       << (r.unique_images > 0 ? human(r.unique_images) : "all") << " | " << num(r.train_loss) << " | "
       << num(r.val_loss) << " | " << (std::isfinite(r.probe_top1) ? num(100 * r.probe_top1) : "") << " |\n";

  md << "\n## Fits\n\n";
  size_t done = 0;
  for (const auto& r : results) done += r.status == "done";
  if (done < results.size()) {
    md << "Fits and trends use the " << done << " done point(s); left out:\n\n";
    for (const auto& r : results)
      if (r.status != "done") md << "- " << r.name << " (" << r.status << "): " << r.note << "\n";
    md << "\n";
  }
  md << "Final validation loss of every run (each seed a point). Both forms are least squares on L "
        "(E ≥ 0, A ≥ 0); AICc compares them on the same residuals (lower is better; ΔAICc = "
        "AICc(power law) − AICc(saturating) above 2 favours the floor E). Brackets: 95 % intervals from "
        << resamples
        << " bootstrap resamples of the runs within each setting (runs differing only in `train.seed`), every "
           "choice and fit redone; with 2 seeds a setting's resampled mean spans its two runs, so read the "
           "intervals as the least the noise allows. Validation images are not resampled: aim-train records the "
           "mean validation loss only. Parameters are fitted at "
        << (f.params_data_group.empty() ? std::string("the largest data size") : f.params_data_group)
        << "; compute on the frontier of final points (a run's last validation: intermediate ones of a cosine "
           "schedule sit above what a run of that length reaches).\n\n";
  if (f.fits.empty()) {
    md << "No fit: no axis of this sweep has two or more values among the done points.\n";
  } else {
    md << "| loss vs | where | form | fit | E | α | RMS residual | AICc | runs |\n";
    md << "|---|---|---|---|---|---|---|---|---|\n";
    for (const auto& a : f.fits) fit_rows(md, a);
    md << "\n";
    for (const auto& a : f.fits)
      if (a.too_few.empty())
        md << "- " << a.axis << " " << a.where << ": " << a.preferred()
           << (a.no_interval.empty() ? "" : "; " + a.no_interval) << "\n";
  }

  md << "\n## Trends (the paper's claims, checked against the run-to-run noise)\n\n";
  md << "A step counts when the 95 % interval of its loss difference excludes 0; a claim is upheld only when every "
        "step counts.\n\n";
  trend_lines(md, "Wider/larger model ⇒ lower validation loss", f.wider, "data sizes", " params",
              "no data size has two or more model sizes that finished (no model-size axis)");
  trend_lines(md, "More unique data ⇒ lower validation loss", f.more_data, "model sizes", " images",
              "no model size has two or more known data sizes (source limits) that finished (no data axis)");
  const Correlation& c = f.accuracy;
  md << "- Lower loss ⇒ higher probe accuracy: ";
  if (c.n < 3) {
    md << c.verdict << ".\n";
  } else {
    md << "Pearson r(val loss, top-1) = " << with_interval(c.r, c.interval) << " over " << c.n << " runs";
    if (c.line.n >= 2)
      md << "; top-1 ≈ " << num(c.line.intercept) << (c.line.slope < 0 ? " − " : " + ") << num(std::fabs(c.line.slope))
         << " · L";
    md << ": **" << c.verdict << "**.\n";
  }

  if (!plots.empty()) {
    md << "\n## Plots\n\nShaded: the 95 % bootstrap band of each fitted curve.\n\n";
    const std::map<std::string, std::string> titles = {
        {"loss_vs_compute.png", "Validation loss vs training compute (total and trunk): final points, intermediate "
                                "ones dimmed, the frontier fit"},
        {"loss_vs_params.png", "Final validation loss vs trunk and total parameters, per data size"},
        {"loss_vs_data.png", "Final validation loss vs unique images, per model size"},
        {"accuracy_vs_loss.png", "Probe top-1 vs final validation loss"}};
    for (const auto& file : plots) {
      auto it = titles.find(file);
      md << "![" << (it == titles.end() ? file : it->second) << "](" << file << ")\n\n";
    }
  }
  bool any_failed = false;
  for (const auto& r : results) any_failed |= r.status == "failed";
  if (any_failed) {
    md << "\n## Failed points\n\n";
    for (const auto& r : results)
      if (r.status == "failed") md << "### " << r.name << "\n\n```\n" << r.error << "```\n\n";
  }
  md << "\nFiles: `results.csv` (one row per point), `curves.csv` (every validation record; `final` marks a run's "
        "last), `fits.json` (fits, intervals, bands, trends).\n";
  return md.str();
}

}  // namespace aim::scale
