#pragma once
#include <memory>
#include <vector>

#include <torch/types.h>

#include "aim/dist/communicator.h"

namespace aim::dist {

/// Sums gradients across ranks in flat buckets of ~bucket_mb each, overlapping the
/// all-reduce with backward (the DDP scheme, on our own buckets over c10d): a hook on
/// every parameter copies its gradient into its bucket as backward produces it — buckets
/// hold parameters in reverse order, the order gradients appear — and a bucket's
/// all-reduce starts the moment its last gradient lands, while backward goes on.
///
/// Buckets launch in index order (as DDP's reducer does), whatever order backward fills them
/// in: collectives pair up across ranks by issue order, and a rank that gives a stalled step
/// up fills nothing and launches every bucket from finish().
///
/// Per optimizer step: call arm() just before the backward of the last micro-batch
/// (earlier micro-batches accumulate locally, like DDP's no_sync), then finish() after it.
class GradientSync {
 public:
  GradientSync(std::vector<torch::Tensor> params, Communicator& comm, double bucket_mb = 25.0);
  ~GradientSync();

  void arm();
  /// Completes buckets whose parameters got no gradient, waits for every all-reduce and
  /// writes the sums back into param.grad().
  void finish();
  size_t num_buckets() const;
  /// Buckets whose all-reduce started inside backward in the last step (overlap achieved).
  size_t overlapped_buckets() const;

 private:
  struct State;
  std::shared_ptr<State> state_;  // shared with the hooks
};

}  // namespace aim::dist
