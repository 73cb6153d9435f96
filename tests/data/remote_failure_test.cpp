// Remote shards that fail in the ways a cluster meets: permanently (HTTP 4xx, a command
// that exits 0 after a cut tar: not retried), later and later on every attempt (nothing lost),
// unreadable from the start (the run refuses to begin), dripping, lingering after their tar,
// and stalled while the loader stops (every wait ends on abort). Network traffic stays on
// 127.0.0.1 (HttpTestServer).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

#include "aim/data/loader.h"
#include "aim/data/shard_list.h"
#include "aim/data/shard_stream.h"
#include "aim/error.h"
#include "http_test_server.h"
#include "remote_test_util.h"

using namespace aim::data;
using namespace aim::data::testing::remote;
namespace t = aim::data::testing;
namespace fs = std::filesystem;

// Permanent failures are not retried. On main an HTTP 404 cost 1 + shard_retries requests with
// backoff, and a command that exited 0 after a cut tar was re-run as often, unquoted.
TEST(RemoteShards, PermanentFailuresAreSkippedAtOnceAndQuoted) {
  AIM_REQUIRE_DEPENDENCY(have_curl(), "curl (http(s) shards)");
  t::TempDir d;
  write_shards(d);
  t::HttpTestServer server(d.path.string());
  const std::string runs = d / "runs.txt";
  const std::string cut_cmd = "pipe:echo run >> " + runs + "; echo 'partial upload' >&2; head -c 3000 " + d / "00000002.tar";
  struct Case {
    std::string shard, says;
    size_t delivered;
  };
  for (const Case& c : {Case{server.url("00000404.tar"), "(an HTTP client error: not retried): curl: (22)", 0},
                        Case{cut_cmd, "command exited with status 0 after an incomplete tar (not retried: the same "
                                      "command gives the same bytes): partial upload",
                             1}}) {
    SCOPED_TRACE(c.shard);
    LogCapture log;
    auto cfg = config({"pipe:cat " + d / "{00000000..00000001}.tar", c.shard}, false);
    cfg.remote.retries = 3;
    cfg.remote.backoff_s = 5;  // a retry would show in the time
    const auto t0 = std::chrono::steady_clock::now();
    Loader l(cfg);
    EXPECT_EQ(eval_pass(l).size(), 2 * kPerShard + c.delivered);
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 4.0);
    EXPECT_EQ(l.bad_samples().total(), 1);
    EXPECT_NE(log.str().find(c.says), std::string::npos) << log.str();
    EXPECT_EQ(log.str().find("re-opening it in"), std::string::npos) << log.str();
  }
  EXPECT_EQ(server.hits("00000404.tar"), 1);
  EXPECT_EQ(count_lines(runs), 1);
}

// Issue 31: the retry count restarts whenever the shard made progress. A long shard whose
// stream is cut on every attempt, each time later than before, is read whole however many
// more times than shard_retries that happens (on main: dropped at the third cut in total).
TEST(RemoteShards, AShardCutLaterOnEveryAttemptLosesNothing) {
  t::TempDir d;
  write_shards(d);
  const std::string range = "{00000000..00000002}.tar";
  Loader local(config({d / range}, false));
  const auto want = eval_pass(local);
  // Attempt n of each shard sends its first n * 2500 bytes and fails, five times; then all.
  const std::string flaky = "pipe:f=" + (d / range) +
                            "; n=$(( $(cat $f.n 2>/dev/null || echo 0) + 1 )); echo $n > $f.n;"
                            " if [ $n -le 5 ]; then head -c $((n * 2500)) $f; exit 7; fi; cat $f";
  auto cfg = config({flaky}, false);
  cfg.remote.retries = 2;
  LogCapture log;
  Loader remote(cfg);
  EXPECT_EQ(eval_pass(remote), want);
  EXPECT_EQ(remote.bad_samples().total(), 0) << log.str();
  EXPECT_NE(log.str().find("(retry 1 of 2)"), std::string::npos) << log.str();
  EXPECT_EQ(log.str().find("(retry 3 of 2)"), std::string::npos) << log.str();
}

// A typo in a URL or command fails the start in seconds (on main: every shard's retries,
// ~15 minutes at the defaults); a single missing shard does not.
TEST(RemoteShards, AnUnreadableSourceFailsBeforeTheFirstStep) {
  AIM_REQUIRE_DEPENDENCY(have_curl(), "curl (http(s) shards)");
  t::TempDir d;
  write_shards(d);
  t::HttpTestServer server(d.path.string());
  const auto t0 = std::chrono::steady_clock::now();
  try {
    Loader l(config({server.url("typo/{00000000..00000002}.tar")}, true));
    ADD_FAILURE() << "a source whose shards all answer 404 was accepted";
  } catch (const aim::Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("none of the first 3 remote shards can be read"), std::string::npos) << what;
    EXPECT_NE(what.find(server.url("typo/00000000.tar")), std::string::npos) << what;
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
  // The first shard missing, the next ones there: the run starts.
  EXPECT_NO_THROW(Loader(config({server.url("{00000007,00000001,00000002}.tar")}, true)));
}

// A stream that keeps sending a few bytes a second never hit the inactivity timeout on main
// (a 440 KB shard held its lane ~15 minutes): under 64 KiB per shard_timeout_s of waiting fails.
TEST(RemoteShards, ADripFailsLikeAStall) {
  AIM_REQUIRE_DEPENDENCY(have_curl(), "curl (http(s) shards)");
  t::TempDir d;
  write_shards(d);
  t::HttpTestServer server(d.path.string());
  server.drip("00000001.tar", 256, 0.5);  // 512 B/s: the whole shard would take ~30 s
  LogCapture log;
  auto cfg = config({"pipe:cat " + d / "00000000.tar", server.url("00000001.tar")}, false);
  cfg.remote.timeout_s = 1.0;
  cfg.remote.retries = 0;
  const auto t0 = std::chrono::steady_clock::now();
  Loader l(cfg);
  EXPECT_EQ(eval_pass(l).size(), static_cast<size_t>(kPerShard));
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 8.0);
  EXPECT_EQ(l.bad_samples().total(), 1);
  EXPECT_NE(log.str().find("a drip: under 64 KiB in 1 s of waiting"), std::string::npos) << log.str();
}

// A command that lingers after its tar has been sent (clean-up, a sleep) delivers the whole
// shard without a failure: the reader looks past the end-of-archive blocks for a second only.
TEST(RemoteShards, ACommandThatLingersAfterItsTarIsNotAFailure) {
  t::TempDir d;
  write_shards(d);
  auto cfg = config({"pipe:cat " + d / "00000000.tar" + "; sleep 48.1"}, false);
  cfg.remote.timeout_s = 30;
  const auto t0 = std::chrono::steady_clock::now();
  {
    Loader l(cfg);
    EXPECT_EQ(eval_pass(l).size(), static_cast<size_t>(kPerShard));
    EXPECT_EQ(l.bad_samples().total(), 0);
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
  std::system("pkill -KILL -f '^sleep 48.1$'");
}

// Every wait of a stream ends within 0.1 s once `abort` is set, and says so (the lane then
// neither retries nor counts the shard). On main a read waited out data.shard_timeout_s.
TEST(RemoteShards, AbortEndsAStalledReadAtOnce) {
  std::atomic<bool> abort{false};
  ShardSampleReader r("pipe:sleep 45.6 | cat", kDefaultMaxMemberBytes, 60.0, &abort);
  ASSERT_TRUE(r.ok()) << r.error();
  std::thread stop([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    abort = true;
  });
  const auto t0 = std::chrono::steady_clock::now();
  WdsSample s;
  EXPECT_FALSE(r.next(s));
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 2.0);
  EXPECT_EQ(r.failure(), StreamFailure::kAborted) << r.error();
  stop.join();
  std::system("pkill -KILL -f '^sleep 45.6$'");
}

// A stalled shard cannot hold a stopping run: next() gives up when its interrupt check turns
// true, and the loader shuts down at once. On main the workers sat in the stalled read (and
// in retry backoffs) until shard_timeout_s had passed on every attempt.
TEST(RemoteShards, AStalledShardDoesNotHoldAStoppingLoader) {
  t::TempDir d;
  write_shards(d);
  // The second shard sends its first sample and a half, then nothing: batch 0 already waits.
  auto cfg = config({"pipe:cat " + d / "00000000.tar", "pipe:head -c 3000 " + d / "00000001.tar; sleep 43.1"}, true);
  cfg.remote.timeout_s = 60;
  cfg.remote.backoff_s = 30;
  std::atomic<bool> stop{false};
  auto t0 = std::chrono::steady_clock::now();
  {
    Loader l(cfg);
    l.set_interrupt([&] { return stop.load(); });
    EXPECT_THROW(
        {
          std::thread signal([&] {
            std::this_thread::sleep_for(std::chrono::milliseconds(1500));
            stop = true;
          });
          struct Join {
            std::thread& t;
            ~Join() { t.join(); }
          } join{signal};
          for (int i = 0; i < 20; ++i) l.next();
        },
        LoaderInterrupted);
    t0 = std::chrono::steady_clock::now();
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 2.0)
      << "the loader's shutdown waited for the stalled shard";
  EXPECT_TRUE([] {
    for (int i = 0; i < 100; ++i) {
      if (std::system("pgrep -f '^sleep 43.1$' > /dev/null") != 0) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }()) << "the stalled command was left running";
}

