// Whether asynchronous checkpoints fit in host memory (train.ckpt_async=auto), and how much a
// snapshot takes.
#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <string>

#include "aim/train/checkpoint.h"
#include "aim/train/memory_plan.h"

namespace aim::train {

uint64_t checkpoint_chunk_bytes(uint64_t bytes, uint64_t max_chunk) {
  uint64_t chunk = 4096;
  while (chunk < bytes && chunk < max_chunk) chunk *= 2;
  return std::min(chunk, max_chunk);
}

uint64_t checkpoint_part_chunk_bytes(int64_t parameters, int world_size, uint64_t max_chunk) {
  const uint64_t slice = static_cast<uint64_t>((parameters + world_size - 1) / std::max(1, world_size));
  return checkpoint_chunk_bytes(12 * slice, max_chunk);
}

uint64_t checkpoint_snapshot_bytes(int64_t parameters, int world_size, uint64_t max_chunk) {
  // 4 B weights + 8 B moments per parameter of the slice, plus room for the header and the
  // step counts (well under 1 MiB for any model), in whole chunks.
  const uint64_t slice = static_cast<uint64_t>((parameters + world_size - 1) / std::max(1, world_size));
  const uint64_t bytes = 12 * slice + (uint64_t{1} << 20);
  const uint64_t chunk = checkpoint_part_chunk_bytes(parameters, world_size, max_chunk);
  return (bytes + chunk - 1) / chunk * chunk;
}

bool checkpoint_async_fits(uint64_t snapshot_bytes, int ranks_per_node, std::string* why) {
  const double need = static_cast<double>(snapshot_bytes) * std::max(1, ranks_per_node);
  const double avail = host_available_memory_bytes();  // memory_plan.h: MemAvailable, 0 when unknown
  // Half of what is free now: the page cache, the data loaders and the rest of the process
  // keep the other half.
  const bool fits = avail > 0 && need <= 0.5 * avail;
  if (why)
    *why = fmt::format("{:.2f} GB of snapshot buffers per rank x {} ranks on this node = {:.2f} GB; {:.2f} GB of host "
                       "memory available",
                       snapshot_bytes / 1e9, std::max(1, ranks_per_node), need / 1e9, avail / 1e9);
  return fits;
}

}  // namespace aim::train
