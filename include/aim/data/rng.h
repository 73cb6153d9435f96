#pragma once
// Counter-based randomness: every random choice in the data pipeline is a pure function of
// (seed, purpose, index...), so results do not depend on thread scheduling, worker count or
// where a run was interrupted. No generator state ever needs to be saved.
#include <cstdint>

namespace aim::data {

/// splitmix64 finalizer: a bijective, well-mixing 64-bit hash.
inline uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

/// Hash of a key tuple; chaining keeps (a, b) and (b, a) distinct.
inline uint64_t hash_key(uint64_t a, uint64_t b, uint64_t c = 0, uint64_t d = 0) {
  return mix64(mix64(mix64(mix64(a) ^ b) ^ c) ^ d);
}

/// Distinct streams per purpose, so e.g. the mixture draw and the crop draw of one sample
/// are independent.
enum class Stream : uint64_t {
  kMixture = 0x6d6978,   // which source a global sample comes from
  kPermute = 0x7065726d, // per-epoch order inside a random-access source
  kAugment = 0x61756775, // crop / flip / jitter of one sample
  kReplace = 0x7265706c, // replacement item when a random-access sample is bad
  kShards = 0x73686172,  // per-epoch shard order of a streaming source
};

/// A tiny generator seeded from a key; draws are sequential but the seed is a counter.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  Rng(uint64_t seed, Stream s, uint64_t a, uint64_t b = 0)
      : state_(hash_key(seed, static_cast<uint64_t>(s), a, b)) {}
  uint64_t next() { return mix64(state_++); }
  /// Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  /// Uniform integer in [0, n); n > 0. Multiply-shift: bias < n / 2^64, irrelevant here.
  uint64_t below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
  }
  /// Uniform integer in [lo, hi] inclusive.
  int64_t between(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(below(static_cast<uint64_t>(hi - lo + 1)));
  }

 private:
  uint64_t state_;
};

/// A random permutation of [0, n) evaluated pointwise (Feistel network + cycle walking):
/// O(1) memory, so a 2-billion-item epoch order costs nothing to keep or to restore.
class IndexPermutation {
 public:
  IndexPermutation(uint64_t n, uint64_t key);
  uint64_t operator()(uint64_t i) const;
  uint64_t size() const { return n_; }

 private:
  uint64_t n_, key_;
  int half_bits_ = 0;
  uint64_t half_mask_ = 0;
};

}  // namespace aim::data
