#pragma once
// The shard-size index beside webdataset shards (sizes.json), for `limit` and sample counts.
#include <cstdint>
#include <map>
#include <string>

namespace aim::data {

/// Sample counts of shards from the `sizes.json` in their folder, the index open_clip reads
/// for DataComp/DFN shards and `aim-data pack` writes: {"00000000.tar": 10000, ...}. With it,
/// `limit` and the sample count before training know a shard's size without reading it;
/// shards it does not list are scanned as before. For http(s) shards the index is fetched
/// from the same URL prefix (…/shards/00000000.tar → …/shards/sizes.json, once per prefix)
/// when remote_timeout_s > 0; `pipe:` commands have no folder and no index.
class ShardSizes {
 public:
  /// The count of the shard, or -1 when its folder (URL prefix) has no sizes.json, it lacks
  /// the shard, or it is remote and remote_timeout_s is 0. Throws aim::Error naming the file
  /// or URL when sizes.json is there but not an object of counts.
  int64_t of(const std::string& shard_path, double remote_timeout_s = 0);

 private:
  std::map<std::string, std::map<std::string, int64_t>> by_dir_;  // parsed once per folder
};

}  // namespace aim::data
