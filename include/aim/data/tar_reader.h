#pragma once
// Sequential reader for POSIX tar files (ustar, GNU long names, pax "path" records), the
// container of webdataset shards. Streams with a large buffer and seeks over data it does
// not need, so skipping to a saved position in a shard costs headers only.
//
// Shards come from the internet: nothing in a header is trusted. A size must fit in 63 bits
// and in what the file still holds (checked before anything is allocated or skipped), data
// is read in bounded chunks, and an archive is complete only when its last member is
// followed by the two zero blocks that end a tar; a file that stops anywhere else is
// reported truncated.
#include <cstdint>
#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "aim/data/shard_stream.h"

namespace aim::data {

struct TarEntry {
  std::string name;
  uint64_t size = 0;
  bool regular = true;  // false for directories, links, ... (their data is skipped)
  bool sparse = false;  // a GNU sparse file ('S'): its data is a sparse map, not the file's bytes
};

class TarReader {
 public:
  /// Opens a shard (a path, "pipe:COMMAND" or an http(s) URL: see shard_stream.h); ok() is
  /// false (and error() says why) when it cannot be opened. For a remote shard, `timeout_s`
  /// bounds the wait for each read, errors end with how the command ended, and every wait
  /// ends once `abort` is set.
  explicit TarReader(const std::string& path, double timeout_s = 0, const std::atomic<bool>* abort = nullptr);
  ~TarReader();
  TarReader(const TarReader&) = delete;
  TarReader& operator=(const TarReader&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  const std::string& path() const { return path_; }
  /// The end-of-archive blocks were read: every member before them is whole, even if an
  /// error came after them.
  bool complete() const { return ended_; }
  /// For a remote shard that failed: whether a retry may help (shard_stream.h).
  StreamFailure failure() const { return stream_ ? stream_->failure() : StreamFailure::kNone; }

  /// Reads the next header (metadata entries are consumed internally). Returns false at the
  /// end-of-archive blocks, or on damage with error() set: "truncated tar (...)", "bad tar
  /// size field", "empty file", "empty tar (no members ...)", "data after the end-of-archive
  /// blocks" (two tars concatenated: webdataset reads the first only, so its members are
  /// complete(), and the rest would be lost without a word), ...
  /// After true, exactly one of read_data()/skip_data() must follow.
  bool next(TarEntry& entry);
  /// Reads the current entry's data. False (with error()) when the file ends early.
  bool read_data(std::vector<uint8_t>& out);
  bool skip_data();

 private:
  enum class Block { kData, kEnd, kDamaged };
  Block read_header_block(uint8_t* block);
  bool read_exact(void* dst, size_t n);
  bool skip_bytes(uint64_t n);
  bool fail(const std::string& why);
  /// After the end-of-archive blocks: false (with error()) if anything but zero padding follows.
  bool check_trailing();
  /// Bytes the file holds after the current position (UINT64_MAX when not a regular file).
  uint64_t remaining() const;

  std::string path_, error_;
  std::unique_ptr<ShardStream> stream_;
  std::FILE* file_ = nullptr;  // stream_'s
  std::vector<char> buffer_;
  uint64_t file_size_ = UINT64_MAX;  // regular files only
  uint64_t pos_ = 0;                 // bytes consumed so far
  uint64_t members_ = 0;             // headers read (metadata records included)
  bool ended_ = false;               // the end-of-archive blocks were read
  uint64_t pending_ = 0;             // bytes of the current entry (incl. padding) not yet consumed
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
