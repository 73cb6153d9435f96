#include "train_plan.h"

#include "aim/data/rng.h"

namespace aim::data {

std::vector<Slot> plan_train_step(const TrainLayout& L, const MixtureSampler& mixture, int64_t t,
                                  std::vector<int64_t>& taken, std::vector<std::vector<int64_t>>& ordinal) {
  const int64_t GB = L.global_batch, per_rank = GB / L.world, lo = L.rank * per_rank, hi = lo + per_rank;
  std::vector<Slot> out;
  out.reserve(static_cast<size_t>(per_rank));
  for (int64_t j = 0; j < GB; ++j) {
    const int64_t g = t * GB + j;
    const int s = mixture.source_of(static_cast<uint64_t>(g));
    const bool mine = j >= lo && j < hi;
    if (L.sizes[s] >= 0) {  // random access: counted over all ranks, so the item is world-size free
      const int64_t k = taken[s]++;
      if (!mine) continue;
      const uint64_t n = static_cast<uint64_t>(L.sizes[s]), epoch = static_cast<uint64_t>(k) / n;
      IndexPermutation perm(n, hash_key(L.seed, static_cast<uint64_t>(Stream::kPermute), static_cast<uint64_t>(s), epoch));
      out.push_back({g, s, static_cast<int64_t>(perm(static_cast<uint64_t>(k) % n))});
    } else if (mine) {  // the unit lane that owns this block of the global batch
      const int64_t first = L.units[s] / L.world * L.rank;
      const int lane = static_cast<int>(unit_of_slot(j, L.units[s], GB) - first);
      out.push_back({g, s, -1, lane, ordinal[s][lane]++});
    }
  }
  return out;
}

}  // namespace aim::data
