#include "aim/data/webdataset_source.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "aim/data/bad_sample_log.h"
#include "aim/data/image_folder_source.h"
#include "aim/data/rng.h"
#include "aim/data/shard_list.h"
#include "aim/data/shard_stream.h"
#include "aim/error.h"

namespace aim::data {

std::pair<std::string, std::string> split_key(const std::string& name) {
  size_t slash = name.rfind('/');
  size_t dot = name.find('.', slash == std::string::npos ? 0 : slash + 1);
  if (dot == std::string::npos) return {name, ""};
  std::string ext = name.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return {name.substr(0, dot), ext};
}

bool ShardSampleReader::next(WdsSample& s, bool load) {
  s.key.clear();
  s.members.clear();
  s.damage.clear();
  auto fetch = [&]() {  // next regular member's header into pending_
    for (;;) {
      if (!tar_.next(pending_)) return false;
      if (pending_.regular || pending_.sparse) return true;
      if (!tar_.skip_data()) return false;
    }
  };
  if (!have_pending_) {
    if (!fetch()) return false;
    have_pending_ = true;
  }
  s.key = split_key(pending_.name).first;
  for (;;) {
    std::vector<uint8_t> data;
    const bool too_large = load && pending_.size > max_member_bytes_;
    if (too_large && s.damage.empty()) {
      char mb[64];
      std::snprintf(mb, sizeof mb, "%.1f MB, the cap is %.1f MB", pending_.size / 1048576.0,
                    max_member_bytes_ / 1048576.0);
      s.damage = "member too large (" + pending_.name + ": " + mb + ")";
    }
    if (pending_.sparse && s.damage.empty())
      s.damage = "unsupported tar member (" + pending_.name + ": a GNU sparse file, type 'S')";
    const bool unusable = too_large || pending_.sparse;
    bool ok = (load && !unusable) ? tar_.read_data(data) : tar_.skip_data();
    have_pending_ = false;
    if (!ok) return false;  // the sample was cut by damage: drop it
    if (!unusable) s.members.emplace_back(split_key(pending_.name).second, std::move(data));
    // The end of the archive closes the sample; damage before it means it may be missing
    // members (what follows the end, a second tar, does not: complete()).
    if (!fetch()) return tar_.ok() || tar_.complete();
    have_pending_ = true;
    if (split_key(pending_.name).first != s.key) return true;
  }
}

bool sample_image(WdsSample& s, std::vector<uint8_t>** bytes, int64_t* label) {
  *bytes = nullptr;
  *label = -1;
  for (auto& [ext, data] : s.members) {
    if (!*bytes && is_image_extension(ext)) *bytes = &data;
    if (ext == "cls" && !data.empty()) {
      std::string t(data.begin(), data.end());
      char* end = nullptr;
      long v = std::strtol(t.c_str(), &end, 10);
      if (end != t.c_str()) *label = v;
    }
  }
  return *bytes != nullptr;
}

WebDatasetSource::WebDatasetSource(std::string name, const std::vector<std::string>& patterns,
                                   int64_t limit, uint64_t max_member_bytes, RemoteShardOptions remote)
    : name_(std::move(name)), max_member_bytes_(max_member_bytes), remote_(remote) {
  std::string shown;
  for (const auto& p : patterns) shown += (shown.empty() ? "" : " ") + p;
  auto paths = expand_shard_patterns(patterns);
  if (paths.empty()) throw Error("source '" + name_ + "': shard pattern '" + shown + "' matches nothing");
  int64_t local = 0;
  for (const auto& p : paths) {
    struct stat st {};
    if (!is_remote_shard(p)) {
      ++local;
      if (::stat(p.c_str(), &st) != 0) ++missing_;
    }
    shards_.push_back({p, -1});
  }
  if (local > 0 && missing_ == static_cast<int64_t>(paths.size()))
    throw Error("source '" + name_ + "': none of the " + std::to_string(paths.size()) +
                " shards of '" + shown + "' exist (first: " + paths.front() + ")");
  if (missing_)
    spdlog::warn("data: source '{}': {} of {} shards are missing; they will be skipped and counted",
                 name_, missing_, paths.size());
  if (limit > 0) {
    // The first `limit` samples in list order: count shard by shard and cut. A shard that
    // sizes.json lists (beside local shards, or at an http(s) shard's URL prefix) is not read at
    // all; the others' headers are scanned.
    std::vector<ShardSpec> kept;
    int64_t total = 0, streamed = 0;
    ShardSizes sizes;
    for (auto& spec : shards_) {
      int64_t n = 0;
      const bool remote = is_remote_shard(spec.path);
      const int64_t listed = sizes.of(spec.path, remote_.timeout_s);
      struct stat st {};
      if (listed >= 0) {
        if (!remote && ::stat(spec.path.c_str(), &st) != 0) continue;  // missing: nothing to count
        n = std::min(listed, limit - total);
      } else {
        if (remote && streamed++ == 0)
          spdlog::warn("data: source '{}': limit={} streams remote shards to count their samples, from {}; a "
                       "sizes.json beside the shards (aim-data pack writes one; for http(s) shards at the same "
                       "URL prefix) spares the reading",
                       name_, limit, spec.path);
        ShardSampleReader r(spec.path, max_member_bytes_, remote_.timeout_s);
        if (!r.ok()) continue;
        WdsSample s;
        while (total + n < limit && r.next(s, false)) ++n;
      }
      if (n == 0) continue;
      spec.max_samples = n;
      kept.push_back(spec);
      total += n;
      if (total >= limit) break;
    }
    if (kept.empty()) throw Error("source '" + name_ + "': limit set but no readable samples found");
    shards_ = std::move(kept);
    missing_ = 0;
  }
}

void WebDatasetSource::check_remote_readable() const {
  std::string tried;
  int attempts = 0;
  for (const auto& spec : shards_) {
    if (!is_remote_shard(spec.path)) continue;
    TarReader tar(spec.path, remote_.timeout_s);
    TarEntry entry;
    if (tar.next(entry) || tar.ok()) return;
    tried += (tried.empty() ? "" : "; ") + spec.path + ": " + tar.error();
    if (++attempts == 3) break;
  }
  if (attempts == 0) return;
  throw Error("data: source '" + name_ + "': none of the first " + std::to_string(attempts) +
              " remote shards can be read (" + tried + "); check the URL or command in data.sources");
}

int64_t stream_sample_key(int64_t position, int64_t offset) {
  return (int64_t{1} << 62) + (position << 32) + offset;
}

void to_json(nlohmann::json& j, const LaneCursor& c) {
  j = nlohmann::json{{"epoch", c.epoch}, {"shard", c.shard}, {"offset", c.offset}};
}
void from_json(const nlohmann::json& j, LaneCursor& c) {
  c.epoch = j.at("epoch").get<int64_t>();
  c.shard = j.at("shard").get<int64_t>();
  c.offset = j.at("offset").get<int64_t>();
}

int64_t WebDatasetLane::shards_for_rank(int64_t n, int rank, int world) {
  return n > rank ? (n - rank - 1) / world + 1 : 0;
}

WebDatasetLane::WebDatasetLane(const WebDatasetSource& source, int source_id, uint64_t seed,
                               int rank, int world, int lane, int lanes, bool repeat,
                               BadSampleLog* log, const std::atomic<bool>* abort, HoldOut holdout)
    : source_(source), source_id_(source_id), seed_(seed), rank_(rank), world_(world),
      lane_(lane), lanes_(lanes), repeat_(repeat), log_(log), abort_(abort), holdout_(holdout) {}

WebDatasetLane::~WebDatasetLane() = default;

void WebDatasetLane::load_epoch(int64_t epoch) {
  const uint64_t n = source_.shards().size();
  IndexPermutation perm(n, hash_key(seed_, static_cast<uint64_t>(Stream::kShards), source_id_, epoch));
  order_.clear();
  for (uint64_t j = rank_; j < n; j += world_) {
    if (static_cast<int>((j / world_) % lanes_) != lane_) continue;
    order_.push_back(repeat_ ? static_cast<int64_t>(perm(j)) : static_cast<int64_t>(j));
  }
  order_epoch_ = epoch;
}

size_t WebDatasetLane::shards_per_epoch() const {
  int64_t mine = shards_for_rank(source_.shards().size(), rank_, world_);
  return mine > lane_ ? (mine - lane_ - 1) / lanes_ + 1 : 0;
}

void WebDatasetLane::restore(const LaneCursor& c) {
  cursor_ = c;
  failures_ = 0;
  reader_.reset();
}

int64_t WebDatasetLane::last_sample_key() const {
  return stream_sample_key(order_[cursor_.shard], cursor_.offset - 1);
}

void WebDatasetLane::skip(const std::string& where, const std::string& why, int64_t* skipped) {
  if (log_) log_->report(source_.name(), where, why);
  last_bad_ = where + ": " + why;
  ++*skipped;
}

bool WebDatasetLane::open_current(std::string* why) {
  const auto& spec = source_.shards()[order_[cursor_.shard]];
  reader_ = std::make_unique<ShardSampleReader>(spec.path, source_.max_member_bytes(), source_.remote().timeout_s,
                                                abort_);
  if (!reader_->ok()) {
    *why = reader_->error();
    reader_.reset();
    return false;
  }
  // A resume, or a re-open after a remote failure, continues after the samples consumed.
  // Skipping reads headers only (a file seeks over the data; a stream reads and drops it).
  WdsSample skip_over;
  for (int64_t k = 0; k < cursor_.offset; ++k)
    if (!reader_->next(skip_over, false)) break;
  return true;  // a failure on the way shows at the next read, with its reason
}

WebDatasetLane::Retry WebDatasetLane::retry_remote(const std::string& path, const std::string& why,
                                                   StreamFailure failure) {
  const RemoteShardOptions& r = source_.remote();
  if (failure == StreamFailure::kAborted || aborted()) return Retry::kAborted;
  if (!is_remote_shard(path) || failure == StreamFailure::kPermanent || failures_ >= r.retries) return Retry::kSkip;
  ++failures_;
  const double wait = std::min(30.0, r.backoff_s * std::pow(2.0, static_cast<double>(failures_ - 1)));
  spdlog::warn("data: source '{}': shard '{}' failed after sample {} ({}); re-opening it in {:.1f} s (retry {} of {})",
               source_.name(), path, cursor_.offset, why, wait, failures_, r.retries);
  // In slices, so that a loader shutting down never waits out a backoff.
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                            std::chrono::duration<double>(wait));
  while (std::chrono::steady_clock::now() < until) {
    if (aborted()) return Retry::kAborted;
    const std::chrono::steady_clock::duration left = until - std::chrono::steady_clock::now();
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(left, std::chrono::milliseconds(50)));
  }
  return Retry::kReopen;
}

LaneRead WebDatasetLane::next(RawSample& out, int64_t max_skips, int64_t* skipped) {
  *skipped = 0;
  for (;;) {
    if (*skipped >= max_skips) return LaneRead::kSkipped;
    if (!reader_) {
      if (order_epoch_ != cursor_.epoch) load_epoch(cursor_.epoch);
      if (cursor_.shard >= static_cast<int64_t>(order_.size())) {
        if (!repeat_) return LaneRead::kEnd;
        if (epoch_kept_ == 0 && epoch_passed_ > 0)
          throw Error("data: source '" + source_.name() + "': a whole epoch of this lane's shards holds none of " +
                      (holdout_.held ? "the held-out samples" : "the samples left for training") +
                      " (hold-out fraction " + std::to_string(holdout_.fraction) + "; " +
                      std::to_string(epoch_passed_) + " passed over)");
        epoch_kept_ = epoch_passed_ = 0;
        cursor_ = LaneCursor{cursor_.epoch + 1, 0, 0};
        continue;
      }
      std::string why;
      if (!open_current(&why)) {
        const Retry retry = retry_remote(source_.shards()[order_[cursor_.shard]].path, why, StreamFailure::kTransient);
        if (retry == Retry::kAborted) return LaneRead::kAborted;
        if (retry == Retry::kReopen) continue;
        skip(source_.shards()[order_[cursor_.shard]].path, "missing or unreadable shard (" + why + ")", skipped);
        failures_ = 0;
        ++cursor_.shard;
        cursor_.offset = 0;
        continue;
      }
    }
    const auto& spec = source_.shards()[order_[cursor_.shard]];
    bool capped = spec.max_samples >= 0 && cursor_.offset >= spec.max_samples;
    WdsSample s;
    if (capped || !reader_->next(s, true)) {
      // Every visit to a shard yields a sample or counts as a bad item, so that a lane whose
      // shards hold nothing usable ends up reporting kSkipped instead of cycling epochs.
      if (!capped && !reader_->ok()) {
        const std::string error = reader_->error();
        const StreamFailure failure = reader_->failure();
        reader_.reset();  // ends a command before it is started again
        const Retry retry = retry_remote(spec.path, error, failure);
        if (retry == Retry::kAborted) return LaneRead::kAborted;
        if (retry == Retry::kReopen) continue;
        skip(spec.path + " after sample " + std::to_string(cursor_.offset), error, skipped);
      } else if (cursor_.offset == 0) {
        skip(spec.path, "shard holds no samples", skipped);
      }
      reader_.reset();
      failures_ = 0;
      ++cursor_.shard;
      cursor_.offset = 0;
      continue;
    }
    ++cursor_.offset;
    failures_ = 0;  // it made progress: a later failure of this shard starts its retries afresh
    if (!holdout_.keeps(stream_sample_key(order_[cursor_.shard], cursor_.offset - 1))) {
      ++epoch_passed_;
      continue;
    }
    ++epoch_kept_;
    const std::string where = spec.path + ":" + s.key;
    if (!s.damage.empty()) {
      skip(where, s.damage, skipped);
      continue;
    }
    std::vector<uint8_t>* bytes = nullptr;
    int64_t label = -1;
    if (!sample_image(s, &bytes, &label)) {
      std::string exts;
      for (const auto& m : s.members) exts += (exts.empty() ? "" : ",") + m.first;
      skip(where, "no image member (has: " + exts + ")", skipped);
      continue;
    }
    out.bytes = std::move(*bytes);
    out.pixels.release();
    out.label = label;
    out.where = where;
    return LaneRead::kSample;
  }
}

}  // namespace aim::data
