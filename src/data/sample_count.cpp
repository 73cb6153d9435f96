#include "aim/data/sample_count.h"

#include <algorithm>
#include <fstream>

#include "aim/data/idx_source.h"
#include "aim/data/image_folder_source.h"
#include "aim/data/shard_list.h"
#include "aim/data/shard_stream.h"
#include "aim/data/webdataset_source.h"

namespace aim::data {

std::optional<int64_t> count_samples_up_to(const SourceConfig& s, int64_t cap, uint64_t max_member_bytes) {
  const int64_t bound = s.limit > 0 ? std::min(cap, s.limit) : cap;
  auto capped = [&](int64_t n) { return std::min(n, bound); };
  if (s.kind == "synthetic") return capped(s.size);
  if (s.kind == "idx") return capped(IdxSource(s.path, s.split).size());
  if (s.kind == "image_folder") return capped(ImageFolderSource(s.root).size());
  int64_t total = 0;
  ShardSizes sizes;
  for (const auto& shard : expand_shard_patterns(s.shards)) {
    if (total >= bound) break;
    if (is_remote_shard(shard)) return std::nullopt;  // streaming it here would cost what training does
    if (const int64_t listed = sizes.of(shard); listed >= 0) {  // sizes.json: no reading
      if (std::ifstream(shard)) total = std::min(bound, total + listed);
      continue;
    }
    ShardSampleReader reader(shard, max_member_bytes);
    if (!reader.ok()) continue;
    WdsSample sample;
    while (total < bound && reader.next(sample, /*load=*/false)) ++total;
  }
  return total;
}

}  // namespace aim::data
