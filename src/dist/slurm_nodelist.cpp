#include "aim/dist/slurm_nodelist.h"

#include "aim/error.h"

namespace aim::dist {

std::string first_host_of_nodelist(const std::string& nodelist) {
  // The first host is the first comma-separated item at bracket depth 0, with every
  // "[...]" replaced by the start of its first range: "gpu[007-010,12]-ib" -> "gpu007-ib".
  std::string host;
  size_t i = 0;
  auto bad = [&](const std::string& why) {
    return Error("SLURM_JOB_NODELIST='" + nodelist + "': " + why + "; set MASTER_ADDR to the first node's address");
  };
  while (i < nodelist.size() && nodelist[i] != ',') {
    if (nodelist[i] == ']') throw bad("unbalanced ']'");
    if (nodelist[i] != '[') {
      host += nodelist[i++];
      continue;
    }
    const size_t close = nodelist.find(']', i);
    if (close == std::string::npos) throw bad("unbalanced '['");
    const std::string inner = nodelist.substr(i + 1, close - i - 1);
    const std::string first = inner.substr(0, inner.find_first_of(",-"));
    if (first.empty() || first.find_first_not_of("0123456789") != std::string::npos)
      throw bad("'[" + inner + "]' is not a numeric range list");
    host += first;  // keeps the zero padding, as SLURM's own hostlist expansion does
    i = close + 1;
  }
  if (host.empty()) throw bad("no host name");
  return host;
}

int port_for_slurm_job(int64_t job_id, int64_t step_id) {
  // A fixed default (29500) collides when two jobs share a node; the job id spreads jobs
  // over [10000, 30000), below Linux's ephemeral range (32768+), and every rank of the job
  // derives the same port. Two job steps of one job (two sruns side by side) are 7919 apart
  // per step: 7919 is prime to 20000, so steps 0..19999 of a job never share a port.
  return static_cast<int>(10000 + (job_id % 20000 + (step_id % 20000) * 7919) % 20000);
}

}  // namespace aim::dist
