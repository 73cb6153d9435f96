#pragma once
#include <torch/types.h>

#include "aim/loss/target_kind.h"

namespace aim::loss {

/// [B, C, H, W] -> [B, K, P*P*C], K in raster order, each patch flattened in
/// (row-in-patch, col-in-patch, channel) order (spec §5.1).
torch::Tensor patchify(const torch::Tensor& images, int64_t patch);

/// Inverse of patchify, for visualising predictions.
torch::Tensor unpatchify(const torch::Tensor& patches, int64_t patch, int64_t channels, int64_t grid);

/// Regression targets from the network input, detached (targets are constants).
/// kNormalizedPixels: per patch (x - mean) / sqrt(unbiased var + 1e-6) (spec §5.2).
torch::Tensor patch_targets(const torch::Tensor& images, int64_t patch, TargetKind kind);

/// The loss as a sum and a count, so gradient accumulation and data parallelism can
/// average over every kept token of the global batch, exactly as one big batch would.
struct LossTerms {
  torch::Tensor sum;    // scalar: sum of per-token MSEs over kept targets
  torch::Tensor count;  // scalar: number of kept targets (float)
  torch::Tensor mean;   // sum / count
};

/// Next-patch loss (spec §5.3-5): output i is compared with target i+1; target j is
/// kept iff j >= prefix[b]; per-token error is the MSE over the patch's values.
/// pred, target: [B, K, D] in the same (sequence) order; prefix: int64 [B].
LossTerms next_patch_loss(const torch::Tensor& pred, const torch::Tensor& target,
                          const torch::Tensor& prefix);

/// The rows of a flattened [B*K] token grid whose prediction enters the loss: b*K + i for
/// i in [max(S_b, 1) - 1, K - 2] (output i predicts target i+1, kept iff i+1 >= S_b).
/// Image-major, ascending. prefix: int64 [B] on the CPU (it is read on the host, so a GPU
/// step needs no device sync); the result is int64 [M] on the CPU.
torch::Tensor loss_rows(const torch::Tensor& prefix, int64_t num_tokens);

/// The same loss from predictions computed at the loss rows only: pred_rows [M, D] holds
/// the outputs at `rows` (as from loss_rows), target is [B, K, D]. Equal to next_patch_loss
/// on the full prediction (same sum, same count), without the work on discarded outputs.
LossTerms next_patch_loss_rows(const torch::Tensor& pred_rows, const torch::Tensor& target,
                               const torch::Tensor& rows);

}  // namespace aim::loss
