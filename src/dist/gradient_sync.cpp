#include "aim/dist/gradient_sync.h"

#include <torch/torch.h>

#include <mutex>

namespace aim::dist {

struct GradientSync::State {
  Communicator* comm = nullptr;
  std::vector<torch::Tensor> params;
  std::vector<std::vector<size_t>> buckets;  // param indices per bucket
  std::vector<size_t> bucket_of, offset_in_bucket;
  std::vector<torch::Tensor> flats;          // one flat buffer per bucket
  std::vector<size_t> pending;               // gradients still missing per bucket
  std::vector<char> filled;                  // per param: gradient copied this step
  std::vector<std::unique_ptr<PendingWork>> works;
  bool armed = false;
  size_t overlapped = 0;  // buckets launched from hooks in the last step
  size_t next_launch = 0;  // buckets launch in index order, whatever order they fill in
  std::mutex mu;  // hooks may run on autograd's device threads

  void launch(size_t b) { works[b] = comm->all_reduce_sum(flats[b]); }

  // Launches every filled bucket from next_launch on, in index order (as DDP's reducer does):
  // collectives pair up by order across ranks, and a rank that fills no bucket from hooks (one
  // that gives a stalled step up, train_step.cpp) launches them in index order from finish().
  void launch_ready(bool from_hook) {
    while (next_launch < buckets.size() && pending[next_launch] == 0) {
      launch(next_launch++);
      if (from_hook) ++overlapped;
    }
  }

  // Called from the parameter's hook with this micro-batch's gradient: the value to reduce
  // is it plus what earlier micro-batches accumulated in param.grad().
  void on_grad(size_t k, const torch::Tensor& grad) {
    std::lock_guard<std::mutex> lock(mu);
    if (!armed || filled[k]) return;
    const size_t b = bucket_of[k];
    auto dst = flats[b].slice(0, static_cast<int64_t>(offset_in_bucket[k]),
                              static_cast<int64_t>(offset_in_bucket[k]) + params[k].numel());
    const auto& acc = params[k].grad();
    if (acc.defined()) dst.copy_((acc + grad).reshape({-1}));
    else dst.copy_(grad.reshape({-1}));
    filled[k] = 1;
    if (--pending[b] == 0) launch_ready(true);
  }
};

GradientSync::GradientSync(std::vector<torch::Tensor> params, Communicator& comm, double bucket_mb)
    : state_(std::make_shared<State>()) {
  auto& s = *state_;
  s.comm = &comm;
  s.params = std::move(params);
  const size_t n = s.params.size();
  s.bucket_of.resize(n);
  s.offset_in_bucket.resize(n);
  s.filled.assign(n, 0);
  const double cap = bucket_mb * 1024 * 1024;
  double bytes = 0;
  int64_t elems = 0;
  for (size_t k = n; k-- > 0;) {
    if (s.buckets.empty() || bytes >= cap) {
      if (!s.buckets.empty()) s.flats.push_back(torch::zeros({elems}, s.params[s.buckets.back()[0]].options()));
      s.buckets.emplace_back();
      bytes = 0;
      elems = 0;
    }
    s.bucket_of[k] = s.buckets.size() - 1;
    s.offset_in_bucket[k] = static_cast<size_t>(elems);
    s.buckets.back().push_back(k);
    elems += s.params[k].numel();
    bytes += static_cast<double>(s.params[k].numel() * s.params[k].element_size());
  }
  if (!s.buckets.empty()) s.flats.push_back(torch::zeros({elems}, s.params[s.buckets.back()[0]].options()));
  s.pending.assign(s.buckets.size(), 0);
  s.works.resize(s.buckets.size());
  std::weak_ptr<State> weak = state_;
  for (size_t k = 0; k < n; ++k)
    s.params[k].register_hook([weak, k](torch::Tensor grad) {
      if (auto st = weak.lock()) st->on_grad(k, grad);
    });
}

GradientSync::~GradientSync() = default;

size_t GradientSync::num_buckets() const { return state_->buckets.size(); }

size_t GradientSync::overlapped_buckets() const { return state_->overlapped; }

void GradientSync::arm() {
  auto& s = *state_;
  std::lock_guard<std::mutex> lock(s.mu);
  for (size_t b = 0; b < s.buckets.size(); ++b) s.pending[b] = s.buckets[b].size();
  std::fill(s.filled.begin(), s.filled.end(), 0);
  s.overlapped = 0;
  s.next_launch = 0;
  s.armed = true;
}

void GradientSync::finish() {
  auto& s = *state_;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    s.armed = false;
    // Parameters that received no gradient in the last backward contribute what they
    // accumulated earlier (or zeros), so every rank reduces the same buckets.
    for (size_t b = 0; b < s.buckets.size(); ++b) {
      if (s.pending[b] == 0) continue;
      for (auto k : s.buckets[b]) {
        if (s.filled[k]) continue;
        auto dst = s.flats[b].slice(0, static_cast<int64_t>(s.offset_in_bucket[k]),
                                    static_cast<int64_t>(s.offset_in_bucket[k]) + s.params[k].numel());
        const auto& acc = s.params[k].grad();
        if (acc.defined()) dst.copy_(acc.reshape({-1}));
        else dst.zero_();
        s.filled[k] = 1;
      }
      s.pending[b] = 0;
    }
    s.launch_ready(false);
  }
  for (size_t b = 0; b < s.buckets.size(); ++b) {
    s.works[b]->wait();
    s.works[b].reset();
    for (auto k : s.buckets[b]) {
      auto& p = s.params[k];
      auto src = s.flats[b].slice(0, static_cast<int64_t>(s.offset_in_bucket[k]),
                                  static_cast<int64_t>(s.offset_in_bucket[k]) + p.numel()).view_as(p);
      if (!p.grad().defined()) p.mutable_grad() = src.clone();
      else p.mutable_grad().copy_(src);
    }
  }
}

}  // namespace aim::dist
