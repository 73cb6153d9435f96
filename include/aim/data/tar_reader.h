#pragma once
// Sequential reader for POSIX tar files (ustar, GNU long names, pax "path" records), the
// container of webdataset shards. Streams with a large buffer and seeks over data it does
// not need, so skipping to a saved position in a shard costs headers only.
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace aim::data {

struct TarEntry {
  std::string name;
  uint64_t size = 0;
  bool regular = true;  // false for directories, links, ... (their data is skipped)
};

class TarReader {
 public:
  /// Opens path; ok() is false (and error() says why) when it cannot be opened.
  explicit TarReader(const std::string& path);
  ~TarReader();
  TarReader(const TarReader&) = delete;
  TarReader& operator=(const TarReader&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  const std::string& path() const { return path_; }

  /// Reads the next header (metadata entries are consumed internally). Returns false at the
  /// end of the archive or on damage; in the latter case error() is set ("truncated", ...).
  /// After true, exactly one of read_data()/skip_data() must follow.
  bool next(TarEntry& entry);
  /// Reads the current entry's data. False (with error()) when the file ends early.
  bool read_data(std::vector<uint8_t>& out);
  bool skip_data();

 private:
  bool read_block(uint8_t* block, bool eof_ok);
  bool read_exact(void* dst, size_t n);
  bool skip_bytes(uint64_t n);

  std::string path_, error_;
  std::FILE* file_ = nullptr;
  std::vector<char> buffer_;
  uint64_t pending_ = 0;  // bytes of the current entry (incl. padding) not yet consumed
  uint64_t data_size_ = 0;
};

/// Writes a tar archive (ustar, GNU long-name records for names over 100 bytes). Used by
/// `aim-data pack` and by the tests that build damaged shards.
class TarWriter {
 public:
  explicit TarWriter(const std::string& path);  // throws aim::Error if it cannot create path
  ~TarWriter();
  TarWriter(const TarWriter&) = delete;
  TarWriter& operator=(const TarWriter&) = delete;
  void add(const std::string& name, const void* data, size_t size);
  void add(const std::string& name, const std::string& data) { add(name, data.data(), data.size()); }
  /// Writes the end-of-archive blocks and closes; the destructor does it if not called.
  void close();

 private:
  void header(const std::string& name, uint64_t size, char type);
  std::FILE* file_ = nullptr;
  std::string path_;
};

}  // namespace aim::data
