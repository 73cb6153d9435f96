#include "aim/data/loader.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <opencv2/core.hpp>
#include <sstream>

#include "aim/data/idx_source.h"
#include "aim/data/image_folder_source.h"
#include "aim/data/synthetic_source.h"
#include "loader_impl.h"

namespace aim::data {
namespace {

uint64_t name_hash(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

}  // namespace

void Loader::Impl::build_train_lanes(size_t s, int64_t total) {
  units[s] = total;
  lanes[s].clear();
  const auto [first, count] = owned_units(total, cfg.rank, cfg.world_size);
  StreamLane::Options lane_options{names[s], &bad, cfg.max_bad_streak, /*stop_on_streak=*/true};
  for (int64_t u = first; u < first + count; ++u)
    lanes[s].push_back(std::make_unique<StreamLane>(
        std::make_unique<WebDatasetLane>(*wds[s], static_cast<int>(s), cfg.seed, static_cast<int>(u),
                                         static_cast<int>(total), 0, 1, /*repeat=*/true, &bad, &abort, cfg.holdout),
        lane_options));
}

// ------------------------------------------------------------------------------------------

Loader::Loader(LoaderConfig c) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.cfg = std::move(c);
  const LoaderConfig& cfg = m.cfg;
  loader_check(!cfg.sources.empty(), "no sources configured (data.sources is empty)");
  loader_check(cfg.batch_size > 0, "batch_size must be > 0");
  loader_check(cfg.world_size >= 1 && cfg.rank >= 0 && cfg.rank < cfg.world_size,
        "rank " + std::to_string(cfg.rank) + " is outside world_size " + std::to_string(cfg.world_size));
  loader_check(cfg.img_size > 0, "img_size must be > 0");
  loader_check(cfg.channels == 1 || cfg.channels == 3, "channels must be 1 or 3");
  loader_check(cfg.workers >= 0 && cfg.prefetch >= 1, "workers must be >= 0 and prefetch >= 1");
  loader_check(cfg.stream_lanes >= 1, "stream_lanes must be >= 1");
  loader_check(cfg.accumulation >= 1, "accumulation must be >= 1");
  loader_check(cfg.max_member_bytes > 0, "max_member_bytes must be > 0");
  loader_check(cfg.max_bad_streak >= 1, "max_bad_streak must be >= 1");
  const AugmentConfig& a = cfg.augment;
  loader_check(a.scale_min > 0 && a.scale_min <= a.scale_max && a.scale_max <= 1,
        "augment.crop_scale must satisfy 0 < min <= max <= 1");
  loader_check(a.ratio_min > 0 && a.ratio_min <= a.ratio_max, "augment.ratio must satisfy 0 < min <= max");
  loader_check(a.eval_crop_pct > 0 && a.eval_crop_pct <= 1, "augment.eval_crop_pct must be in (0, 1]");

  const size_t n = cfg.sources.size();
  m.ra.resize(n);
  m.wds.resize(n);
  m.sizes.assign(n, -1);
  m.kept_items.resize(n);
  m.lanes.resize(n);
  m.units.assign(n, 0);
  m.stream_exhausted.assign(n, 0);
  std::vector<double> weights;
  for (size_t s = 0; s < n; ++s) {
    const SourceConfig& sc = cfg.sources[s];
    std::string name = sc.name.empty() ? sc.kind + std::to_string(s) : sc.name;
    loader_check(std::find(m.names.begin(), m.names.end(), name) == m.names.end(),
          "two sources are named '" + name + "'");
    m.names.push_back(name);
    weights.push_back(sc.weight);
    if (sc.kind == "webdataset") {
      loader_check(!sc.shards.empty(), "source '" + name + "' (webdataset) needs shards");
      m.wds[s] = std::make_unique<WebDatasetSource>(name, sc.shards, sc.limit, cfg.max_member_bytes, cfg.remote);
      m.wds[s]->check_remote_readable();
    } else if (sc.kind == "image_folder") {
      loader_check(!sc.root.empty(), "source '" + name + "' (image_folder) needs root");
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
        loader_check(!kept.empty(), "source '" + name + "': none of its " + std::to_string(m.sizes[s]) +
                                        " samples is " + (cfg.holdout.held ? "held out" : "left for training") +
                                        " by a hold-out of " + std::to_string(cfg.holdout.fraction) +
                                        " (use more samples or another fraction)");
        m.sizes[s] = static_cast<int64_t>(kept.size());
      }
      continue;
    }
    const int64_t n_shards = static_cast<int64_t>(m.wds[s]->shards().size());
    loader_check(n_shards >= cfg.world_size || !cfg.train,
          "source '" + name + "' has " + std::to_string(n_shards) + " shards, fewer than world_size " +
              std::to_string(cfg.world_size) + "; every rank needs at least one shard");
    if (cfg.train) {
      // data.stream_lanes lanes per rank, as long as every lane has a shard and a slot per step.
      const int64_t per_rank = std::min<int64_t>({cfg.stream_lanes, n_shards / cfg.world_size, cfg.batch_size * cfg.accumulation});
      m.build_train_lanes(s, per_rank * cfg.world_size);
    } else if (WebDatasetLane::shards_for_rank(n_shards, cfg.rank, cfg.world_size) > 0) {
      // Eval: one lane per rank over the shards dealt to it by list position.
      m.lanes[s].push_back(std::make_unique<StreamLane>(
          std::make_unique<WebDatasetLane>(*m.wds[s], static_cast<int>(s), cfg.seed, cfg.rank, cfg.world_size, 0, 1,
                                           false, &m.bad, &m.abort, cfg.holdout),
          StreamLane::Options{name, &m.bad, cfg.max_bad_streak, /*stop_on_streak=*/false}));
    }
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

const LoaderConfig& Loader::config() const { return impl_->cfg; }
std::vector<std::string> Loader::source_names() const { return impl_->names; }

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
