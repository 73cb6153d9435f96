// The processes behind "pipe:" and http(s) shards: a command never outlives its stream or
// this process, never inherits our descriptors, and leaves no zombie when we are PID 1 (a
// container without an init). Commands are marked with sleeps of unusual lengths, so that
// pgrep finds exactly them.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "aim/data/shard_stream.h"
#include "aim/data/webdataset_source.h"
#include "child_process.h"
#include "data_test_util.h"

using namespace aim::data;
namespace t = aim::data::testing;

namespace {

void write_shard(const std::string& path, int samples) {
  TarWriter w(path);
  for (int k = 0; k < samples; ++k) {
    auto png = t::id_png(k);
    w.add(std::to_string(1000 + k) + ".png", png.data(), png.size());
  }
}

bool running(const std::string& exact_cmdline) {
  return std::system(("pgrep -f '^" + exact_cmdline + "$' > /dev/null").c_str()) == 0;
}

template <class Pred>
bool eventually(Pred pred, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

int64_t read_all(ShardSampleReader& r) {
  WdsSample s;
  int64_t n = 0;
  while (r.next(s)) ++n;
  return n;
}

// Zombie children of this process (by /proc/self/task/<tid>/children of every thread; /proc
// is the outer namespace's, so the pids there are its pids).
int zombie_children() {
  int zombies = 0;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream in(task.path() / "children");
    for (pid_t c; in >> c;) {
      std::ifstream st("/proc/" + std::to_string(c) + "/stat");
      std::string line;
      std::getline(st, line);
      const auto close = line.rfind(')');
      if (close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z') ++zombies;
    }
  }
  return zombies;
}

}  // namespace

// On main the group was killed only while its leader ran: a stream that failed after the
// command exited (here: a cut tar, exit 0) left what the command started running.
TEST(ShardProcesses, AFailedStreamKillsEverythingItsCommandStarted) {
  t::TempDir d;
  write_shard(d / "a.tar", 4);
  {
    ShardSampleReader r("pipe:sleep 41.7 > /dev/null & head -c 3000 " + d / "a.tar", kDefaultMaxMemberBytes, 5.0);
    ASSERT_TRUE(r.ok()) << r.error();
    read_all(r);
    EXPECT_FALSE(r.ok());
    EXPECT_NE(r.error().find("after an incomplete tar"), std::string::npos) << r.error();
    EXPECT_EQ(r.failure(), StreamFailure::kPermanent);
  }
  EXPECT_TRUE(eventually([] { return !running("sleep 41.7"); }, 3)) << "the command's background sleep survived";
  std::system("pkill -KILL -f '^sleep 41.7$'");
}

// On main a killed process left its shard commands running (own process group, no
// parent-death signal): here the whole pipeline must go when its reader is SIGKILLed.
TEST(ShardProcesses, CommandsDieWithTheProcessThatReadsThem) {
  t::TempDir d;
  const auto child = t::run_in_child(
      [&] {
        ShardStream s("pipe:sleep 42.3 | cat", 60.0);
        if (!s.ok()) return 2;
        std::this_thread::sleep_for(std::chrono::seconds(30));  // killed long before
        return 0;
      },
      1.0);
  EXPECT_TRUE(child.timed_out);
  EXPECT_TRUE(eventually([] { return !running("sleep 42.3"); }, 5)) << "the command outlived its reader";
  std::system("pkill -KILL -f '^sleep 42.3$'");
}

// On main a command inherited every descriptor of the process not opened close-on-exec.
TEST(ShardProcesses, ACommandInheritsOnlyItsStdio) {
  t::TempDir d;
  write_shard(d / "a.tar", 2);
  const int leaked = ::open("/dev/null", O_RDONLY);  // as a library that forgot O_CLOEXEC would
  ASSERT_GE(leaked, 3);
  {
    ShardSampleReader r("pipe:ls /proc/self/fd > " + d / "fds.txt" + "; cat " + d / "a.tar");
    EXPECT_EQ(read_all(r), 2) << r.error();
    EXPECT_TRUE(r.ok()) << r.error();
  }
  ::close(leaked);
  std::ifstream in(d / "fds.txt");
  std::set<int> fds;
  for (int fd; in >> fd;) fds.insert(fd);
  // ls's own: stdin, stdout (the file), stderr, and the directory it lists.
  EXPECT_EQ(fds, (std::set<int>{0, 1, 2, 3}));
}

// As PID 1 a process inherits every orphan below it. On main each early close of
// "pipe:(cat X; sleep) | cat" left its pipeline's members as zombies of PID 1.
TEST(ShardProcesses, AsPid1ClosingStreamsLeavesNoZombies) {
  t::TempDir d;
  write_shard(d / "a.tar", 6);
  const auto outer = t::run_in_child(
      [&] {
        if (::unshare(CLONE_NEWPID) != 0) return 77;  // no namespaces here
        const pid_t init = ::fork();
        if (init == 0) {
          // PID 1 of the new namespace.
          for (int i = 0; i < 10; ++i) {
            ShardSampleReader r("pipe:(cat " + d / "a.tar" + "; sleep 0.3) | cat", kDefaultMaxMemberBytes, 5.0);
            WdsSample s;
            if (!r.next(s)) ::_exit(3);  // closed after one sample: the pipeline is still running
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
          ::_exit(::getpid() == 1 && zombie_children() == 0 ? 0 : 10 + std::min(zombie_children(), 50));
        }
        int status = 0;
        ::waitpid(init, &status, 0);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
      },
      30.0);
  if (outer.exited && outer.code == 77) GTEST_SKIP() << "cannot create a PID namespace here";
  EXPECT_TRUE(outer.ok()) << outer.describe() << " (10 + N: N zombies left)";
}
