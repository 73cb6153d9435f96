#pragma once
// Internal to src/data: one webdataset lane as the loader's worker threads share it.
//
// A lane is a sequential stream, and its k-th ordinal (the k-th slot planned on it) gets the
// k-th sample of the stream that decodes: the rule a single reader checking each sample in
// turn would follow, so batches and resume positions do not depend on the worker count.
// Neither reading the stream nor decoding runs under the lane's lock: one thread at a time
// reads the next sample (network waits included) while others decode what was read before.
//
// How: samples read but not yet handed out wait in a window, in stream order. An ordinal is
// registered with its decode (into its own slot, with its own crop) and its completion. Any
// thread in the lane decodes the window entry that is ordinal k's if every undecided entry
// before it turns out good, with k's crop, front-most first. When an earlier entry turns out
// bad the later ones move up one ordinal, and an entry decoded for the wrong ordinal is
// decoded again for the right one (rare: bad samples are rare). An entry is handed out (its
// ordinal completed) only at the front of the window, to its own ordinal; a bad one is
// dropped only at the front, judged with the crop of the ordinal waiting for it. So every
// sample is judged and cropped exactly as the sequential reader would have done it.
//
// No head-of-line blocking: a worker whose sample is decoded but not yet at the front does
// not wait for it. It parks the entry and returns to other work; whichever thread completes
// the front hands out every parked entry behind it, in order.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
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
  /// Decodes `raw` into the ordinal's slot (its crop, its output); false with *why if bad.
  using Decode = std::function<bool(const RawSample& raw, std::string* why)>;

  struct Served {
    enum Kind { kSample, kEnd, kAborted } kind = kAborted;
    int64_t label = -1;
    int64_t key = -1;           // stream_sample_key of the sample
    LaneCursor cursor_after;    // the lane's position after it (what a resume continues from)
  };
  /// Called once per ordinal, with its sample (kSample) or the end of the stream (kEnd), by
  /// whichever thread settles it, without the lane's lock held.
  using Complete = std::function<void(const Served&)>;

  StreamLane(std::unique_ptr<WebDatasetLane> reader, Options options);
  ~StreamLane();

  /// Registers `ordinal` and works on the lane (reads, decodes, hands out) until the ordinal
  /// is completed or its sample is decoded and parked behind the front, or `abort` is set
  /// (then `complete` may never be called). Throws aim::Error after max_bad_streak bad items
  /// in a row when stop_on_streak.
  void serve(int64_t ordinal, Decode decode, Complete complete, const std::atomic<bool>& abort);

  /// serve() that returns only once the ordinal is completed (or `abort` is set: kAborted).
  Served serve(int64_t ordinal, const Decode& decode, const std::atomic<bool>& abort);

  /// Continues at a saved position with the given next ordinal (no serve() may be running;
  /// ordinals registered before are forgotten).
  void restore(const LaneCursor& cursor, int64_t next_ordinal);
  /// Wakes every waiting serve() so that it sees `abort`.
  void wake();

 private:
  struct Entry;
  struct Request {
    Decode decode;
    Complete complete;
    bool busy = false;          // a decode for this ordinal is running (into its slot)
    uint64_t holds = UINT64_MAX;  // the entry (seq) whose pixels the slot holds
  };
  using Completions = std::vector<std::pair<Complete, Served>>;
  /// Runs `ordinal` until done (block) or parked; the core of both serve()s.
  void run(int64_t ordinal, const std::atomic<bool>& abort, const std::function<bool()>& finished);
  void settle_front(Completions& done);
  /// The entry ordinal k gets if every undecided entry before it decodes, and k for an entry.
  Entry* candidate(int64_t ordinal);
  /// The front-most (entry, ordinal) pair that needs a decode and can have one now.
  bool pick_work(Entry** entry, int64_t* ordinal);
  void read_one(std::unique_lock<std::mutex>& lk);
  /// Some registered ordinal has no sample in the window and the stream goes on.
  bool needs_read();
  void count_bad(int64_t n, const std::string& last);

  std::mutex m_;
  std::condition_variable cv_;
  std::unique_ptr<WebDatasetLane> reader_;
  Options o_;
  std::deque<std::unique_ptr<Entry>> window_;  // read and not yet handed out, in stream order
  std::map<int64_t, Request> requests_;        // registered ordinals not yet completed
  int64_t next_ord_ = 0;                       // the ordinal the front's sample goes to
  int64_t streak_ = 0;                         // bad items in a row, in stream order
  uint64_t reads_ = 0;                         // entries read so far (their seq)
  bool ended_ = false;                         // a non-repeating reader has no more samples
  bool reading_ = false;                       // a thread is reading the stream (outside the lock)
};

}  // namespace aim::data
