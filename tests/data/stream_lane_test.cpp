// StreamLane (src/data/stream_lane.h): several threads serve one lane's ordinals, decoding
// at the same time, and every ordinal still gets the sample a single sequential reader
// would have given it, even when whether a sample is bad depends on the ordinal's crop.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <thread>

#include "../../src/data/stream_lane.h"
#include "aim/error.h"
#include "data_test_util.h"

using namespace aim::data;
namespace t = aim::data::testing;

namespace {

constexpr int kSamples = 40;

// Sample s of the shard is key "1000 + s"; bad(ordinal, s) stands for a decode that fails,
// in part only with some crops (odd ordinals), as a decoder failing inside a crop region would.
bool bad(int64_t ordinal, int s) { return s % 5 == 2 || (s % 7 == 3 && ordinal % 2 == 1); }

int sample_of(const RawSample& raw) { return std::stoi(raw.where.substr(raw.where.rfind(':') + 1)) - 1000; }

// What one reader checking each sample in turn hands to ordinals 0, 1, 2, ...
std::vector<int> sequential_reference() {
  std::vector<int> out;
  for (int s = 0; s < kSamples; ++s)
    if (!bad(static_cast<int64_t>(out.size()), s)) out.push_back(s);
  return out;
}

struct Fixture {
  t::TempDir d;
  std::unique_ptr<WebDatasetSource> source;
  Fixture() {
    TarWriter w(d / "00000000.tar");
    for (int s = 0; s < kSamples; ++s) {
      auto png = t::id_png(s);
      w.add(std::to_string(1000 + s) + ".png", png.data(), png.size());
    }
    w.close();
    source = std::make_unique<WebDatasetSource>("lane", std::vector<std::string>{d / "00000000.tar"});
  }
  std::unique_ptr<StreamLane> lane(BadSampleLog* log, bool repeat, int64_t streak = 64) {
    StreamLane::Options o{"lane", log, streak, repeat};
    return std::make_unique<StreamLane>(std::make_unique<WebDatasetLane>(*source, 0, 1, 0, 1, 0, 1, repeat, log), o);
  }
};

}  // namespace

TEST(StreamLane, ParallelDecodesKeepTheSequentialAssignment) {
  Fixture f;
  const auto want = sequential_reference();
  const int64_t ordinals = static_cast<int64_t>(want.size()) + 3;  // the last three find the stream ended
  for (int threads : {1, 2, 4, 8}) {
    BadSampleLog log;
    auto lane = f.lane(&log, false);
    std::atomic<bool> abort{false};
    std::atomic<int64_t> next{0};
    std::atomic<int> decoding{0}, most{0};
    std::vector<int> got(ordinals, -2);
    std::vector<int64_t> offsets(ordinals, -1);
    std::vector<std::thread> pool;
    for (int w = 0; w < threads; ++w)
      pool.emplace_back([&] {
        for (int64_t k; (k = next++) < ordinals;) {
          int decoded = -1;
          auto decode = [&](const RawSample& raw, std::string* why) {
            int now = ++decoding;
            for (int m = most; now > m && !most.compare_exchange_weak(m, now);) {
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(2));  // a slow image
            --decoding;
            decoded = sample_of(raw);
            if (bad(k, decoded)) *why = "bad for ordinal " + std::to_string(k);
            return !bad(k, decoded);
          };
          auto served = lane->serve(k, decode, abort);
          if (served.kind == StreamLane::Served::kSample) {
            got[k] = decoded;  // the last decode for this slot is the one that counted
            offsets[k] = served.cursor_after.offset;
          } else {
            got[k] = -1;
          }
        }
      });
    for (auto& th : pool) th.join();
    for (int64_t k = 0; k < ordinals; ++k) {
      int expect = k < static_cast<int64_t>(want.size()) ? want[k] : -1;
      EXPECT_EQ(got[k], expect) << threads << " threads, ordinal " << k;
      if (expect >= 0) {
        EXPECT_EQ(offsets[k], expect + 1) << "resume position after ordinal " << k;
      }
    }
    EXPECT_EQ(log.total(), kSamples - static_cast<int64_t>(want.size())) << "each dropped sample reported once";
    if (threads > 1) {
      EXPECT_GE(most.load(), 2) << threads << " threads never decoded at the same time";
    }
  }
}

TEST(StreamLane, RestoreContinuesAtTheSavedOrdinal) {
  Fixture f;
  const auto want = sequential_reference();
  BadSampleLog log;
  std::atomic<bool> abort{false};
  auto decode_for = [](int64_t k, int* out) {
    return [k, out](const RawSample& raw, std::string*) {
      *out = sample_of(raw);
      return !bad(k, *out);
    };
  };
  auto lane = f.lane(&log, false);
  LaneCursor after5;
  for (int64_t k = 0; k < 6; ++k) {
    int s = -1;
    auto served = lane->serve(k, decode_for(k, &s), abort);
    if (k == 5) after5 = served.cursor_after;
  }
  auto again = f.lane(&log, false);
  again->restore(after5, 6);
  for (int64_t k = 6; k < 12; ++k) {
    int s = -1;
    ASSERT_EQ(again->serve(k, decode_for(k, &s), abort).kind, StreamLane::Served::kSample);
    EXPECT_EQ(s, want[k]) << "ordinal " << k;
  }
}

TEST(StreamLane, AStreakOfBadSamplesStopsATrainingLane) {
  Fixture f;
  BadSampleLog log;
  std::atomic<bool> abort{false};
  auto lane = f.lane(&log, true, 7);
  auto all_bad = [](const RawSample&, std::string* why) {
    *why = "corrupt";
    return false;
  };
  try {
    lane->serve(0, all_bad, abort);
    ADD_FAILURE() << "no error";
  } catch (const aim::Error& e) {
    EXPECT_NE(std::string(e.what()).find("source 'lane': 7 bad samples in a row"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("corrupt"), std::string::npos) << e.what();
  }
  EXPECT_EQ(log.total(), 7);
}

// No head-of-line blocking: a worker whose sample is decoded while an earlier one is still
// decoding parks it and returns (on main it waited for the front); the earlier ordinal's
// worker hands out both, in order.
TEST(StreamLane, ADecodedSampleBehindTheFrontIsParkedNotWaitedFor) {
  Fixture f;
  BadSampleLog log;
  auto lane = f.lane(&log, false);
  std::atomic<bool> abort{false}, release{false}, decoding0{false}, fast_done{false};
  std::mutex m;
  std::vector<int64_t> completed;  // ordinals, in completion order
  auto complete = [&](int64_t k) {
    return [&, k](const StreamLane::Served& s) {
      std::lock_guard<std::mutex> lk(m);
      if (s.kind == StreamLane::Served::kSample) completed.push_back(k);
    };
  };
  std::thread slow([&] {
    auto decode = [&](const RawSample&, std::string*) {
      decoding0 = true;
      while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      return true;
    };
    lane->serve(0, decode, complete(0), abort);
  });
  while (!decoding0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::thread fast([&] {
    lane->serve(1, [](const RawSample&, std::string*) { return true; }, complete(1), abort);
    fast_done = true;
  });
  for (int i = 0; i < 400 && !fast_done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_TRUE(fast_done.load()) << "the worker of ordinal 1 waited for ordinal 0 (head-of-line blocking)";
  {
    std::lock_guard<std::mutex> lk(m);
    EXPECT_TRUE(completed.empty()) << "ordinal 1 was handed out before ordinal 0";
  }
  release = true;
  slow.join();
  fast.join();
  EXPECT_EQ(completed, (std::vector<int64_t>{0, 1})) << "handed out in order by the front's worker";
}

// A parked ordinal whose sample moves on to an earlier ordinal (that one's turned out bad) is
// not left behind: the earlier worker reads on for it before returning. Here the stream ends
// there, so ordinal 1 gets the end of the stream. Without that read it never completed.
TEST(StreamLane, AParkedOrdinalWhoseSampleMovedOnIsStillServed) {
  t::TempDir d;
  {
    TarWriter w(d / "00000000.tar");
    for (int s = 0; s < 2; ++s) {
      auto png = t::id_png(s);
      w.add(std::to_string(1000 + s) + ".png", png.data(), png.size());
    }
  }
  WebDatasetSource source("lane", std::vector<std::string>{d / "00000000.tar"});
  BadSampleLog log;
  StreamLane lane(std::make_unique<WebDatasetLane>(source, 0, 1, 0, 1, 0, 1, false, &log),
                  StreamLane::Options{"lane", &log, 64, false});
  std::atomic<bool> abort{false}, release{false}, decoding0{false}, one_returned{false};
  std::mutex m;
  std::map<int64_t, StreamLane::Served::Kind> completed;
  auto complete = [&](int64_t k) {
    return [&, k](const StreamLane::Served& s) {
      std::lock_guard<std::mutex> lk(m);
      completed[k] = s.kind;
    };
  };
  std::thread first([&] {
    auto decode = [&](const RawSample& raw, std::string* why) {
      if (sample_of(raw) == 0) {  // sample 0 is bad, found out slowly
        decoding0 = true;
        while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        *why = "bad";
        return false;
      }
      return true;
    };
    lane.serve(0, decode, complete(0), abort);
  });
  while (!decoding0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::thread second([&] {
    lane.serve(1, [](const RawSample&, std::string*) { return true; }, complete(1), abort);  // parks sample 1
    one_returned = true;
  });
  for (int i = 0; i < 400 && !one_returned; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(one_returned.load());
  release = true;
  first.join();
  second.join();
  std::lock_guard<std::mutex> lk(m);
  ASSERT_EQ(completed.count(0), 1u);
  EXPECT_EQ(completed[0], StreamLane::Served::kSample);  // sample 1, decoded again for ordinal 0
  ASSERT_EQ(completed.count(1), 1u) << "ordinal 1 was left without a sample or the end";
  EXPECT_EQ(completed[1], StreamLane::Served::kEnd);
}
