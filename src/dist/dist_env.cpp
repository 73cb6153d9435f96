#include "aim/dist/dist_env.h"

#include <cstdlib>
#include <optional>

#include "aim/dist/slurm_nodelist.h"
#include "aim/error.h"

namespace aim::dist {
namespace {

std::optional<int> env_int(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  if (*end != '\0' || x < 0) throw Error(std::string("environment variable ") + name + "='" + v + "': expected a non-negative integer");
  return static_cast<int>(x);
}

// SLURM_NTASKS_PER_NODE may read "4" or "4(x2)".
std::optional<int> slurm_tasks_per_node() {
  const char* v = std::getenv("SLURM_NTASKS_PER_NODE");
  if (!v || !*v) return std::nullopt;
  return std::atoi(v);
}

// SLURM_STEP_ID of an srun step ("0", "1", ...); the batch script's own step has no number.
int64_t slurm_step_id() {
  const char* v = std::getenv("SLURM_STEP_ID");
  if (!v || !*v) return 0;
  char* end = nullptr;
  const long long x = std::strtoll(v, &end, 10);
  return *end == '\0' && x >= 0 ? x : 0;
}

}  // namespace

DistEnv dist_env_from_environment() {
  DistEnv env;
  auto rank = env_int("RANK"), world = env_int("WORLD_SIZE");
  if (!rank && !world) {
    rank = env_int("SLURM_PROCID");
    world = env_int("SLURM_NTASKS");
  }
  if (rank.has_value() != world.has_value())
    throw Error("distributed launch: RANK and WORLD_SIZE (or SLURM_PROCID and SLURM_NTASKS) must be set together");
  if (!rank) return env;
  env.rank = *rank;
  env.world_size = *world;
  if (env.world_size < 1 || env.rank >= env.world_size)
    throw Error("distributed launch: rank " + std::to_string(env.rank) + " is outside world size " + std::to_string(env.world_size));
  env.local_rank = env_int("LOCAL_RANK").value_or(env_int("SLURM_LOCALID").value_or(env.rank));
  env.local_world_size = env_int("LOCAL_WORLD_SIZE").value_or(slurm_tasks_per_node().value_or(env.world_size));
  const bool slurm = !std::getenv("RANK") && std::getenv("SLURM_PROCID");
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) {
    env.master_addr = a;
  } else if (env.world_size > 1) {
    // Under srun without MASTER_ADDR: rank 0 runs on the first node of this job step (a step
    // may run on a subset of the allocation: SLURM_STEP_NODELIST, then the job's list).
    // Guessing 127.0.0.1 instead would hang a multi-node job until the rendezvous timeout.
    const char* nodes = nullptr;
    for (const char* name : {"SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST"})
      if (const char* v = std::getenv(name); !nodes && v && *v) nodes = v;
    if (!slurm)
      throw Error("distributed launch: WORLD_SIZE > 1 but MASTER_ADDR is not set; export MASTER_ADDR (rank 0's host) "
                  "and MASTER_PORT, or launch with torchrun / aim-train --nproc-per-node");
    if (!nodes || !*nodes)
      throw Error("distributed launch under SLURM: neither MASTER_ADDR nor SLURM_JOB_NODELIST is set; export "
                  "MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1) in the batch script");
    env.master_addr = first_host_of_nodelist(nodes);
  }
  if (auto port = env_int("MASTER_PORT")) env.master_port = *port;
  else if (auto job = env_int("SLURM_JOB_ID"); slurm && job) env.master_port = port_for_slurm_job(*job, slurm_step_id());
  if (env.master_port < 1 || env.master_port > 65535)
    throw Error("MASTER_PORT=" + std::to_string(env.master_port) + ": expected a TCP port in 1..65535");
  return env;
}

}  // namespace aim::dist
