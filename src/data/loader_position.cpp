// The Loader's resumable position: what it has consumed, saving and restoring it, and the
// checks of a saved one (loader_impl.h; the state itself: loader_state.h).
#include <spdlog/spdlog.h>

#include <algorithm>

#include "loader_impl.h"

namespace aim::data {

void Loader::Impl::reset_to(const LoaderState& st) {
  jobs.clear();
  first_error = nullptr;
  plan_end = finished = false;
  consumed = st;
  plan_step = st.step;
  plan_taken = st.taken;
  plan_eval_stream = st.eval_stream;
  step_slots_of = -1;
  if (cfg.train) {
    // Lane ordinals as of the start of the current optimizer step: a state saved between its
    // micro-batches has advanced them by the slots already served.
    plan_ord.assign(lanes.size(), {});
    for (size_t s = 0; s < lanes.size(); ++s)
      for (const auto& l : st.lanes[s]) plan_ord[s].push_back(l.ordinal);
    const int64_t t = st.step / cfg.accumulation, a = st.step % cfg.accumulation;
    if (a > 0) {
      auto taken = st.taken;
      std::vector<std::vector<int64_t>> served(lanes.size());
      for (size_t s = 0; s < lanes.size(); ++s) served[s].assign(lanes[s].size(), 0);
      const auto slots = plan_train_step(layout(), *mixture, t, taken, served);
      for (int64_t i = 0; i < a * cfg.batch_size; ++i)
        if (slots[i].lane >= 0) --plan_ord[slots[i].src][slots[i].lane];
    }
  }
  // A rank can own none of an eval source's shards (fewer shards than ranks): such a source
  // has no lane and is done before it starts, also after every rewind.
  for (size_t s = 0; s < stream_exhausted.size(); ++s) stream_exhausted[s] = wds[s] && lanes[s].empty();
  for (size_t s = 0; s < lanes.size(); ++s)
    for (size_t l = 0; l < lanes[s].size(); ++l) {
      lanes[s][l]->restore(st.lanes[s][l].cursor, st.lanes[s][l].ordinal);
    }
}

LoaderState Loader::Impl::fresh_state() const {
  LoaderState st;
  st.seed = cfg.seed;
  st.rank = cfg.rank;
  st.world_size = cfg.world_size;
  st.batch_size = cfg.batch_size;
  st.accumulation = cfg.accumulation;
  st.train = cfg.train;
  st.sources = names;
  st.units = units;
  st.taken.assign(names.size(), 0);
  st.delivered.assign(names.size(), 0);
  st.lanes.resize(names.size());
  for (size_t s = 0; s < names.size(); ++s) st.lanes[s].resize(lanes[s].size());
  return st;
}

void Loader::Impl::commit(const Job& job) {
  consumed.step = job.step + 1;
  // Samples every rank has consumed: at an optimizer step's end, the next step's first index.
  consumed.next_global = cfg.train ? (job.step + 1) / cfg.accumulation * step_global() +
                                         (job.step + 1) % cfg.accumulation * global_batch()
                                   : 0;
  consumed.taken = job.taken_after;
  consumed.eval_stream = job.eval_stream_after;
  for (size_t i = 0; i < job.slots.size(); ++i) {
    const Slot& sl = job.slots[i];
    if (job.valid[i]) ++consumed.delivered[sl.src];
    if (sl.lane >= 0) consumed.lanes[sl.src][sl.lane] = {job.cursor_after[i], sl.lane_ord + 1};
  }
}

LoaderState Loader::state() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  return impl_->consumed;
}

std::pair<LoaderState, std::vector<int64_t>> Loader::Impl::resolve(const LoaderState& in, bool log) const {
  const Impl& m = *this;
  const LoaderConfig& cfg = m.cfg;
  loader_check(in.sources == m.names, "saved loader state is for sources [" + [&] {
    std::string s;
    for (const auto& n : in.sources) s += (s.empty() ? "" : ", ") + n;
    return s;
  }() + "], this run has different ones");
  loader_check(in.seed == cfg.seed, "saved loader state has seed " + std::to_string(in.seed) +
                                 ", this run uses " + std::to_string(cfg.seed));
  loader_check(in.train == cfg.train, "saved loader state is for the other mode (train vs eval)");
  loader_check(in.taken.size() == m.names.size() && in.delivered.size() == m.names.size() &&
            in.lanes.size() == m.names.size() && in.units.size() == m.names.size() && in.accumulation >= 1,
        "saved loader state is malformed");
  LoaderState st = in;
  if (!cfg.train) {
    loader_check(in.world_size == cfg.world_size && in.batch_size == cfg.batch_size && in.rank == cfg.rank,
          "an eval loader state only restores on the same rank layout");
    return {st, m.units};
  }
  // Train. Random-access positions are global: any split of the same global batch continues
  // exactly; so do streams, from every rank's lanes (a merged state, or one rank's of one).
  const int64_t GB = m.step_global(), saved_GB = in.batch_size * in.world_size * in.accumulation;
  const bool same_split =
      in.world_size == cfg.world_size && in.batch_size == cfg.batch_size && in.accumulation == cfg.accumulation;
  const bool all_lanes = in.rank < 0 || in.world_size == 1;
  loader_check(all_lanes || in.rank == cfg.rank || !same_split || std::all_of(m.wds.begin(), m.wds.end(), [](const auto& w) { return !w; }),
        "saved loader state is rank " + std::to_string(in.rank) + "'s stream position, this is rank " +
            std::to_string(cfg.rank));
  if (same_split) {
    st.step = in.step;
  } else {
    loader_check(in.step % in.accumulation == 0 && in.next_global % GB == 0,
          "saved loader position (global sample " + std::to_string(in.next_global) +
              ") is not a multiple of the new global batch " + std::to_string(GB));
    st.step = in.next_global / GB * cfg.accumulation;
  }
  std::vector<int64_t> units = m.units;
  for (size_t s = 0; s < m.names.size(); ++s) {
    if (m.ra[s]) continue;
    const int64_t G = in.units[s];
    std::string lost;
    if (saved_GB != GB) {
      lost = "the global batch changed from " + std::to_string(saved_GB) + " to " + std::to_string(GB);
    } else if (all_lanes && G > 0 && static_cast<int64_t>(in.lanes[s].size()) == G && G % cfg.world_size == 0) {
      units[s] = G;
      const auto [first, count] = owned_units(G, cfg.rank, cfg.world_size);
      st.lanes[s].assign(in.lanes[s].begin() + first, in.lanes[s].begin() + first + count);
      if (log && in.world_size != cfg.world_size)
        spdlog::info("data: source '{}': its {} stream lanes continue exactly on {} ranks ({} per rank)", m.names[s], G,
                     cfg.world_size, count);
      continue;
    } else if (!all_lanes && same_split && in.rank == cfg.rank && G == m.units[s] &&
               in.lanes[s].size() == m.lanes[s].size()) {
      continue;  // this rank's own lanes
    } else if (all_lanes && G > 0 && G % cfg.world_size != 0) {
      lost = std::to_string(cfg.world_size) + " ranks do not divide its " + std::to_string(G) + " lanes";
    } else {
      lost = "the state holds " + std::to_string(in.lanes[s].size()) + " of its " + std::to_string(G) + " lanes";
    }
    // The position cannot be continued: the stream restarts at a fresh epoch (no sample of the
    // interrupted epoch repeats in a predictable way). Only a changed layout excuses that.
    int64_t epoch = 0;
    for (const auto& l : in.lanes[s]) epoch = std::max(epoch, l.cursor.epoch + 1);
    loader_check(!same_split, "source '" + m.names[s] + "': the saved stream position cannot be continued (" + lost +
                           ") although the world size is the same; resuming would silently change which samples "
                           "the run sees");
    if (log)
      spdlog::warn("data: source '{}': the saved stream position cannot be continued on {} ranks ({}); the stream "
                   "restarts at epoch {}",
                   m.names[s], cfg.world_size, lost, epoch);
    st.lanes[s].assign(m.lanes[s].size(), LaneState{LaneCursor{epoch, 0, 0}, 0});
  }
  if (all_lanes || !same_split)  // the counts of every rank: each rank takes its share
    for (auto& d : st.delivered) {
      const int64_t total = d;
      d = total * (cfg.rank + 1) / cfg.world_size - total * cfg.rank / cfg.world_size;
    }
  st.rank = cfg.rank;
  st.world_size = cfg.world_size;
  st.batch_size = cfg.batch_size;
  st.accumulation = cfg.accumulation;
  st.units = units;
  return {st, units};
}

void Loader::check_state(const LoaderState& in) const { impl_->resolve(in, false); }

void Loader::load_state(const LoaderState& in) {
  Impl& m = *impl_;
  auto [st, units] = m.resolve(in, true);
  m.stop_workers();
  for (size_t s = 0; s < units.size(); ++s)
    if (units[s] != m.units[s]) m.build_train_lanes(s, units[s]);
  std::lock_guard<std::mutex> lk(m.mu);
  m.reset_to(st);
}

std::vector<int64_t> Loader::source_counts() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  return impl_->consumed.delivered;
}

}  // namespace aim::data
