#pragma once
// Where a shard's bytes come from: a local file, a command's stdout (webdataset's
// "pipe:COMMAND", e.g. "pipe:aws s3 cp s3://bucket/dfn/00000000.tar -"), or an HTTP(S) URL
// (read through a `curl` child process). Remote shards are streamed, never written to disk.
//
// A command runs in its own process group, so closing a stream early (a resume skipping on,
// a run stopping) ends the command and whatever it started, not only the shell. Its stderr
// goes to an anonymous in-memory file, read back only when the stream fails, so that the
// warning can quote why (`aws: NoSuchKey`, `curl: (22) ... 404`) without filling the log of
// a healthy run. Reads wait at most `timeout_s` for the next bytes: a stalled connection
// fails the stream (and is retried by the caller) instead of freezing the loader.
#include <sys/types.h>

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
  double timeout_s = 120.0;  // a stream that delivers no byte for this long has failed
};

class ShardStream {
 public:
  /// Opens the shard; ok() is false (error() says why) when it cannot be opened or started.
  ShardStream(const std::string& shard, double timeout_s);
  /// Closes the stream; a command still running is killed with its process group and reaped.
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
  /// command (waits up to 2 s for it to exit on its own once its output has ended).
  std::string failure_note();

  /// Used by the stdio cookie: reads with the timeout.
  ssize_t read_some(char* buf, size_t n);

 private:
  bool start_command(const std::string& shard);
  void end_command(bool wait_briefly);
  std::string stderr_tail() const;

  ShardLocation location_;
  std::string error_;
  std::FILE* file_ = nullptr;
  int fd_ = -1;         // read end of the command's stdout
  int err_fd_ = -1;     // the command's stderr (memfd)
  pid_t pid_ = -1;      // the command, also its process group; -1 once reaped
  int status_ = 0;      // waitpid status once reaped
  double timeout_s_;
  bool timed_out_ = false, saw_eof_ = false, read_error_ = false;
};

}  // namespace aim::data
