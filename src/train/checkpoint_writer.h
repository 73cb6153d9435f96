#pragma once
// Internal to src/train: the threads that write a rank's checkpoint files from its host
// buffer, and the test hook that kills or slows a save at a chosen point.
#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "checkpoint_parts.h"

namespace aim::train::ckpt {

/// Writes bytes [0, file_bytes) of `buf` to `path` atomically (a temporary, fsync, rename,
/// directory fsync): `threads` threads each pwrite and hash whole chunks. Returns the file's
/// record; throws aim::Error naming the file.
FileRecord write_part(const std::string& path, HostBuffer& buf, uint64_t file_bytes, int threads, int64_t step, int rank);

/// What one rank's write of one save produced.
struct WriteResult {
  std::vector<FileRecord> files;
  std::string error;  // empty: every file written
  double seconds = 0;
  uint64_t bytes = 0;
};

/// One job at a time on its own thread (never a collective: the main thread agrees with the
/// other ranks). Without a thread (async off) the job runs inside start().
class BackgroundWriter {
 public:
  ~BackgroundWriter();
  void start(std::function<WriteResult()> job, bool background);
  bool busy() const { return started_; }               // started and not collected by wait()
  bool done() const { return !started_ || finished_; }  // nothing running
  WriteResult wait();

 private:
  std::thread thread_;
  std::atomic<bool> finished_{false};
  bool started_ = false;
  WriteResult result_;
};

/// Test hook, from the environment variable AIM_TEST_CHECKPOINT_FAULT (a comma-separated list):
///   kill:<point>:<step>[:<rank>]  SIGKILL this process at <point> of the save of <step>
///                                 (on every rank, or only on <rank>)
///   delay:<seconds>               every background write takes at least this long
/// Points: part-half (half of the part file written, before its rename), written (all of this
/// rank's files written, before the main thread learns it), manifest (rank 0: after the
/// manifest, before the directory's rename).
void test_fault(const char* point, int64_t step, int rank);
double test_write_delay();

}  // namespace aim::train::ckpt
