#include "aim/data/shard_stream.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <thread>
#include <vector>

extern char** environ;

namespace aim::data {
namespace {

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

ssize_t cookie_read(void* cookie, char* buf, size_t n) { return static_cast<ShardStream*>(cookie)->read_some(buf, n); }

std::string status_text(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "was killed by signal " + std::to_string(WTERMSIG(status));
  return "ended";
}

}  // namespace

ShardLocation shard_location(const std::string& shard) {
  if (starts_with(shard, "pipe:")) return ShardLocation::kPipe;
  if (starts_with(shard, "http://") || starts_with(shard, "https://")) return ShardLocation::kHttp;
  return ShardLocation::kFile;
}

ShardStream::ShardStream(const std::string& shard, double timeout_s)
    : location_(shard_location(shard)), timeout_s_(timeout_s) {
  if (location_ == ShardLocation::kFile) {
    file_ = std::fopen(shard.c_str(), "rb");
    if (!file_) error_ = std::string("cannot open: ") + std::strerror(errno);
    return;
  }
  if (!start_command(shard)) return;
  // A stdio stream over the pipe whose reads honour the timeout; the tar reader needs nothing else.
  cookie_io_functions_t io{};
  io.read = cookie_read;
  file_ = fopencookie(this, "r", io);
  if (!file_) error_ = std::string("fopencookie failed: ") + std::strerror(errno);
}

bool ShardStream::start_command(const std::string& shard) {
  std::vector<std::string> args;
  if (location_ == ShardLocation::kPipe) {
    args = {"/bin/sh", "-c", shard.substr(5)};
  } else {
    // --fail: an HTTP error is a non-zero exit, not an HTML page read as a tar.
    args = {"curl", "--silent", "--show-error", "--fail", "--location", "--", shard};
  }
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    error_ = std::string("pipe failed: ") + std::strerror(errno);
    return false;
  }
  err_fd_ = ::memfd_create("aim-shard-stderr", MFD_CLOEXEC);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  if (err_fd_ >= 0) posix_spawn_file_actions_adddup2(&fa, err_fd_, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Own process group (killed as one at close); default dispositions and an empty mask, so a
  // parent ignoring SIGPIPE or blocking SIGTERM does not leak that into the command.
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int s : {SIGPIPE, SIGTERM, SIGINT, SIGUSR1, SIGHUP}) sigaddset(&defaults, s);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, argv[0], &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(out[1]);
  if (rc != 0) {
    ::close(out[0]);
    error_ = std::string("cannot run ") + argv[0] + ": " + std::strerror(rc) +
             (location_ == ShardLocation::kHttp ? " (http(s) shards are read with curl: apt install curl)" : "");
    return false;
  }
  pid_ = pid;
  fd_ = out[0];
  return true;
}

ssize_t ShardStream::read_some(char* buf, size_t n) {
  const int timeout_ms = timeout_s_ > 0 ? static_cast<int>(std::min(timeout_s_ * 1000.0, 2e9)) : -1;
  for (;;) {
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) {
      timed_out_ = true;
      errno = ETIMEDOUT;
      return -1;
    }
    ssize_t got = ::read(fd_, buf, n);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) read_error_ = true;
    if (got == 0) saw_eof_ = true;
    return got;
  }
}

void ShardStream::end_command(bool wait_briefly) {
  if (pid_ < 0) return;
  // Once the output has ended the command is normally exiting: give it a moment, so that its
  // status says why. Otherwise (or still running after that) end it, children included.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (wait_briefly) {
    pid_t r = ::waitpid(pid_, &status_, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return;
    }
    if (r < 0 || std::chrono::steady_clock::now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::kill(-pid_, SIGKILL);
  while (::waitpid(pid_, &status_, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

std::string ShardStream::stderr_tail() const {
  if (err_fd_ < 0) return "";
  off_t size = ::lseek(err_fd_, 0, SEEK_END);
  if (size <= 0) return "";
  const off_t keep = std::min<off_t>(size, 2048);
  std::string text(static_cast<size_t>(keep), '\0');
  if (::pread(err_fd_, text.data(), text.size(), size - keep) <= 0) return "";
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  size_t nl = text.rfind('\n');
  std::string last = nl == std::string::npos ? text : text.substr(nl + 1);
  if (last.size() > 300) last = last.substr(0, 300) + "...";
  return last;
}

std::string ShardStream::failure_note() {
  if (location_ == ShardLocation::kFile) return "";
  const std::string who = location_ == ShardLocation::kHttp ? "curl" : "command";
  if (timed_out_) {
    end_command(false);
    char t[64];
    std::snprintf(t, sizeof t, "%g", timeout_s_);
    return std::string("no data for ") + t + " s (data.shard_timeout_s)";
  }
  const bool was_running = pid_ >= 0;
  end_command(saw_eof_ || read_error_);
  if (!was_running && status_ == 0) return "";
  if (WIFSIGNALED(status_) && WTERMSIG(status_) == SIGKILL && !saw_eof_) return "";  // we ended it
  if (WIFEXITED(status_) && WEXITSTATUS(status_) == 0) return "";
  std::string note = who + " " + status_text(status_);
  std::string tail = stderr_tail();
  if (!tail.empty()) note += ": " + tail;
  return note;
}

ShardStream::~ShardStream() {
  if (file_) std::fclose(file_);  // a file's own fd; for a command the cookie owns nothing
  if (fd_ >= 0) ::close(fd_);
  end_command(false);
  if (err_fd_ >= 0) ::close(err_fd_);
}

}  // namespace aim::data
