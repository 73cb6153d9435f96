#pragma once
// Checksums of checkpoint files: XXH64 (xxHash's 64-bit hash, the reference algorithm
// reimplemented here), fast enough (~10 GB/s per core) to hash every byte a checkpoint writes
// or reads without becoming the bottleneck, unlike the byte-wise FNV-1a of fnv1a.h.
//
// A file's digest is computed over fixed-size blocks: XXH64 of each block, then XXH64 of the
// block hashes (little-endian). Blocks can be hashed by several threads, in any order, and a
// writer that fills a file block by block hashes each block as it writes it.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace aim::io {

/// XXH64 of `n` bytes (xxHash's XXH64(data, n, seed)).
uint64_t xxh64(const void* data, size_t n, uint64_t seed = 0);

/// The digest of a file from its block hashes, in block order.
uint64_t combine_block_hashes(const std::vector<uint64_t>& block_hashes);

/// The digest of `n` bytes cut into blocks of `block_bytes` (the last one shorter), hashed by
/// up to `threads` threads.
uint64_t block_digest(const void* data, size_t n, size_t block_bytes, int threads = 1);

/// 16 lower-case hex digits, and back (throws aim::Error on anything else).
std::string digest_hex(uint64_t digest);
uint64_t parse_digest_hex(const std::string& hex);

}  // namespace aim::io
