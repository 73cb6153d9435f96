// Where every byte of a checkpoint part goes (checkpoint_parts.h; the names and the flattened
// parameter space: io/sharded_checkpoint.h).
#include <algorithm>

#include "aim/error.h"
#include "checkpoint_parts.h"

namespace aim::train::ckpt {

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
    specs.push_back({piece_name(space.names[p.param], p.field, p.begin), p.dtype, {p.field == Field::kStep ? 1 : p.end - p.begin}});
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
