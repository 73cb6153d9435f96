#include "aim/data/cubic_resize.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include <opencv2/core/hal/intrin.hpp>
#include <opencv2/imgproc.hpp>

namespace aim::data {
namespace {

// OpenCV's interpolateCubic (imgproc/resize.cpp): Keys' kernel, A = -0.75, at offset x in [0, 1).
void cubic_weights(float x, float w[4]) {
  const float A = -0.75f;
  w[0] = ((A * (x + 1) - 5 * A) * (x + 1) + 8 * A) * (x + 1) - 4 * A;
  w[1] = ((A + 2) * x - (A + 3)) * x * x + 1;
  w[2] = ((A + 2) * (1 - x) - (A + 3)) * (1 - x) * (1 - x) + 1;
  w[3] = 1.f - w[0] - w[1] - w[2];
}

// For each of n_out output positions: 4 source indices (clamped: the edge pixel is repeated) and
// 4 weights, each rounded to 1/2048 as OpenCV's 8-bit path rounds them (cvRound(w * 2048)).
struct Taps {
  std::vector<int> index;
  std::vector<float> weight;
};

Taps make_taps(int n_in, int n_out) {
  Taps t;
  t.index.resize(4 * static_cast<size_t>(n_out));
  t.weight.resize(4 * static_cast<size_t>(n_out));
  const double scale = 1.0 / (static_cast<double>(n_out) / n_in);  // as cv::resize derives it
  for (int d = 0; d < n_out; ++d) {
    float f = static_cast<float>((d + 0.5) * scale - 0.5);
    const int s = cvFloor(f);
    f -= static_cast<float>(s);
    float w[4];
    cubic_weights(f, w);
    for (int k = 0; k < 4; ++k) {
      t.index[4 * d + k] = std::clamp(s - 1 + k, 0, n_in - 1);
      t.weight[4 * d + k] = static_cast<float>(cvRound(w[k] * 2048.f)) / 2048.f;
    }
  }
  return t;
}

// Rounds (half to even, like OpenCV) and saturates a row of floats to 8 bits.
void round_to_u8(const float* in, uint8_t* out, int n) {
  int i = 0;
#if CV_SIMD128
  for (; i + 16 <= n; i += 16) {
    cv::v_int32x4 a = cv::v_round(cv::v_load(in + i)), b = cv::v_round(cv::v_load(in + i + 4));
    cv::v_int32x4 c = cv::v_round(cv::v_load(in + i + 8)), d = cv::v_round(cv::v_load(in + i + 12));
    cv::v_store(out + i, cv::v_pack_u(cv::v_pack(a, b), cv::v_pack(c, d)));
  }
#endif
  for (; i < n; ++i) out[i] = cv::saturate_cast<uint8_t>(in[i]);
}

}  // namespace

cv::Mat resize_cubic(const cv::Mat& src, int out_w, int out_h) {
  const int cn = src.channels();
  if (src.depth() != CV_8U || (cn != 1 && cn != 3) || src.empty() || out_w < 1 || out_h < 1) {
    cv::Mat dst;
    cv::resize(src, dst, cv::Size(out_w, out_h), 0, 0, cv::INTER_CUBIC);
    return dst;
  }
  const Taps ty = make_taps(src.rows, out_h), tx = make_taps(src.cols, out_w);
  const size_t row_len = static_cast<size_t>(src.cols) * cn;
  // Reused per thread: a fresh megabyte per image would be a fresh mmap and its page faults.
  // +4 floats: the 3-channel pass loads 4 floats per pixel, one past the last pixel of the last row.
  thread_local std::vector<float> tmp, row;
  tmp.resize(static_cast<size_t>(out_h) * row_len + 4);
  row.resize(static_cast<size_t>(out_w) * cn + 4);

  // Vertical pass over whole source rows: tmp[y] = sum_k wy_k * src[iy_k]. Exact in float (8-bit
  // values times weights in 1/2048 need 20 bits), so only the horizontal pass rounds.
  for (int y = 0; y < out_h; ++y) {
    const uint8_t* __restrict s0 = src.ptr<uint8_t>(ty.index[4 * y]);
    const uint8_t* __restrict s1 = src.ptr<uint8_t>(ty.index[4 * y + 1]);
    const uint8_t* __restrict s2 = src.ptr<uint8_t>(ty.index[4 * y + 2]);
    const uint8_t* __restrict s3 = src.ptr<uint8_t>(ty.index[4 * y + 3]);
    const float b0 = ty.weight[4 * y], b1 = ty.weight[4 * y + 1], b2 = ty.weight[4 * y + 2],
                b3 = ty.weight[4 * y + 3];
    float* __restrict t = tmp.data() + static_cast<size_t>(y) * row_len;
    for (size_t i = 0; i < row_len; ++i)
      t[i] = b0 * static_cast<float>(s0[i]) + b1 * static_cast<float>(s1[i]) + b2 * static_cast<float>(s2[i]) +
             b3 * static_cast<float>(s3[i]);
  }

  // Horizontal pass on the out_h rows only.
  cv::Mat dst(out_h, out_w, src.type());
  for (int y = 0; y < out_h; ++y) {
    const float* t = tmp.data() + static_cast<size_t>(y) * row_len;
    float* r = row.data();
    const int* ix = tx.index.data();
    const float* a = tx.weight.data();
    if (cn == 3) {
      for (int x = 0; x < out_w; ++x, ix += 4, a += 4) {
#if CV_SIMD128
        // One vector holds a pixel's 3 channels (+ the next pixel's first, overwritten next).
        cv::v_float32x4 acc = cv::v_load(t + 3 * ix[0]) * cv::v_setall_f32(a[0]);
        acc = cv::v_muladd(cv::v_load(t + 3 * ix[1]), cv::v_setall_f32(a[1]), acc);
        acc = cv::v_muladd(cv::v_load(t + 3 * ix[2]), cv::v_setall_f32(a[2]), acc);
        acc = cv::v_muladd(cv::v_load(t + 3 * ix[3]), cv::v_setall_f32(a[3]), acc);
        cv::v_store(r + 3 * x, acc);
#else
        for (int c = 0; c < 3; ++c)
          r[3 * x + c] = a[0] * t[3 * ix[0] + c] + a[1] * t[3 * ix[1] + c] + a[2] * t[3 * ix[2] + c] +
                         a[3] * t[3 * ix[3] + c];
#endif
      }
    } else {
      for (int x = 0; x < out_w; ++x, ix += 4, a += 4)
        r[x] = a[0] * t[ix[0]] + a[1] * t[ix[1]] + a[2] * t[ix[2]] + a[3] * t[ix[3]];
    }
    round_to_u8(r, dst.ptr<uint8_t>(y), out_w * cn);
  }
  return dst;
}

}  // namespace aim::data
