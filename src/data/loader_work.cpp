// The Loader's planning and worker threads: which sample goes into which slot, decoding the
// slots, handing finished batches out (loader_impl.h).
#include <algorithm>

#include "aim/data/rng.h"
#include "loader_impl.h"

namespace aim::data {

TrainLayout Loader::Impl::layout() const {
  TrainLayout L;
  L.global_batch = step_global();
  L.rank = cfg.rank;
  L.world = cfg.world_size;
  L.seed = cfg.seed;
  L.sizes = sizes;
  L.units = units;
  return L;
}

void Loader::Impl::plan_step_slots(int64_t t) {
  step_start_taken = plan_taken;
  step_slots = plan_train_step(layout(), *mixture, t, plan_taken, plan_ord);
  step_slots_of = t;
}

std::unique_ptr<Job> Loader::Impl::plan_next() {
  auto job = std::make_unique<Job>();
  job->step = plan_step;
  const int64_t B = cfg.batch_size, GB = global_batch(), lo = cfg.rank * B;
  if (cfg.train) {
    const int64_t t = plan_step / cfg.accumulation, a = plan_step % cfg.accumulation;
    if (step_slots_of != t) plan_step_slots(t);
    job->slots.assign(step_slots.begin() + a * B, step_slots.begin() + (a + 1) * B);
    job->taken_after = a + 1 == cfg.accumulation ? plan_taken : step_start_taken;
  } else if (plan_step * GB < eval_total) {
    for (int64_t i = 0; i < B; ++i) {
      int64_t g = plan_step * GB + lo + i;
      if (g >= eval_total) break;
      int s = static_cast<int>(std::upper_bound(eval_offsets.begin(), eval_offsets.end(), g) -
                               eval_offsets.begin()) - 1;
      job->slots.push_back({g, s, g - eval_offsets[s]});
    }
  } else {
    while (plan_eval_stream < static_cast<int64_t>(eval_streams.size()) &&
           stream_exhausted[eval_streams[plan_eval_stream]])
      ++plan_eval_stream;
    if (plan_eval_stream >= static_cast<int64_t>(eval_streams.size())) {
      job->end = true;
      plan_end = true;
    } else {
      int s = eval_streams[plan_eval_stream];
      for (int64_t i = 0; i < B; ++i) {
        int64_t n = plan_taken[s]++;
        job->slots.push_back({n, s, -1, 0, n});
      }
    }
  }
  const int64_t m = static_cast<int64_t>(job->slots.size());
  auto opts = torch::TensorOptions().dtype(torch::kUInt8).pinned_memory(pinned);
  job->images = torch::empty({m, cfg.channels, cfg.img_size, cfg.img_size}, opts);
  job->labels = torch::full({m}, -1, torch::TensorOptions().dtype(torch::kInt64).pinned_memory(pinned));
  job->source = torch::empty({m}, torch::TensorOptions().dtype(torch::kInt64).pinned_memory(pinned));
  job->index = torch::empty({m}, torch::TensorOptions().dtype(torch::kInt64).pinned_memory(pinned));
  job->valid.assign(m, 0);
  job->cursor_after.resize(m);
  job->remaining = m;
  if (!cfg.train) job->taken_after = plan_taken;
  job->eval_stream_after = plan_eval_stream;
  ++plan_step;
  return job;
}

bool Loader::Impl::try_claim(Job*& job, size_t& i) {
  if (first_error) return false;  // the run is ending: no more decoding
  for (;;) {
    for (auto& j : jobs)
      if (j->next_slot < j->slots.size()) {
        job = j.get();
        i = j->next_slot++;
        return true;
      }
    if (plan_end || first_error || stop || static_cast<int>(jobs.size()) >= cfg.prefetch) return false;
    jobs.push_back(plan_next());
    if (jobs.back()->slots.empty()) cv_done.notify_all();
  }
}

Error Loader::Impl::bad_streak(int src, int64_t n, const std::string& last) const {
  return Error("data: source '" + names[src] + "': " + std::to_string(n) +
               " bad samples in a row (data.max_bad_streak; last: " + last + ")");
}

bool Loader::Impl::process(Job& job, size_t i) {
  const Slot& sl = job.slots[i];
  uint8_t* dst = job.images.data_ptr<uint8_t>() + static_cast<int64_t>(i) * per_image;
  if (!ra[sl.src]) {
    const int64_t g = sl.g;
    const int src = sl.src;
    // Decoded straight into the slot, outside the lane's lock, by whichever worker the
    // lane lets decode this slot's sample (StreamLane keeps the order).
    auto decode = [this, dst, g](const RawSample& raw, std::string* bad_why) {
      PreparedSample p;
      if (!transform->prepare(raw, g, p, bad_why)) return false;
      if (cfg.decode_cost) cfg.decode_cost(g);
      transform->finish(p, dst);
      return true;
    };
    auto complete = [this, &job, i, g, src](const StreamLane::Served& got) {
      job.cursor_after[i] = got.cursor_after;
      job.valid[i] = got.kind == StreamLane::Served::kSample;
      job.labels.data_ptr<int64_t>()[i] = got.label;
      job.source.data_ptr<int64_t>()[i] = src;
      job.index.data_ptr<int64_t>()[i] = cfg.train ? g : got.key;  // eval: the stream key
      std::lock_guard<std::mutex> lk(mu);
      if (got.kind == StreamLane::Served::kEnd) stream_exhausted[src] = 1;
      if (--job.remaining == 0) cv_done.notify_all();
    };
    lanes[sl.src][sl.lane]->serve(sl.lane_ord, std::move(decode), std::move(complete), abort);
    return false;
  }
  int64_t label = -1;
  bool ok = false;
  std::string why;
  RawSample raw;
  int64_t item = sl.item;
  for (int attempt = 0;; ++attempt) {
    why.clear();
    raw.where.clear();
    // Positions count this side of a hold-out; the source is asked for the real item.
    const int64_t real = kept_items[sl.src].empty() ? item : kept_items[sl.src][item];
    if (ra[sl.src]->load(real, raw, &why) && transform->apply(raw, sl.g, dst, &why)) {
      ok = true;
      label = raw.label;
      if (cfg.decode_cost) cfg.decode_cost(sl.g);
      break;
    }
    const std::string where = raw.where.empty() ? "#" + std::to_string(real) : raw.where;
    bad.report(names[sl.src], where, why);
    if (!cfg.train) break;  // eval drops it: a replacement would count twice
    if (attempt + 1 >= cfg.max_bad_streak) throw bad_streak(sl.src, attempt + 1, where + ": " + why);
    item = static_cast<int64_t>(Rng(cfg.seed, Stream::kReplace, sl.g, attempt).below(sizes[sl.src]));
  }
  job.valid[i] = ok;
  job.labels.data_ptr<int64_t>()[i] = label;
  job.source.data_ptr<int64_t>()[i] = sl.src;
  job.index.data_ptr<int64_t>()[i] = sl.g;  // train: global index; eval: position in the pass
  return true;
}

void Loader::Impl::record_error() {
  std::lock_guard<std::mutex> lk(mu);
  if (!first_error) first_error = std::current_exception();
  abort = true;
  for (auto& per : lanes)
    for (auto& l : per) l->wake();
  cv_done.notify_all();
  cv_work.notify_all();
}

void Loader::Impl::run_one(Job* job, size_t i) {
  bool finished = !!ra[job->slots[i].src];  // a streaming slot is completed by its lane, even after an error
  try {
    finished = process(*job, i);
  } catch (...) {
    record_error();
  }
  if (!finished) return;
  std::lock_guard<std::mutex> lk(mu);
  if (--job->remaining == 0) cv_done.notify_all();
}

void Loader::Impl::worker_loop() {
  for (;;) {
    Job* job = nullptr;
    size_t i = 0;
    {
      std::unique_lock<std::mutex> lk(mu);
      cv_work.wait(lk, [&] { return stop || try_claim(job, i); });
      if (!job) return;
    }
    run_one(job, i);
  }
}

void Loader::Impl::start() {
  if (started) return;
  started = true;
  for (int w = 0; w < cfg.workers; ++w) threads.emplace_back([this] { worker_loop(); });
}

void Loader::Impl::stop_workers() {
  {
    std::lock_guard<std::mutex> lk(mu);
    stop = true;
  }
  abort = true;
  for (auto& per : lanes)
    for (auto& l : per) l->wake();
  cv_work.notify_all();
  for (auto& t : threads) t.join();
  threads.clear();
  std::lock_guard<std::mutex> lk(mu);
  stop = false;
  started = false;
  abort = false;
}

Batch Loader::Impl::make_batch(const Job& job) {
  Batch b;
  b.step = job.step;
  b.images = job.images;
  b.labels = job.labels;
  b.source = job.source;
  b.index = job.index;
  if (std::find(job.valid.begin(), job.valid.end(), 0) != job.valid.end()) {
    std::vector<int64_t> keep;
    for (size_t i = 0; i < job.valid.size(); ++i)
      if (job.valid[i]) keep.push_back(static_cast<int64_t>(i));
    auto k = torch::tensor(keep, torch::kInt64);
    b.images = b.images.index_select(0, k);
    b.labels = b.labels.index_select(0, k);
    b.source = b.source.index_select(0, k);
    b.index = b.index.index_select(0, k);
  }
  return b;
}

}  // namespace aim::data
