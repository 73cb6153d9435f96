#include "aim/probe/probe_plan.h"

#include <spdlog/fmt/fmt.h>

#include "aim/model/lora.h"
#include "aim/model/model_stats.h"

namespace aim::probe {

TrainableCounts count_trainable(const config::RunConfig& cfg) {
  const auto& m = cfg.model;
  const auto& p = cfg.probe;
  TrainableCounts c;
  c.classes = p.classes > 0 ? p.classes : 1000;
  const int64_t dim = p.features == "pixels" ? m.channels * m.img_size * m.img_size : m.width;
  c.head = p.kind == "attentive" ? model::attentive_probe_parameters(dim, c.classes)
                                 : model::linear_probe_parameters(dim, c.classes);
  if (p.features == "trunk") c.trunk = model::count_parameters(m).trunk;
  c.lora = model::lora_parameters(m, p.lora_rank);
  return c;
}

std::string describe_trainable(const config::RunConfig& cfg) {
  const auto c = count_trainable(cfg);
  const auto& p = cfg.probe;
  std::string out;
  if (p.features == "trunk")
    out += fmt::format("trunk      {}: {} parameters, frozen\n", cfg.model.preset, c.trunk);
  out += fmt::format("probe head {} on {}, {} classes{}: {} parameters per head, {} head(s)\n", p.kind, p.features,
                     c.classes, p.classes > 0 ? "" : " (probe.classes=0: sized for 1000)", c.head,
                     p.lrs.size() * p.weight_decays.size());
  if (c.lora > 0)
    out += fmt::format("LoRA       rank {} (alpha {}) on q, v and proj of {} blocks: {} parameters, {:.3f} % of the "
                       "trunk\n",
                       p.lora_rank, p.lora_alpha, cfg.model.depth, c.lora, 100.0 * c.lora_share());
  else
    out += "LoRA       off (probe.lora_rank=0): the trunk stays frozen\n";
  out += fmt::format("trainable  {} parameters\n", c.head * static_cast<int64_t>(p.lrs.size() * p.weight_decays.size()) + c.lora);
  return out;
}

}  // namespace aim::probe
