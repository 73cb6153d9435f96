#pragma once
// Bicubic resize of 8-bit images for the augmentation pipeline, vertical pass first.
//
// cv::resize(INTER_CUBIC) runs its horizontal pass first, over every source row, in scalar code
// (OpenCV 4.6's HResizeCubic for 8-bit images). In RandomResizedCrop the source crop has more
// rows than the 224-row output, so most of that scalar work is spent on rows the vertical pass
// then blends away; it was ~40 % of the image-folder loader's time. Here the vertical pass
// runs first over whole contiguous rows (vectorized by the compiler), and the horizontal pass
// touches only the output's rows, three channels per SIMD vector.
//
// Same filter as OpenCV (Keys' cubic with A = -0.75, pixel centres aligned, edge pixels
// replicated, weights rounded to OpenCV's 11-bit fixed point): the result differs from
// cv::resize by at most one level, on rare pixels whose exact value sits on a rounding tie
// (both compute in float near the end, in a different order).
#include <opencv2/core.hpp>

namespace aim::data {

/// src: CV_8UC1 or CV_8UC3 (any ROI); returns an out_h x out_w image of the same type.
/// Other types go to cv::resize(INTER_CUBIC).
cv::Mat resize_cubic(const cv::Mat& src, int out_w, int out_h);

}  // namespace aim::data
