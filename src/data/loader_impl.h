#pragma once
// Internal to src/data: the loader's state, shared by loader.cpp (opening the sources, the
// public API) and loader_work.cpp (planning batches, the workers, positions).
#include <torch/torch.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "aim/data/loader.h"
#include "aim/data/mixture.h"
#include "aim/data/sample_transform.h"
#include "aim/data/source.h"
#include "aim/data/webdataset_source.h"
#include "stream_lane.h"

namespace aim::data {

namespace loader_internal {

struct Slot {
  int64_t g = 0;         // global sample index (train); position in the pass (eval)
  int src = 0;
  int64_t item = -1;     // random-access item
  int lane = -1;         // streaming: lane and its ordinal
  int64_t lane_ord = -1;
};

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

}  // namespace loader_internal

struct Loader::Impl {
  LoaderConfig cfg;
  std::vector<std::string> names;
  std::vector<std::unique_ptr<RandomAccessSource>> ra;  // null for streaming sources
  std::vector<std::unique_ptr<WebDatasetSource>> wds;   // null for random-access sources
  std::vector<int64_t> sizes;                           // random access: items used per epoch
  std::vector<std::vector<int64_t>> kept_items;         // random access with a hold-out: this side's items
  std::vector<std::vector<std::unique_ptr<StreamLane>>> lanes;
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
  std::deque<std::unique_ptr<loader_internal::Job>> jobs;
  int64_t plan_step = 0, plan_eval_stream = 0;
  std::vector<int64_t> plan_taken;
  std::vector<char> stream_exhausted;
  bool plan_end = false, finished = false, stop = false, started = false;
  std::atomic<bool> abort{false};
  std::exception_ptr first_error;
  std::vector<std::thread> threads;
  LoaderState consumed;
  std::function<bool()> interrupted;

  int64_t global_batch() const { return cfg.batch_size * cfg.world_size; }

  // ---- planning (under mu): which sample goes into which slot --------------------------
  std::unique_ptr<loader_internal::Job> plan_next();
  bool try_claim(loader_internal::Job*& job, size_t& i);
  Error bad_streak(int src, int64_t n, const std::string& last) const;
  // ---- the work on one slot (no lock held) ----------------------------------------------
  bool process(loader_internal::Job& job, size_t i);
  void record_error();
  void run_one(loader_internal::Job* job, size_t i);
  void worker_loop();
  void start();
  void stop_workers();
  // ---- position --------------------------------------------------------------------------
  void reset_to(const LoaderState& st);
  LoaderState fresh_state() const;
  void commit(const loader_internal::Job& job);
  Batch make_batch(const loader_internal::Job& job);
};

}  // namespace aim::data
