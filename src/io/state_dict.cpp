#include "aim/io/state_dict.h"

#include <torch/torch.h>

#include <map>
#include <sstream>

#include "aim/error.h"

namespace aim::io {
namespace {

bool has_prefix(const std::string& name, const std::vector<std::string>& prefixes) {
  if (prefixes.empty()) return true;
  for (const auto& p : prefixes)
    if (name.rfind(p, 0) == 0) return true;
  return false;
}

}  // namespace

NamedTensors state_dict(const torch::nn::Module& module) {
  NamedTensors out;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) out.emplace_back(p.key(), p.value());
  for (const auto& b : module.named_buffers(/*recurse=*/true)) out.emplace_back(b.key(), b.value());
  return out;
}

NamedTensors filter_prefixes(const NamedTensors& tensors, const std::vector<std::string>& prefixes) {
  NamedTensors out;
  for (const auto& [name, t] : tensors)
    if (has_prefix(name, prefixes)) out.emplace_back(name, t);
  return out;
}

void check_state_dict(const torch::nn::Module& module, const NamedTensors& tensors, const std::string& source,
                      const std::vector<std::string>& prefixes) {
  std::map<std::string, torch::Tensor> given;
  for (const auto& [name, t] : tensors)
    if (has_prefix(name, prefixes)) given[name] = t;
  auto own = filter_prefixes(state_dict(module), prefixes);

  std::vector<std::string> missing, unexpected, mismatched;
  std::map<std::string, bool> used;
  for (const auto& [name, dst] : own) {
    auto it = given.find(name);
    if (it == given.end()) {
      missing.push_back(name);
    } else {
      used[name] = true;
      if (it->second.sizes() != dst.sizes())
        mismatched.push_back(name + " (expected " + shape_string(dst) + ", got " + shape_string(it->second) + ")");
    }
  }
  for (const auto& [name, t] : given)
    if (!used.count(name)) unexpected.push_back(name);

  if (!missing.empty() || !unexpected.empty() || !mismatched.empty()) {
    std::ostringstream msg;
    msg << "weights from '" << source << "' do not match the configured model:";
    auto list = [&](const char* what, const std::vector<std::string>& names) {
      if (names.empty()) return;
      msg << "\n  " << what << " (" << names.size() << "):";
      for (size_t i = 0; i < names.size() && i < 20; ++i) msg << "\n    " << names[i];
      if (names.size() > 20) msg << "\n    ... and " << names.size() - 20 << " more";
    };
    list("missing", missing);
    list("unexpected", unexpected);
    list("wrong shape", mismatched);
    throw Error(msg.str());
  }
}

void load_state_dict(torch::nn::Module& module, const NamedTensors& tensors, const std::string& source,
                     const std::vector<std::string>& prefixes) {
  check_state_dict(module, tensors, source, prefixes);
  std::map<std::string, torch::Tensor> given;
  for (const auto& [name, t] : tensors)
    if (has_prefix(name, prefixes)) given[name] = t;
  torch::NoGradGuard no_grad;
  for (auto& [name, dst] : filter_prefixes(state_dict(module), prefixes)) dst.copy_(given.at(name));
}

std::string shape_string(const torch::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

}  // namespace aim::io
