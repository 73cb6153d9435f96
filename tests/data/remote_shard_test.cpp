// Shards read from a command's stdout ("pipe:COMMAND") and over HTTP (curl): the same batches
// as the same files read directly, resume continues at the same sample, a failure mid-shard is
// re-opened where it stopped without changing what is delivered, and a shard that keeps
// failing is skipped, counted and named with how its command ended. Network traffic stays on
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

// `limit` over http(s) shards takes their sizes from the sizes.json at the same URL prefix, as
// it does beside local shards: the shards before the cut are not downloaded just to count them.
// Without the index they are streamed and counted as before; a broken index is an error that
// names its URL.
TEST(RemoteShards, LimitTakesShardSizesFromTheSizesJsonAtTheUrlPrefix) {
  AIM_REQUIRE_DEPENDENCY(have_curl(), "curl (http(s) shards)");
  t::TempDir d;
  write_shards(d);
  t::HttpTestServer server(d.path.string());
  const std::string range = "{00000000..00000002}.tar";
  {
    WebDatasetSource streamed("r", {server.url(range)}, kPerShard + 2);
    ASSERT_EQ(streamed.shards().size(), 2u);
    EXPECT_EQ(streamed.shards()[0].max_samples, kPerShard);
    EXPECT_EQ(streamed.shards()[1].max_samples, 2);
    EXPECT_GE(server.hits("00000000.tar"), 1) << "without an index a shard is counted by reading it";
  }
  EXPECT_EQ(server.hits("sizes.json"), 1) << "the index is looked for once per URL prefix";
  const std::string n = std::to_string(kPerShard);
  t::write_text(d / "sizes.json", "{\"00000000.tar\": " + n + ", \"00000001.tar\": \"" + n + "\"}");
  const int shard0 = server.hits("00000000.tar"), shard1 = server.hits("00000001.tar");
  WebDatasetSource indexed("r", {server.url(range)}, kPerShard + 2);
  ASSERT_EQ(indexed.shards().size(), 2u);
  EXPECT_EQ(indexed.shards()[0].max_samples, kPerShard);
  EXPECT_EQ(indexed.shards()[1].max_samples, 2);
  EXPECT_EQ(server.hits("00000000.tar"), shard0) << "a shard sizes.json lists was downloaded to be counted";
  EXPECT_EQ(server.hits("00000001.tar"), shard1);
  EXPECT_EQ(server.hits("sizes.json"), 2);
  t::write_text(d / "sizes.json", "[7, 7]");
  try {
    WebDatasetSource bad("r", {server.url(range)}, 3);
    ADD_FAILURE() << "an index that is not an object of counts was accepted";
  } catch (const aim::Error& e) {
    EXPECT_NE(std::string(e.what()).find(server.url("sizes.json")), std::string::npos) << e.what();
  }
}
