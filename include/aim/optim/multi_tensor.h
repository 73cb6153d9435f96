#pragma once
// The optimizer step and gradient clipping as multi-tensor (_foreach_*) kernels: on CUDA a
// handful of launches per parameter group instead of ~8 per parameter tensor, so the step of
// a model with hundreds of tensors stops being launch-bound. On CPU LibTorch runs the same
// _foreach_* ops tensor by tensor with the per-tensor kernels, so the results are
// bit-identical to torch::optim::AdamW::step and clip_grad_norm_ there (tested).
#include <vector>

#include <torch/optim/adamw.h>
#include <torch/types.h>

namespace aim::optim {

/// One AdamW step of `opt`, the math of torch::optim::AdamW::step (LibTorch 1.13 and 2.x):
/// per group, decoupled weight decay p *= 1 - lr*wd, then the moments, bias corrections by
/// each parameter's own step count and p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps).
/// The state stays in `opt` (AdamWParamState: step, exp_avg, exp_avg_sq), so checkpoints
/// written by either step load into the other. Parameters without a gradient are skipped,
/// as torch::optim::AdamW does. amsgrad is not supported (make_adamw never sets it).
/// The denominators are a temporary copy of the parameters; tensors are stepped in chunks
/// of about `chunk_elements` (default 32M: 128 MB in fp32) so a 7B model does not need a
/// second copy of itself, while the launch count per step stays small.
void adamw_step(torch::optim::AdamW& opt, int64_t chunk_elements = int64_t{1} << 25);

/// Scales the gradients of `params` so that their global L2 norm is at most `max_norm`
/// (infinity: no clipping), the math of torch::nn::utils::clip_grad_norm_ with one
/// multi-tensor norm. Returns the norm before clipping as a 0-dim tensor on the gradients'
/// device, not read back: the caller folds it into the step's one device-to-host copy.
torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm);

}  // namespace aim::optim
