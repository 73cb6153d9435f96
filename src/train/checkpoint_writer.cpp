// Writing a rank's checkpoint files from its host buffer (checkpoint_writer.h).
#include "checkpoint_writer.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "aim/error.h"
#include "aim/io/atomic_file.h"
#include "aim/io/checksum.h"

namespace fs = std::filesystem;

namespace aim::train::ckpt {
namespace {

void pwrite_all(int fd, const uint8_t* p, uint64_t n, uint64_t at, const std::string& path) {
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(at));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) throw Error("writing '" + path + "' failed: " + std::strerror(w < 0 ? errno : ENOSPC));
    p += w;
    at += static_cast<uint64_t>(w);
    n -= static_cast<uint64_t>(w);
  }
}

}  // namespace

FileRecord write_part(const std::string& path, HostBuffer& buf, uint64_t file_bytes, int threads, int64_t step,
                      int rank) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error("cannot write '" + tmp + "': " + std::strerror(errno));
  const uint64_t C = buf.chunk_bytes();
  const size_t chunks = file_bytes == 0 ? 1 : (file_bytes + C - 1) / C;
  std::vector<uint64_t> hashes(chunks);
  std::atomic<size_t> next{0};
  std::mutex mu;
  std::string error;
  auto work = [&] {
    try {
      for (size_t c = next++; c < chunks; c = next++) {
        const uint64_t len = std::min(C, file_bytes - std::min(file_bytes, c * C));
        pwrite_all(fd, buf.chunk(c), len, c * C, tmp);
        hashes[c] = io::xxh64(buf.chunk(c), len);
      }
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lk(mu);
      if (error.empty()) error = e.what();
      next = chunks;
    }
  };
  if (std::getenv("AIM_TEST_CHECKPOINT_FAULT")) {
    // The kill hook needs a file that is really half written: the first half, in order.
    uint64_t written = 0;
    for (size_t c = 0; c < chunks && written < file_bytes / 2; ++c) {
      const uint64_t len = std::min(file_bytes / 2 - written, std::min(C, file_bytes - c * C));
      pwrite_all(fd, buf.chunk(c), len, c * C, tmp);
      written += len;
    }
    ::fsync(fd);
    test_fault("part-half", step, rank);
  }
  std::vector<std::thread> pool;
  for (int t = 1; t < std::min<int>(threads, static_cast<int>(chunks)); ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (error.empty() && ::fsync(fd) != 0) error = "flushing '" + tmp + "' failed: " + std::strerror(errno);
  ::close(fd);
  if (error.empty() && std::rename(tmp.c_str(), path.c_str()) != 0)
    error = "renaming '" + tmp + "' to '" + path + "' failed: " + std::strerror(errno);
  if (!error.empty()) {
    std::remove(tmp.c_str());
    throw Error(error);
  }
  io::fsync_dir(fs::path(path).parent_path().string());
  return {fs::path(path).filename().string(), file_bytes, io::combine_block_hashes(hashes)};
}

BackgroundWriter::~BackgroundWriter() {
  if (thread_.joinable()) thread_.join();
}

void BackgroundWriter::start(std::function<WriteResult()> job, bool background) {
  if (started_) throw Error("internal: a checkpoint write started while another is in flight");
  started_ = true;
  finished_ = false;
  auto run = [this, job = std::move(job)] {
    const auto t0 = std::chrono::steady_clock::now();
    WriteResult r;
    try {
      r = job();
    } catch (const std::exception& e) {
      r.error = e.what();
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    result_ = std::move(r);
    finished_ = true;
  };
  if (background) thread_ = std::thread(run);
  else run();
}

WriteResult BackgroundWriter::wait() {
  if (thread_.joinable()) thread_.join();
  started_ = false;
  return std::move(result_);
}

namespace {

struct Fault {
  std::string point;
  int64_t step = -1;
  int rank = -1;
};

struct Faults {
  std::vector<Fault> kills;
  double delay = 0;
};

const Faults& faults() {
  static const Faults f = [] {
    Faults out;
    const char* env = std::getenv("AIM_TEST_CHECKPOINT_FAULT");
    if (!env) return out;
    std::stringstream list(env);
    for (std::string item; std::getline(list, item, ',');) {
      std::vector<std::string> parts;
      std::stringstream fields(item);
      for (std::string x; std::getline(fields, x, ':');) parts.push_back(x);
      if (parts.size() >= 3 && parts[0] == "kill")
        out.kills.push_back({parts[1], std::stoll(parts[2]), parts.size() > 3 ? std::stoi(parts[3]) : -1});
      else if (parts.size() == 2 && parts[0] == "delay")
        out.delay = std::stod(parts[1]);
    }
    return out;
  }();
  return f;
}

}  // namespace

void test_fault(const char* point, int64_t step, int rank) {
  for (const auto& k : faults().kills)
    if (k.point == point && k.step == step && (k.rank < 0 || k.rank == rank)) ::raise(SIGKILL);
}

double test_write_delay() { return faults().delay; }

}  // namespace aim::train::ckpt
