#pragma once
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "aim/dist/dist_env.h"

namespace aim::dist {

/// A pending collective; wait() throws aim::Error when it failed or timed out.
class PendingWork {
 public:
  virtual ~PendingWork() = default;
  virtual void wait() = 0;
};

/// The collectives aim needs, on top of PyTorch's own c10d engine: rendezvous through
/// TCPStore, ProcessGroupNCCL for CUDA tensors, ProcessGroupGloo for CPU tensors. Every
/// collective has the configured timeout, so a dead rank ends the job with an error
/// instead of a hang. Hides the ProcessGroup (1.13) / Backend (2.x) split.
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  /// In-place sum across ranks, started asynchronously.
  virtual std::unique_ptr<PendingWork> all_reduce_sum(torch::Tensor& t) = 0;
  /// In-place broadcast from `root`.
  virtual void broadcast(torch::Tensor& t, int root) = 0;
  virtual void barrier() = 0;

  /// Convenience: blocking sum.
  void all_reduce_sum_now(torch::Tensor& t) { all_reduce_sum(t)->wait(); }
  /// Raises aim::Error listing the ranks whose string differs from rank 0's (used for the
  /// config fingerprint, so mismatched configs fail at start, not mid-run).
  void check_same_on_all_ranks(const std::string& value, const std::string& what);
};

/// Connects to the job described by `env` (world_size must be > 1). `cuda` selects NCCL.
std::unique_ptr<Communicator> connect(const DistEnv& env, bool cuda, std::chrono::seconds timeout);

}  // namespace aim::dist
