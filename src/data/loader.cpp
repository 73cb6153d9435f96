#include "aim/data/loader.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <opencv2/core.hpp>
#include <sstream>
#include <thread>

#include "aim/data/idx_source.h"
#include "aim/data/image_folder_source.h"
#include "aim/data/mixture.h"
#include "aim/data/rng.h"
#include "aim/data/sample_transform.h"
#include "aim/data/synthetic_source.h"
#include "aim/data/webdataset_source.h"
#include "aim/error.h"
#include "stream_lane.h"

namespace aim::data {
namespace {

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

uint64_t name_hash(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

void check(bool ok, const std::string& msg) {
  if (!ok) throw Error("data: " + msg);
}

}  // namespace

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
  std::deque<std::unique_ptr<Job>> jobs;
  int64_t plan_step = 0, plan_eval_stream = 0;
  std::vector<int64_t> plan_taken;
  std::vector<char> stream_exhausted;
  bool plan_end = false, finished = false, stop = false, started = false;
  std::atomic<bool> abort{false};
  std::exception_ptr first_error;
  std::vector<std::thread> threads;
  LoaderState consumed;

  int64_t global_batch() const { return cfg.batch_size * cfg.world_size; }

  // ---- planning (under mu): which sample goes into which slot --------------------------
  std::unique_ptr<Job> plan_next() {
    auto job = std::make_unique<Job>();
    job->step = plan_step;
    const int64_t B = cfg.batch_size, GB = global_batch(), lo = cfg.rank * B;
    if (cfg.train) {
      const uint64_t g0 = static_cast<uint64_t>(plan_step) * GB;
      for (int64_t j = 0; j < GB; ++j) {
        uint64_t g = g0 + j;
        int s = mixture->source_of(g);
        bool mine = j >= lo && j < lo + B;
        if (ra[s]) {  // counted over all ranks, so the item is world-size independent
          int64_t k = plan_taken[s]++;
          if (!mine) continue;
          uint64_t n = sizes[s], epoch = k / n;
          IndexPermutation perm(n, hash_key(cfg.seed, static_cast<uint64_t>(Stream::kPermute), s, epoch));
          job->slots.push_back({static_cast<int64_t>(g), s, static_cast<int64_t>(perm(k % n))});
        } else if (mine) {  // this rank's stream, dealt round-robin over its lanes
          int64_t n = plan_taken[s]++;
          int L = static_cast<int>(lanes[s].size());
          job->slots.push_back({static_cast<int64_t>(g), s, -1, static_cast<int>(n % L), n / L});
        }
      }
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
    job->taken_after = plan_taken;
    job->eval_stream_after = plan_eval_stream;
    ++plan_step;
    return job;
  }

  // Claims the next unprocessed slot, planning new batches while the prefetch bound allows.
  bool try_claim(Job*& job, size_t& i) {
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

  // A random-access sample that fails is replaced by seeded random picks; a streak of
  // failures means the source itself is broken, which should stop the run, not spin (streams
  // count theirs in StreamLane, with the same message).
  Error bad_streak(int src, int64_t n, const std::string& last) const {
    return Error("data: source '" + names[src] + "': " + std::to_string(n) +
                 " bad samples in a row (data.max_bad_streak; last: " + last + ")");
  }

  // ---- the work on one slot (no lock held) ----------------------------------------------
  void process(Job& job, size_t i) {
    const Slot& sl = job.slots[i];
    uint8_t* dst = job.images.data_ptr<uint8_t>() + static_cast<int64_t>(i) * per_image;
    int64_t label = -1;
    bool ok = false;
    std::string why;
    int64_t index = sl.g;  // Batch::index: train: global index; eval: position (random access), else the stream key
    if (ra[sl.src]) {
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
          break;
        }
        const std::string where = raw.where.empty() ? "#" + std::to_string(real) : raw.where;
        bad.report(names[sl.src], where, why);
        if (!cfg.train) break;  // eval drops it: a replacement would count twice
        if (attempt + 1 >= cfg.max_bad_streak) throw bad_streak(sl.src, attempt + 1, where + ": " + why);
        item = static_cast<int64_t>(Rng(cfg.seed, Stream::kReplace, sl.g, attempt).below(sizes[sl.src]));
      }
    } else {
      // Decoded straight into the slot, outside the lane's lock, by whichever worker the
      // lane lets decode this slot's sample (StreamLane keeps the order).
      auto decode = [&](const RawSample& raw, std::string* bad_why) {
        PreparedSample p;
        if (!transform->prepare(raw, sl.g, p, bad_why)) return false;
        transform->finish(p, dst);
        return true;
      };
      StreamLane::Served got = lanes[sl.src][sl.lane]->serve(sl.lane_ord, decode, abort);
      if (got.kind == StreamLane::Served::kAborted) return;
      job.cursor_after[i] = got.cursor_after;
      if (got.kind == StreamLane::Served::kEnd) {
        std::lock_guard<std::mutex> lk(mu);
        stream_exhausted[sl.src] = 1;
      }
      ok = got.kind == StreamLane::Served::kSample;
      label = got.label;
      if (!cfg.train) index = got.key;
    }
    job.valid[i] = ok;
    job.labels.data_ptr<int64_t>()[i] = label;
    job.source.data_ptr<int64_t>()[i] = sl.src;
    job.index.data_ptr<int64_t>()[i] = index;
  }

  void record_error() {
    std::lock_guard<std::mutex> lk(mu);
    if (!first_error) first_error = std::current_exception();
    abort = true;
    for (auto& per : lanes)
      for (auto& l : per) l->wake();
    cv_done.notify_all();
    cv_work.notify_all();
  }

  void run_one(Job* job, size_t i) {
    try {
      process(*job, i);
    } catch (...) {
      record_error();
    }
    std::lock_guard<std::mutex> lk(mu);
    if (--job->remaining == 0) cv_done.notify_all();
  }

  void worker_loop() {
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

  void start() {
    if (started) return;
    started = true;
    for (int w = 0; w < cfg.workers; ++w) threads.emplace_back([this] { worker_loop(); });
  }

  void stop_workers() {
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

  // ---- position --------------------------------------------------------------------------
  void reset_to(const LoaderState& st) {
    jobs.clear();
    first_error = nullptr;
    plan_end = finished = false;
    consumed = st;
    plan_step = st.step;
    plan_taken = st.taken;
    plan_eval_stream = st.eval_stream;
    // A rank can own none of an eval source's shards (fewer shards than ranks): such a source
    // has no lane and is done before it starts, also after every rewind.
    for (size_t s = 0; s < stream_exhausted.size(); ++s) stream_exhausted[s] = wds[s] && lanes[s].empty();
    for (size_t s = 0; s < lanes.size(); ++s)
      for (size_t l = 0; l < lanes[s].size(); ++l) {
        lanes[s][l]->restore(st.lanes[s][l].cursor, st.lanes[s][l].ordinal);
      }
  }

  LoaderState fresh_state() const {
    LoaderState st;
    st.seed = cfg.seed;
    st.rank = cfg.rank;
    st.world_size = cfg.world_size;
    st.batch_size = cfg.batch_size;
    st.train = cfg.train;
    st.sources = names;
    st.taken.assign(names.size(), 0);
    st.delivered.assign(names.size(), 0);
    st.lanes.resize(names.size());
    for (size_t s = 0; s < names.size(); ++s) st.lanes[s].resize(lanes[s].size());
    return st;
  }

  void commit(const Job& job) {
    consumed.step = job.step + 1;
    consumed.next_global = cfg.train ? (job.step + 1) * global_batch() : 0;
    consumed.taken = job.taken_after;
    consumed.eval_stream = job.eval_stream_after;
    for (size_t i = 0; i < job.slots.size(); ++i) {
      const Slot& sl = job.slots[i];
      if (job.valid[i]) ++consumed.delivered[sl.src];
      if (sl.lane >= 0) consumed.lanes[sl.src][sl.lane] = {job.cursor_after[i], sl.lane_ord + 1};
    }
  }

  Batch make_batch(const Job& job) {
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
};

// ------------------------------------------------------------------------------------------

Loader::Loader(LoaderConfig c) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.cfg = std::move(c);
  const LoaderConfig& cfg = m.cfg;
  check(!cfg.sources.empty(), "no sources configured (data.sources is empty)");
  check(cfg.batch_size > 0, "batch_size must be > 0");
  check(cfg.world_size >= 1 && cfg.rank >= 0 && cfg.rank < cfg.world_size,
        "rank " + std::to_string(cfg.rank) + " is outside world_size " + std::to_string(cfg.world_size));
  check(cfg.img_size > 0, "img_size must be > 0");
  check(cfg.channels == 1 || cfg.channels == 3, "channels must be 1 or 3");
  check(cfg.workers >= 0 && cfg.prefetch >= 1, "workers must be >= 0 and prefetch >= 1");
  check(cfg.stream_lanes >= 1, "stream_lanes must be >= 1");
  check(cfg.max_member_bytes > 0, "max_member_bytes must be > 0");
  check(cfg.max_bad_streak >= 1, "max_bad_streak must be >= 1");
  const AugmentConfig& a = cfg.augment;
  check(a.scale_min > 0 && a.scale_min <= a.scale_max && a.scale_max <= 1,
        "augment.crop_scale must satisfy 0 < min <= max <= 1");
  check(a.ratio_min > 0 && a.ratio_min <= a.ratio_max, "augment.ratio must satisfy 0 < min <= max");
  check(a.eval_crop_pct > 0 && a.eval_crop_pct <= 1, "augment.eval_crop_pct must be in (0, 1]");

  const size_t n = cfg.sources.size();
  m.ra.resize(n);
  m.wds.resize(n);
  m.sizes.assign(n, -1);
  m.kept_items.resize(n);
  m.lanes.resize(n);
  m.stream_exhausted.assign(n, 0);
  std::vector<double> weights;
  for (size_t s = 0; s < n; ++s) {
    const SourceConfig& sc = cfg.sources[s];
    std::string name = sc.name.empty() ? sc.kind + std::to_string(s) : sc.name;
    check(std::find(m.names.begin(), m.names.end(), name) == m.names.end(),
          "two sources are named '" + name + "'");
    m.names.push_back(name);
    weights.push_back(sc.weight);
    if (sc.kind == "webdataset") {
      check(!sc.shards.empty(), "source '" + name + "' (webdataset) needs shards");
      m.wds[s] = std::make_unique<WebDatasetSource>(name, sc.shards, sc.limit, cfg.max_member_bytes, cfg.remote);
    } else if (sc.kind == "image_folder") {
      check(!sc.root.empty(), "source '" + name + "' (image_folder) needs root");
      m.ra[s] = std::make_unique<ImageFolderSource>(sc.root);
    } else if (sc.kind == "idx") {
      m.ra[s] = std::make_unique<IdxSource>(sc.path, sc.split);
    } else if (sc.kind == "synthetic") {
      m.ra[s] = std::make_unique<SyntheticSource>(sc.size, sc.classes, sc.height, sc.width, 3,
                                                  name_hash(name));
    } else {
      throw Error("data: source '" + name + "' has unknown kind '" + sc.kind +
                  "' (expected webdataset, image_folder, idx or synthetic)");
    }
    if (m.ra[s]) {
      m.sizes[s] = sc.limit > 0 ? std::min(sc.limit, m.ra[s]->size()) : m.ra[s]->size();
      if (cfg.holdout.on()) {
        auto& kept = m.kept_items[s];
        for (int64_t i = 0; i < m.sizes[s]; ++i)
          if (cfg.holdout.keeps(i)) kept.push_back(i);
        check(!kept.empty(), "source '" + name + "': none of its " + std::to_string(m.sizes[s]) + " samples is " +
                                 (cfg.holdout.held ? "held out" : "left for training") + " by a hold-out of " +
                                 std::to_string(cfg.holdout.fraction) + " (use more samples or another fraction)");
        m.sizes[s] = static_cast<int64_t>(kept.size());
      }
      continue;
    }
    int64_t mine = WebDatasetLane::shards_for_rank(m.wds[s]->shards().size(), cfg.rank, cfg.world_size);
    int L = cfg.train ? static_cast<int>(std::min<int64_t>(cfg.stream_lanes, mine)) : (mine > 0 ? 1 : 0);
    check(mine > 0 || !cfg.train,
          "source '" + name + "' has " + std::to_string(m.wds[s]->shards().size()) +
              " shards, fewer than world_size " + std::to_string(cfg.world_size) +
              "; every rank needs at least one shard");
    StreamLane::Options lane_options{name, &m.bad, cfg.max_bad_streak, /*stop_on_streak=*/cfg.train};
    for (int l = 0; l < L; ++l)
      m.lanes[s].push_back(std::make_unique<StreamLane>(
          std::make_unique<WebDatasetLane>(*m.wds[s], static_cast<int>(s), cfg.seed, cfg.rank, cfg.world_size, l,
                                           L, cfg.train, &m.bad, cfg.holdout),
          lane_options));
  }
  m.mixture = std::make_unique<MixtureSampler>(weights, m.names, cfg.seed);  // validates weights
  for (size_t s = 0; s < n; ++s) {
    if (m.ra[s]) {
      m.eval_offsets.push_back(m.eval_total);
      m.eval_total += m.sizes[s];
    } else {
      m.eval_offsets.push_back(m.eval_total);  // empty range: never chosen by the lookup
      m.eval_streams.push_back(static_cast<int>(s));
    }
  }
  TransformConfig tc;
  tc.img_size = cfg.img_size;
  tc.channels = cfg.channels;
  tc.train = cfg.train;
  tc.augment = cfg.augment;
  tc.seed = cfg.seed;
  tc.max_pixels = cfg.max_pixels;
  tc.dct_min_ratio = cfg.dct_min_ratio;
  m.transform = std::make_unique<SampleTransform>(tc);
  m.per_image = static_cast<int64_t>(cfg.channels) * cfg.img_size * cfg.img_size;
  m.pinned = cfg.pin_memory && torch::cuda::is_available();
  // Parallelism comes from our workers; OpenCV's own thread pool inside each of them would
  // only oversubscribe the cores.
  if (cfg.workers > 0) cv::setNumThreads(1);
  m.reset_to(m.fresh_state());
}

Loader::~Loader() { impl_->stop_workers(); }

std::optional<Batch> Loader::next() {
  Impl& m = *impl_;
  std::unique_lock<std::mutex> lk(m.mu);
  m.start();
  for (;;) {
    if (m.first_error) std::rethrow_exception(m.first_error);
    if (m.finished) return std::nullopt;
    if (!m.jobs.empty()) {
      Job& front = *m.jobs.front();
      if (front.next_slot == front.slots.size() && front.remaining == 0) {
        std::unique_ptr<Job> job = std::move(m.jobs.front());
        m.jobs.pop_front();
        m.cv_work.notify_all();  // room to plan another batch
        if (job->end) {
          m.finished = true;
          return std::nullopt;
        }
        m.commit(*job);
        Batch b = m.make_batch(*job);
        if (!m.cfg.train && b.size() == 0) continue;  // eval: a rank's empty tail
        return b;
      }
    }
    if (m.cfg.workers == 0) {
      Job* job = nullptr;
      size_t i = 0;
      if (m.try_claim(job, i)) {
        lk.unlock();
        m.run_one(job, i);
        lk.lock();
        continue;
      }
    }
    m.cv_done.wait(lk);
  }
}

LoaderState Loader::state() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  return impl_->consumed;
}

void Loader::load_state(const LoaderState& in) {
  Impl& m = *impl_;
  const LoaderConfig& cfg = m.cfg;
  check(in.sources == m.names, "saved loader state is for sources [" + [&] {
    std::string s;
    for (const auto& n : in.sources) s += (s.empty() ? "" : ", ") + n;
    return s;
  }() + "], this run has different ones");
  check(in.seed == cfg.seed, "saved loader state has seed " + std::to_string(in.seed) +
                                 ", this run uses " + std::to_string(cfg.seed));
  check(in.train == cfg.train, "saved loader state is for the other mode (train vs eval)");
  check(in.taken.size() == m.names.size() && in.delivered.size() == m.names.size() &&
            in.lanes.size() == m.names.size(),
        "saved loader state is malformed");
  m.stop_workers();
  LoaderState st = in;
  const bool same_layout = in.world_size == cfg.world_size && in.batch_size == cfg.batch_size;
  if (cfg.train) {
    // Random-access positions are global: any world size / batch split that divides the
    // saved global position continues exactly.
    int64_t gb = m.global_batch();
    check(in.next_global % gb == 0,
          "saved loader position (global sample " + std::to_string(in.next_global) +
              ") is not a multiple of the new global batch " + std::to_string(gb));
    st.step = in.next_global / gb;
  } else {
    check(same_layout && in.rank == cfg.rank, "an eval loader state only restores on the same rank layout");
  }
  st.rank = cfg.rank;
  st.world_size = cfg.world_size;
  st.batch_size = cfg.batch_size;
  for (size_t s = 0; s < m.names.size(); ++s) {
    if (m.ra[s]) continue;
    bool exact = in.world_size == cfg.world_size && in.rank == cfg.rank &&
                 in.lanes[s].size() == m.lanes[s].size();
    if (exact) continue;
    // A stream position belongs to one rank layout; with another layout the stream restarts
    // at a fresh epoch (no sample of the interrupted epoch is repeated in a predictable way).
    int64_t epoch = 0;
    for (const auto& l : in.lanes[s]) epoch = std::max(epoch, l.cursor.epoch + 1);
    spdlog::warn("data: source '{}': saved stream position is for rank {}/{} with {} lanes; "
                 "this run is rank {}/{} with {} lanes, so the stream restarts at epoch {}",
                 m.names[s], in.rank, in.world_size, in.lanes[s].size(), cfg.rank,
                 cfg.world_size, m.lanes[s].size(), epoch);
    st.taken[s] = 0;
    st.lanes[s].assign(m.lanes[s].size(), LaneState{LaneCursor{epoch, 0, 0}, 0});
  }
  std::lock_guard<std::mutex> lk(m.mu);
  m.reset_to(st);
}

const LoaderConfig& Loader::config() const { return impl_->cfg; }
std::vector<std::string> Loader::source_names() const { return impl_->names; }

std::vector<int64_t> Loader::source_counts() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  return impl_->consumed.delivered;
}

const BadSampleLog& Loader::bad_samples() const { return impl_->bad; }
std::vector<int64_t> Loader::source_sizes() const { return impl_->sizes; }

std::vector<int64_t> Loader::source_classes() const {
  std::vector<int64_t> out;
  for (const auto& r : impl_->ra) out.push_back(r ? r->num_classes() : 0);
  return out;
}

std::string Loader::summary() const {
  auto counts = source_counts();
  int64_t total = 0;
  for (auto c : counts) total += c;
  std::ostringstream os;
  for (size_t s = 0; s < counts.size(); ++s) {
    char pct[32];
    std::snprintf(pct, sizeof pct, "%.1f%%", total ? 100.0 * counts[s] / total : 0.0);
    os << (s ? ", " : "") << impl_->names[s] << " " << pct << " (" << counts[s] << ")";
  }
  os << "; bad samples skipped: " << impl_->bad.total();
  if (impl_->bad.unique() != impl_->bad.total()) os << " (" << impl_->bad.unique() << " distinct)";
  return os.str();
}

std::vector<double> channel_mean(int64_t c) {
  return c == 1 ? std::vector<double>{0.449} : std::vector<double>{0.485, 0.456, 0.406};
}
std::vector<double> channel_std(int64_t c) {
  return c == 1 ? std::vector<double>{0.226} : std::vector<double>{0.229, 0.224, 0.225};
}

ChannelAffine channel_affine(int64_t C, const torch::Device& device, const std::vector<double>& mean,
                             const std::vector<double>& std) {
  std::vector<float> scale(C), shift(C);
  for (int64_t c = 0; c < C; ++c) {
    // One channel (gray model) uses the average statistics.
    double mu = 0, sd = 0;
    if (static_cast<int64_t>(mean.size()) == C) {
      mu = mean[c];
      sd = std[c];
    } else {
      for (size_t k = 0; k < mean.size(); ++k) {
        mu += mean[k] / mean.size();
        sd += std[k] / std.size();
      }
    }
    scale[c] = static_cast<float>(1.0 / (255.0 * sd));
    shift[c] = static_cast<float>(-mu / sd);
  }
  return {torch::tensor(scale).view({1, C, 1, 1}).to(device), torch::tensor(shift).view({1, C, 1, 1}).to(device)};
}

torch::Tensor normalize_images(const torch::Tensor& u8, const ChannelAffine& affine, torch::ScalarType dtype) {
  TORCH_CHECK(u8.dim() == 4, "normalize_images expects [B, C, H, W]");
  TORCH_CHECK(u8.size(1) == affine.scale.size(1), "normalize_images: ", u8.size(1), " channels, the affine map has ",
              affine.scale.size(1));
  auto x = u8.to(affine.scale.device(), /*non_blocking=*/u8.is_pinned()).to(torch::kFloat);
  return x.mul_(affine.scale).add_(affine.shift).to(dtype);
}

torch::Tensor normalize_images(const torch::Tensor& u8, const torch::Device& device,
                               const std::vector<double>& mean, const std::vector<double>& std,
                               torch::ScalarType dtype) {
  TORCH_CHECK(u8.dim() == 4, "normalize_images expects [B, C, H, W]");
  return normalize_images(u8, channel_affine(u8.size(1), device, mean, std), dtype);
}

}  // namespace aim::data
