#include "aim/io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "aim/error.h"

namespace aim::io {

AtomicFileWriter::AtomicFileWriter(std::string path) : path_(std::move(path)) {
  tmp_ = path_ + ".tmp." + std::to_string(::getpid());
  file_ = std::fopen(tmp_.c_str(), "wb");
  if (!file_) throw Error("cannot write '" + tmp_ + "': " + std::strerror(errno));
}

AtomicFileWriter::~AtomicFileWriter() {
  if (file_) {
    std::fclose(file_);
    std::remove(tmp_.c_str());
  }
}

void AtomicFileWriter::write(const char* data, size_t size) {
  if (size && std::fwrite(data, 1, size, file_) != size)
    throw Error("write to '" + tmp_ + "' failed: " + std::strerror(errno));
}

void AtomicFileWriter::commit() {
  if (std::fflush(file_) != 0 || ::fsync(::fileno(file_)) != 0)
    throw Error("flushing '" + tmp_ + "' failed: " + std::strerror(errno));
  std::fclose(file_);
  file_ = nullptr;
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    std::remove(tmp_.c_str());
    throw Error("renaming '" + tmp_ + "' to '" + path_ + "' failed: " + std::strerror(errno));
  }
  // Persist the rename itself, so a power cut cannot resurrect the old file.
  fsync_dir(std::filesystem::path(path_).parent_path().string());
}

void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void write_file_atomic(const std::string& path, const std::string& content) {
  AtomicFileWriter w(path);
  w.write(content);
  w.commit();
}

}  // namespace aim::io
