// aim-bench-loader: images/s of the data pipeline on a folder of JPEGs, next to the
// torchvision reference (scripts/reference/ref_loader.py; scripts/bench_loader.sh runs both).
//   aim-bench-loader --dir DIR [--workers 2] [--batches 12] [--batch-size 64] [--img-size 224]
//                    [--mode decode|full|jitter|all]
//   aim-bench-loader --shards PATTERN [--workers 2] [--lanes 8] [--mode full|jitter] [...]
//   aim-bench-loader --generate N --dir DIR      write N photo-like ~470x450 JPEGs (q90)
// Modes: decode = read + full-size JPEG decode in `workers` threads (the ceiling);
//        full   = the training loader: RandomResizedCrop 224 (bicubic) + flip, uint8 batches;
//        jitter = full + ColorJitter(0.4, 0.4, 0.2, 0.1) with p = 0.8 (the released recipe).
// With --shards the loader reads one webdataset source (e.g. the folder packed by
// `aim-data pack --from image_folder`) through `lanes` sequential readers instead.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <thread>
#include <atomic>

#include "aim/data/decode.h"
#include "aim/data/image_folder_source.h"
#include "aim/data/loader.h"
#include "aim/data/rng.h"
#include "aim/data/synthetic_source.h"

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

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string dir = arg(argc, argv, "--dir", "");
    const std::string shards = arg(argc, argv, "--shards", "");
    const int lanes = std::stoi(arg(argc, argv, "--lanes", "8"));
    if (dir.empty() == shards.empty()) {
      std::cerr << "usage: aim-bench-loader --dir DIR [--workers 2] [--batches 12] [--batch-size 64]"
                   " [--img-size 224] [--mode decode|full|jitter|all] | --shards PATTERN [--lanes 8]"
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
