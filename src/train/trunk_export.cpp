#include <spdlog/spdlog.h>

#include "aim/error.h"
#include "aim/io/safetensors.h"
#include "aim/model/trunk_weights.h"
#include "aim/train/checkpoint.h"
#include "aim/train/trainer.h"

namespace aim::train {

dist::ConnectOptions connect_options(const config::RunConfig& cfg, const torch::Device& device) {
  dist::ConnectOptions o;
  o.device = device;
  o.timeout = std::chrono::seconds(cfg.train.dist_timeout_s);
  return o;
}

void export_final_trunk(const config::RunConfig& cfg, const torch::nn::Module& net, int64_t step,
                        const std::string& path, int rank, dist::Communicator* comm) {
  // Every rank holds the same weights, so each knows the digest the file must carry.
  const std::string digest = parameter_digest(net);
  if (rank == 0) {
    model::export_trunk(path, net,
                        {{"preset", cfg.model.preset}, {"config", config::to_yaml(cfg)},
                         {"trained_steps", std::to_string(step)}, {"parameter_digest", digest}});
    spdlog::info("trunk exported to {} (official naming)", path);
  }
  if (!comm) return;
  // No rank reads the trunk (probe.at_end) before rank 0 has renamed it into place, and
  // every rank must see that very file: a node without the shared filesystem, or with a
  // stale copy from an earlier run, stops here instead of probing other weights.
  comm->barrier();
  std::string seen;
  try {
    const auto meta = io::read_safetensors_metadata(path);
    auto it = meta.find("parameter_digest");
    seen = it == meta.end() ? "(no digest)" : it->second;
  } catch (const std::exception& e) {
    seen = std::string("(unreadable: ") + e.what() + ")";
  }
  const auto ok = comm->all_gather_host(seen == digest ? 1 : 0);
  std::string bad;
  for (size_t r = 0; r < ok.size(); ++r)
    if (!ok[r]) bad += (bad.empty() ? "" : " ") + std::to_string(r);
  if (!bad.empty())
    throw Error("rank(s) " + bad + " do not see the trunk rank 0 just wrote to " + path +
                (seen == digest ? "" : " (this rank read " + seen + ")") +
                "; train.out_dir must be on a filesystem every node shares");
}

}  // namespace aim::train
