#pragma once
// A file mapped read-only into memory. Resuming from a checkpoint reads its parts through
// mappings: bytes are read from the page cache straight where they are used (no copy into a
// buffer of our own), the pages are shared by every process of a node that maps the same
// file, and unmapping a part gives its pages back, so a rank holds one part at a time.
#include <cstddef>
#include <cstdint>
#include <string>

namespace aim::io {

class MappedFile {
 public:
  /// Maps all of `path`; throws aim::Error naming the file when it cannot be opened or mapped.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  /// Unmaps now (the destructor does it otherwise).
  void close();

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace aim::io
