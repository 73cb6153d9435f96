// The table aim-probe prints after a probe run.
#include <spdlog/fmt/fmt.h>

#include "aim/probe/probe_runner.h"

namespace aim::probe {
namespace {

std::string plural(int64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

}  // namespace

std::string format_probe_report(const ProbeReport& r, const config::ProbeConfig& pc) {
  // sel_top1: on the held-out part of probe.train the best head is chosen on.
  const bool held_out = r.selection == "train_holdout";
  const bool top5 = r.has_top5();
  std::string out = fmt::format("{:>10} {:>10} {:>11} {:>9}{} {:>8}{}\n", "lr", "wd", "train_loss", "val_loss",
                                held_out ? fmt::format(" {:>10}", "sel_top1 %") : std::string(), "top1 %",
                                top5 ? fmt::format(" {:>8}", "top5 %") : std::string());
  for (size_t i = 0; i < r.heads.size(); ++i) {
    const auto& h = r.heads[i];
    out += fmt::format("{:>10.3g} {:>10.3g} {:>11.4f} {:>9.4f}{} {:>8.2f}{}{}\n", h.lr, h.weight_decay, h.train_loss,
                       h.val_loss, held_out ? fmt::format(" {:>10.2f}", 100 * h.select_top1) : std::string(),
                       100 * h.top1, top5 ? fmt::format(" {:>8.2f}", 100 * h.top5) : std::string(),
                       i == r.best && r.heads.size() > 1 ? "  <- best" : "");
  }
  if (r.knn.k > 0)
    out += fmt::format("{:>10} {:>10} {:>11} {:>9}{} {:>8.2f}{}  (kNN, k={}, T={:g}, {})\n", "kNN", "-", "-", "-",
                       held_out ? fmt::format(" {:>10}", "-") : std::string(), 100 * r.knn.top1,
                       top5 ? fmt::format(" {:>8.2f}", 100 * r.knn.top5) : std::string(), r.knn.k, r.knn.temperature,
                       plural(r.knn.bank, "training image", "training images"));
  if (r.selection == "train_holdout")
    out += r.heads.size() > 1
               ? fmt::format("best head chosen on {} of probe.train (probe.select_fraction), never trained on; "
                             "top-1 is on probe.val\n",
                             plural(r.select_samples, "held-out image", "held-out images"))
               : fmt::format("one head: nothing chosen; sel_top1 is its accuracy on {} of probe.train, for comparing "
                             "runs without probe.val\n",
                             plural(r.select_samples, "held-out image", "held-out images"));
  else if (r.selection == "none")
    out += "one head: nothing chosen, so its top-1 on probe.val is not a grid's maximum\n";
  else
    out += "best head chosen on probe.val itself, the split it is reported on: its top-1 is the grid's maximum there, "
           "an optimistic number (probe.select_fraction=0)\n";
  if (r.lr_at_edge)
    out += fmt::format("warning: the best lr {:g} is at the edge of probe.lrs; widen the grid past it\n",
                       r.heads[r.best].lr);
  const auto& b = r.heads[r.best];
  out += fmt::format("probe ({}, {}): top-1 {:.2f} %{} on {} ({}); results in {}/results.json\n", pc.kind, r.weights,
                     100 * b.top1, top5 ? fmt::format(", top-5 {:.2f} %", 100 * b.top5) : std::string(),
                     plural(r.val_samples, "image", "images"), plural(r.classes, "class", "classes"), r.out_dir);
  return out;
}

}  // namespace aim::probe
