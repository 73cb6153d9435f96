#pragma once
// webdataset shards in the img2dataset/DataComp layout: tar files whose members are grouped
// by key (<key>.jpg + <key>.txt + <key>.json ...). Streamed sequentially; shards are split
// across ranks and across "lanes" (independent sequential readers whose outputs interleave
// round-robin), and their order is reshuffled every epoch from the seed.
#include <atomic>
#include <cstdint>
#include <memory>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <utility>
#include <vector>

#include "aim/data/holdout.h"
#include "aim/data/shard_sizes.h"
#include "aim/data/source.h"
#include "aim/data/tar_reader.h"

namespace aim::data {

class BadSampleLog;

/// One webdataset sample: every member sharing a key, extension lower-cased ("jpg", "cls").
struct WdsSample {
  std::string key;
  std::vector<std::pair<std::string, std::vector<uint8_t>>> members;
  std::string damage;  // why a member was left out (above the size cap): a bad sample when set
};

/// Default per-member cap (data.max_member_mb): far above any real image, far below what a
/// crafted header can ask for.
constexpr uint64_t kDefaultMaxMemberBytes = uint64_t{256} << 20;

/// Groups consecutive tar members by key (webdataset's rule: the key is the path up to the
/// first '.' of the file name).
class ShardSampleReader {
 public:
  explicit ShardSampleReader(const std::string& path, uint64_t max_member_bytes = kDefaultMaxMemberBytes,
                             double timeout_s = 0, const std::atomic<bool>* abort = nullptr)
      : tar_(path, timeout_s, abort), max_member_bytes_(max_member_bytes) {}
  bool ok() const { return tar_.ok(); }
  const std::string& error() const { return tar_.error(); }
  StreamFailure failure() const { return tar_.failure(); }
  /// Next sample; load=false skips the data (used to seek to a saved position). Returns
  /// false at the end, or on damage with error() set. A sample cut by damage is not
  /// returned: when the shard stops before its end-of-archive blocks, the sample being read
  /// may be missing members (its label, say) and would pass for a complete one. A member
  /// above max_member_bytes, or a GNU sparse member (its bytes are not the file's), is
  /// skipped unread and named in `damage`.
  bool next(WdsSample& sample, bool load = true);

 private:
  TarReader tar_;
  uint64_t max_member_bytes_;
  TarEntry pending_;
  bool have_pending_ = false;
};

/// Splits "dir/000123.seg.jpg" into key "dir/000123" and extension "seg.jpg".
std::pair<std::string, std::string> split_key(const std::string& member_name);

/// The image member (jpg, jpeg, png, webp, ...) and the ".cls" label of a sample; false when
/// the sample has no image member.
bool sample_image(WdsSample& sample, std::vector<uint8_t>** bytes, int64_t* label);

struct ShardSpec {
  std::string path;
  int64_t max_samples = -1;  // only the first N samples (the `limit` option); -1: all
};

/// The shard list of one webdataset source, expanded and checked at start-up.
class WebDatasetSource {
 public:
  /// Throws aim::Error when the patterns match no existing file (remote shards, "pipe:" and
  /// http(s), cannot be checked before they are read and are taken as they are). limit > 0
  /// keeps only the first `limit` samples in list order: shard sizes come from `sizes.json`
  /// (ShardSizes) where it lists them, else shard headers are scanned (remote shards
  /// streamed, with a warning) to find where to cut.
  WebDatasetSource(std::string name, const std::vector<std::string>& patterns, int64_t limit = -1,
                   uint64_t max_member_bytes = kDefaultMaxMemberBytes, RemoteShardOptions remote = {});
  const std::string& name() const { return name_; }
  const std::vector<ShardSpec>& shards() const { return shards_; }
  int64_t missing_at_start() const { return missing_; }
  uint64_t max_member_bytes() const { return max_member_bytes_; }
  const RemoteShardOptions& remote() const { return remote_; }
  /// Before the first step: reads the first tar header of the first remote shard in the
  /// list, trying the next ones (at most 3 in all) if it fails, and throws aim::Error naming
  /// each shard tried and why when none can be read: a typo in a URL or a command fails the
  /// start in seconds, not after every shard's retries. A source without remote shards
  /// passes at once.
  void check_remote_readable() const;

 private:
  std::string name_;
  std::vector<ShardSpec> shards_;
  int64_t missing_ = 0;
  uint64_t max_member_bytes_;
  RemoteShardOptions remote_;
};

/// A key for sample `offset` of shard `position` (its index in the source's list), the same
/// on every rank and world size: eval passes over streams report it as the sample's index.
/// 2^62 + position * 2^32 + offset, above any random-access position.
int64_t stream_sample_key(int64_t position, int64_t offset);

/// Where a lane is: the epoch, the shard (index into the lane's list for that epoch), and
/// how many samples of that shard were consumed (bad ones included).
struct LaneCursor {
  int64_t epoch = 0, shard = 0, offset = 0;
  bool operator==(const LaneCursor& o) const {
    return epoch == o.epoch && shard == o.shard && offset == o.offset;
  }
};
void to_json(nlohmann::json& j, const LaneCursor& c);
void from_json(const nlohmann::json& j, LaneCursor& c);

/// What one WebDatasetLane::next produced.
enum class LaneRead {
  kSample,   // a sample with an image member
  kSkipped,  // only bad items (the caller's bound on them reached): a caller counting streaks decides
  kEnd,      // a non-repeating lane is done
  kAborted,  // `abort` was set while it read or waited: nothing consumed, the cursor unchanged
};

/// One sequential reader over this rank's share of the shards. Not thread-safe: the loader
/// serializes access to each lane.
class WebDatasetLane {
 public:
  /// The epoch-e shard order is a seeded permutation; position j of it belongs to rank
  /// j % world and, within the rank, to lane (j / world) % lanes. repeat=false: one pass.
  /// Samples on the other side of `holdout` are read past (they count in the cursor, not as
  /// bad items); an epoch that yields none of this side's samples is an error, not a spin.
  WebDatasetLane(const WebDatasetSource& source, int source_id, uint64_t seed, int rank,
                 int world, int lane, int lanes, bool repeat, BadSampleLog* log,
                 const std::atomic<bool>* abort = nullptr, HoldOut holdout = {});
  ~WebDatasetLane();
  /// Continues from a saved cursor (re-opens the shard and skips `offset` samples).
  void restore(const LaneCursor& cursor);
  /// Next sample holding an image. Bad items on the way (a sample without an image member or
  /// with a member above the size cap; a shard that is unreadable, damaged or holds no
  /// sample) are reported to the log and counted in *skipped. A remote shard that fails
  /// (its command exits non-zero, the connection drops, the stream is cut, stalls or drips)
  /// is first re-opened up to remote().retries times with backoff, continuing after the last
  /// sample delivered, so a transient failure changes nothing in what the lane yields; only
  /// then is it skipped and counted like a damaged file. The count restarts whenever the
  /// shard delivered a sample, so a long shard that keeps failing later loses nothing. A
  /// permanent failure (an HTTP 4xx, a command that exited 0 after a cut tar) is skipped at
  /// once. Waits (reads, backoff) end within 0.1 s once `abort` is set: then kAborted.
  /// Returns kSkipped instead of
  /// reading on once `max_skips` of them came in a row, so that a source with nothing good in
  /// it cannot keep a caller spinning.
  LaneRead next(RawSample& out, int64_t max_skips, int64_t* skipped);
  const LaneCursor& cursor() const { return cursor_; }
  /// "where: why" of the last bad item next() passed over.
  const std::string& last_bad() const { return last_bad_; }
  /// stream_sample_key of the sample next() returned last.
  int64_t last_sample_key() const;
  /// Number of shards this lane reads per epoch.
  size_t shards_per_epoch() const;

  /// How many shards rank `rank` gets out of n.
  static int64_t shards_for_rank(int64_t n, int rank, int world);

 private:
  void load_epoch(int64_t epoch);
  /// Opens the cursor's shard and skips to its offset; false if it cannot be opened (*why says why).
  bool open_current(std::string* why);
  enum class Retry { kReopen, kSkip, kAborted };
  /// After remote shard `path` failed with `why`: waits and says kReopen when it may be
  /// re-opened (transient, retries left), kSkip when it must be skipped.
  Retry retry_remote(const std::string& path, const std::string& why, StreamFailure failure);
  bool aborted() const { return abort_ && abort_->load(); }
  void skip(const std::string& where, const std::string& why, int64_t* skipped);

  const WebDatasetSource& source_;
  int source_id_;
  uint64_t seed_;
  int rank_, world_, lane_, lanes_;
  bool repeat_;
  BadSampleLog* log_;
  const std::atomic<bool>* abort_;
  LaneCursor cursor_;
  std::vector<int64_t> order_;  // shard indices of the current epoch for this lane
  int64_t order_epoch_ = -1;
  std::unique_ptr<ShardSampleReader> reader_;
  std::string last_bad_;
  int64_t failures_ = 0;  // failures of the current remote shard since it last yielded a sample
  HoldOut holdout_;
  int64_t epoch_kept_ = 0, epoch_passed_ = 0;  // this epoch's samples on this side / on the other
};

}  // namespace aim::data
