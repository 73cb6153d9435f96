#pragma once
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "aim/loss/next_patch_loss.h"
#include "aim/model/model_config.h"
#include "aim/model/preprocessor.h"
#include "aim/model/pretrain_head.h"
#include "aim/model/trunk.h"

namespace aim::model {

/// Which tokens the prediction head runs on. The head is per-token and only outputs whose
/// next patch is a kept target reach the loss (about half of them under prefix attention),
/// so training runs it on those rows alone: same loss, same gradients, less work.
enum class HeadTokens {
  kAll,       // pred is [B, K, P*P*C]: every position (inspection, parity, visualisation)
  kLossOnly,  // pred is [M, P*P*C] at `rows` (loss::loss_rows): training and validation
};

struct PretrainOutput {
  torch::Tensor trunk_out;  // post-trunk-normed tokens [B, K, d], sequence order
  torch::Tensor pred;       // see HeadTokens; position i predicts patch i+1 (sequence order)
  torch::Tensor rows;       // kLossOnly: int64 [M] rows b*K + i of pred, on the CPU
  loss::LossTerms loss;
};

/// AIM as pre-trained: preprocessor -> token order -> prefix-causal trunk -> head -> loss.
/// Names: preprocessor.*, trunk.*, pretrain_head.* (spec §10).
class AimPretrainModelImpl : public torch::nn::Module {
 public:
  explicit AimPretrainModelImpl(const ModelConfig& cfg);

  /// images: normalized [B, C, H, W]; prefix: int64 [B] (0 = causal, see
  /// sample_prefix_lengths), best kept on the CPU: it is read on the host, so a GPU step
  /// then needs no device sync. The loss covers targets at sequence positions j >= S.
  PretrainOutput forward(const torch::Tensor& images, const torch::Tensor& prefix,
                         HeadTokens head_tokens = HeadTokens::kAll);

  const ModelConfig& config() const { return cfg_; }
  /// train.activation_checkpointing=full: trunk and head blocks keep only their inputs for
  /// backward and recompute the rest (model::checkpoint). Same losses and gradients.
  void set_activation_checkpointing(bool on) {
    trunk->set_activation_checkpointing(on);
    pretrain_head->set_activation_checkpointing(on);
  }
  /// perm [K] int64 of the configured order, undefined for raster.
  const torch::Tensor& order() const { return order_; }

  Preprocessor preprocessor{nullptr};
  Trunk trunk{nullptr};
  PretrainHead pretrain_head{nullptr};

 private:
  ModelConfig cfg_;
  torch::Tensor order_;
};
TORCH_MODULE(AimPretrainModel);

}  // namespace aim::model
