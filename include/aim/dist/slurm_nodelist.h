#pragma once
#include <cstdint>
#include <string>

namespace aim::dist {

/// The first host of a SLURM hostlist expression ("node[01-04,07],gpu5" -> "node01"), the
/// node that runs rank 0 under srun's block distribution. Throws aim::Error for an
/// expression it cannot read.
std::string first_host_of_nodelist(const std::string& nodelist);

/// The rendezvous port every rank of step `step_id` (SLURM_STEP_ID) of SLURM job `job_id`
/// derives when MASTER_PORT is unset: distinct for the steps of one job.
int port_for_slurm_job(int64_t job_id, int64_t step_id = 0);

}  // namespace aim::dist
