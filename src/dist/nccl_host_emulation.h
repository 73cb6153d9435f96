#pragma once
// NCCL's host semantics on a CPU (Gloo) communicator, for the CPU test suite
// (ConnectOptions::host_semantics = HostSemantics::kNccl).
//
// ProcessGroupNCCL's Work::wait() does not block the calling thread: it makes the current
// CUDA stream wait for the collective and returns. Kernels queued later on that stream run
// after the collective; the host only waits when it reads a result back (a device-to-host
// copy) or synchronizes the stream. Gloo's wait() blocks the host until every rank took
// part, so a CPU suite on Gloo silently orders host-side effects (files, renames, exits)
// across ranks that NCCL leaves unordered.
//
// The emulation: wait() queues the collective on this thread's emulated stream and returns.
// The emulated device is the host thread itself, so the thread's next tensor operation
// (any ATen op: a RecordFunction callback watches them) first waits for everything queued —
// what a kernel queued behind the collective would do. Host code that runs no tensor
// operation (file I/O, renames, store access, exit) runs ahead, exactly as on a GPU node.
// A collective that fails is reported at the next synchronisation point (a host read-back,
// barrier() or the next collective launched), as NCCL's watchdog reports it asynchronously.
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include <chrono>

namespace aim::dist::detail {

/// Makes this thread's tensor ops wait for its emulated stream from now on. Call it before any
/// backward pass that may queue collectives: autograd restores the thread-local state it
/// captured when backward started, which would drop a callback added inside a hook.
void watch_tensor_ops_on_this_thread();

/// Queues `work` on this thread's emulated stream instead of waiting for it. `owner`
/// identifies the communicator (for forget_emulated_stream).
void enqueue_on_emulated_stream(const void* owner, c10::intrusive_ptr<c10d::Work> work,
                                std::chrono::milliseconds timeout);

/// The stream synchronize of a host read-back: waits for every collective queued on this
/// thread, then throws aim::Error for the first one that failed since the last check.
void synchronize_emulated_stream();

/// Throws aim::Error if a queued collective of this thread has failed (checked when the
/// next collective is launched, without waiting for the queue).
void throw_if_emulated_stream_failed();

/// Waits for `owner`'s queued collectives and drops them, errors ignored (teardown).
void forget_emulated_stream(const void* owner) noexcept;

}  // namespace aim::dist::detail
