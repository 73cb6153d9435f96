#include "aim/dist/local_launcher.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <thread>

#include "aim/error.h"

namespace aim::dist {
namespace {

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (fd >= 0) ::close(fd);
    throw Error(std::string("could not find a free local port: ") + std::strerror(errno));
  }
  const int port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

// The ranks, for the signal handler (which may only use async-signal-safe calls).
constexpr int kMaxRanks = 1024;
volatile sig_atomic_t g_num_children = 0;
pid_t g_children[kMaxRanks];

void forward_signal(int sig) {
  const int saved = errno;
  for (int i = 0; i < g_num_children; ++i)
    if (g_children[i] > 0) ::kill(g_children[i], sig);
  errno = saved;
}

// The signals a scheduler or a user sends to stop a job. Unlike torchrun's agent, which
// handles SIGTERM/SIGINT/SIGHUP/SIGQUIT only (SIGUSR1 kills it and orphans its workers), this
// launcher also passes SIGUSR1 on, so SLURM's --signal=USR1@T works with --nproc-per-node.
constexpr int kForwarded[] = {SIGTERM, SIGINT, SIGUSR1};

}  // namespace

int launch_local(int nproc, const std::vector<std::string>& argv) {
  if (nproc < 1) throw Error("--nproc-per-node must be >= 1");
  if (nproc > kMaxRanks) throw Error("--nproc-per-node must be <= " + std::to_string(kMaxRanks));
  const int port = free_port();
  const pid_t launcher = ::getpid();

  // Handlers go in before the first fork, so no signal can fall between a child's start and
  // its registration; a child resets them before exec.
  struct sigaction sa {};
  sa.sa_handler = forward_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : kForwarded) ::sigaction(sig, &sa, nullptr);

  std::vector<pid_t> children;
  for (int r = 0; r < nproc; ++r) {
    pid_t pid = ::fork();
    if (pid < 0) throw Error(std::string("fork failed: ") + std::strerror(errno));
    if (pid == 0) {
      for (int sig : kForwarded) ::signal(sig, SIG_DFL);
      // Its own process group: a terminal's Ctrl-C then reaches the rank once, through the
      // launcher, not twice (directly and forwarded), which aim-train reads as "exit now".
      ::setpgid(0, 0);
      // A launcher killed outright (SIGKILL, OOM killer) cannot forward anything: the kernel
      // sends each rank SIGTERM when it dies. If it died before this line, stop now.
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != launcher) ::_exit(128 + SIGTERM);
      ::setenv("RANK", std::to_string(r).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      ::unsetenv("TORCHELASTIC_USE_AGENT_STORE");  // this launcher serves no store: rank 0 does
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execv("/proc/self/exe", args.data());
      std::cerr << "exec failed: " << std::strerror(errno) << std::endl;
      ::_exit(127);
    }
    children.push_back(pid);
    g_children[r] = pid;
    g_num_children = r + 1;
  }
  int result = 0;
  // After a failure the others get SIGTERM (and SIGCONT: a stopped rank must run to see it);
  // a rank frozen beyond that (a hung device, a stopped process) is killed after the grace.
  constexpr auto kGrace = std::chrono::seconds(30);
  // When to SIGKILL them; max() while no SIGTERM went out (a plain time point: GCC warns, falsely,
  // that an optional one may be read uninitialized once the unity build inlines this).
  constexpr auto kNever = std::chrono::steady_clock::time_point::max();
  auto kill_at = kNever;
  // Only our ranks' exits count. As PID 1 (a container without an init) or a subreaper we
  // also inherit every orphan below us, e.g. what a rank's shard command left behind: those
  // are reaped here (no zombies pile up) and otherwise ignored.
  auto is_rank = [&](pid_t pid) { return std::find(children.begin(), children.end(), pid) != children.end(); };
  for (size_t alive = children.size(); alive > 0;) {
    int status = 0;
    pid_t done = ::waitpid(-1, &status, WNOHANG);
    if (done > 0 && !is_rank(done)) continue;  // an inherited orphan: reaped, nothing more
    if (done == 0) {
      if (std::chrono::steady_clock::now() >= kill_at) {
        for (int i = 0; i < g_num_children; ++i)
          if (g_children[i] > 0) ::kill(g_children[i], SIGKILL);
        std::cerr << "aim: ranks still running " << kGrace.count() << " s after SIGTERM; killed" << std::endl;
        kill_at = kNever;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    if (done < 0) {
      if (errno == EINTR) continue;  // a forwarded signal; the ranks decide what happens
      break;
    }
    --alive;
    for (int i = 0; i < g_num_children; ++i)
      if (g_children[i] == done) g_children[i] = -1;
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    // A rank told to stop (SIGTERM/SIGUSR1/SIGINT, from us or sent to it directly) saves a
    // checkpoint with the others and exits 128 + the signal: a clean stop, not a failure to
    // answer by stopping the others (they stop after the same step on their own). A rank
    // killed by the signal itself reports WIFSIGNALED instead.
    const bool clean_stop = WIFEXITED(status) && (code == 128 + SIGTERM || code == 128 + SIGUSR1 || code == 128 + SIGINT);
    if (code != 0 && result == 0 && clean_stop) {
      result = code;
    } else if (code != 0 && result == 0) {
      result = code;
      std::cerr << "aim: a rank (pid " << done << ") exited with status " << code << "; stopping the others" << std::endl;
      for (pid_t c : children)
        if (c != done) {
          ::kill(c, SIGTERM);
          ::kill(c, SIGCONT);
        }
      kill_at = std::chrono::steady_clock::now() + kGrace;
    }
  }
  g_num_children = 0;
  for (int sig : kForwarded) ::signal(sig, SIG_DFL);
  return result;
}

}  // namespace aim::dist
