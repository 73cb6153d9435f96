#include "aim/optim/optimizer.h"

#include <torch/torch.h>

#include <cmath>

namespace aim::optim {

bool decays(const std::string& name, const torch::Tensor& param) {
  if (param.dim() < 2) return false;
  for (const char* skip : {"norm", "pos", "token"})
    if (name.find(skip) != std::string::npos) return false;
  return true;
}

std::unique_ptr<torch::optim::AdamW> make_adamw(const torch::nn::Module& module, const OptimConfig& cfg) {
  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& p : module.named_parameters())
    if (p.value().requires_grad()) (decays(p.key(), p.value()) ? decay : no_decay).push_back(p.value());
  return make_adamw(std::move(decay), std::move(no_decay), cfg);
}

std::unique_ptr<torch::optim::AdamW> make_adamw(std::vector<torch::Tensor> decay, std::vector<torch::Tensor> no_decay,
                                                const OptimConfig& cfg) {
  auto base = torch::optim::AdamWOptions(cfg.lr).betas({cfg.beta1, cfg.beta2}).eps(cfg.eps);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(
                                 torch::optim::AdamWOptions(base).weight_decay(cfg.weight_decay)));
  groups.emplace_back(no_decay,
                      std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(base).weight_decay(0.0)));
  return std::make_unique<torch::optim::AdamW>(std::move(groups), base);
}

double learning_rate(int64_t step, int64_t total, const OptimConfig& cfg) {
  const double warmup_steps = std::floor(cfg.warmup * static_cast<double>(total));
  const double s = static_cast<double>(step);
  if (s < warmup_steps) return cfg.warmup_start + (cfg.lr - cfg.warmup_start) * s / warmup_steps;
  const double span = std::max(1.0, static_cast<double>(total) - warmup_steps);
  const double progress = std::min(1.0, (s - warmup_steps) / span);
  return 0.5 * cfg.lr * (1.0 + std::cos(M_PI * progress));
}

void clear_gradients(torch::optim::Optimizer& opt) {
  for (auto& group : opt.param_groups())
    for (auto& p : group.params()) p.mutable_grad() = torch::Tensor();
}

void set_learning_rate(torch::optim::Optimizer& opt, double lr) {
  for (auto& group : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
}

}  // namespace aim::optim
