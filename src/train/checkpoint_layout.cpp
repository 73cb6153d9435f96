// Where every byte of a checkpoint part goes: the flattened parameter space, the piece names
// and the part's safetensors layout (checkpoint_parts.h).
#include <algorithm>
#include <cstdio>

#include "aim/error.h"
#include "checkpoint_parts.h"

namespace aim::train::ckpt {

std::string part_file(int rank) { return "part_rank" + std::to_string(rank) + ".safetensors"; }
std::string loader_file(int rank) { return "loader_rank" + std::to_string(rank) + ".json"; }

std::string step_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "step_%09lld", static_cast<long long>(step));
  return buf;
}

namespace {

const std::vector<std::pair<std::string, torch::Dtype>>& dtype_names() {
  static const std::vector<std::pair<std::string, torch::Dtype>> table = {
      {"F64", torch::kFloat64}, {"F32", torch::kFloat32}, {"F16", torch::kFloat16}, {"BF16", torch::kBFloat16}};
  return table;
}

std::string shape_text(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

}  // namespace

void ParamSpace::build_index() {
  index_.clear();
  for (size_t k = 0; k < names.size(); ++k) index_[names[k]] = static_cast<int64_t>(k);
  offset.assign(1, 0);
  for (const auto& s : shapes) {
    int64_t n = 1;
    for (auto d : s) n *= d;
    offset.push_back(offset.back() + n);
  }
}

ParamSpace ParamSpace::of(const torch::nn::Module& model) {
  ParamSpace s;
  for (const auto& p : model.named_parameters()) {
    s.names.push_back(p.key());
    s.shapes.push_back(p.value().sizes().vec());
    s.dtypes.push_back(p.value().scalar_type());
  }
  s.build_index();
  return s;
}

nlohmann::json ParamSpace::to_json() const {
  auto out = nlohmann::json::array();
  for (size_t k = 0; k < names.size(); ++k) {
    std::string dt;
    for (const auto& [n, d] : dtype_names())
      if (d == dtypes[k]) dt = n;
    out.push_back({{"name", names[k]}, {"shape", shapes[k]}, {"dtype", dt}});
  }
  return out;
}

ParamSpace ParamSpace::from_json(const nlohmann::json& j) {
  ParamSpace s;
  if (!j.is_array()) throw Error("'params' must be a list");
  for (const auto& e : j) {
    const auto dt = e.at("dtype").get<std::string>();
    auto it = std::find_if(dtype_names().begin(), dtype_names().end(), [&](const auto& p) { return p.first == dt; });
    if (it == dtype_names().end()) throw Error("parameter dtype '" + dt + "' is not a floating-point safetensors dtype");
    s.names.push_back(e.at("name").get<std::string>());
    s.shapes.push_back(e.at("shape").get<std::vector<int64_t>>());
    for (auto d : s.shapes.back())
      if (d < 0) throw Error("parameter '" + s.names.back() + "' has a negative dimension");
    s.dtypes.push_back(it->second);
  }
  s.build_index();
  return s;
}

int64_t ParamSpace::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? -1 : it->second;
}

std::string ParamSpace::difference(const ParamSpace& model) const {
  std::vector<std::string> out;
  for (size_t k = 0; k < model.size(); ++k) {
    const int64_t j = find(model.names[k]);
    if (j < 0) out.push_back("missing " + model.names[k]);
    else if (shapes[j] != model.shapes[k])
      out.push_back(model.names[k] + ": " + shape_text(shapes[j]) + " in the checkpoint, " +
                    shape_text(model.shapes[k]) + " in the model");
    else if (dtypes[j] != model.dtypes[k])
      out.push_back(model.names[k] + ": " + std::string(c10::toString(dtypes[j])) + " in the checkpoint, " +
                    c10::toString(model.dtypes[k]) + " in the model");
    else if (j != static_cast<int64_t>(k))
      out.push_back(model.names[k] + " is parameter " + std::to_string(j) + " in the checkpoint, " + std::to_string(k) +
                    " in the model");
  }
  for (const auto& n : names)
    if (model.find(n) < 0) out.push_back("unexpected " + n);
  std::string s;
  for (size_t i = 0; i < out.size() && i < 5; ++i) s += (i ? "; " : "") + out[i];
  if (out.size() > 5) s += "; and " + std::to_string(out.size() - 5) + " more";
  return s;
}

std::string piece_name(const ParamSpace& space, const Piece& p) {
  static const char* prefix[] = {"model.", "optim.exp_avg.", "optim.exp_avg_sq.", "optim.step."};
  return prefix[static_cast<int>(p.field)] + space.names[p.param] + "@" + std::to_string(p.begin);
}

bool parse_piece_name(const std::string& name, Field* field, std::string* param, int64_t* begin) {
  // Longest prefix first: "optim.exp_avg_sq." also starts with "optim.exp_avg".
  static const std::pair<const char*, Field> prefixes[] = {{"optim.exp_avg_sq.", Field::kExpAvgSq},
                                                           {"optim.exp_avg.", Field::kExpAvg},
                                                           {"optim.step.", Field::kStep},
                                                           {"model.", Field::kWeight}};
  const auto at = name.rfind('@');
  if (at == std::string::npos || at + 1 >= name.size()) return false;
  const std::string digits = name.substr(at + 1);
  if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 18) return false;
  for (const auto& [p, f] : prefixes) {
    const size_t n = std::char_traits<char>::length(p);
    if (name.compare(0, n, p) == 0 && at > n) {
      *field = f;
      *param = name.substr(n, at - n);
      *begin = std::stoll(digits);
      return true;
    }
  }
  return false;
}

PartLayout layout_part(const ParamSpace& space, int64_t lo, int64_t hi,
                       const std::function<bool(int64_t, int64_t)>& has_state,
                       const std::map<std::string, std::string>& metadata) {
  PartLayout out;
  std::vector<Piece> weights, avg, avg_sq, steps;
  for (size_t k = 0; k < space.size(); ++k) {
    const int64_t a = std::max(lo, space.offset[k]), b = std::min(hi, space.offset[k + 1]);
    if (a >= b) continue;
    Piece w{Field::kWeight, static_cast<int64_t>(k), a - space.offset[k], b - space.offset[k], space.dtypes[k]};
    weights.push_back(w);
    if (!has_state(w.param, w.begin)) continue;
    for (auto [f, list] : {std::pair{Field::kExpAvg, &avg}, std::pair{Field::kExpAvgSq, &avg_sq}}) {
      Piece m = w;
      m.field = f;
      list->push_back(m);
    }
    Piece s = w;
    s.field = Field::kStep;
    s.dtype = torch::kInt64;
    steps.push_back(s);
  }
  // Steps (8-byte) first, then each field's pieces together: every tensor starts aligned to its
  // element size, and a reader after the weights alone (consolidation) reads one contiguous run.
  std::vector<Piece> all = steps;
  for (auto* list : {&weights, &avg, &avg_sq}) all.insert(all.end(), list->begin(), list->end());
  std::stable_sort(all.begin(), all.end(),
                   [](const Piece& x, const Piece& y) { return c10::elementSize(x.dtype) > c10::elementSize(y.dtype); });
  std::vector<io::TensorSpec> specs;
  for (const auto& p : all)
    specs.push_back({piece_name(space, p), p.dtype, {p.field == Field::kStep ? 1 : p.end - p.begin}});
  out.prefix = io::safetensors_prefix(specs, metadata);
  uint64_t at = out.prefix.size();
  for (auto& p : all) {
    p.offset = at;
    p.bytes = static_cast<uint64_t>(p.field == Field::kStep ? 1 : p.end - p.begin) * c10::elementSize(p.dtype);
    at += p.bytes;
  }
  out.pieces = std::move(all);
  out.file_bytes = at;
  return out;
}

void copy_into_space(std::vector<torch::Tensor>& targets, const std::vector<int64_t>& offset, int64_t a,
                     const torch::Tensor& src) {
  const int64_t b = a + src.numel();
  auto k = std::upper_bound(offset.begin(), offset.end(), a) - offset.begin() - 1;
  for (; k >= 0 && k + 1 < static_cast<int64_t>(offset.size()) && offset[k] < b; ++k) {
    const int64_t x = std::max(a, offset[k]), y = std::min(b, offset[k + 1]);
    if (x < y && targets[k].defined())
      targets[k].slice(0, x - offset[k], y - offset[k]).copy_(src.slice(0, x - a, y - a));
  }
}

void copy_from_space(const std::vector<torch::Tensor>& targets, const std::vector<int64_t>& offset, int64_t a,
                     torch::Tensor dst) {
  const int64_t b = a + dst.numel();
  auto k = std::upper_bound(offset.begin(), offset.end(), a) - offset.begin() - 1;
  for (; k >= 0 && k + 1 < static_cast<int64_t>(offset.size()) && offset[k] < b; ++k) {
    const int64_t x = std::max(a, offset[k]), y = std::min(b, offset[k + 1]);
    if (x >= y) continue;
    auto d = dst.slice(0, x - a, y - a);
    if (targets[k].defined()) d.copy_(targets[k].slice(0, x - offset[k], y - offset[k]));
    else d.zero_();
  }
}

}  // namespace aim::train::ckpt
