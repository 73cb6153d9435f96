#include "stream_lane.h"

#include "aim/error.h"

namespace aim::data {

struct StreamLane::Entry {
  uint64_t seq = 0;            // read order
  bool is_sample = true;       // false: stands only for bad items the reader passed over
  int64_t skipped_before = 0;  // bad items the reader passed over right before this one
  std::string last_bad;        // the last of them, for the streak error
  RawSample raw;
  int64_t key = -1;
  LaneCursor cursor_after;
  enum class State { kFree, kDecoding, kGood, kBad } state = State::kFree;
  int64_t judged_for = -1;     // the ordinal whose decode (crop) set `state`
  std::string why;             // kBad: the reason
};

StreamLane::StreamLane(std::unique_ptr<WebDatasetLane> reader, Options options)
    : reader_(std::move(reader)), o_(std::move(options)) {}

StreamLane::~StreamLane() = default;

void StreamLane::count_bad(int64_t n, const std::string& last) {
  if (n == 0) return;
  streak_ += n;
  if (o_.stop_on_streak && streak_ >= o_.max_bad_streak)
    throw Error("data: source '" + o_.source + "': " + std::to_string(streak_) +
                " bad samples in a row (data.max_bad_streak; last: " + last + ")");
}

// Drops what is settled at the front: runs of skipped items, and bad samples judged for the
// ordinal that was waiting for them.
void StreamLane::settle_front() {
  while (!window_.empty()) {
    Entry& f = *window_.front();
    if (f.is_sample && f.state != Entry::State::kBad) return;
    if (f.is_sample && f.judged_for != next_ord_) {
      f.state = Entry::State::kFree;  // judged with another ordinal's crop: judge it again with its own
      return;
    }
    count_bad(f.skipped_before, f.last_bad);
    if (f.is_sample) {
      if (o_.log) o_.log->report(o_.source, f.raw.where, f.why);
      count_bad(1, f.raw.where + ": " + f.why);
    }
    window_.pop_front();
  }
}

// The entry `ordinal` gets if every undecided entry before it decodes.
StreamLane::Entry* StreamLane::candidate(int64_t ordinal) {
  int64_t ord = next_ord_;
  for (auto& e : window_) {
    if (!e->is_sample || e->state == Entry::State::kBad) continue;
    if (ord == ordinal) return e.get();
    ++ord;
  }
  return nullptr;
}

void StreamLane::read_one() {
  auto e = std::make_unique<Entry>();
  e->seq = reads_++;
  LaneRead got = reader_->next(e->raw, o_.max_bad_streak, &e->skipped_before);
  e->last_bad = reader_->last_bad();
  e->cursor_after = reader_->cursor();
  if (got == LaneRead::kSample) {
    e->key = reader_->last_sample_key();
    window_.push_back(std::move(e));
    return;
  }
  e->is_sample = false;
  if (e->skipped_before > 0) window_.push_back(std::move(e));
  if (got == LaneRead::kEnd) ended_ = true;
}

StreamLane::Served StreamLane::serve(int64_t ordinal, const Decode& decode, const std::atomic<bool>& abort) {
  // What the slot holds: the entry this call decoded last. An entry decoded for this ordinal
  // earlier, then for others, can come back to it; the slot's pixels are another entry's by then.
  uint64_t holds = UINT64_MAX;
  std::unique_lock<std::mutex> lk(m_);
  for (;;) {
    if (abort.load()) return {};
    settle_front();
    Entry* e = candidate(ordinal);
    if (!e) {
      if (!ended_) {
        read_one();  // sequential I/O, under the lock
        continue;
      }
      if (next_ord_ != ordinal) {  // earlier ordinals first: they may still take what is left
        cv_.wait(lk);
        continue;
      }
      ++next_ord_;
      cv_.notify_all();
      Served end;
      end.kind = Served::kEnd;
      end.cursor_after = reader_->cursor();
      return end;
    }
    if (e->state == Entry::State::kGood && e->judged_for == ordinal && e->seq == holds) {
      if (e != window_.front().get()) {  // wait until everything before it is settled
        cv_.wait(lk);
        continue;
      }
      count_bad(e->skipped_before, e->last_bad);
      streak_ = 0;
      Served out;
      out.kind = Served::kSample;
      out.label = e->raw.label;
      out.key = e->key;
      out.cursor_after = e->cursor_after;
      window_.pop_front();
      ++next_ord_;
      cv_.notify_all();
      return out;
    }
    if (e->state == Entry::State::kDecoding) {
      cv_.wait(lk);
      continue;
    }
    // Free, or decoded for an ordinal it no longer belongs to (or for this one, but the slot
    // has been overwritten since): decode it for this one.
    e->state = Entry::State::kDecoding;
    e->judged_for = ordinal;
    holds = e->seq;
    lk.unlock();
    std::string why;
    bool ok = false;
    try {
      ok = decode(e->raw, &why);  // the entry stays put: only its own ordinal or settle_front removes it
    } catch (...) {
      lk.lock();
      e->state = Entry::State::kFree;
      cv_.notify_all();
      throw;
    }
    lk.lock();
    e->state = ok ? Entry::State::kGood : Entry::State::kBad;
    e->why = std::move(why);
    cv_.notify_all();
  }
}

void StreamLane::restore(const LaneCursor& cursor, int64_t next_ordinal) {
  std::lock_guard<std::mutex> lk(m_);
  reader_->restore(cursor);
  window_.clear();
  next_ord_ = next_ordinal;
  streak_ = 0;
  ended_ = false;
}

void StreamLane::wake() {
  std::lock_guard<std::mutex> lk(m_);
  cv_.notify_all();
}

}  // namespace aim::data
