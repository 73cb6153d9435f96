#pragma once
#include <string>
#include <vector>

namespace aim::dist {

/// Runs `argv` (this binary's own arguments, launcher flag removed) as `nproc` local
/// processes with torchrun's variables set (RANK, WORLD_SIZE, LOCAL_RANK,
/// LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1, MASTER_PORT = a free port). If any rank fails,
/// the others are terminated. Returns the first non-zero exit status, else 0.
/// SIGTERM, SIGINT and SIGUSR1 sent to the launcher are forwarded to every rank (as torchrun
/// does), and each rank has SIGTERM as its parent-death signal, so a launcher killed with
/// SIGKILL takes its ranks with it instead of leaving them training. Only the ranks' own exits
/// count: as PID 1 of a container (or a subreaper) the launcher inherits orphans from below,
/// e.g. what a shard command left behind, and reaps them without taking them for ranks.
int launch_local(int nproc, const std::vector<std::string>& argv);

}  // namespace aim::dist
