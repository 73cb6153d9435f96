#include "aim/data/loader_state.h"

#include "aim/error.h"

namespace aim::data {

void to_json(nlohmann::json& j, const LaneState& s) {
  j = nlohmann::json{{"cursor", s.cursor}, {"ordinal", s.ordinal}};
}
void from_json(const nlohmann::json& j, LaneState& s) {
  s.cursor = j.at("cursor").get<LaneCursor>();
  s.ordinal = j.at("ordinal").get<int64_t>();
}

void to_json(nlohmann::json& j, const LoaderState& s) {
  j = nlohmann::json{{"version", 2},
                     {"step", s.step},
                     {"next_global", s.next_global},
                     {"seed", s.seed},
                     {"rank", s.rank},
                     {"world_size", s.world_size},
                     {"batch_size", s.batch_size},
                     {"accumulation", s.accumulation},
                     {"train", s.train},
                     {"sources", s.sources},
                     {"taken", s.taken},
                     {"delivered", s.delivered},
                     {"units", s.units},
                     {"lanes", s.lanes},
                     {"eval_stream", s.eval_stream}};
}

void from_json(const nlohmann::json& j, LoaderState& s) {
  if (j.value("version", 1) != 2)
    throw Error("data: saved loader state has format " + std::to_string(j.value("version", 1)) +
                "; this aim reads format 2");
  s.step = j.at("step").get<int64_t>();
  s.next_global = j.at("next_global").get<int64_t>();
  s.seed = j.at("seed").get<uint64_t>();
  s.rank = j.at("rank").get<int>();
  s.world_size = j.at("world_size").get<int>();
  s.batch_size = j.at("batch_size").get<int64_t>();
  s.accumulation = j.at("accumulation").get<int64_t>();
  s.train = j.at("train").get<bool>();
  s.sources = j.at("sources").get<std::vector<std::string>>();
  s.taken = j.at("taken").get<std::vector<int64_t>>();
  s.delivered = j.at("delivered").get<std::vector<int64_t>>();
  s.units = j.at("units").get<std::vector<int64_t>>();
  s.lanes = j.at("lanes").get<std::vector<std::vector<LaneState>>>();
  s.eval_stream = j.value("eval_stream", int64_t{0});
}

LoaderState merge_loader_states(const std::vector<LoaderState>& ranks) {
  if (ranks.empty()) throw Error("data: no loader state to merge");
  const LoaderState& a = ranks[0];
  const int world = static_cast<int>(ranks.size());
  auto fail = [](const std::string& what) { throw Error("data: the ranks' saved loader states disagree: " + what); };
  if (!a.train) fail("they are eval-mode states");
  if (a.world_size != world) fail("rank 0's says world size " + std::to_string(a.world_size) + ", " +
                                  std::to_string(world) + " states were given");
  const size_t n = a.sources.size();
  if (a.taken.size() != n || a.delivered.size() != n || a.units.size() != n || a.lanes.size() != n)
    fail("rank 0's is malformed");
  LoaderState out = a;
  out.rank = -1;
  for (size_t s = 0; s < n; ++s) out.lanes[s].clear();
  std::fill(out.delivered.begin(), out.delivered.end(), 0);
  for (int r = 0; r < world; ++r) {
    const LoaderState& b = ranks[r];
    const std::string who = "rank " + std::to_string(r) + "'s ";
    if (b.rank != r) fail(who + "state says rank " + std::to_string(b.rank));
    if (b.step != a.step || b.next_global != a.next_global) fail(who + "position differs from rank 0's");
    if (b.seed != a.seed || b.sources != a.sources || b.world_size != a.world_size || b.batch_size != a.batch_size ||
        b.accumulation != a.accumulation || !b.train || b.taken != a.taken || b.units != a.units)
      fail(who + "settings or counters differ from rank 0's");
    if (b.delivered.size() != n || b.lanes.size() != n) fail(who + "state is malformed");
    for (size_t s = 0; s < n; ++s) {
      out.delivered[s] += b.delivered[s];
      if (a.units[s] == 0) continue;
      if (a.units[s] % world != 0 || static_cast<int64_t>(b.lanes[s].size()) != a.units[s] / world)
        fail(who + "state has " + std::to_string(b.lanes[s].size()) + " lanes of source '" + a.sources[s] + "', not " +
             std::to_string(a.units[s]) + " / " + std::to_string(world));
      out.lanes[s].insert(out.lanes[s].end(), b.lanes[s].begin(), b.lanes[s].end());
    }
  }
  return out;
}

}  // namespace aim::data
