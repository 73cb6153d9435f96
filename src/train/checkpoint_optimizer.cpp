// AdamW state by name (what tests compare) and the parameter digest every rank checks after
// a restore and before the trunk export.
#include <torch/torch.h>

#include "aim/compat.h"
#include "aim/io/fnv1a.h"
#include "aim/train/checkpoint.h"

namespace aim::train {

std::vector<std::pair<std::string, torch::Tensor>> optimizer_state(const torch::optim::AdamW& opt) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  const auto& groups = opt.param_groups();
  for (size_t g = 0; g < groups.size(); ++g)
    for (size_t i = 0; i < groups[g].params().size(); ++i) {
      auto it = opt.state().find(compat::optimizer_state_key(groups[g].params()[i]));
      if (it == opt.state().end()) continue;
      const auto& s = static_cast<const torch::optim::AdamWParamState&>(*it->second);
      const std::string prefix = "optim.g" + std::to_string(g) + ".p" + std::to_string(i) + ".";
      out.emplace_back(prefix + "step", torch::tensor({s.step()}, torch::kInt64));
      out.emplace_back(prefix + "exp_avg", s.exp_avg());
      out.emplace_back(prefix + "exp_avg_sq", s.exp_avg_sq());
    }
  return out;
}

std::string parameter_digest(const torch::nn::Module& model) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> sums;
  for (const auto& p : model.parameters()) {
    auto d = p.detach().to(torch::kFloat64);
    sums.push_back(torch::stack({d.sum(), (d * d).sum()}));
  }
  if (sums.empty()) return "empty";
  auto all = torch::stack(sums).cpu().contiguous();
  return io::fnv1a_hex(all.data_ptr<double>(), static_cast<size_t>(all.numel()) * sizeof(double));
}

}  // namespace aim::train
