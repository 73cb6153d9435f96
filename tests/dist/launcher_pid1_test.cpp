// The local launcher as PID 1 of a container without an init (`unshare -fp`): it inherits
// every orphan below it, e.g. what a rank's shard command leaves behind. On main it waited
// for any child and took such an orphan's exit for a rank's: "a rank (pid 29) exited with
// status 137; stopping the others". The ranks here are this test binary again, running
// LauncherRankHelper.LeavesAnOrphan, which leaves an orphan that exits with status 9.
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "aim/dist/local_launcher.h"
#include "data/child_process.h"

namespace {
constexpr const char* kRankMode = "AIM_TEST_ORPHAN_RANK";
}

// Runs only as a rank of the test below.
TEST(LauncherRankHelper, LeavesAnOrphan) {
  if (!std::getenv(kRankMode)) GTEST_SKIP() << "a rank of LauncherAsPid1.OrphansAreReapedNotTakenForRanks";
  const pid_t middle = ::fork();
  if (middle == 0) {
    if (::fork() == 0) {  // the orphan: its parent exits at once, so it is re-parented to PID 1
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      ::_exit(9);
    }
    ::_exit(0);
  }
  ::waitpid(middle, nullptr, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(800));  // still running when the orphan exits
}

TEST(LauncherAsPid1, OrphansAreReapedNotTakenForRanks) {
  const auto outer = aim::data::testing::run_in_child(
      [] {
        if (::unshare(CLONE_NEWPID) != 0) return 77;
        const pid_t init = ::fork();
        if (init == 0) {  // PID 1 of the new namespace runs the launcher
          ::setenv(kRankMode, "1", 1);
          const int rc = aim::dist::launch_local(
              2, {"aim_tests", "--gtest_filter=LauncherRankHelper.LeavesAnOrphan", "--gtest_brief=1"});
          ::_exit(::getpid() == 1 ? rc : 99);
        }
        int status = 0;
        ::waitpid(init, &status, 0);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
      },
      60.0);
  if (outer.exited && outer.code == 77) GTEST_SKIP() << "cannot create a PID namespace here";
  EXPECT_TRUE(outer.ok()) << "launcher: " << outer.describe() << " (9: an orphan's exit taken for a rank's)";
}
