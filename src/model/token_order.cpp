#include "aim/model/token_order.h"

#include <torch/torch.h>

#include <vector>

#include "aim/error.h"

namespace aim::model {
namespace {

std::vector<int64_t> spiral(int64_t g) {
  std::vector<int64_t> out;
  out.reserve(g * g);
  int64_t r = (g - 1) / 2, c = (g - 1) / 2;
  const int64_t dr[4] = {0, 1, 0, -1}, dc[4] = {1, 0, -1, 0};  // right, down, left, up
  auto visit = [&](int64_t rr, int64_t cc) {
    if (rr >= 0 && rr < g && cc >= 0 && cc < g) out.push_back(rr * g + cc);
  };
  visit(r, c);
  // Legs of length 1,1,2,2,3,3,...; cells outside the grid are skipped, so even grids
  // are covered too (the walk overshoots one side and comes back in).
  for (int64_t leg = 1, dir = 0; static_cast<int64_t>(out.size()) < g * g; ++leg) {
    for (int rep = 0; rep < 2; ++rep, dir = (dir + 1) % 4)
      for (int64_t s = 0; s < leg; ++s) {
        r += dr[dir];
        c += dc[dir];
        visit(r, c);
      }
  }
  return out;
}

std::vector<int64_t> checkerboard(int64_t g) {
  std::vector<int64_t> out;
  out.reserve(g * g);
  for (int parity = 0; parity < 2; ++parity)
    for (int64_t r = 0; r < g; ++r)
      for (int64_t c = 0; c < g; ++c)
        if ((r + c) % 2 == parity) out.push_back(r * g + c);
  return out;
}

}  // namespace

torch::Tensor token_order(const std::string& order, int64_t grid, uint64_t seed) {
  const int64_t n = grid * grid;
  if (order == "raster") return torch::arange(n, torch::kInt64);
  if (order == "random") {
    auto gen = at::detail::createCPUGenerator(seed);
    return torch::randperm(n, gen, torch::TensorOptions().dtype(torch::kInt64));
  }
  std::vector<int64_t> perm;
  if (order == "spiral") {
    perm = spiral(grid);
  } else if (order == "checkerboard") {
    perm = checkerboard(grid);
  } else {
    throw Error("model.order: expected raster, spiral, checkerboard or random; got '" + order + "'");
  }
  return torch::tensor(perm, torch::kInt64);
}

}  // namespace aim::model
