#pragma once
// Where a shard's bytes come from: a local file, a command's stdout (webdataset's
// "pipe:COMMAND", e.g. "pipe:aws s3 cp s3://bucket/dfn/00000000.tar -"), or an HTTP(S) URL
// (read through a `curl --no-buffer` child process). Remote shards are streamed, never written
// to disk.
//
// A command never outlives its stream, and never sees what is not its own:
//  - it runs under a small /bin/sh guard in a process group of its own; closing the stream
//    kills that whole group (before the guard is reaped, so the group id cannot be reused),
//    whatever the command started, also after the command itself exited;
//  - the guard has a parent-death signal: if this process dies (SIGKILL, the OOM killer), the
//    guard kills the group. The signal follows the thread that opened the stream, so open
//    and close a stream on a thread that outlives it (the loader's workers, the main thread);
//  - it inherits only stdin (/dev/null), stdout (the pipe) and stderr: every other descriptor
//    of the process (other shards, metrics.jsonl, sockets) is closed in the child;
//  - as PID 1 (a container without an init) or a child subreaper, this process inherits the
//    group's orphans: closing the stream reaps them too, so no zombie is left.
// Its stderr goes to an anonymous in-memory file, read back only when the stream fails, so
// that the warning can quote why (`aws: NoSuchKey`, `curl: (22) ... 404`).
//
// Reads wait at most `timeout_s` for the next bytes, and a stream that delivers less than
// kMinBytesPerTimeout while waiting `timeout_s` in all (a drip) has failed too: either is
// retried by the caller instead of freezing the loader. Every wait ends within 0.1 s once
// `abort` is set.
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <string>

namespace aim::data {

enum class ShardLocation { kFile, kPipe, kHttp };

/// "pipe:..." -> kPipe, "http://..." / "https://..." -> kHttp, anything else -> kFile.
ShardLocation shard_location(const std::string& shard);
inline bool is_remote_shard(const std::string& shard) { return shard_location(shard) != ShardLocation::kFile; }

/// How remote shards are read and retried (data.shard_retries, data.shard_retry_backoff_s,
/// data.shard_timeout_s). Local files are never retried: their damage does not change.
struct RemoteShardOptions {
  int64_t retries = 3;       // re-opens of a failing remote shard before it is skipped and counted
  double backoff_s = 2.0;    // wait before the first re-open; doubles per failure, at most 30 s
  double timeout_s = 120.0;  // a stream that delivers no byte (or a drip) for this long has failed
};

/// A stream slower than this many bytes per `timeout_s` of waiting for it has failed: 64 KiB
/// per 120 s is 0.5 KiB/s, far below any link a dataset is streamed over, far above a drip.
constexpr int64_t kMinBytesPerTimeout = 64 * 1024;

/// Why a remote stream ended early, for the caller's retry decision.
enum class StreamFailure {
  kNone,       // no failure known (a file, or the stream is fine)
  kTransient,  // a timeout, a drip, a dropped connection, a command that failed: worth a retry
  kPermanent,  // the origin itself: an HTTP 4xx, or a command that exited 0 after a cut stream
  kAborted,    // `abort` was set: the caller is stopping
};

class ShardStream {
 public:
  /// Opens the shard; ok() is false (error() says why) when it cannot be opened or started.
  ShardStream(const std::string& shard, double timeout_s, const std::atomic<bool>* abort = nullptr);
  /// Closes the stream; the command's process group is killed and reaped.
  ~ShardStream();
  ShardStream(const ShardStream&) = delete;
  ShardStream& operator=(const ShardStream&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  std::FILE* file() const { return file_; }
  bool remote() const { return location_ != ShardLocation::kFile; }

  /// After a failed read of a remote stream: how it ended, e.g. "command exited with status 3:
  /// <its last stderr line>", "curl exited with status 22: curl: (22) ... 404", "no data for
  /// 120 s (data.shard_timeout_s)". Empty for files and while nothing is known. Ends the
  /// command (waits up to 2 s for it to exit on its own once its output has ended) and sets
  /// failure().
  std::string failure_note();
  StreamFailure failure() const { return failure_; }

  /// Used by the stdio cookie: reads with the timeout.
  ssize_t read_some(char* buf, size_t n);
  /// Changes the read timeout from now on (the tar reader waits only briefly for bytes after
  /// the end of the archive: a command that lingers after its tar has delivered everything).
  void set_timeout(double timeout_s) { timeout_s_ = timeout_s; }

 private:
  bool start_command(const std::string& shard);
  void end_command(bool wait_briefly);
  std::string stderr_tail() const;

  ShardLocation location_;
  std::string error_;
  std::FILE* file_ = nullptr;
  int fd_ = -1;         // read end of the command's stdout
  int err_fd_ = -1;     // the command's stderr (memfd)
  pid_t pid_ = -1;      // the guard, also its process group; -1 once reaped
  int status_ = 0;      // waitpid status once reaped
  double timeout_s_;
  const std::atomic<bool>* abort_;
  bool timed_out_ = false, too_slow_ = false, aborted_ = false, saw_eof_ = false, read_error_ = false;
  double waited_s_ = 0;       // time spent waiting for bytes in the current rate window
  int64_t window_bytes_ = 0;  // bytes received in it
  StreamFailure failure_ = StreamFailure::kNone;
};

}  // namespace aim::data
