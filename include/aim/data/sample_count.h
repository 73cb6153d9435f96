#pragma once
// How many samples a source holds, for the checks before training (a global batch larger
// than the whole dataset): bounded work, however large the dataset.
#include <cstdint>
#include <optional>

#include "aim/data/loader.h"

namespace aim::data {

/// Samples the source yields per epoch (after `limit`), counting no further than `cap`:
/// min(count, cap), or nullopt when it cannot be known before training reads the data (a
/// remote pipe:/http shard is reached before `cap`). Webdataset shards are counted by their
/// tar headers (data skipped by seeking), shard by shard in list order, stopping at `cap`, so
/// a web-scale source costs a few shards' headers; missing or unreadable shards count 0.
/// Throws aim::Error as opening the source would (missing image_folder root or IDX file).
std::optional<int64_t> count_samples_up_to(const SourceConfig& source, int64_t cap,
                                           uint64_t max_member_bytes = kDefaultMaxMemberBytes);

}  // namespace aim::data
