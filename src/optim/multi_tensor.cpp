#include "aim/optim/multi_tensor.h"

#include <ATen/ops/_foreach_add.h>
#include <ATen/ops/_foreach_addcdiv.h>
#include <ATen/ops/_foreach_addcmul.h>
#include <ATen/ops/_foreach_div.h>
#include <ATen/ops/_foreach_mul.h>
#include <ATen/ops/_foreach_norm.h>
#include <ATen/ops/_foreach_sqrt.h>
#include <torch/torch.h>

#include <cmath>

#include "aim/compat.h"

namespace aim::optim {
namespace {

struct Chunk {
  std::vector<torch::Tensor> params, grads, exp_avgs, exp_avg_sqs;
  std::vector<at::Scalar> sqrt_bc2, step_sizes;  // per tensor: each has its own step count
  int64_t elements = 0;
};

void step_chunk(Chunk& c, const torch::optim::AdamWOptions& o) {
  if (c.params.empty()) return;
  const double beta1 = std::get<0>(o.betas()), beta2 = std::get<1>(o.betas());
  if (o.weight_decay() != 0) at::_foreach_mul_(c.params, 1 - o.lr() * o.weight_decay());
  at::_foreach_mul_(c.exp_avgs, beta1);
  at::_foreach_add_(c.exp_avgs, c.grads, 1 - beta1);
  at::_foreach_mul_(c.exp_avg_sqs, beta2);
  at::_foreach_addcmul_(c.exp_avg_sqs, c.grads, c.grads, 1 - beta2);
  auto denom = at::_foreach_sqrt(c.exp_avg_sqs);
  at::_foreach_div_(denom, c.sqrt_bc2);
  at::_foreach_add_(denom, o.eps());
  at::_foreach_addcdiv_(c.params, c.exp_avgs, denom, c.step_sizes);
  c = Chunk();
}

}  // namespace

void adamw_step(torch::optim::AdamW& opt, int64_t chunk_elements) {
  torch::NoGradGuard no_grad;
  auto& state = opt.state();
  for (auto& group : opt.param_groups()) {
    const auto& o = static_cast<const torch::optim::AdamWOptions&>(group.options());
    TORCH_CHECK(!o.amsgrad(), "aim::optim::adamw_step: amsgrad is not supported");
    const double beta1 = std::get<0>(o.betas()), beta2 = std::get<1>(o.betas());
    Chunk chunk;
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      TORCH_CHECK(!p.grad().is_sparse(), "AdamW does not support sparse gradients");
      const auto key = compat::optimizer_state_key(p);
      auto it = state.find(key);
      if (it == state.end()) {
        auto s = std::make_unique<torch::optim::AdamWParamState>();
        s->step(0);
        s->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        s->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        state[key] = std::move(s);
        it = state.find(key);
      }
      auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
      s.step(s.step() + 1);
      // The same double expressions as torch::optim::AdamW::step, so the scalars agree bit for bit.
      const double bias_correction1 = 1 - std::pow(beta1, s.step());
      const double bias_correction2 = 1 - std::pow(beta2, s.step());
      chunk.params.push_back(p);
      chunk.grads.push_back(p.grad());
      chunk.exp_avgs.push_back(s.exp_avg());
      chunk.exp_avg_sqs.push_back(s.exp_avg_sq());
      chunk.sqrt_bc2.emplace_back(std::sqrt(bias_correction2));
      chunk.step_sizes.emplace_back(-(o.lr() / bias_correction1));
      chunk.elements += p.numel();
      if (chunk.elements >= chunk_elements) step_chunk(chunk, o);
    }
    step_chunk(chunk, o);
  }
}

torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return torch::zeros({}, params.empty() ? torch::TensorOptions() : params[0].options());
  auto norms = at::_foreach_norm(grads, 2);
  auto total = norms.size() == 1 ? norms[0] : torch::stack(norms).norm(2);
  auto coef = torch::clamp(max_norm / (total + 1e-6), c10::nullopt, 1.0);
  // LibTorch 1.13 has no _foreach_mul_(TensorList, Tensor) (a device-side scalar); a
  // Scalar would need the norm on the host, a sync. One mul_ per tensor keeps it on the device.
  for (auto& g : grads) g.mul_(coef);
  return total;
}

}  // namespace aim::optim
