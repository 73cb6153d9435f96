#pragma once
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "aim/dist/dist_env.h"

namespace aim::dist {

/// A pending collective. wait() has the backend's semantics: Gloo blocks the host until every
/// rank took part; NCCL only makes this rank's later device work wait for the collective and
/// returns at once. So wait() never orders host-side effects (files, exits) across ranks:
/// that takes barrier() or a host read-back (the *_host helpers). Throws aim::Error when the
/// collective failed or timed out (NCCL, and the emulation below, may report it later).
class PendingWork {
 public:
  virtual ~PendingWork() = default;
  virtual void wait() = 0;
};

/// The collectives aim needs, on top of PyTorch's own c10d engine: rendezvous through
/// TCPStore, ProcessGroupNCCL for CUDA tensors, ProcessGroupGloo for CPU tensors. Hides the
/// ProcessGroup (1.13) / Backend (2.x) split.
///
/// One rule for every collective: the tensor lives on device() — the rank's own GPU for
/// NCCL, the CPU for Gloo — and is dense and contiguous. That is what ProcessGroupNCCL
/// demands; every communicator checks it before calling c10d, so a host tensor handed to a
/// collective fails on a CPU test exactly as it would on a GPU node. Host values (counters,
/// digests, sums read on the host) go through the *_host helpers, which move them to
/// device() and back.
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  /// Where this communicator's collectives run.
  virtual torch::Device device() const = 0;
  /// In-place sum across ranks, started asynchronously.
  virtual std::unique_ptr<PendingWork> all_reduce_sum(torch::Tensor& t) = 0;
  /// In-place broadcast from `root`.
  virtual void broadcast(torch::Tensor& t, int root) = 0;
  /// In-place sum onto rank `root`, started asynchronously; on the other ranks `t` holds
  /// garbage afterwards. Gradient sharding sends each slice of a bucket to its owner this
  /// way: it is what reduce-scatter does for uneven slices, and ProcessGroupGloo (1.13) has
  /// reduce but no reduce_scatter.
  virtual std::unique_ptr<PendingWork> reduce_sum(torch::Tensor& t, int root) = 0;
  /// Reduce-scatter: `in` holds world_size equal parts; part r summed over ranks lands in
  /// rank r's `out` (in.numel() / world_size elements), started asynchronously. Native on
  /// NCCL and on Gloo from LibTorch 2.3 (_reduce_scatter_base); elsewhere (Gloo 1.13) an
  /// all-reduce of `in` followed by a copy of this rank's part, completed by wait():
  /// the same result with world_size times the traffic, so callers ask
  /// native_reduce_scatter() before choosing it for speed.
  virtual std::unique_ptr<PendingWork> reduce_scatter_sum(torch::Tensor& out, torch::Tensor& in) = 0;
  virtual bool native_reduce_scatter() const = 0;
  /// Every rank's `in` (same size on every rank), concatenated in rank order into `out`
  /// (world_size x in.numel() elements, contiguous), blocking. NCCL writes straight into
  /// `out` (_allgather_base); Gloo gathers into a flat buffer of its own and copies.
  virtual void all_gather(torch::Tensor& out, torch::Tensor& in) = 0;
  /// Returns on every rank only after every rank's host has called it: what came before on
  /// any rank (files written, directories created) happened before what follows on all.
  /// A collective waited for does not give this under NCCL; this reads its result back.
  void barrier();

  /// Convenience: blocking sum.
  void all_reduce_sum_now(torch::Tensor& t) { all_reduce_sum(t)->wait(); }

  /// Host values through the device: element-wise sum over ranks (exact for integers
  /// below 2^53), and rank `root`'s values on every rank.
  std::vector<double> all_reduce_sum_host(const std::vector<double>& values);
  std::vector<int64_t> broadcast_host(const std::vector<int64_t>& values, int root);
  /// Every rank's value, indexed by rank (one all-reduce of a world-sized vector).
  std::vector<int64_t> all_gather_host(int64_t value);

  /// Raises aim::Error listing the ranks whose string differs from rank 0's (used for the
  /// config fingerprint, so mismatched configs fail at start, not mid-run).
  void check_same_on_all_ranks(const std::string& value, const std::string& what);

 protected:
  /// Throws aim::Error unless `t` may go into a collective here (see the class comment).
  void require_on_device(const torch::Tensor& t, const char* op) const;
  /// Before the host reads a collective's result: what a device-to-host copy implies on
  /// CUDA (the stream catches up). Only the NCCL-semantics emulation has work to do here.
  virtual void synchronize_for_host_read() {}
};

/// How a communicator's wait() treats the calling thread.
enum class HostSemantics {
  /// As the backend does: Gloo blocks until the collective completed, NCCL returns at once.
  kBackend,
  /// CPU test suite: a Gloo communicator whose wait() behaves as NCCL's does for the host.
  /// It returns at once; the thread's next tensor operation waits for the collective (the
  /// emulated device is the host thread, as a kernel queued behind it on a CUDA stream
  /// would); host code without tensor operations (files, renames, exits) runs ahead. Read
  /// results through the *_host helpers or after barrier(). Failures surface at the next
  /// read-back, barrier or collective.
  kNccl,
};

/// HostSemantics from AIM_COMM_HOST_SEMANTICS ("nccl" or "backend"; unset = backend). The
/// test suite sets "nccl", so its multi-rank tests see NCCL's host semantics on Gloo.
HostSemantics host_semantics_from_environment();

struct ConnectOptions {
  /// Where the collectives run: CUDA selects NCCL, CPU selects Gloo.
  torch::Device device = torch::Device(torch::kCPU);
  /// Collective and rendezvous timeout (train.dist_timeout_s).
  std::chrono::seconds timeout{600};
  /// Tests only: a Gloo communicator that claims `device` although it reduces CPU tensors,
  /// so the device rule above can be watched rejecting host tensors without a GPU.
  bool declared_device_only = false;
  /// Only for CPU (Gloo) communicators; NCCL always has NCCL's semantics.
  HostSemantics host_semantics = host_semantics_from_environment();
};

/// Connects to the job described by `env` (a single rank too: GPU checks use a group of one).
/// Rendezvous: when torchrun's agent already serves the TCPStore on MASTER_PORT
/// (TORCHELASTIC_USE_AGENT_STORE=True) every rank joins it as a client under the same
/// "/worker/attempt_<restart>" prefix PyTorch's env:// init uses; otherwise rank 0 serves
/// it (the local launcher, SLURM). Gloo binds to GLOO_SOCKET_IFNAME's interfaces when set.
std::unique_ptr<Communicator> connect(const DistEnv& env, const ConnectOptions& options);

}  // namespace aim::dist
