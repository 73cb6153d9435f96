#pragma once
#include <string>

namespace aim::dist {

/// Where this process sits in a job. Read from torchrun's variables (RANK, WORLD_SIZE,
/// LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) with SLURM fallbacks
/// (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NTASKS_PER_NODE); none set means
/// a single process. Under SLURM without MASTER_ADDR the first host of the step's node list
/// (SLURM_STEP_NODELIST, else SLURM_JOB_NODELIST) serves the rendezvous, on a port derived
/// from SLURM_JOB_ID and SLURM_STEP_ID unless MASTER_PORT is set.
struct DistEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  bool distributed() const { return world_size > 1; }
};

/// Throws aim::Error on malformed or inconsistent values (e.g. RANK >= WORLD_SIZE).
DistEnv dist_env_from_environment();

}  // namespace aim::dist
