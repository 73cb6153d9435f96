#include "aim/model/layer_selection.h"

#include <torch/torch.h>

#include <algorithm>
#include <sstream>

#include "aim/error.h"

namespace aim::model {
namespace {

std::vector<int64_t> range(int64_t first, int64_t last) {
  std::vector<int64_t> out;
  for (int64_t i = first; i <= last; ++i) out.push_back(i);
  return out;
}

int64_t parse_layer_index(const std::string& s, const std::string& key, const std::string& spec) {
  size_t used = 0;
  long long v = -1;
  try {
    v = std::stoll(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != s.size() || s.empty())
    throw Error(key + ": expected 'last', 'best' or block indices like '14-19' or '3,5,7'; got '" + spec + "'");
  return v;
}

/// The trunk fields the paper's best-block measurement depends on that differ between `m`
/// and its named preset ("model.depth=12 (aim-600m has 24)"), empty when none do.
std::string shape_overrides(const ModelConfig& m) {
  const ModelConfig p = preset_config(m.preset);
  std::string out;
  auto check = [&](const char* name, int64_t got, int64_t preset) {
    if (got != preset)
      out += std::string(out.empty() ? "" : ", ") + "model." + name + "=" + std::to_string(got) + " (" + m.preset +
             " has " + std::to_string(preset) + ")";
  };
  check("width", m.width, p.width);
  check("depth", m.depth, p.depth);
  check("heads", m.heads, p.heads);
  check("mlp_ratio", m.mlp_ratio, p.mlp_ratio);
  check("patch_size", m.patch_size, p.patch_size);
  check("channels", m.channels, p.channels);
  return out;
}

}  // namespace

std::vector<int64_t> select_blocks(const std::string& spec, const ModelConfig& m, const std::string& key) {
  const int64_t depth = m.depth;
  const std::string& preset = m.preset;
  std::vector<int64_t> out;
  if (spec == "last") {
    out = range(std::max<int64_t>(0, depth - 6), depth - 1);
  } else if (spec == "best") {
    if (!is_official_preset(preset))
      throw Error(key + ": 'best' is only known for aim-600m/1b/3b/7b (preset is '" + preset +
                  "'); use 'last' or explicit indices");
    // 'best' is a measurement on the released trunk; a reshaped trunk that keeps the preset's
    // name is another model, and the list may not even fit its depth.
    const std::string changed = shape_overrides(m);
    if (!changed.empty())
      throw Error(key + ": 'best' is the paper's measurement for the " + preset + " trunk, but this trunk is reshaped: " +
                  changed + "; use 'last' or explicit indices");
    if (preset == "aim-600m" || preset == "aim-7b") out = range(14, 19);
    else out = range(12, 17);  // aim-1b, aim-3b
  } else {
    std::stringstream ss(spec);
    std::string item;
    while (std::getline(ss, item, ',')) {
      auto dash = item.find('-', 1);
      if (dash == std::string::npos) {
        out.push_back(parse_layer_index(item, key, spec));
      } else {
        auto a = parse_layer_index(item.substr(0, dash), key, spec), b = parse_layer_index(item.substr(dash + 1), key, spec);
        if (b < a) throw Error(key + ": empty range '" + item + "'");
        auto r = range(a, b);
        out.insert(out.end(), r.begin(), r.end());
      }
    }
    if (out.empty()) throw Error(key + ": no blocks selected by '" + spec + "'");
  }
  for (auto i : out)
    if (i < 0 || i >= depth)
      throw Error(key + ": block " + std::to_string(i) + " out of range; the trunk has blocks 0.." +
                  std::to_string(depth - 1));
  return out;
}

torch::Tensor average_blocks(const std::vector<torch::Tensor>& outputs) {
  TORCH_CHECK(!outputs.empty(), "average_blocks: no block outputs");
  auto sum = outputs[0].clone();
  for (size_t i = 1; i < outputs.size(); ++i) sum.add_(outputs[i]);
  return sum.div_(static_cast<double>(outputs.size()));
}

}  // namespace aim::model
