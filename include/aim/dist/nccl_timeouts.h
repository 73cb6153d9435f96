#pragma once

namespace aim::dist {

/// Makes ProcessGroupNCCL enforce its Options::timeout (train.dist_timeout_s) on every
/// collective, on each LibTorch version aim supports. Must run before the process group is
/// created, since it reads the environment in its constructor. A variable the user already
/// set is left alone.
///
/// Why: a NCCL collective whose peer died never completes, and Work::wait() only makes the
/// CUDA stream wait, so the CPU would block forever at the next sync. The process group's
/// watchdog thread checks every work's age against the timeout, but acts only with async
/// error handling on:
///   - LibTorch 1.13 reads NCCL_ASYNC_ERROR_HANDLING, off by default: set to 1 here;
///   - 2.0/2.1 read the same name, default 1 (tear down); 2.2+ read
///     TORCH_NCCL_ASYNC_ERROR_HANDLING first, default 3 (tear down without cleanup): left
///     as PyTorch sets them.
/// With it on, a timed-out collective aborts the NCCL communicators and the watchdog ends
/// the process with "Watchdog caught collective operation timeout: WorkNCCL(...) ran for
/// N milliseconds before timing out"; the launcher (torchrun, srun, --nproc-per-node) then
/// stops the other ranks. Blocking wait (TORCH_NCCL_BLOCKING_WAIT) is not turned on, and
/// aim never passes a timeout to a NCCL Work::wait(): either makes the waiting CPU thread
/// busy-poll every 10 ms on 2.x (and 1.13 ignores the argument anyway).
void enable_nccl_timeouts();

}  // namespace aim::dist
