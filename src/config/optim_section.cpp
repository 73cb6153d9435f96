// The `optim:` section: AdamW and its warmup + cosine schedule (spec §7).
#include "sections.h"

#include <cmath>
#include <tuple>

namespace aim::config::detail {

bool same(const optim::OptimConfig& a, const optim::OptimConfig& b) {
  return std::tie(a.lr, a.beta1, a.beta2, a.eps, a.weight_decay, a.warmup, a.warmup_start, a.grad_clip) ==
         std::tie(b.lr, b.beta1, b.beta2, b.eps, b.weight_decay, b.warmup, b.warmup_start, b.grad_clip);
}

const std::vector<Field<optim::OptimConfig>>& optim_fields() {
  using O = optim::OptimConfig;
  static const std::vector<Field<O>> f = {
      plain("lr", &O::lr),
      pair("betas", &O::beta1, &O::beta2),
      plain("eps", &O::eps),
      plain("weight_decay", &O::weight_decay),
      plain("warmup", &O::warmup),
      plain("warmup_start", &O::warmup_start),
      plain("grad_clip", &O::grad_clip),
  };
  return f;
}

void validate_optim_section(const optim::OptimConfig& o) {
  if (!(o.lr > 0) || !std::isfinite(o.lr)) fail("optim.lr", "must be > 0, got " + num(o.lr));
  if (!(o.beta1 >= 0 && o.beta1 < 1) || !(o.beta2 >= 0 && o.beta2 < 1))
    fail("optim.betas", "both must be in [0, 1), got [" + num(o.beta1) + ", " + num(o.beta2) + "]");
  if (!(o.eps > 0)) fail("optim.eps", "must be > 0, got " + num(o.eps));
  if (!(o.weight_decay >= 0) || !std::isfinite(o.weight_decay))
    fail("optim.weight_decay", "must be >= 0, got " + num(o.weight_decay));
  if (!(o.warmup >= 0 && o.warmup < 1))
    fail("optim.warmup", "is a fraction of train.steps and must be in [0, 1), got " + num(o.warmup));
  if (!(o.warmup_start >= 0 && o.warmup_start <= o.lr))
    fail("optim.warmup_start", "must be in [0, optim.lr], got " + num(o.warmup_start));
  if (!std::isfinite(o.grad_clip)) fail("optim.grad_clip", "must be finite (<= 0 disables clipping)");

}

}  // namespace aim::config::detail
