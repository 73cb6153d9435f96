#include "aim/model/activation_checkpoint.h"

#include <torch/torch.h>

#include "aim/compat.h"

namespace aim::model {
namespace {

// What backward needs besides x: the function and the autocast state of the forward. Kept
// in the autograd context as a capsule (saved_data holds IValues only).
struct Recompute : torch::CustomClassHolder {
  BlockFn fn;
  compat::AutocastState autocast;
};

struct CheckpointFunction : torch::autograd::Function<CheckpointFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               c10::intrusive_ptr<Recompute> recompute) {
    // Runs with grad mode off (Function::apply): no graph, so the block's activations die here.
    ctx->save_for_backward({x});
    auto y = recompute->fn(x);
    ctx->saved_data["recompute"] = c10::IValue::make_capsule(std::move(recompute));
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    auto recompute = c10::static_intrusive_pointer_cast<Recompute>(ctx->saved_data["recompute"].toCapsule());
    auto x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    torch::Tensor y;
    {
      torch::AutoGradMode grad_on(true);
      // Autocast is thread-local and backward may run on another thread (CUDA): re-enter
      // the forward's state for the recompute, then put this thread's back.
      compat::AutocastGuard autocast(recompute->autocast);
      y = recompute->fn(x);
    }
    // The inner backward: parameters accumulate into .grad (firing their hooks once), x.grad
    // is this block's input gradient.
    torch::autograd::backward({y}, {grad_out[0]});
    return {x.grad(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor checkpoint(const BlockFn& fn, const torch::Tensor& x) {
  if (!torch::GradMode::is_enabled() || !x.requires_grad()) return fn(x);
  auto recompute = c10::make_intrusive<Recompute>();
  recompute->fn = fn;
  recompute->autocast = compat::cuda_autocast_state();
  return CheckpointFunction::apply(x, std::move(recompute));
}

}  // namespace aim::model
