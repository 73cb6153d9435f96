#include "aim/dist/sharded_gradient_sync.h"

#include <torch/torch.h>

#include <deque>
#include <mutex>

#include "aim/error.h"

namespace aim::dist {

struct ShardedGradientSync::State {
  struct Bucket {
    size_t first = 0, last = 0;  // parameters first..last (inclusive, in `params` order)
    int64_t lo = 0, hi = 0;      // the flattened range they cover
    size_t pending = 0;          // gradients still missing this backward
  };
  struct InFlight {
    size_t bucket;
    std::vector<std::unique_ptr<PendingWork>> works;  // one reduce per owner, or one reduce-scatter
    torch::Tensor scattered;  // reduce-scatter: this rank's part (its piece first, then padding)
  };

  Communicator* comm = nullptr;
  std::vector<torch::Tensor> params;
  std::vector<int64_t> bounds;  // rank r owns [bounds[r], bounds[r+1])
  int64_t lo = 0, hi = 0;       // this rank's
  std::vector<int64_t> flat_offset;
  std::vector<Bucket> buckets;
  std::vector<size_t> bucket_of;
  std::vector<torch::Tensor> flats;  // defined only while the bucket is being filled or reduced
  std::deque<InFlight> in_flight;
  size_t max_in_flight = 2;
  ReduceScatterPolicy reduce_scatter = ReduceScatterPolicy::kAuto;
  size_t scattered_buckets = 0;  // launched as one reduce-scatter (this backward)
  std::vector<char> filled;    // per param: gradient copied this backward
  std::vector<size_t> landed;  // params whose .grad AccumulateGrad may hold: released at the next hook
  torch::Tensor slice;
  bool armed = false;
  size_t overlapped = 0;
  size_t next_launch = 0;  // buckets launch in index order, whatever order they fill in
  int64_t live = 0, peak_live = 0;  // bucket elements allocated
  std::mutex mu;                    // hooks may run on autograd's device threads

  torch::Tensor& flat(size_t b) {
    if (!flats[b].defined()) {
      flats[b] = torch::empty({buckets[b].hi - buckets[b].lo}, params[buckets[b].first].options());
      live += buckets[b].hi - buckets[b].lo;
      peak_live = std::max(peak_live, live);
    }
    return flats[b];
  }

  torch::Tensor piece_of(size_t k) {
    const int64_t at = flat_offset[k] - buckets[bucket_of[k]].lo;
    return flat(bucket_of[k]).slice(0, at, at + params[k].numel());
  }

  // A parameter's hook runs before AccumulateGrad stores the same gradient in its .grad;
  // by the next hook that store is done, and the copy in the bucket is all we need.
  void release_landed() {
    for (auto k : landed) params[k].mutable_grad() = torch::Tensor();
    landed.clear();
  }

  // Owner r's piece of bucket b: [a, e) of the flattened parameters (empty when a >= e).
  std::pair<int64_t, int64_t> piece_bounds(size_t b, size_t r) const {
    return {std::max(bounds[r], buckets[b].lo), std::min(bounds[r + 1], buckets[b].hi)};
  }

  // One reduce-scatter of equal, zero-padded parts moves (N-1) x the largest piece per rank;
  // one reduce per owner moves the pieces themselves, the bucket in all. Slices are contiguous
  // ranges of the parameters, so a bucket of a large model lies inside one slice (one
  // reduce, nothing wasted) and only a bucket spread evenly over every rank (small slices)
  // is cheaper as a reduce-scatter.
  bool scatter(size_t b) const {
    if (reduce_scatter == ReduceScatterPolicy::kNever) return false;
    if (reduce_scatter == ReduceScatterPolicy::kAlways) return true;
    if (!comm->native_reduce_scatter()) return false;
    int64_t widest = 0;
    for (size_t r = 0; r + 1 < bounds.size(); ++r) {
      const auto [a, e] = piece_bounds(b, r);
      widest = std::max<int64_t>(widest, e - a);
    }
    const int64_t N = static_cast<int64_t>(bounds.size()) - 1;
    return (N - 1) * widest <= buckets[b].hi - buckets[b].lo;
  }

  // Every owner of a piece of the bucket gets the sum of that piece.
  void launch(size_t b) {
    InFlight f{b, {}, {}};
    const auto& bk = buckets[b];
    if (scatter(b)) {
      const int64_t N = static_cast<int64_t>(bounds.size()) - 1;
      int64_t chunk = 1;
      for (size_t r = 0; r < static_cast<size_t>(N); ++r) {
        const auto [a, e] = piece_bounds(b, r);
        chunk = std::max<int64_t>(chunk, e - a);
      }
      auto padded = torch::zeros({N * chunk}, flats[b].options());
      for (size_t r = 0; r < static_cast<size_t>(N); ++r) {
        const auto [a, e] = piece_bounds(b, r);
        if (a < e) padded.slice(0, r * chunk, r * chunk + (e - a)).copy_(flats[b].slice(0, a - bk.lo, e - bk.lo));
      }
      // The padded copy replaces the bucket (same accounting: it is what stays alive).
      live += N * chunk - (bk.hi - bk.lo);
      peak_live = std::max(peak_live, live);
      flats[b] = padded;
      f.scattered = torch::empty({chunk}, padded.options());
      f.works.push_back(comm->reduce_scatter_sum(f.scattered, flats[b]));
      ++scattered_buckets;
    } else {
      for (size_t r = 0; r + 1 < bounds.size(); ++r) {
        const auto [a, e] = piece_bounds(b, r);
        if (a >= e) continue;
        auto piece = flats[b].slice(0, a - bk.lo, e - bk.lo);
        f.works.push_back(comm->reduce_sum(piece, static_cast<int>(r)));
      }
    }
    in_flight.push_back(std::move(f));
    while (in_flight.size() > max_in_flight) drain_oldest();
  }

  void drain_oldest() {
    auto f = std::move(in_flight.front());
    in_flight.pop_front();
    for (auto& w : f.works) w->wait();
    const auto& bk = buckets[f.bucket];
    const int64_t a = std::max(lo, bk.lo), e = std::min(hi, bk.hi);
    if (a < e)
      slice.slice(0, a - lo, e - lo)
          .add_(f.scattered.defined() ? f.scattered.slice(0, 0, e - a) : flats[f.bucket].slice(0, a - bk.lo, e - bk.lo));
    live -= flats[f.bucket].numel();
    flats[f.bucket] = torch::Tensor();
  }

  // Launches every filled bucket from next_launch on, in index order (as DDP's reducer does):
  // collectives pair up by order across ranks, and a rank that fills no bucket from hooks (one
  // that gives a stalled step up, train_step.cpp) launches them in index order from finish().
  void launch_ready(bool from_hook) {
    while (next_launch < buckets.size() && buckets[next_launch].pending == 0) {
      launch(next_launch++);
      if (from_hook) ++overlapped;
    }
  }

  void on_grad(size_t k, const torch::Tensor& grad) {
    std::lock_guard<std::mutex> lock(mu);
    if (!armed || filled[k]) return;
    release_landed();
    piece_of(k).copy_(grad.reshape({-1}));
    filled[k] = 1;
    landed.push_back(k);
    auto& bk = buckets[bucket_of[k]];
    if (--bk.pending == 0) launch_ready(true);
  }
};

ShardedGradientSync::ShardedGradientSync(std::vector<torch::Tensor> params, std::vector<int64_t> bounds,
                                         Communicator& comm, double bucket_mb, int max_in_flight,
                                         ReduceScatterPolicy reduce_scatter)
    : state_(std::make_shared<State>()) {
  auto& s = *state_;
  s.comm = &comm;
  s.reduce_scatter = reduce_scatter;
  s.params = std::move(params);
  s.bounds = std::move(bounds);
  const size_t n = s.params.size();
  if (s.bounds.size() != static_cast<size_t>(comm.world_size()) + 1)
    throw Error("ShardedGradientSync: need world_size + 1 slice bounds");
  s.lo = s.bounds[static_cast<size_t>(comm.rank())];
  s.hi = s.bounds[static_cast<size_t>(comm.rank()) + 1];
  s.max_in_flight = static_cast<size_t>(std::max(1, max_in_flight));
  s.flat_offset.resize(n);
  int64_t total = 0;
  for (size_t k = 0; k < n; ++k) {
    s.flat_offset[k] = total;
    total += s.params[k].numel();
  }
  if (s.bounds.front() != 0 || s.bounds.back() != total)
    throw Error("ShardedGradientSync: the slice bounds must cover the " + std::to_string(total) + " parameters");
  // Buckets of consecutive parameters, filled from the last (gradients appear in reverse).
  s.bucket_of.resize(n);
  const double cap = bucket_mb * 1024 * 1024;
  double bytes = cap;
  for (size_t k = n; k-- > 0;) {
    if (bytes >= cap) {
      s.buckets.push_back({k, k, 0, 0, 0});
      bytes = 0;
    }
    auto& b = s.buckets.back();
    b.first = k;
    s.bucket_of[k] = s.buckets.size() - 1;
    bytes += static_cast<double>(s.params[k].numel() * s.params[k].element_size());
  }
  for (auto& b : s.buckets) {
    b.lo = s.flat_offset[b.first];
    b.hi = s.flat_offset[b.last] + s.params[b.last].numel();
  }
  s.flats.resize(s.buckets.size());
  s.filled.assign(n, 0);
  s.slice = torch::zeros({s.hi - s.lo}, n ? s.params.front().options() : torch::TensorOptions());
  std::weak_ptr<State> weak = state_;
  for (size_t k = 0; k < n; ++k)
    s.params[k].register_hook([weak, k](torch::Tensor grad) {
      if (auto st = weak.lock()) st->on_grad(k, grad);
    });
}

ShardedGradientSync::~ShardedGradientSync() = default;

void ShardedGradientSync::zero() { state_->slice.zero_(); }

void ShardedGradientSync::arm() {
  auto& s = *state_;
  std::lock_guard<std::mutex> lock(s.mu);
  for (auto& b : s.buckets) b.pending = b.last - b.first + 1;
  std::fill(s.filled.begin(), s.filled.end(), 0);
  s.overlapped = 0;
  s.next_launch = 0;
  s.scattered_buckets = 0;
  s.peak_live = s.live;
  s.armed = true;
}

void ShardedGradientSync::finish() {
  auto& s = *state_;
  std::lock_guard<std::mutex> lock(s.mu);
  s.armed = false;
  s.release_landed();
  // Parameters that got no gradient in this backward contribute zeros, so every rank
  // launches the same reductions in the same order.
  for (size_t b = 0; b < s.buckets.size(); ++b) {
    auto& bk = s.buckets[b];
    if (bk.pending == 0) continue;
    for (size_t k = bk.first; k <= bk.last; ++k)
      if (!s.filled[k]) {
        s.piece_of(k).zero_();
        s.filled[k] = 1;
      }
    bk.pending = 0;
  }
  s.launch_ready(false);
  while (!s.in_flight.empty()) s.drain_oldest();
}

torch::Tensor& ShardedGradientSync::slice() { return state_->slice; }

size_t ShardedGradientSync::num_buckets() const { return state_->buckets.size(); }

size_t ShardedGradientSync::overlapped_buckets() const { return state_->overlapped; }

size_t ShardedGradientSync::scattered_buckets() const { return state_->scattered_buckets; }

int64_t ShardedGradientSync::peak_bucket_elements() const { return state_->peak_live; }

}  // namespace aim::dist
