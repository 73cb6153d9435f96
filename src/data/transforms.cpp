#include "aim/data/transforms.h"

#include "aim/data/cubic_resize.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <opencv2/imgproc.hpp>

namespace aim::data {

CropBox random_resized_crop(int W, int H, const AugmentConfig& a, Rng& rng) {
  double area = static_cast<double>(W) * H;
  double lr0 = std::log(a.ratio_min), lr1 = std::log(a.ratio_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    double target = area * rng.uniform(a.scale_min, a.scale_max);
    double ratio = std::exp(rng.uniform(lr0, lr1));
    int w = static_cast<int>(std::lround(std::sqrt(target * ratio)));
    int h = static_cast<int>(std::lround(std::sqrt(target / ratio)));
    if (w > 0 && h > 0 && w <= W && h <= H) {
      int y = static_cast<int>(rng.between(0, H - h));
      int x = static_cast<int>(rng.between(0, W - w));
      return {double(x), double(y), double(w), double(h)};
    }
  }
  double in_ratio = static_cast<double>(W) / H;
  int w = W, h = H;
  if (in_ratio < a.ratio_min) {
    h = static_cast<int>(std::lround(w / a.ratio_min));
  } else if (in_ratio > a.ratio_max) {
    w = static_cast<int>(std::lround(h * a.ratio_max));
  }
  w = std::clamp(w, 1, W);
  h = std::clamp(h, 1, H);
  return {double((W - w) / 2), double((H - h) / 2), double(w), double(h)};
}

CropBox center_crop(int W, int H, int out, double crop_pct) {
  // After resizing the shorter side to out/crop_pct, an out-wide window covers crop_pct of it.
  double side = std::min(W, H) * crop_pct;
  return {(W - side) / 2.0, (H - side) / 2.0, side, side};
}

cv::Mat crop_resize(const cv::Mat& img, const CropBox& b, int orig_w, int orig_h, int out) {
  double sx = static_cast<double>(img.cols) / orig_w, sy = static_cast<double>(img.rows) / orig_h;
  int x0 = std::clamp(static_cast<int>(std::lround(b.x * sx)), 0, img.cols - 1);
  int y0 = std::clamp(static_cast<int>(std::lround(b.y * sy)), 0, img.rows - 1);
  int x1 = std::clamp(static_cast<int>(std::lround((b.x + b.w) * sx)), x0 + 1, img.cols);
  int y1 = std::clamp(static_cast<int>(std::lround((b.y + b.h) * sy)), y0 + 1, img.rows);
  cv::Mat roi = img(cv::Rect(x0, y0, x1 - x0, y1 - y0));
  if (roi.cols == out && roi.rows == out) return roi.clone();
  bool shrink2 = roi.cols >= 2 * out && roi.rows >= 2 * out;
  if (!shrink2) return resize_cubic(roi, out, out);  // OpenCV's INTER_CUBIC within one level, faster
  cv::Mat dst;
  cv::resize(roi, dst, cv::Size(out, out), 0, 0, cv::INTER_AREA);
  return dst;
}

namespace {

double gray_mean(const cv::Mat& img) {
  if (img.channels() == 1) return cv::mean(img)[0];
  cv::Scalar m = cv::mean(img);  // BGR; ITU-R 601 luma like torchvision's rgb_to_grayscale
  return 0.114 * m[0] + 0.587 * m[1] + 0.299 * m[2];
}

}  // namespace

void color_jitter(cv::Mat& img, const AugmentConfig& a, Rng& rng) {
  std::array<int, 4> order = {0, 1, 2, 3};
  for (int i = 3; i > 0; --i) std::swap(order[i], order[rng.below(i + 1)]);
  // Factors are drawn up front (as torchvision does), independently of the order.
  double fb = rng.uniform(std::max(0.0, 1 - a.brightness), 1 + a.brightness);
  double fc = rng.uniform(std::max(0.0, 1 - a.contrast), 1 + a.contrast);
  double fs = rng.uniform(std::max(0.0, 1 - a.saturation), 1 + a.saturation);
  double fh = rng.uniform(-a.hue, a.hue);
  bool color = img.channels() == 3;
  for (int op : order) {
    if (op == 0 && a.brightness > 0) {
      img.convertTo(img, -1, fb, 0);
    } else if (op == 1 && a.contrast > 0) {
      img.convertTo(img, -1, fc, (1 - fc) * gray_mean(img));
    } else if (op == 2 && color && a.saturation > 0) {
      cv::Mat g, g3;
      cv::cvtColor(img, g, cv::COLOR_BGR2GRAY);
      cv::cvtColor(g, g3, cv::COLOR_GRAY2BGR);
      cv::addWeighted(img, fs, g3, 1 - fs, 0, img);
    } else if (op == 3 && color && a.hue > 0) {
      cv::Mat hsv;
      cv::cvtColor(img, hsv, cv::COLOR_BGR2HSV_FULL);  // hue in 0..255 wraps like a circle
      int shift = static_cast<int>(std::lround(fh * 256));
      cv::Mat lut(1, 256, CV_8U);
      for (int v = 0; v < 256; ++v) lut.at<uint8_t>(v) = static_cast<uint8_t>((v + shift + 256) & 255);
      std::vector<cv::Mat> ch;
      cv::split(hsv, ch);
      cv::LUT(ch[0], lut, ch[0]);
      cv::merge(ch, hsv);
      cv::cvtColor(hsv, img, cv::COLOR_HSV2BGR_FULL);
    }
  }
}

void to_chw_rgb(const cv::Mat& img, uint8_t* dst) {
  const int h = img.rows, w = img.cols;
  const size_t plane = static_cast<size_t>(h) * w;
  if (img.channels() == 1) {
    for (int y = 0; y < h; ++y) std::copy_n(img.ptr<uint8_t>(y), w, dst + static_cast<size_t>(y) * w);
    return;
  }
  // mixChannels writes straight into the batch tensor (vectorized), BGR -> planar RGB.
  cv::Mat planes[3] = {cv::Mat(h, w, CV_8U, dst), cv::Mat(h, w, CV_8U, dst + plane),
                       cv::Mat(h, w, CV_8U, dst + 2 * plane)};
  const int from_to[] = {0, 2, 1, 1, 2, 0};
  cv::mixChannels(&img, 1, planes, 3, from_to, 3);
}

}  // namespace aim::data
