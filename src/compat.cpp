#include "aim/compat.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <c10/util/Exception.h>
#include <dlfcn.h>

#include <cstring>
#include <string>
#include <vector>
// A CUDA LibTorch defines USE_C10D_NCCL (TorchConfig's flags) and ships c10/cuda; a CPU one
// may ship the header but not libc10_cuda, so the header alone is not enough.
#if defined(USE_C10D_NCCL) && __has_include(<c10/cuda/CUDACachingAllocator.h>)
#define AIM_HAS_CUDA_ALLOCATOR_STATS 1
#include <c10/cuda/CUDACachingAllocator.h>
#else
#define AIM_HAS_CUDA_ALLOCATOR_STATS 0
#endif

namespace aim::compat {

at::Tensor scaled_dot_product_attention(const at::Tensor& q, const at::Tensor& k,
                                        const at::Tensor& v,
                                        const std::optional<at::Tensor>& allowed,
                                        bool is_causal) {
#if AIM_HAS_SDPA
  c10::optional<at::Tensor> mask;  // a distinct type before 2.4, an alias of std::optional after
  if (allowed) mask = *allowed;
  return at::scaled_dot_product_attention(q, k, v, mask, /*dropout_p=*/0.0, is_causal);
#else
  (void)q; (void)k; (void)v; (void)allowed; (void)is_causal;
  TORCH_CHECK(false, "aim::compat::scaled_dot_product_attention needs LibTorch >= 2.0");
#endif
}

std::string sdpa_backend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                         const std::optional<at::Tensor>& allowed, bool is_causal) {
#if AIM_HAS_SDPA
  c10::optional<at::Tensor> mask;
  if (allowed) mask = *allowed;
  // The schema gained `scale` in 2.1 and `enable_gqa` in 2.5.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 5)
  const int64_t choice = at::_fused_sdp_choice(q, k, v, mask, 0.0, is_causal, c10::nullopt, false);
#elif TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1
  const int64_t choice = at::_fused_sdp_choice(q, k, v, mask, 0.0, is_causal, c10::nullopt);
#else
  const int64_t choice = at::_fused_sdp_choice(q, k, v, mask, 0.0, is_causal);
#endif
  // sdp::SDPBackend: math 0, flash_attention 1, efficient_attention 2, cudnn_attention 3.
  switch (choice) {
    case 0: return "math (unfused: the K x K scores are materialised)";
    case 1: return "flash";
    case 2: return "memory-efficient";
    case 3: return "cuDNN";
    default: return "backend " + std::to_string(choice);
  }
#else
  (void)q; (void)k; (void)v; (void)allowed; (void)is_causal;
  return "";
#endif
}

void set_cuda_autocast(bool enabled, at::ScalarType dtype) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  at::autocast::set_autocast_enabled(at::kCUDA, enabled);
  at::autocast::set_autocast_dtype(at::kCUDA, dtype);
#else
  at::autocast::set_enabled(enabled);
  at::autocast::set_autocast_gpu_dtype(dtype);
#endif
}

void clear_autocast_cache() { at::autocast::clear_cache(); }

AutocastState cuda_autocast_state() {
  const bool cache = at::autocast::is_autocast_cache_enabled();
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  return {at::autocast::is_autocast_enabled(at::kCUDA), at::autocast::get_autocast_dtype(at::kCUDA), cache};
#else
  return {at::autocast::is_enabled(), at::autocast::get_autocast_gpu_dtype(), cache};
#endif
}

AutocastGuard::AutocastGuard(AutocastState state) : previous_(cuda_autocast_state()) {
  changed_ = state.enabled != previous_.enabled || (state.enabled && state.dtype != previous_.dtype) ||
             state.cache != previous_.cache;
  if (!changed_) return;
  at::autocast::set_autocast_cache_enabled(state.cache);
  set_cuda_autocast(state.enabled, state.dtype);
}

AutocastGuard::~AutocastGuard() {
  if (!changed_) return;
  if (!previous_.enabled) clear_autocast_cache();  // the casts made under this guard
  set_cuda_autocast(previous_.enabled, previous_.dtype);
  at::autocast::set_autocast_cache_enabled(previous_.cache);
}

AutocastState bf16_training_autocast(bool activation_checkpointing) {
  return {true, at::kBFloat16, /*cache=*/!activation_checkpointing};
}

double cuda_total_memory_bytes() {
  // cudaError_t cudaMemGetInfo(size_t* free, size_t* total): the runtime's symbol, present in
  // the process when LibTorch was built with CUDA (libtorch_cuda links libcudart).
  using MemGetInfo = int (*)(size_t*, size_t*);
  auto fn = reinterpret_cast<MemGetInfo>(dlsym(RTLD_DEFAULT, "cudaMemGetInfo"));
  size_t free_bytes = 0, total_bytes = 0;
  if (!fn || fn(&free_bytes, &total_bytes) != 0) return 0;
  return static_cast<double>(total_bytes);
}

std::string cuda_device_name() {
  // cudaError_t cudaGetDeviceProperties(cudaDeviceProp*, int): CUDA 12 exports it as _v2 as
  // well. The struct's layout changes between CUDA versions, but `char name[256]` is its
  // first member in all of them; the buffer is larger than any version's struct.
  using GetDevice = int (*)(int*);
  using GetProps = int (*)(void*, int);
  auto get_device = reinterpret_cast<GetDevice>(dlsym(RTLD_DEFAULT, "cudaGetDevice"));
  auto props = reinterpret_cast<GetProps>(dlsym(RTLD_DEFAULT, "cudaGetDeviceProperties_v2"));
  if (!props) props = reinterpret_cast<GetProps>(dlsym(RTLD_DEFAULT, "cudaGetDeviceProperties"));
  int device = 0;
  if (!get_device || !props || get_device(&device) != 0) return "";
  std::vector<char> buf(16384, 0);
  if (props(buf.data(), device) != 0) return "";
  return std::string(buf.data(), strnlen(buf.data(), 256));
}

double cuda_peak_allocated_bytes(int device) {
#if AIM_HAS_CUDA_ALLOCATOR_STATS
  // getDeviceStats takes an int in 1.13 and a c10::DeviceIndex in 2.x; index 0 of the stat
  // arrays is StatType::AGGREGATE (small and large pools together) in both.
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(device));
  return static_cast<double>(stats.allocated_bytes[0].peak);
#else
  (void)device;
  return -1;
#endif
}

const char* torch_version() { return TORCH_VERSION; }

}  // namespace aim::compat
