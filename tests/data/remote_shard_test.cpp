// Shards read from a command's stdout ("pipe:COMMAND") and over HTTP (curl): the same batches
// as the same files read directly, resume continues at the same sample, a failure mid-shard is
// re-opened where it stopped without changing what is delivered, and a shard that keeps
// failing is skipped, counted and named with how its command ended. Network traffic stays on
// 127.0.0.1 (HttpTestServer).
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "aim/data/loader.h"
#include "aim/data/shard_list.h"
#include "aim/data/shard_stream.h"
#include "aim/error.h"
#include "data_test_util.h"
#include "http_test_server.h"

using namespace aim::data;
namespace t = aim::data::testing;
namespace fs = std::filesystem;

namespace {

constexpr int kShards = 3, kPerShard = 7;

// Shards 00000000..00000002.tar of id-coded PNGs (id 100 * (s + 1) + k) with labels.
void write_shards(const t::TempDir& d) {
  for (int s = 0; s < kShards; ++s) {
    TarWriter w(d / ("0000000" + std::to_string(s) + ".tar"));
    for (int k = 0; k < kPerShard; ++k) {
      const std::string key = std::to_string(s) + "_" + std::to_string(1000 + k);
      auto png = t::id_png(100 * (s + 1) + k);
      w.add(key + ".png", png.data(), png.size());
      w.add(key + ".cls", std::to_string(k % 4));
    }
  }
}

bool have_curl() { return std::system("curl --version > /dev/null 2>&1") == 0; }

LoaderConfig config(const std::vector<std::string>& shards, bool train) {
  LoaderConfig c;
  SourceConfig s;
  s.name = "remote";
  s.kind = "webdataset";
  s.shards = shards;
  c.sources = {s};
  c.train = train;
  c.img_size = 12;
  c.batch_size = 4;
  c.workers = 2;
  c.stream_lanes = 2;
  c.seed = 5;
  c.augment.eval_crop_pct = 1.0;
  c.remote.backoff_s = 0.01;  // the tests' failures are instant; real ones wait seconds
  return c;
}

std::vector<Batch> take(Loader& l, int n) {
  std::vector<Batch> out;
  for (int i = 0; i < n; ++i) out.push_back(*l.next());
  return out;
}

void expect_same(const std::vector<Batch>& a, const std::vector<Batch>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(torch::equal(a[i].images, b[i].images)) << what << " batch " << i;
    EXPECT_TRUE(torch::equal(a[i].labels, b[i].labels)) << what << " batch " << i;
    EXPECT_TRUE(torch::equal(a[i].index, b[i].index)) << what << " batch " << i;
  }
}

// (index, sample id) of one ordered eval pass, in delivery order.
std::vector<std::pair<int64_t, int>> eval_pass(Loader& l) {
  std::vector<std::pair<int64_t, int>> out;
  while (auto b = l.next())
    for (int64_t i = 0; i < b->size(); ++i)
      out.push_back({b->index[i].item<int64_t>(), t::id_of(b->images[i].data_ptr<uint8_t>(), 12 * 12)});
  return out;
}

// Collects what spdlog writes while alive.
struct LogCapture {
  std::ostringstream text;
  std::shared_ptr<spdlog::logger> previous = spdlog::default_logger();
  LogCapture() {
    spdlog::set_default_logger(
        std::make_shared<spdlog::logger>("capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(text)));
  }
  ~LogCapture() { spdlog::set_default_logger(previous); }
  std::string str() const { return text.str(); }
};

int count_lines(const std::string& path) {
  std::ifstream f(path);
  int n = 0;
  for (std::string line; std::getline(f, line);) ++n;
  return n;
}

}  // namespace

TEST(RemoteShards, LocationIsTheWebdatasetPrefix) {
  EXPECT_EQ(shard_location("/data/00000000.tar"), ShardLocation::kFile);
  EXPECT_EQ(shard_location("pipe:aws s3 cp s3://b/0.tar -"), ShardLocation::kPipe);
  EXPECT_EQ(shard_location("http://host/0.tar"), ShardLocation::kHttp);
  EXPECT_EQ(shard_location("https://host/0.tar"), ShardLocation::kHttp);
  EXPECT_EQ(shard_location("pipes/0.tar"), ShardLocation::kFile);
  // Braces expand inside commands and URLs; '?' and '*' there are not globs.
  EXPECT_EQ(expand_shard_patterns({"pipe:aws s3 cp s3://b/dfn/{00000000..00000002}.tar -"}),
            (std::vector<std::string>{"pipe:aws s3 cp s3://b/dfn/00000000.tar -", "pipe:aws s3 cp s3://b/dfn/00000001.tar -",
                                      "pipe:aws s3 cp s3://b/dfn/00000002.tar -"}));
  EXPECT_EQ(expand_shard_patterns({"https://h/{0,1}.tar?sig=a*b"}),
            (std::vector<std::string>{"https://h/0.tar?sig=a*b", "https://h/1.tar?sig=a*b"}));
  // A source of remote shards only starts without any of them existing as files.
  EXPECT_NO_THROW(WebDatasetSource("r", {"pipe:false"}));
  EXPECT_THROW(WebDatasetSource("r", {"/nonexistent/{0..1}.tar"}), aim::Error);
}

TEST(RemoteShards, PipeAndHttpGiveTheSameBatchesAsLocalFilesAndResumeExactly) {
  AIM_REQUIRE_DEPENDENCY(have_curl(), "curl (http(s) shards)");
  t::TempDir d;
  write_shards(d);
  t::HttpTestServer server(d.path.string());
  const std::string range = "{00000000..00000002}.tar";
  Loader local(config({d / range}, true));
  const auto want = take(local, 12);  // 48 samples: more than one epoch of the 21
  for (const std::string& shards : {"pipe:cat " + (d / range), server.url(range)}) {
    SCOPED_TRACE(shards);
    Loader remote(config({shards}, true));
    expect_same(want, take(remote, 12), "remote vs local");
    EXPECT_EQ(remote.bad_samples().total(), 0);
    nlohmann::json saved;
    {
      Loader first(config({shards}, true));
      take(first, 5);
      saved = first.state();
    }
    Loader resumed(config({shards}, true));
    resumed.load_state(saved.get<LoaderState>());
    expect_same(std::vector<Batch>(want.begin() + 5, want.end()), take(resumed, 7), "resumed");
  }
  EXPECT_GE(server.hits("00000001.tar"), 2);
}

// A stream cut mid-shard (a connection reset, a command that dies) is opened again and read on
// after the last sample delivered: nothing is lost, nothing is delivered twice, nothing counted.
TEST(RemoteShards, AStreamCutMidShardIsReopenedWhereItStopped) {
  AIM_REQUIRE_DEPENDENCY(have_curl(), "curl (http(s) shards)");
  t::TempDir d;
  write_shards(d);
  const std::string range = "{00000000..00000002}.tar";
  Loader local(config({d / range}, false));
  const auto want = eval_pass(local);
  ASSERT_EQ(want.size(), static_cast<size_t>(kShards * kPerShard));

  t::HttpTestServer server(d.path.string());
  for (int s = 0; s < kShards; ++s) server.cut_first("0000000" + std::to_string(s) + ".tar", 2);
  // The first run of each command sends 3000 bytes (inside the second sample) and fails.
  const std::string flaky = "pipe:f=" + (d / range) +
                            "; if [ ! -e $f.tried ]; then touch $f.tried; head -c 3000 $f; exit 7; fi; cat $f";
  for (const std::string& shards : {server.url(range), flaky}) {
    SCOPED_TRACE(shards);
    LogCapture log;
    Loader remote(config({shards}, false));
    EXPECT_EQ(eval_pass(remote), want);
    EXPECT_EQ(remote.bad_samples().total(), 0);
    EXPECT_NE(log.str().find("re-opening it in"), std::string::npos) << log.str();
  }
  for (int s = 0; s < kShards; ++s) {
    EXPECT_EQ(server.hits("0000000" + std::to_string(s) + ".tar"), 3) << "two cut responses, then a whole one";
    EXPECT_TRUE(fs::exists(d / ("0000000" + std::to_string(s) + ".tar.tried")));
  }
}

// A shard that fails every time is tried 1 + data.shard_retries times, then skipped and counted
// once; the warning names the command or URL and says how it ended. The other shards are read.
// (The readable remote shard comes first: the check before the first step reads it.)
TEST(RemoteShards, AShardThatKeepsFailingIsSkippedCountedAndNamed) {
  AIM_REQUIRE_DEPENDENCY(have_curl(), "curl (http(s) shards)");
  t::TempDir d;
  write_shards(d);
  t::HttpTestServer server(d.path.string());
  server.fail_with("00000009.tar", 503);
  const std::string runs = d / "runs.txt";
  const std::string failing_cmd = "pipe:echo run >> " + runs + "; echo 'aws: NoSuchKey: dfn/00000007.tar' >&2; exit 3";
  struct Case {
    std::string shard, says;
  };
  for (const Case& c : {Case{failing_cmd, "command exited with status 3: aws: NoSuchKey: dfn/00000007.tar"},
                        Case{server.url("00000009.tar"), "curl exited with status 22"}}) {
    SCOPED_TRACE(c.shard);
    LogCapture log;
    auto cfg = config({"pipe:cat " + d / "{00000000..00000001}.tar", c.shard}, false);
    cfg.remote.retries = 2;
    Loader l(cfg);
    auto got = eval_pass(l);
    EXPECT_EQ(got.size(), static_cast<size_t>(2 * kPerShard));
    EXPECT_EQ(l.bad_samples().total(), 1);
    const std::string text = log.str();
    EXPECT_NE(text.find("skipping bad sample in source 'remote': " + c.shard), std::string::npos) << text;
    EXPECT_NE(text.find(c.says), std::string::npos) << text;
    EXPECT_NE(text.find("(retry 2 of 2)"), std::string::npos) << text;
    EXPECT_EQ(text.find("(retry 3 of 2)"), std::string::npos) << text;
  }
  EXPECT_EQ(count_lines(runs), 3);
  EXPECT_EQ(server.hits("00000009.tar"), 3);
}

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

// A shard that is damaged at its origin stays damaged however often it is fetched: the pipe
// delivers exactly what the same file read directly delivers, and counts it the same way.
TEST(RemoteShards, ADamagedRemoteShardCountsLikeTheDamagedFile) {
  t::TempDir d;
  write_shards(d);
  fs::resize_file(d / "00000001.tar", 4000);  // inside its second sample (2 KiB each)
  const std::string range = "{00000000..00000002}.tar";
  Loader local(config({d / range}, false));
  const auto want = eval_pass(local);
  auto cfg = config({"pipe:cat " + (d / range)}, false);
  cfg.remote.retries = 2;
  Loader remote(cfg);
  EXPECT_EQ(eval_pass(remote), want);
  EXPECT_EQ(want.size(), static_cast<size_t>(2 * kPerShard + 1));
  EXPECT_EQ(remote.bad_samples().by_reason(), local.bad_samples().by_reason());
  EXPECT_EQ(remote.bad_samples().total(), 1);
}

// A stream that stops sending (a hung connection, a stuck command) fails after
// data.shard_timeout_s instead of freezing the loader; the command is ended with its children.
TEST(RemoteShards, AStalledStreamTimesOut) {
  t::TempDir d;
  write_shards(d);
  LogCapture log;
  auto cfg = config({"pipe:cat " + d / "00000000.tar", "pipe:sleep 37 | cat"}, false);
  cfg.remote.timeout_s = 0.5;
  cfg.remote.retries = 1;
  const auto t0 = std::chrono::steady_clock::now();
  Loader l(cfg);
  EXPECT_EQ(eval_pass(l).size(), static_cast<size_t>(kPerShard));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(seconds, 10.0);
  EXPECT_EQ(l.bad_samples().total(), 1);
  EXPECT_NE(log.str().find("no data for 0.5 s (data.shard_timeout_s)"), std::string::npos) << log.str();
  EXPECT_NE(std::system("pgrep -f '^sleep 37$' > /dev/null"), 0) << "the stalled command was left running";
}
