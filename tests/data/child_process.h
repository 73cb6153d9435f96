#pragma once
// Runs a piece of test code in a forked child, so that a crash, a hang or a runaway
// allocation in the code under test fails one test instead of taking the suite down: the
// child is killed after a timeout, and its peak memory comes back through wait4.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <functional>
#include <string>
#include <thread>

namespace aim::data::testing {

struct ChildResult {
  bool exited = false;     // returned normally; `code` is its exit status
  int code = -1;
  int signal = 0;          // killed by this signal (SIGSEGV for a crash, SIGKILL for the timeout)
  bool timed_out = false;
  long peak_growth_mb = 0; // the child's peak resident memory above the parent's at the fork

  bool ok() const { return exited && code == 0; }
  std::string describe() const {
    if (timed_out) return "hung (killed after the timeout)";
    if (signal) return "died of signal " + std::to_string(signal);
    return "exit status " + std::to_string(code);
  }
};

inline long resident_kb() {
  long pages = 0, resident = 0;
  if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident * (::sysconf(_SC_PAGESIZE) / 1024);
}

/// Runs body() in a child; its return value is the exit status (an exception exits 3).
/// Keep the body to data code: the child has none of the parent's threads.
inline ChildResult run_in_child(const std::function<int()>& body, double timeout_s) {
  std::fflush(nullptr);
  const long parent_kb = resident_kb();
  pid_t pid = ::fork();
  if (pid == 0) {
    int code = 3;
    try {
      code = body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child: exception: %s\n", e.what());
    } catch (...) {
    }
    std::fflush(nullptr);
    ::_exit(code);
  }
  ChildResult r;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  int status = 0;
  rusage usage{};
  for (;;) {
    pid_t got = ::wait4(pid, &status, WNOHANG, &usage);
    if (got == pid) break;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::wait4(pid, &status, 0, &usage);
      r.timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (WIFEXITED(status)) {
    r.exited = !r.timed_out;
    r.code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r.signal = WTERMSIG(status);
  }
  r.peak_growth_mb = (usage.ru_maxrss - parent_kb) / 1024;
  return r;
}

}  // namespace aim::data::testing
