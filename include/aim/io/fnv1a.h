#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

namespace aim::io {

/// 64-bit FNV-1a of `n` bytes: stable across runs, builds and machines.
inline uint64_t fnv1a64(const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

/// fnv1a64 as 16 hex digits, for fingerprints compared between ranks or stored in files.
inline std::string fnv1a_hex(const void* data, size_t n) {
  const uint64_t h = fnv1a64(data, n);
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace aim::io
