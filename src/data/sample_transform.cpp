#include "aim/data/sample_transform.h"

#include "aim/data/jpeg_region.h"

#include <opencv2/imgproc.hpp>

namespace aim::data {

CropBox SampleTransform::choose_box(int w, int h, Rng& rng) const {
  return c_.train && !c_.augment.eval_view ? random_resized_crop(w, h, c_.augment, rng)
                  : center_crop(w, h, c_.img_size, c_.augment.eval_crop_pct);
}

bool SampleTransform::prepare(const RawSample& raw, uint64_t g, PreparedSample& p,
                              std::string* why) const {
  p.rng = Rng(c_.seed, Stream::kAugment, g);
  p.reduction = 1;
  if (!raw.pixels.empty()) {
    p.image = raw.pixels;
    p.orig_w = raw.pixels.cols;
    p.orig_h = raw.pixels.rows;
    p.box = choose_box(p.orig_w, p.orig_h, p.rng);
    return true;
  }
  ImageHeader h = probe_image(raw.bytes.data(), raw.bytes.size());
  DecodeOptions opt;
  opt.channels = c_.channels;
  opt.max_pixels = c_.max_pixels;
  bool known = h.width > 0 && h.height > 0 &&
               static_cast<int64_t>(h.width) * h.height <= c_.max_pixels;
  if (known) {
    // Crop first, in original coordinates: then the decoder can skip what the crop discards.
    p.box = choose_box(h.width, h.height, p.rng);
    if (h.format == ImageFormat::kJpeg && jpeg_has_eoi(raw.bytes.data(), raw.bytes.size(), h.sos_offset)) {
      JpegRegion r;
      std::string region_why;
      const bool decoded = decode_jpeg_region(raw.bytes.data(), raw.bytes.size(), p.box, c_.img_size, c_.channels,
                                              c_.dct_min_ratio, r, &region_why);
      if (!decoded && jpeg_data_is_corrupt(region_why)) {  // OpenCV would decode the garbage without a word
        if (why) *why = region_why;
        return false;
      }
      if (decoded && r.image.cols >= 1 && r.image.rows >= 1) {
        p.image = r.image;
        p.box = r.box;  // now in the region's coordinates
        p.orig_w = r.image.cols;
        p.orig_h = r.image.rows;
        p.reduction = r.scale == 8 ? 1 : 8 / r.scale;
        return true;
      }
      // Anything the region path cannot do (CMYK, decoder errors) goes the full-decode way,
      // which converts or reports it.
    }
    if (h.format == ImageFormat::kJpeg)
      opt.reduce = pick_reduction(static_cast<int>(p.box.w), static_cast<int>(p.box.h),
                                  c_.img_size, c_.dct_min_ratio);
  }
  p.image = decode_image(raw.bytes.data(), raw.bytes.size(), opt, why);
  if (p.image.empty()) return false;
  p.reduction = opt.reduce;
  if (known) {
    p.orig_w = h.width;
    p.orig_h = h.height;
    // A header that lied about the size (seen in the wild) would skew the crop: redo it.
    int ew = (h.width + opt.reduce - 1) / opt.reduce, eh = (h.height + opt.reduce - 1) / opt.reduce;
    if (p.image.cols != ew || p.image.rows != eh) {
      p.rng = Rng(c_.seed, Stream::kAugment, g);
      p.orig_w = p.image.cols;
      p.orig_h = p.image.rows;
      p.box = choose_box(p.orig_w, p.orig_h, p.rng);
    }
  } else {
    p.orig_w = p.image.cols;
    p.orig_h = p.image.rows;
    p.box = choose_box(p.orig_w, p.orig_h, p.rng);
  }
  return true;
}

void SampleTransform::finish(PreparedSample& p, uint8_t* dst) const {
  cv::Mat out = crop_resize(p.image, p.box, p.orig_w, p.orig_h, c_.img_size);
  p.image.release();
  if (c_.channels == 3 && out.channels() == 1) cv::cvtColor(out, out, cv::COLOR_GRAY2BGR);
  if (c_.channels == 1 && out.channels() == 3) cv::cvtColor(out, out, cv::COLOR_BGR2GRAY);
  if (c_.train && !c_.augment.eval_view) {
    if (p.rng.uniform() < c_.augment.hflip) cv::flip(out, out, 1);
    if (p.rng.uniform() < c_.augment.color_jitter) color_jitter(out, c_.augment, p.rng);
  }
  to_chw_rgb(out, dst);
}

}  // namespace aim::data
