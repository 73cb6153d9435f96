#pragma once
#include <torch/types.h>

namespace aim::model {

/// Fixed 2-D sin-cos position embedding, [grid*grid, dim] float32, raster order (MAE
/// convention, spec §2): the first dim/2 channels encode the column, the last dim/2 the
/// row; each half is [sin(pos*w), cos(pos*w)] with w_i = 1/10000^(i/(dim/4)).
torch::Tensor sincos_2d(int64_t grid, int64_t dim);

}  // namespace aim::model
