// aim-bench-loader: images/s of the data pipeline on a folder of JPEGs, next to the
// torchvision reference (scripts/reference/ref_loader.py; scripts/bench_loader.sh runs both).
//   aim-bench-loader --dir DIR [--workers 2] [--batches 12] [--batch-size 64] [--img-size 224]
//                    [--mode decode|full|jitter|all|resize]
//   aim-bench-loader --shards PATTERN [--workers 2] [--lanes 8] [--mode full|jitter] [...]
//   aim-bench-loader --generate N --dir DIR      write N photo-like ~470x450 JPEGs (q90)
//   aim-bench-loader --skew [--workers 16] [--lanes 8] [--cost-ms 4] [--slow-fraction 0.1]
//                    [--slow-factor 10] [--batches 12] [--batch-size 64]
//       worker utilisation of the webdataset lanes when decode costs are skewed: tiny images,
//       each "decoded" for cost-ms (a sleep, so 16 workers fit on 2 cores), a slow-fraction
//       of them slow-factor times longer; utilisation = time in decode within the timed
//       window / (workers x wall). A sleep may overrun its nominal time, so the measured
//       img/s can pass the nominal ideal a little.
// Modes: decode = read + full-size JPEG decode in `workers` threads (the ceiling);
//        full   = the training loader: RandomResizedCrop 224 (bicubic) + flip, uint8 batches;
//        jitter = full + ColorJitter(0.4, 0.4, 0.2, 0.1) with p = 0.8 (the released recipe);
//        resize = one thread, the bicubic resize alone on RandomResizedCrop boxes of the
//                 folder's first 64 images (decoded once, outside the clock): ours
//                 (data::resize_cubic) next to cv::resize(INTER_CUBIC), the loader's before.
// With --shards the loader reads one webdataset source (e.g. the folder packed by
// `aim-data pack --from image_folder`) through `lanes` sequential readers instead.
#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <thread>
#include <atomic>

#include "aim/data/cubic_resize.h"
#include "aim/data/decode.h"
#include "aim/data/image_folder_source.h"
#include "aim/data/loader.h"
#include "aim/data/rng.h"
#include "aim/data/synthetic_source.h"
#include "aim/data/tar_reader.h"
#include "aim/data/transforms.h"

namespace fs = std::filesystem;
using namespace aim::data;
using Clock = std::chrono::steady_clock;

namespace {

std::string arg(int argc, char** argv, const std::string& key, const std::string& def) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == key) return argv[i + 1];
  return def;
}

void generate(const std::string& dir, int n) {
  for (int i = 0; i < n; ++i) {
    Rng rng(7, Stream::kAugment, i);
    // DFN/ImageNet-like sizes: longer side <= 512, typical 470 x 450.
    int w = static_cast<int>(rng.between(400, 512)), h = static_cast<int>(rng.between(380, 512));
    cv::Mat img = SyntheticSource(n, 10, h, w, 3, 2024).render(i);
    // Objects with edges and fine texture, so files compress (~70-100 KB at q90) and decode
    // like photos rather than like smooth gradients.
    for (int k = 0; k < 25; ++k) {
      cv::Scalar col(rng.between(0, 255), rng.between(0, 255), rng.between(0, 255));
      cv::Point c(static_cast<int>(rng.between(0, w)), static_cast<int>(rng.between(0, h)));
      cv::Size ax(static_cast<int>(rng.between(5, w / 4)), static_cast<int>(rng.between(5, h / 4)));
      cv::ellipse(img, c, ax, rng.uniform(0, 180), 0, 360, col, -1, cv::LINE_AA);
    }
    cv::Mat grain(h, w, CV_8UC3);
    for (auto it = grain.begin<cv::Vec3b>(); it != grain.end<cv::Vec3b>(); ++it) {
      uint64_t r = rng.next();
      *it = cv::Vec3b(r & 31, (r >> 8) & 31, (r >> 16) & 31);
    }
    cv::GaussianBlur(grain, grain, cv::Size(3, 3), 0.6);
    cv::add(img, grain, img);
    cv::subtract(img, cv::Scalar(15, 15, 15), img);
    fs::path p = fs::path(dir) / ("c" + std::to_string(i % 10)) / ("img" + std::to_string(i) + ".jpg");
    fs::create_directories(p.parent_path());
    cv::imwrite(p.string(), img, {cv::IMWRITE_JPEG_QUALITY, 90});
  }
}

double bench_decode(const std::string& dir, int workers, int64_t images) {
  ImageFolderSource src(dir);
  std::atomic<int64_t> next{0};
  auto work = [&] {
    RawSample s;
    std::string why;
    DecodeOptions o;
    for (int64_t i; (i = next++) < images;) {
      src.load(i % src.size(), s, &why);
      cv::Mat m = decode_image(s.bytes.data(), s.bytes.size(), o, &why);
      if (m.empty()) std::cerr << "decode failed: " << s.where << ": " << why << "\n";
    }
  };
  auto t0 = Clock::now();
  std::vector<std::thread> ts;
  for (int w = 0; w < std::max(1, workers); ++w) ts.emplace_back(work);
  for (auto& t : ts) t.join();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// `shards` empty: the folder as an image_folder source; else the shards as a webdataset one.
// Seconds for `images` bicubic resizes of random crops to size x size, by ours or OpenCV's.
double bench_resize(const std::string& dir, int64_t images, int size, bool ours) {
  ImageFolderSource src(dir);
  std::vector<cv::Mat> decoded;
  RawSample s;
  std::string why;
  for (int64_t i = 0; i < std::min<int64_t>(64, src.size()); ++i) {
    src.load(i, s, &why);
    cv::Mat m = decode_image(s.bytes.data(), s.bytes.size(), DecodeOptions{}, &why);
    if (!m.empty()) decoded.push_back(m);
  }
  if (decoded.empty()) throw std::runtime_error("no decodable image in " + dir);
  AugmentConfig a;
  auto t0 = Clock::now();
  for (int64_t i = 0; i < images; ++i) {
    const cv::Mat& img = decoded[i % decoded.size()];
    Rng rng(1, Stream::kAugment, static_cast<uint64_t>(i));
    CropBox b = random_resized_crop(img.cols, img.rows, a, rng);
    cv::Mat roi = img(cv::Rect(int(b.x), int(b.y), int(b.w), int(b.h))), out;
    if (ours) out = resize_cubic(roi, size, size);
    else cv::resize(roi, out, cv::Size(size, size), 0, 0, cv::INTER_CUBIC);
  }
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double bench_loader(const std::string& dir, const std::string& shards, int lanes, int workers, int batches,
                    int batch, int size, bool jitter) {
  LoaderConfig c;
  SourceConfig s;
  if (shards.empty()) {
    s.name = "folder";
    s.kind = "image_folder";
    s.root = dir;
  } else {
    s.name = "shards";
    s.kind = "webdataset";
    s.shards = {shards};
    c.stream_lanes = lanes;
  }
  c.sources = {s};
  c.img_size = size;
  c.batch_size = batch;
  c.workers = workers;
  c.augment.color_jitter = jitter ? 0.8 : 0.0;
  Loader l(c);
  l.next();  // warm-up batch, as ref_loader.py does
  auto t0 = Clock::now();
  for (int b = 0; b < batches; ++b) l.next();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Worker utilisation with skewed decode costs (see the header). The shards are written to a
// temporary folder: 16 shards per lane, enough samples for every batch.
int bench_skew(int argc, char** argv) {
  const int workers = std::stoi(arg(argc, argv, "--workers", "16"));
  const int lanes = std::stoi(arg(argc, argv, "--lanes", "8"));
  const int batches = std::stoi(arg(argc, argv, "--batches", "12"));
  const int batch = std::stoi(arg(argc, argv, "--batch-size", "64"));
  const double cost_ms = std::stod(arg(argc, argv, "--cost-ms", "4"));
  const double slow_fraction = std::stod(arg(argc, argv, "--slow-fraction", "0.1"));
  const double slow_factor = std::stod(arg(argc, argv, "--slow-factor", "10"));
  char tmpl[] = "/tmp/aim_bench_skew_XXXXXX";
  const fs::path dir = ::mkdtemp(tmpl);
  const int shards = 16 * lanes;
  const int64_t needed = static_cast<int64_t>(batches + 1) * batch;
  const int64_t per_shard = needed / shards + 2;
  std::vector<uint8_t> png;
  cv::imencode(".png", cv::Mat(8, 8, CV_8UC3, cv::Scalar(1, 2, 3)), png);
  for (int s = 0; s < shards; ++s) {
    char name[32];
    std::snprintf(name, sizeof name, "%08d.tar", s);
    TarWriter w((dir / name).string());
    for (int64_t k = 0; k < per_shard; ++k) w.add(std::to_string(s) + "_" + std::to_string(k) + ".png", png.data(), png.size());
  }
  std::atomic<int64_t> busy_us{0};
  // Decode time is counted from the start of the timed batches: work that began during the
  // warm-up counts only its part inside the window.
  std::atomic<int64_t> window_start_us{INT64_MAX}, window_end_us{INT64_MAX};
  auto us = [](Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  };
  LoaderConfig c;
  SourceConfig src;
  src.name = "skewed";
  src.kind = "webdataset";
  char pattern[64];
  std::snprintf(pattern, sizeof pattern, "/{%08d..%08d}.tar", 0, shards - 1);
  src.shards = {dir.string() + pattern};
  c.sources = {src};
  c.img_size = 8;
  c.batch_size = batch;
  c.workers = workers;
  c.stream_lanes = lanes;
  c.prefetch = 3;
  c.decode_cost = [&](int64_t g) {
    const bool slow = Rng(11, Stream::kAugment, static_cast<uint64_t>(g)).uniform() < slow_fraction;
    const int64_t begin = us(Clock::now());
    std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(cost_ms * (slow ? slow_factor : 1.0)));
    const int64_t from = std::max(begin, window_start_us.load());
    const int64_t to = std::min(us(Clock::now()), window_end_us.load());
    if (to > from) busy_us += to - from;
  };
  double seconds = 0;
  {
    Loader l(c);
    l.next();  // warm-up batch
    const auto t0 = Clock::now();
    window_start_us = us(t0);
    busy_us = 0;
    for (int b = 0; b < batches; ++b) l.next();
    const auto t1 = Clock::now();
    window_end_us = us(t1);  // decodes still running count up to here
    seconds = std::chrono::duration<double>(t1 - t0).count();
  }
  const double utilisation = busy_us.load() / 1e6 / (workers * seconds);
  const double mean_ms = cost_ms * (1 - slow_fraction + slow_fraction * slow_factor);
  std::cout << nlohmann::json{{"pipeline", "skewed-decode"}, {"workers", workers}, {"lanes", lanes},
                              {"images", static_cast<int64_t>(batches) * batch}, {"seconds", seconds},
                              {"img_per_s", batches * batch / seconds},
                              {"ideal_img_per_s", workers * 1000.0 / mean_ms}, {"utilisation", utilisation}}
                   .dump()
            << std::endl;
  fs::remove_all(dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    for (int i = 1; i < argc; ++i)
      if (std::string(argv[i]) == "--skew") return bench_skew(argc, argv);
    std::string dir = arg(argc, argv, "--dir", "");
    const std::string shards = arg(argc, argv, "--shards", "");
    const int lanes = std::stoi(arg(argc, argv, "--lanes", "8"));
    if (dir.empty() == shards.empty()) {
      std::cerr << "usage: aim-bench-loader --dir DIR [--workers 2] [--batches 12] [--batch-size 64]"
                   " [--img-size 224] [--mode decode|full|jitter|all|resize] | --shards PATTERN [--lanes 8]"
                   " [--workers 2] [--mode full|jitter] [...] | --generate N --dir DIR\n";
      return 2;
    }
    int gen = std::stoi(arg(argc, argv, "--generate", "0"));
    if (gen > 0) {
      generate(dir, gen);
      std::cout << nlohmann::json{{"generated", gen}, {"dir", dir}}.dump() << std::endl;
      return 0;
    }
    int workers = std::stoi(arg(argc, argv, "--workers", "2"));
    int batches = std::stoi(arg(argc, argv, "--batches", "12"));
    int batch = std::stoi(arg(argc, argv, "--batch-size", "64"));
    int size = std::stoi(arg(argc, argv, "--img-size", "224"));
    std::string mode = arg(argc, argv, "--mode", "all");
    const int64_t images = static_cast<int64_t>(batches) * batch;
    auto print = [&](const std::string& name, double sec) {
      nlohmann::json row = {{"pipeline", name}, {"images", images}, {"seconds", sec},
                            {"img_per_s", images / sec}, {"workers", workers}};
      if (!shards.empty()) row["lanes"] = lanes;
      std::cout << row.dump() << std::endl;
    };
    if (!shards.empty()) {
      if (mode == "decode" || mode == "all") mode = "full";  // decode-only reads a folder
      const std::string name = mode == "jitter" ? "aim-wds-full+jitter" : "aim-wds-full";
      print(name, bench_loader("", shards, lanes, workers, batches, batch, size, mode == "jitter"));
      return 0;
    }
    if (mode == "resize") {  // one thread: the kernels side by side, interleaved
      workers = 1;
      for (int round = 0; round < 2; ++round) {
        print("resize-opencv-cubic", bench_resize(dir, images, size, false));
        print("resize-aim-cubic", bench_resize(dir, images, size, true));
      }
      return 0;
    }
    if (mode == "decode" || mode == "all") {
      bench_decode(dir, workers, batch);  // warm the page cache like the others' warm-up batch
      print("aim-decode-only", bench_decode(dir, workers, images));
    }
    if (mode == "full" || mode == "all") print("aim-full", bench_loader(dir, "", 0, workers, batches, batch, size, false));
    if (mode == "jitter" || mode == "all")
      print("aim-full+jitter", bench_loader(dir, "", 0, workers, batches, batch, size, true));
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "aim-bench-loader: " << e.what() << "\n";
    return 1;
  }
}
