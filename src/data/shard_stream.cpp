#include "aim/data/shard_stream.h"
#include "aim/stopwatch.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
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

// The guard the command runs under (argv: sh -c GUARD aim-shard COMMAND...): it starts the
// command in its own process group and waits for it; SIGTERM (its parent-death signal) or
// SIGHUP kill the whole group, the guard included. Its exit status is the command's.
constexpr const char* kGuard = "trap 'kill -KILL 0' HUP TERM; \"$@\" & wait $!";

bool in_path(const char* name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    std::string dir = dirs.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!dir.empty() && ::access((dir + "/" + name).c_str(), X_OK) == 0) return true;
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return false;
}

// What the child does between clone and exec. It shares our memory (CLONE_VM, the parent
// thread waits: CLONE_VFORK), so it only makes system calls on its own stack.
struct ChildPlan {
  char* const* argv;
  int devnull, out, err;
  pid_t parent;
  int exec_errno = 0;
};

int child_main(void* arg) {
  auto* p = static_cast<ChildPlan*>(arg);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; ++s)
    if (s != SIGKILL && s != SIGSTOP) ::sigaction(s, &dfl, nullptr);  // a parent ignoring SIGPIPE must not leak that
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (::getppid() != p->parent) ::_exit(127);  // the parent died before the line above
  ::dup2(p->devnull, 0);
  ::dup2(p->out, 1);
  ::dup2(p->err >= 0 ? p->err : p->devnull, 2);
  // Nothing else of ours: other shards, metrics.jsonl, the rendezvous sockets.
  if (::syscall(SYS_close_range, 3u, ~0u, 0u) != 0) {
    rlimit r{};
    const long top = ::getrlimit(RLIMIT_NOFILE, &r) == 0 ? static_cast<long>(std::min<rlim_t>(r.rlim_cur, 65536)) : 4096;
    for (long fd = 3; fd < top; ++fd) ::close(static_cast<int>(fd));
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execve("/bin/sh", p->argv, environ);
  p->exec_errno = errno;
  ::_exit(127);
}

// After a 4xx the origin says the shard is not there (or not ours): asking again cannot help.
// 408 (timeout) and 429 (too many requests) are the client errors that pass.
bool permanent_http_error(const std::string& curl_stderr) {
  const auto at = curl_stderr.find("returned error: ");
  if (at == std::string::npos) return false;
  const int code = std::atoi(curl_stderr.c_str() + at + 16);
  return code >= 400 && code < 500 && code != 408 && code != 429;
}

bool may_inherit_orphans() {
  if (::getpid() == 1) return true;
  int subreaper = 0;
  return ::prctl(PR_GET_CHILD_SUBREAPER, &subreaper) == 0 && subreaper != 0;
}

}  // namespace

ShardLocation shard_location(const std::string& shard) {
  if (starts_with(shard, "pipe:")) return ShardLocation::kPipe;
  if (starts_with(shard, "http://") || starts_with(shard, "https://")) return ShardLocation::kHttp;
  return ShardLocation::kFile;
}

ShardStream::ShardStream(const std::string& shard, double timeout_s, const std::atomic<bool>* abort)
    : location_(shard_location(shard)), timeout_s_(timeout_s), abort_(abort) {
  if (location_ == ShardLocation::kFile) {
    file_ = std::fopen(shard.c_str(), "rbe");  // close-on-exec: no command inherits it
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
  std::vector<std::string> args = {"/bin/sh", "-c", kGuard, "aim-shard"};
  if (location_ == ShardLocation::kPipe) {
    for (const char* a : {"/bin/sh", "-c"}) args.emplace_back(a);
    args.push_back(shard.substr(5));
  } else {
    if (!in_path("curl")) {
      error_ = "cannot run curl: not found (http(s) shards are read with curl: apt install curl)";
      return false;
    }
    // --fail: an HTTP error is a non-zero exit, not an HTML page read as a tar. --no-buffer:
    // bytes reach the pipe as they arrive, so a flowing stream never looks stalled.
    for (const char* a : {"curl", "--silent", "--show-error", "--fail", "--location", "--no-buffer", "--"})
      args.emplace_back(a);
    args.push_back(shard);
  }
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    error_ = std::string("pipe failed: ") + std::strerror(errno);
    return false;
  }
  err_fd_ = ::memfd_create("aim-shard-stderr", MFD_CLOEXEC);
  const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  ChildPlan plan{argv.data(), devnull, out[1], err_fd_, ::getpid()};
  // No signal handler of ours may run on the child's side before its exec.
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  std::vector<char> stack(64 * 1024);
  const pid_t pid = ::clone(child_main, stack.data() + stack.size(), CLONE_VM | CLONE_VFORK | SIGCHLD, &plan);
  const int clone_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ::close(out[1]);
  if (devnull >= 0) ::close(devnull);
  if (pid < 0 || plan.exec_errno != 0) {
    ::close(out[0]);
    if (pid > 0) ::waitpid(pid, nullptr, 0);
    error_ = std::string("cannot run /bin/sh: ") + std::strerror(pid < 0 ? clone_errno : plan.exec_errno);
    return false;
  }
  pid_ = pid;
  fd_ = out[0];
  return true;
}

ssize_t ShardStream::read_some(char* buf, size_t n) {
  const auto started = SteadyClock::now();
  for (;;) {
    if (abort_ && abort_->load()) {
      aborted_ = true;
      errno = ECANCELED;
      return -1;
    }
    // Short slices while someone may abort; else one wait up to the timeout.
    double left = timeout_s_ > 0 ? timeout_s_ - seconds_since(started) : 1e9;
    if (abort_) left = std::min(left, 0.1);
    const int ms = static_cast<int>(std::clamp(std::ceil(left * 1000.0), 0.0, 2e9));
    pollfd p{fd_, POLLIN, 0};
    const auto t0 = SteadyClock::now();
    int r = ::poll(&p, 1, timeout_s_ > 0 || abort_ ? ms : -1);
    waited_s_ += seconds_since(t0);
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) {
      if (timeout_s_ > 0 && seconds_since(started) >= timeout_s_) {
        timed_out_ = true;
        errno = ETIMEDOUT;
        return -1;
      }
      continue;
    }
    ssize_t got = ::read(fd_, buf, n);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) read_error_ = true;
    if (got == 0) saw_eof_ = true;
    if (got > 0 && timeout_s_ > 0) {
      // The rate over the time spent waiting (not over the time the reader spent elsewhere).
      window_bytes_ += got;
      if (waited_s_ >= timeout_s_) {
        if (window_bytes_ < kMinBytesPerTimeout) {
          too_slow_ = true;
          errno = ETIMEDOUT;
          return -1;
        }
        waited_s_ = 0;
        window_bytes_ = 0;
      }
    }
    return got;
  }
}

void ShardStream::end_command(bool wait_briefly) {
  if (pid_ < 0) return;
  // Once the output has ended the command is normally exiting: give it a moment, so that its
  // status says why. The guard is only looked at (WNOWAIT), not reaped, until its group is
  // killed: while it is a zombie its id cannot name another process group.
  const auto deadline = SteadyClock::now() + std::chrono::seconds(2);
  while (wait_briefly && !(abort_ && abort_->load())) {
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0) break;
    if (info.si_pid == pid_ || SteadyClock::now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const pid_t group = pid_;
  ::kill(-group, SIGKILL);  // the whole group, also what the command left behind after exiting
  while (::waitpid(group, &status_, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  if (!may_inherit_orphans()) return;
  // As PID 1 (or a subreaper) the group's orphans are our children: reap them, until the
  // group is gone (bounded: a member that left the group is not ours to wait for).
  const auto until = SteadyClock::now() + std::chrono::seconds(1);
  while (SteadyClock::now() < until) {
    while (::waitpid(-group, nullptr, WNOHANG) > 0) {
    }
    if (::kill(-group, 0) != 0 && errno == ESRCH) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
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
  char t[64];
  std::snprintf(t, sizeof t, "%g", timeout_s_);
  if (aborted_) {
    end_command(false);
    failure_ = StreamFailure::kAborted;
    return "stopped: the loader is shutting down";
  }
  if (timed_out_ || too_slow_) {
    end_command(false);
    failure_ = StreamFailure::kTransient;
    return timed_out_ ? std::string("no data for ") + t + " s (data.shard_timeout_s)"
                      : std::string("a drip: under ") + std::to_string(kMinBytesPerTimeout / 1024) + " KiB in " + t +
                            " s of waiting (data.shard_timeout_s)";
  }
  const bool was_running = pid_ >= 0;
  end_command(saw_eof_ || read_error_);
  if (was_running && WIFSIGNALED(status_) && WTERMSIG(status_) == SIGKILL && !saw_eof_) {
    // We ended it, on damage found in bytes it was still sending: what its origin holds.
    failure_ = StreamFailure::kPermanent;
    return "";
  }
  const std::string tail = stderr_tail();
  std::string note = who + " " + status_text(status_);
  if (WIFEXITED(status_) && WEXITSTATUS(status_) == 0) {
    // It says it sent everything: the cut is in what it reads, and a retry reads the same.
    failure_ = StreamFailure::kPermanent;
    note += " after an incomplete tar (not retried: the same command gives the same bytes)";
  } else if (location_ == ShardLocation::kHttp && permanent_http_error(tail)) {
    failure_ = StreamFailure::kPermanent;
    note += " (an HTTP client error: not retried)";
  } else {
    failure_ = StreamFailure::kTransient;
  }
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
