#include "aim/data/loader_state.h"

namespace aim::data {

void to_json(nlohmann::json& j, const LaneState& s) {
  j = nlohmann::json{{"cursor", s.cursor}, {"ordinal", s.ordinal}};
}
void from_json(const nlohmann::json& j, LaneState& s) {
  s.cursor = j.at("cursor").get<LaneCursor>();
  s.ordinal = j.at("ordinal").get<int64_t>();
}

void to_json(nlohmann::json& j, const LoaderState& s) {
  j = nlohmann::json{{"version", 1},           {"step", s.step},
                     {"next_global", s.next_global}, {"seed", s.seed},
                     {"rank", s.rank},         {"world_size", s.world_size},
                     {"batch_size", s.batch_size}, {"train", s.train},
                     {"sources", s.sources},   {"taken", s.taken},
                     {"delivered", s.delivered}, {"lanes", s.lanes},
                     {"eval_stream", s.eval_stream}};
}

void from_json(const nlohmann::json& j, LoaderState& s) {
  s.step = j.at("step").get<int64_t>();
  s.next_global = j.at("next_global").get<int64_t>();
  s.seed = j.at("seed").get<uint64_t>();
  s.rank = j.at("rank").get<int>();
  s.world_size = j.at("world_size").get<int>();
  s.batch_size = j.at("batch_size").get<int64_t>();
  s.train = j.at("train").get<bool>();
  s.sources = j.at("sources").get<std::vector<std::string>>();
  s.taken = j.at("taken").get<std::vector<int64_t>>();
  s.delivered = j.at("delivered").get<std::vector<int64_t>>();
  s.lanes = j.at("lanes").get<std::vector<std::vector<LaneState>>>();
  s.eval_stream = j.value("eval_stream", int64_t{0});
}

}  // namespace aim::data
