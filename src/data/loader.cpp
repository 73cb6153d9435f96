#include "aim/data/loader.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
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
#include "loader_impl.h"
#include "stream_lane.h"

namespace aim::data {

using loader_internal::Job;
using loader_internal::Slot;

namespace {

uint64_t name_hash(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

void check(bool ok, const std::string& msg) {
  if (!ok) throw Error("data: " + msg);
}

}  // namespace


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
      m.wds[s]->check_remote_readable();
    } else if (sc.kind == "image_folder") {
      check(!sc.root.empty(), "source '" + name + "' (image_folder) needs root");
      auto folder = std::make_unique<ImageFolderSource>(sc.root, cfg.max_member_bytes);
      const std::string note = skipped_note(folder->skipped());
      if (!note.empty()) spdlog::warn("data: source '{}' ({}): {}", name, sc.root, note);
      m.ra[s] = std::move(folder);
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
                                           L, cfg.train, &m.bad, &m.abort, cfg.holdout),
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
    if (!m.interrupted) {
      m.cv_done.wait(lk);
    } else if (m.cv_done.wait_for(lk, std::chrono::milliseconds(100)) == std::cv_status::timeout &&
               m.interrupted()) {
      throw LoaderInterrupted("data: interrupted while waiting for the next batch");
    }
  }
}

void Loader::set_interrupt(std::function<bool()> interrupted) {
  std::lock_guard<std::mutex> lk(impl_->mu);
  impl_->interrupted = std::move(interrupted);
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
  if (impl_->bad.unique() != impl_->bad.total())
    os << " (" << (impl_->bad.unique_exact() ? "" : "at least ") << impl_->bad.unique() << " distinct)";
  return os.str();
}

}  // namespace aim::data
