#pragma once
// Internal to src/data: one webdataset lane as the loader's worker threads share it.
//
// A lane is a sequential stream, and its k-th ordinal (the k-th slot planned on it) gets the
// k-th sample of the stream that decodes: the rule a single reader checking each sample in
// turn would follow, so batches and resume positions do not depend on the worker count.
// Only reading the tar runs under the lane's lock; decoding runs outside it, so as many
// samples of one lane decode at once as there are workers asking for them.
//
// How: samples read but not yet handed out wait in a window, in stream order. A worker for
// ordinal k decodes the window entry that is k's if every undecided entry before it turns
// out good, with k's crop. When an earlier entry turns out bad the later ones move up one
// ordinal, and an entry decoded for the wrong ordinal is decoded again for the right one
// (rare: bad samples are rare). An entry is handed out only at the front of the window, to
// its own ordinal; a bad one is dropped only at the front, judged with the crop of the
// ordinal that was waiting for it. So every sample is judged and cropped exactly as the
// sequential reader would have done it.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "aim/data/bad_sample_log.h"
#include "aim/data/webdataset_source.h"

namespace aim::data {

class StreamLane {
 public:
  struct Options {
    std::string source;          // for reports and errors
    BadSampleLog* log = nullptr;
    int64_t max_bad_streak = 64;
    bool stop_on_streak = true;  // train: a streak throws aim::Error; eval: bad samples are dropped
  };
  /// Decodes `raw` into the calling slot (its crop, its output); false with *why if bad.
  using Decode = std::function<bool(const RawSample& raw, std::string* why)>;

  struct Served {
    enum Kind { kSample, kEnd, kAborted } kind = kAborted;
    int64_t label = -1;
    int64_t key = -1;           // stream_sample_key of the sample
    LaneCursor cursor_after;    // the lane's position after it (what a resume continues from)
  };

  StreamLane(std::unique_ptr<WebDatasetLane> reader, Options options);
  ~StreamLane();

  /// Serves `ordinal`: returns once its sample is decoded into the slot by `decode` (kSample),
  /// the stream has ended before it (kEnd, eval), or `abort` is set (kAborted). Throws
  /// aim::Error after max_bad_streak bad items in a row when stop_on_streak.
  Served serve(int64_t ordinal, const Decode& decode, const std::atomic<bool>& abort);

  /// Continues at a saved position with the given next ordinal (no serve() may be running).
  void restore(const LaneCursor& cursor, int64_t next_ordinal);
  /// Wakes every waiting serve() so that it sees `abort`.
  void wake();

 private:
  struct Entry;
  void settle_front();
  Entry* candidate(int64_t ordinal);
  void read_one();
  void count_bad(int64_t n, const std::string& last);

  std::mutex m_;
  std::condition_variable cv_;
  std::unique_ptr<WebDatasetLane> reader_;
  Options o_;
  std::deque<std::unique_ptr<Entry>> window_;  // read and not yet handed out, in stream order
  int64_t next_ord_ = 0;                       // the ordinal the front's sample goes to
  int64_t streak_ = 0;                         // bad items in a row, in stream order
  uint64_t reads_ = 0;                         // entries read so far (their seq)
  bool ended_ = false;                         // a non-repeating reader has no more samples
};

}  // namespace aim::data
