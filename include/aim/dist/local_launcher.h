#pragma once
#include <string>
#include <vector>

namespace aim::dist {

/// Runs `argv` (this binary's own arguments, launcher flag removed) as `nproc` local
/// processes with torchrun's variables set (RANK, WORLD_SIZE, LOCAL_RANK,
/// LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1, MASTER_PORT = a free port). If any rank fails,
/// the others are terminated. Returns the first non-zero exit status, else 0.
int launch_local(int nproc, const std::vector<std::string>& argv);

}  // namespace aim::dist
