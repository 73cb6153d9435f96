#include "aim/data/rng.h"

namespace aim::data {

IndexPermutation::IndexPermutation(uint64_t n, uint64_t key) : n_(n), key_(key) {
  int bits = 2;
  while (bits < 64 && (uint64_t{1} << bits) < n) ++bits;
  bits += bits & 1;  // balanced halves; the domain is then < 4n, so cycle walking stays short
  half_bits_ = bits / 2;
  half_mask_ = (uint64_t{1} << half_bits_) - 1;
}

uint64_t IndexPermutation::operator()(uint64_t i) const {
  if (n_ <= 1) return 0;
  uint64_t x = i;
  do {  // cycle walking: re-encrypt until the value lands back inside [0, n)
    uint64_t l = x >> half_bits_, r = x & half_mask_;
    for (uint64_t round = 0; round < 4; ++round) {
      uint64_t f = hash_key(key_, round, r) & half_mask_;
      uint64_t nl = r;
      r = l ^ f;
      l = nl;
    }
    x = (l << half_bits_) | r;
  } while (x >= n_);
  return x;
}

}  // namespace aim::data
