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

// Settles what can be settled at the front: runs of skipped items, bad samples judged for the
// ordinal that was waiting for them (dropped), and good samples decoded into the waiting
// ordinal's slot (handed out: their completions are run by the caller, without the lock).
void StreamLane::settle_front(Completions& done) {
  while (!window_.empty()) {
    Entry& f = *window_.front();
    if (f.is_sample && (f.state == Entry::State::kDecoding || f.state == Entry::State::kFree)) return;
    if (f.is_sample && f.state == Entry::State::kGood) {
      auto it = requests_.find(next_ord_);
      if (it == requests_.end() || it->second.busy) return;
      if (f.judged_for != next_ord_ || it->second.holds != f.seq) {
        f.state = Entry::State::kFree;  // decoded for another ordinal, or its slot since overwritten: again
        return;
      }
      count_bad(f.skipped_before, f.last_bad);
      streak_ = 0;
      Served out;
      out.kind = Served::kSample;
      out.label = f.raw.label;
      out.key = f.key;
      out.cursor_after = f.cursor_after;
      done.emplace_back(std::move(it->second.complete), out);
      requests_.erase(it);
      window_.pop_front();
      ++next_ord_;
      continue;
    }
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

// Ordinals map onto the window's samples in order, passing over the ones judged bad.
StreamLane::Entry* StreamLane::candidate(int64_t ordinal) {
  int64_t ord = next_ord_;
  for (auto& e : window_) {
    if (!e->is_sample || e->state == Entry::State::kBad) continue;
    if (ord == ordinal) return e.get();
    ++ord;
  }
  return nullptr;
}

bool StreamLane::pick_work(Entry** entry, int64_t* ordinal) {
  int64_t ord = next_ord_;
  for (auto& p : window_) {
    Entry* e = p.get();
    if (!e->is_sample || e->state == Entry::State::kBad) continue;
    const int64_t k = ord++;
    if (e->state == Entry::State::kDecoding) continue;
    auto it = requests_.find(k);
    if (it == requests_.end() || it->second.busy) continue;
    if (e->state == Entry::State::kGood && e->judged_for == k && it->second.holds == e->seq) continue;  // parked
    *entry = e;
    *ordinal = k;
    return true;
  }
  return false;
}

// Sequential I/O, one thread at a time, outside the lock: a slow or stalled stream holds up
// only the ordinals waiting for its next sample, never the decodes of samples already read.
void StreamLane::read_one(std::unique_lock<std::mutex>& lk) {
  reading_ = true;
  lk.unlock();
  auto e = std::make_unique<Entry>();
  LaneRead got = LaneRead::kAborted;
  try {
    got = reader_->next(e->raw, o_.max_bad_streak, &e->skipped_before);
  } catch (...) {
    lk.lock();
    reading_ = false;
    cv_.notify_all();
    throw;
  }
  e->last_bad = reader_->last_bad();
  e->cursor_after = reader_->cursor();
  if (got == LaneRead::kSample) e->key = reader_->last_sample_key();
  lk.lock();
  reading_ = false;
  cv_.notify_all();
  if (got == LaneRead::kAborted) return;  // the loader is stopping: run() sees `abort` next
  e->seq = reads_++;
  if (got == LaneRead::kSample) {
    window_.push_back(std::move(e));
    return;
  }
  e->is_sample = false;
  if (e->skipped_before > 0) window_.push_back(std::move(e));
  if (got == LaneRead::kEnd) ended_ = true;
}

bool StreamLane::needs_read() {
  if (ended_ || requests_.empty()) return false;
  int64_t candidates = 0;
  for (const auto& e : window_)
    if (e->is_sample && e->state != Entry::State::kBad) ++candidates;
  return requests_.rbegin()->first - next_ord_ >= candidates;  // the last registered ordinal has no sample yet
}

// Works until this thread's part is done: it returns only when its ordinal is completed or
// parked, and nothing any registered ordinal needs is left undone (no decode to run, no
// sample to read while nobody reads), so a parked ordinal whose sample moved on (an earlier
// one turned out bad) is never left without a worker.
void StreamLane::run(int64_t ordinal, const std::atomic<bool>& abort, const std::function<bool()>& finished) {
  std::unique_lock<std::mutex> lk(m_);
  Completions done;
  for (;;) {
    if (abort.load()) return;
    settle_front(done);
    if (ended_) {  // the front ordinal, if the stream ended before its sample, gets the end
      auto it = requests_.find(next_ord_);
      if (it != requests_.end() && !it->second.busy && !candidate(next_ord_)) {
        Served end;
        end.kind = Served::kEnd;
        end.cursor_after = reader_->cursor();
        done.emplace_back(std::move(it->second.complete), end);
        requests_.erase(it);
        ++next_ord_;
      }
    }
    if (!done.empty()) {
      Completions now;
      now.swap(done);
      lk.unlock();
      for (auto& [complete, served] : now) complete(served);
      lk.lock();
      cv_.notify_all();
      continue;
    }
    Entry* e = nullptr;
    int64_t k = -1;
    if (pick_work(&e, &k)) {  // front-most first: what the next hand-out waits for
      Request& r = requests_.at(k);  // stays: an ordinal is completed only once its decode ended
      e->state = Entry::State::kDecoding;
      e->judged_for = k;
      r.busy = true;
      r.holds = e->seq;
      const Decode decode = r.decode;
      lk.unlock();
      std::string why;
      bool ok = false;
      try {
        ok = decode(e->raw, &why);  // the entry stays put: only settle_front removes it
      } catch (...) {
        lk.lock();
        e->state = Entry::State::kFree;
        r.busy = false;
        r.holds = UINT64_MAX;
        cv_.notify_all();
        throw;
      }
      lk.lock();
      e->state = ok ? Entry::State::kGood : Entry::State::kBad;
      e->why = std::move(why);
      r.busy = false;
      cv_.notify_all();
      continue;
    }
    if (!reading_ && needs_read()) {
      read_one(lk);
      continue;
    }
    if (finished()) return;
    cv_.wait(lk);  // a sample being read or decoded by another thread, or earlier ordinals first
  }
}

void StreamLane::serve(int64_t ordinal, Decode decode, Complete complete, const std::atomic<bool>& abort) {
  {
    std::lock_guard<std::mutex> lk(m_);
    requests_[ordinal] = Request{std::move(decode), std::move(complete)};
  }
  // Done when completed, or parked: its sample decoded into its slot, waiting for the front.
  run(ordinal, abort, [&] {
    auto it = requests_.find(ordinal);
    if (it == requests_.end()) return true;
    const Entry* mine = candidate(ordinal);
    return mine && mine->state == Entry::State::kGood && mine->judged_for == ordinal && !it->second.busy &&
           it->second.holds == mine->seq;
  });
}

StreamLane::Served StreamLane::serve(int64_t ordinal, const Decode& decode, const std::atomic<bool>& abort) {
  auto result = std::make_shared<std::pair<bool, Served>>(false, Served{});  // guarded by m_
  Complete complete = [this, result](const Served& s) {
    std::lock_guard<std::mutex> lk(m_);
    result->second = s;
    result->first = true;
  };
  {
    std::lock_guard<std::mutex> lk(m_);
    requests_[ordinal] = Request{decode, std::move(complete)};
  }
  run(ordinal, abort, [&] { return result->first; });
  std::lock_guard<std::mutex> lk(m_);
  return result->first ? result->second : Served{};
}

void StreamLane::restore(const LaneCursor& cursor, int64_t next_ordinal) {
  std::lock_guard<std::mutex> lk(m_);
  reader_->restore(cursor);
  window_.clear();
  requests_.clear();
  next_ord_ = next_ordinal;
  streak_ = 0;
  ended_ = false;
  reading_ = false;
}

void StreamLane::wake() {
  std::lock_guard<std::mutex> lk(m_);
  cv_.notify_all();
}

}  // namespace aim::data
