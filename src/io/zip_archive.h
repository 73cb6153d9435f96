#pragma once
// The read side of the ZIP container torch.save writes (PyTorch >= 1.6): a central
// directory of stored (uncompressed) records, ZIP64 when the archive passes 4 GiB. Internal
// to src/io: torch_archive.cpp reads its records through it.
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

namespace aim::io::detail {

struct ZipEntry {
  std::string name;
  uint64_t data_offset = 0;  // first byte of the record's data in the file
  uint64_t size = 0;         // bytes (stored: compressed size == uncompressed size)
  uint32_t crc32 = 0;
  uint16_t method = 0;       // 0 = stored; anything else is refused when read
};

class ZipArchive {
 public:
  /// Reads the central directory; throws aim::Error naming `path` when the file is not a
  /// ZIP archive, is truncated, or a record points outside the file.
  explicit ZipArchive(const std::string& path);

  const std::vector<ZipEntry>& entries() const { return entries_; }
  /// The entry called `name`, or nullptr.
  const ZipEntry* find(const std::string& name) const;
  /// Reads `n` bytes of a stored record from `offset` into `dst`.
  void read(const ZipEntry& e, uint64_t offset, void* dst, uint64_t n);
  /// The whole record; `check_crc` compares its CRC-32 with the directory's.
  std::string read_all(const ZipEntry& e, bool check_crc);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ifstream in_;
  uint64_t file_size_ = 0;
  std::vector<ZipEntry> entries_;
};

/// CRC-32 (IEEE 802.3, the ZIP polynomial) of `n` bytes.
uint32_t zip_crc32(const void* data, size_t n);

}  // namespace aim::io::detail
