#pragma once
#include <cstdint>
#include <string>

#include <torch/types.h>

namespace aim::model {

/// Autoregressive order of the patches (spec §7). Returns perm [grid*grid] int64 where
/// perm[i] is the raster index of the i-th token in the sequence the model sees. The same
/// permutation is applied to the trunk input, the head positions and the targets, so the
/// mask and the next-patch shift act in sequence order.
///  raster:       identity (default, best in the paper)
///  spiral:       from the centre cell outwards, turning right, down, left, up
///  checkerboard: cells with even row+col first, then the rest, each in raster order
///  random:       a fixed permutation drawn from `seed`
torch::Tensor token_order(const std::string& order, int64_t grid, uint64_t seed = 0);

}  // namespace aim::model
