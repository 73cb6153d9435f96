#include "aim/data/synthetic_source.h"

#include <opencv2/imgproc.hpp>

#include "aim/data/rng.h"
#include "aim/error.h"

namespace aim::data {

SyntheticSource::SyntheticSource(int64_t size, int64_t classes, int height, int width,
                                 int channels, uint64_t seed)
    : size_(size), classes_(classes), height_(height), width_(width), channels_(channels),
      seed_(seed) {
  if (size <= 0 || classes <= 0 || height <= 0 || width <= 0 || (channels != 1 && channels != 3))
    throw Error("synthetic source: size, classes, height, width must be > 0 and channels 1 or 3");
}

cv::Mat SyntheticSource::render(int64_t i) const {
  Rng rng(seed_, Stream::kAugment, 0x5e, static_cast<uint64_t>(i));
  int64_t cls = i % classes_;
  // Smooth blobs (coarse random field, upsampled) + finer texture + pixel noise: compresses
  // and decodes like a photo rather than like a flat test card.
  auto field = [&](int cells, double amp) {
    cv::Mat f(cells, cells, CV_32FC3);
    for (int y = 0; y < cells; ++y)
      for (int x = 0; x < cells; ++x)
        f.at<cv::Vec3f>(y, x) = cv::Vec3f(float(rng.uniform(-amp, amp)), float(rng.uniform(-amp, amp)),
                                          float(rng.uniform(-amp, amp)));
    cv::Mat up;
    cv::resize(f, up, cv::Size(width_, height_), 0, 0, cv::INTER_CUBIC);
    return up;
  };
  // The class sets the mean colour, so labels are learnable.
  double hue = 2 * 3.14159265 * cls / classes_;
  cv::Mat img(height_, width_, CV_32FC3,
              cv::Scalar(128 + 60 * std::cos(hue), 128 + 60 * std::sin(hue), 128 - 40 * std::cos(hue)));
  img += field(4, 50);
  img += field(16, 20);
  cv::Mat noise(height_, width_, CV_32FC3);
  // Our counter RNG, not cv::randn: OpenCV's generator is per-thread state.
  for (auto it = noise.begin<cv::Vec3f>(); it != noise.end<cv::Vec3f>(); ++it) {
    uint64_t r = rng.next();
    *it = cv::Vec3f(float(int(r & 15) - 8), float(int((r >> 8) & 15) - 8), float(int((r >> 16) & 15) - 8));
  }
  img += noise;
  cv::Mat out;
  img.convertTo(out, CV_8U);
  if (channels_ == 1) cv::cvtColor(out, out, cv::COLOR_BGR2GRAY);
  return out;
}

bool SyntheticSource::load(int64_t i, RawSample& out, std::string*) const {
  out.bytes.clear();
  out.pixels = render(i);
  out.label = i % classes_;
  out.where = "synthetic#" + std::to_string(i);
  return true;
}

}  // namespace aim::data
