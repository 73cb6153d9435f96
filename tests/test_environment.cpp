// The whole suite runs its multi-rank tests with NCCL's host semantics on Gloo
// (AIM_COMM_HOST_SEMANTICS=nccl, src/dist/nccl_host_emulation.h): a collective's wait()
// does not block the host, so code that orders files or exits across ranks by a collective
// alone fails here as it would on a GPU cluster. The variable reaches every aim-train /
// aim-probe the tests start. Set AIM_COMM_HOST_SEMANTICS=backend to run with Gloo's own.
#include <cstdlib>

namespace {
const bool kNcclHostSemantics = [] { return ::setenv("AIM_COMM_HOST_SEMANTICS", "nccl", /*overwrite=*/0) == 0; }();
}  // namespace
