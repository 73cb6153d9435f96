#pragma once
// Elapsed wall time on the monotonic clock: what step times, stream timeouts, checkpoint phases
// and probe throughput are measured with. A top-level header (like error.h) so every layer
// shares one definition instead of a file-local copy each.
#include <chrono>

namespace aim {

using SteadyClock = std::chrono::steady_clock;

/// Seconds from `t` to now.
inline double seconds_since(SteadyClock::time_point t) {
  return std::chrono::duration<double>(SteadyClock::now() - t).count();
}

}  // namespace aim
