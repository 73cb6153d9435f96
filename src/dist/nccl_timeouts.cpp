#include "aim/dist/nccl_timeouts.h"

#include <torch/version.h>

#include <cstdlib>

namespace aim::dist {

void enable_nccl_timeouts() {
#if TORCH_VERSION_MAJOR < 2
  // 1.13 leaves async error handling off unless asked (torchrun asks; srun and our own
  // launcher do not). overwrite = 0: an explicit user choice wins.
  ::setenv("NCCL_ASYNC_ERROR_HANDLING", "1", 0);
#else
  // 2.0/2.1 default to 1 (tear down), 2.2+ to 3 (tear down without cleanup): both end the
  // process on a timed-out collective already. Setting the old name here would override
  // the newer default and print a deprecation warning, so nothing is set.
#endif
}

}  // namespace aim::dist
