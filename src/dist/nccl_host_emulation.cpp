#include "nccl_host_emulation.h"

#include <ATen/record_function.h>

#include <deque>
#include <optional>
#include <string>

#include "aim/error.h"

namespace aim::dist::detail {
namespace {

struct Queued {
  const void* owner;
  c10::intrusive_ptr<c10d::Work> work;
  std::chrono::milliseconds timeout;
};

// One emulated stream per thread: a rank is a process (one main thread) in training and a
// thread in the in-process communicator tests, and CUDA's current stream is per thread too.
struct EmulatedStream {
  std::deque<Queued> queue;
  std::optional<std::string> failure;  // the first failed collective not reported yet
  bool draining = false;
  std::optional<at::CallbackHandle> callback;

  // Waits for every queued collective in launch order; never throws (it runs inside an
  // ATen op's RecordFunction callback, whose exceptions LibTorch swallows).
  void drain() noexcept {
    if (draining) return;
    draining = true;
    while (!queue.empty()) {
      Queued q = std::move(queue.front());
      queue.pop_front();
      try {
        const bool ok = q.timeout.count() > 0 ? q.work->wait(q.timeout) : q.work->wait();
        if (!ok && !failure) failure = "collective did not complete";
      } catch (const c10::Error& e) {
        if (!failure) failure = e.what_without_backtrace();
      } catch (const std::exception& e) {
        if (!failure) failure = e.what();
      }
    }
    draining = false;
  }

  ~EmulatedStream() {
    drain();
    if (callback) at::removeCallback(*callback);
  }
};

EmulatedStream& stream() {
  thread_local EmulatedStream s;
  return s;
}

// Every ATen op on this thread first waits for the queued collectives: the op is a kernel
// queued behind them on the emulated stream.
std::unique_ptr<at::ObserverContext> before_tensor_op(const at::RecordFunction&) {
  auto& s = stream();
  if (!s.queue.empty()) s.drain();
  return nullptr;
}

void throw_failure(EmulatedStream& s) {
  if (!s.failure) return;
  const std::string why = *s.failure;
  s.failure.reset();
  throw Error("collective failed (a rank died, or did not take part within train.dist_timeout_s): " + why);
}

}  // namespace

void watch_tensor_ops_on_this_thread() {
  auto& s = stream();
  if (!s.callback) s.callback = at::addThreadLocalCallback(at::RecordFunctionCallback(before_tensor_op));
}

void enqueue_on_emulated_stream(const void* owner, c10::intrusive_ptr<c10d::Work> work,
                                std::chrono::milliseconds timeout) {
  watch_tensor_ops_on_this_thread();
  stream().queue.push_back({owner, std::move(work), timeout});
}

void synchronize_emulated_stream() {
  auto& s = stream();
  s.drain();
  throw_failure(s);
}

void throw_if_emulated_stream_failed() { throw_failure(stream()); }

void forget_emulated_stream(const void* owner) noexcept {
  auto& s = stream();
  bool mine = false;
  for (const auto& q : s.queue) mine = mine || q.owner == owner;
  if (mine) {
    s.drain();
    s.failure.reset();
  }
}

}  // namespace aim::dist::detail
