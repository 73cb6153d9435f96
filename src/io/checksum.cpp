#include "aim/io/checksum.h"

#include <algorithm>
#include <cstring>
#include <thread>

#include "aim/error.h"

namespace aim::io {
namespace {

constexpr uint64_t kP1 = 11400714785074694791ull;
constexpr uint64_t kP2 = 14029467366897019727ull;
constexpr uint64_t kP3 = 1609587929392839161ull;
constexpr uint64_t kP4 = 9650029242287828579ull;
constexpr uint64_t kP5 = 2870177450012600261ull;

inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
// Little-endian loads (x86 and ARM are little-endian; memcpy keeps unaligned reads legal).
inline uint64_t load64(const unsigned char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline uint32_t load32(const unsigned char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t round(uint64_t acc, uint64_t input) { return rotl(acc + input * kP2, 31) * kP1; }
inline uint64_t merge_round(uint64_t acc, uint64_t v) { return (acc ^ round(0, v)) * kP1 + kP4; }

}  // namespace

uint64_t xxh64(const void* data, size_t n, uint64_t seed) {
  const auto* p = static_cast<const unsigned char*>(data);
  const unsigned char* const end = p + n;
  uint64_t h;
  if (n >= 32) {
    uint64_t v1 = seed + kP1 + kP2, v2 = seed + kP2, v3 = seed, v4 = seed - kP1;
    const unsigned char* const limit = end - 32;
    do {
      v1 = round(v1, load64(p));
      v2 = round(v2, load64(p + 8));
      v3 = round(v3, load64(p + 16));
      v4 = round(v4, load64(p + 24));
      p += 32;
    } while (p <= limit);
    h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
    h = merge_round(h, v1);
    h = merge_round(h, v2);
    h = merge_round(h, v3);
    h = merge_round(h, v4);
  } else {
    h = seed + kP5;
  }
  h += static_cast<uint64_t>(n);
  while (p + 8 <= end) {
    h ^= round(0, load64(p));
    h = rotl(h, 27) * kP1 + kP4;
    p += 8;
  }
  if (p + 4 <= end) {
    h ^= static_cast<uint64_t>(load32(p)) * kP1;
    h = rotl(h, 23) * kP2 + kP3;
    p += 4;
  }
  while (p < end) {
    h ^= (*p) * kP5;
    h = rotl(h, 11) * kP1;
    ++p;
  }
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}

uint64_t combine_block_hashes(const std::vector<uint64_t>& block_hashes) {
  std::vector<unsigned char> bytes(block_hashes.size() * 8);
  for (size_t i = 0; i < block_hashes.size(); ++i)
    for (int b = 0; b < 8; ++b) bytes[i * 8 + b] = static_cast<unsigned char>(block_hashes[i] >> (8 * b));
  return xxh64(bytes.data(), bytes.size());
}

uint64_t block_digest(const void* data, size_t n, size_t block_bytes, int threads) {
  if (block_bytes == 0) throw Error("block_digest: block size 0");
  const auto* p = static_cast<const unsigned char*>(data);
  const size_t blocks = n == 0 ? 1 : (n + block_bytes - 1) / block_bytes;
  std::vector<uint64_t> hashes(blocks);
  auto hash_from = [&](size_t first, size_t stride) {
    for (size_t b = first; b < blocks; b += stride) {
      const size_t at = b * block_bytes;
      hashes[b] = xxh64(p + at, std::min(block_bytes, n - std::min(n, at)));
    }
  };
  const size_t workers = std::min<size_t>(std::max(1, threads), blocks);
  std::vector<std::thread> pool;
  for (size_t t = 1; t < workers; ++t) pool.emplace_back(hash_from, t, workers);
  hash_from(0, workers);
  for (auto& t : pool) t.join();
  return combine_block_hashes(hashes);
}

std::string digest_hex(uint64_t digest) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(digest));
  return buf;
}

uint64_t parse_digest_hex(const std::string& hex) {
  if (hex.size() != 16 || hex.find_first_not_of("0123456789abcdef") != std::string::npos)
    throw Error("'" + hex + "' is not a 16-digit hex digest");
  return std::stoull(hex, nullptr, 16);
}

}  // namespace aim::io
