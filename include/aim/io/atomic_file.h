#pragma once
#include <cstdio>
#include <string>

namespace aim::io {

/// Writes a file so that readers see either the old content or the complete new one:
/// data goes to `<path>.tmp.<pid>` and is fsync'ed, then renamed over `path` (and the
/// directory fsync'ed) on commit(). Destroyed without commit(), it removes the temporary.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::string path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const char* data, size_t size);
  void write(const std::string& s) { write(s.data(), s.size()); }
  void commit();

 private:
  std::string path_, tmp_;
  std::FILE* file_ = nullptr;
};

/// Convenience: atomically replace `path` with `content`.
void write_file_atomic(const std::string& path, const std::string& content);

/// Persists the renames and creations inside `dir` ("" means the working directory) across a
/// power cut; best effort, like the rename it follows.
void fsync_dir(const std::string& dir);

}  // namespace aim::io
