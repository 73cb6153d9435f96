#pragma once
// The one place that knows LibTorch versions differ. Debian 12 ships LibTorch 1.13,
// GPU users build against LibTorch 2.x; everything else in aim is version-agnostic.
#include <torch/version.h>

#if TORCH_VERSION_MAJOR >= 2
#define AIM_HAS_SDPA 1  // at::scaled_dot_product_attention is public API from 2.0
#else
#define AIM_HAS_SDPA 0  // 1.13 only has the private, math-only _scaled_dot_product_attention
#endif

#include <ATen/core/Tensor.h>
#if TORCH_VERSION_MAJOR < 2
#include <c10/util/C++17.h>  // c10::guts::to_string, gone in 2.x
#endif
#include <optional>
#include <string>

namespace aim::compat {

/// Scaled dot-product attention on [B, H, K, hd] tensors with an optional boolean
/// "may attend" mask broadcastable to [B, H, K, K]. Only defined where the fused kernels
/// exist (LibTorch 2.x); callers check AIM_HAS_SDPA.
at::Tensor scaled_dot_product_attention(const at::Tensor& q, const at::Tensor& k,
                                        const at::Tensor& v,
                                        const std::optional<at::Tensor>& allowed,
                                        bool is_causal);

/// Which kernel scaled_dot_product_attention picks for these inputs: "flash",
/// "memory-efficient", "cuDNN", "math" (LibTorch's own choice, at::_fused_sdp_choice);
/// "" without SDPA.
std::string sdpa_backend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                         const std::optional<at::Tensor>& allowed, bool is_causal);

/// Key of a parameter in torch::optim::Optimizer::state(): a string in 1.13, the
/// TensorImpl pointer in 2.x.
#if TORCH_VERSION_MAJOR >= 2
inline void* optimizer_state_key(const at::Tensor& p) { return p.unsafeGetTensorImpl(); }
#else
inline std::string optimizer_state_key(const at::Tensor& p) {
  return c10::guts::to_string(p.unsafeGetTensorImpl());
}
#endif

/// Turns on mixed precision for CUDA ops (bf16 or fp16); LayerNorm, softmax and the
/// loss stay in fp32 under autocast's own op lists.
void set_cuda_autocast(bool enabled, at::ScalarType dtype);
void clear_autocast_cache();

/// This thread's CUDA autocast setting (thread-local in LibTorch), so an activation
/// checkpoint can recompute a block in backward, possibly on another thread, as its
/// forward ran.
struct AutocastState {
  bool enabled = false;
  at::ScalarType dtype = at::kBFloat16;
  /// Autocast's cast cache: the low-precision copy of each fp32 weight (a leaf that requires
  /// grad) made once and reused until autocast is left. Without activation checkpointing
  /// backward keeps those copies anyway (they are the matmuls' saved inputs); under
  /// checkpointing the forward saves nothing, and the cache alone would hold 2 B per
  /// parameter through it, so the trainer turns it off there.
  bool cache = true;
};
AutocastState cuda_autocast_state();

/// Sets a state for a scope and restores the thread's previous one after it (clearing
/// the cast cache when it turned autocast on, as leaving torch.autocast does).
class AutocastGuard {
 public:
  explicit AutocastGuard(AutocastState state);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  AutocastState previous_;
  bool changed_;
};

/// The autocast of a bf16 training forward: the cast cache only where it saves work without
/// holding memory that nothing else holds (off under activation checkpointing).
AutocastState bf16_training_autocast(bool activation_checkpointing);

/// Total memory of CUDA device 0 in bytes, through the CUDA runtime that a CUDA LibTorch has
/// loaded (looked up at run time, so CPU builds need no CUDA headers); 0 when there is none.
/// Creates the CUDA context: call it only where CUDA is available and about to be used.
double cuda_total_memory_bytes();

/// The current CUDA device's name ("NVIDIA H100 80GB HBM3"), through the CUDA runtime looked
/// up at run time like cuda_total_memory_bytes; "" when there is none.
std::string cuda_device_name();

/// The CUDA caching allocator's peak of allocated bytes on `device` since the process began
/// (c10::cuda::CUDACachingAllocator::getDeviceStats, aggregate pool): what tensors really
/// took, unlike the process's RSS, which on a GPU mostly counts host memory. -1 in builds
/// without CUDA (USE_C10D_NCCL, the switch communicator.cpp uses too, is unset).
double cuda_peak_allocated_bytes(int device);

/// Torch version as "major.minor.patch", for logs and run summaries.
const char* torch_version();

}  // namespace aim::compat
