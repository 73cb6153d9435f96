#include "aim/model/sincos.h"

#include <torch/torch.h>

#include "aim/error.h"

namespace aim::model {
namespace {

// [N] positions -> [N, d] as [sin(pos*w), cos(pos*w)], w over d/2 frequencies.
torch::Tensor sincos_1d(const torch::Tensor& pos, int64_t d) {
  auto omega = torch::arange(d / 2, torch::kFloat64) / static_cast<double>(d / 2);
  omega = 1.0 / torch::pow(10000.0, omega);
  auto angles = pos.to(torch::kFloat64).reshape({-1, 1}) * omega.reshape({1, -1});
  return torch::cat({angles.sin(), angles.cos()}, 1);
}

}  // namespace

torch::Tensor sincos_2d(int64_t grid, int64_t dim) {
  if (dim % 4 != 0) throw Error("sincos_2d: dim must be divisible by 4, got " + std::to_string(dim));
  auto idx = torch::arange(grid * grid, torch::kInt64);
  auto col = idx.remainder(grid);
  auto row = idx.div(grid, "floor");
  // Computed in float64 then rounded once, so values match a float32 reference closely.
  return torch::cat({sincos_1d(col, dim / 2), sincos_1d(row, dim / 2)}, 1).to(torch::kFloat32);
}

}  // namespace aim::model
