// The host memory a snapshot is copied into (checkpoint_parts.h, HostBuffer).
#include <algorithm>
#include <cstring>

#include "aim/error.h"
#include "checkpoint_parts.h"

namespace aim::train::ckpt {

void HostBuffer::reserve(uint64_t bytes, uint64_t chunk_bytes, bool pinned) {
  if (chunk_bytes == 0 || chunk_bytes % 8 != 0) throw Error("checkpoint chunk size must be a positive multiple of 8");
  if (chunk_bytes != chunk_bytes_ || pinned != pinned_) release();
  chunk_bytes_ = chunk_bytes;
  pinned_ = pinned;
  const auto opts = torch::TensorOptions().dtype(torch::kUInt8).pinned_memory(pinned);
  while (capacity() < bytes) chunks_.push_back(torch::empty({static_cast<int64_t>(chunk_bytes)}, opts));
}

void HostBuffer::release() { chunks_.clear(); }

void HostBuffer::copy_tensor(const torch::Tensor& src_in, uint64_t offset) {
  const auto src = src_in.detach().reshape({-1});
  const uint64_t esize = src.element_size();
  const uint64_t n = static_cast<uint64_t>(src.numel());
  uint64_t done = 0;  // elements
  while (done < n) {
    const uint64_t at = offset + done * esize;
    const size_t c = at / chunk_bytes_;
    const uint64_t in_chunk = at % chunk_bytes_;
    // Chunk boundaries are multiples of 8 and the piece starts aligned to its element size, so
    // a split always falls between elements.
    const uint64_t fit = std::min(n - done, (chunk_bytes_ - in_chunk) / esize);
    auto dst = chunks_.at(c)
                   .slice(0, static_cast<int64_t>(in_chunk), static_cast<int64_t>(in_chunk + fit * esize))
                   .view(src.scalar_type());
    dst.copy_(src.slice(0, static_cast<int64_t>(done), static_cast<int64_t>(done + fit)), /*non_blocking=*/src.is_cuda());
    done += fit;
  }
}

void HostBuffer::copy_bytes(const void* src, uint64_t n, uint64_t offset) {
  const auto* p = static_cast<const uint8_t*>(src);
  uint64_t done = 0;
  while (done < n) {
    const uint64_t at = offset + done;
    const uint64_t in_chunk = at % chunk_bytes_;
    const uint64_t len = std::min(n - done, chunk_bytes_ - in_chunk);
    std::memcpy(chunk(at / chunk_bytes_) + in_chunk, p + done, len);
    done += len;
  }
}

torch::Tensor HostBuffer::read(uint64_t offset, int64_t numel, torch::Dtype dtype) {
  const uint64_t bytes = static_cast<uint64_t>(numel) * c10::elementSize(dtype);
  const uint64_t in_chunk = offset % chunk_bytes_;
  if (in_chunk + bytes <= chunk_bytes_)
    return chunks_.at(offset / chunk_bytes_)
        .slice(0, static_cast<int64_t>(in_chunk), static_cast<int64_t>(in_chunk + bytes))
        .view(dtype);
  auto out = torch::empty({numel}, torch::TensorOptions().dtype(dtype));
  uint64_t done = 0;
  auto* dst = static_cast<uint8_t*>(out.data_ptr());
  while (done < bytes) {
    const uint64_t at = offset + done, o = at % chunk_bytes_, len = std::min(bytes - done, chunk_bytes_ - o);
    std::memcpy(dst + done, chunk(at / chunk_bytes_) + o, len);
    done += len;
  }
  return out;
}

}  // namespace aim::train::ckpt
