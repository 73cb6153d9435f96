#pragma once
// Internal to src/data: the Loader's state, shared by loader.cpp (construction, next()),
// loader_work.cpp (planning batches, the worker threads) and loader_position.cpp (the resumable
// position: save, restore, the checks of a saved one).
#include <torch/torch.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "aim/data/loader.h"
#include "aim/data/mixture.h"
#include "aim/data/sample_transform.h"
#include "aim/data/source.h"
#include "aim/data/webdataset_source.h"
#include "aim/error.h"
#include "stream_lane.h"
#include "train_plan.h"

namespace aim::data {

/// One batch being planned, decoded and handed out.
struct Job {
  int64_t step = 0;
  bool end = false;  // eval: marks the end of the pass
  std::vector<Slot> slots;
  size_t next_slot = 0, remaining = 0;
  torch::Tensor images, labels, source, index;
  std::vector<uint8_t> valid;
  std::vector<LaneCursor> cursor_after;
  std::vector<int64_t> taken_after;
  int64_t eval_stream_after = 0;
};

inline void loader_check(bool ok, const std::string& msg) {
  if (!ok) throw Error("data: " + msg);
}

struct Loader::Impl {
  LoaderConfig cfg;
  std::vector<std::string> names;
  std::vector<std::unique_ptr<RandomAccessSource>> ra;  // null for streaming sources
  std::vector<std::unique_ptr<WebDatasetSource>> wds;   // null for random-access sources
  std::vector<int64_t> sizes;                           // random access: items used per epoch
  std::vector<std::vector<int64_t>> kept_items;         // random access with a hold-out: this side's items
  std::vector<std::vector<std::unique_ptr<StreamLane>>> lanes;
  std::vector<int64_t> units;                           // train, streaming: lanes over all ranks
  std::unique_ptr<MixtureSampler> mixture;
  std::unique_ptr<SampleTransform> transform;
  BadSampleLog bad;
  std::vector<int64_t> eval_offsets;  // eval: start of each random-access source in the pass
  int64_t eval_total = 0;
  std::vector<int> eval_streams;      // eval: streaming sources, read one after another
  int64_t per_image = 0;
  bool pinned = false;

  std::mutex mu;
  std::condition_variable cv_work, cv_done;
  std::deque<std::unique_ptr<Job>> jobs;
  int64_t plan_step = 0, plan_eval_stream = 0;
  std::vector<int64_t> plan_taken;  // train: random-access items taken before the next step to plan
  std::vector<std::vector<int64_t>> plan_ord;  // train: per stream lane, the ordinal the next step starts at
  std::vector<Slot> step_slots;     // train: this rank's slots of optimizer step `step_slots_of`
  int64_t step_slots_of = -1;
  std::vector<int64_t> step_start_taken;  // plan_taken at the start of step `step_slots_of`
  std::vector<char> stream_exhausted;
  bool plan_end = false, finished = false, stop = false, started = false;
  std::atomic<bool> abort{false};
  std::exception_ptr first_error;
  std::vector<std::thread> threads;
  LoaderState consumed;
  std::function<bool()> interrupted;

  // One micro-batch of every rank (eval: one batch of the pass), and one optimizer step (train).
  int64_t global_batch() const { return cfg.batch_size * cfg.world_size; }
  int64_t step_global() const { return global_batch() * cfg.accumulation; }

  TrainLayout layout() const;

  // Train: plans optimizer step t into step_slots (plan_taken and plan_ord advance to its end).
  void plan_step_slots(int64_t t);

  // ---- planning (under mu): which sample goes into which slot (loader_work.cpp) ----------
  std::unique_ptr<Job> plan_next();

  // Claims the next unprocessed slot, planning new batches while the prefetch bound allows.
  bool try_claim(Job*& job, size_t& i);

  // A random-access sample that fails is replaced by seeded random picks; a streak of
  // failures means the source itself is broken, which should stop the run, not spin (streams
  // count theirs in StreamLane, with the same message).
  Error bad_streak(int src, int64_t n, const std::string& last) const;

  // ---- the work on one slot (no lock held; loader_work.cpp) ------------------------------
  // Fills slot i of `job`; true when it is finished here (a streaming slot is finished by its
  // lane's completion, which may come later from another worker).
  bool process(Job& job, size_t i);

  void record_error();

  void run_one(Job* job, size_t i);

  void worker_loop();

  void start();

  void stop_workers();

  // Train: the lanes of streaming source s, `total` over all ranks; this rank reads its share
  // (lane u reads positions u, u + total, ... of each epoch's shard order: WebDatasetLane's
  // rank-u-of-`total` split).
  void build_train_lanes(size_t s, int64_t total);

  // ---- position (loader_position.cpp) ------------------------------------------------------
  // What restoring `in` takes: the state this rank continues from and each source's lane
  // count. Throws before anything changes; logs what it will do only when `log`.
  std::pair<LoaderState, std::vector<int64_t>> resolve(const LoaderState& in, bool log) const;
  void reset_to(const LoaderState& st);

  LoaderState fresh_state() const;

  void commit(const Job& job);

  Batch make_batch(const Job& job);
};

}  // namespace aim::data
