// aim-probe --predict: a saved probe applied to every image file of a folder.
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "aim/data/image_folder_source.h"
#include "aim/data/sample_transform.h"
#include "aim/error.h"
#include "aim/probe/feature_extractor.h"
#include "aim/probe/probe_head.h"
#include "aim/probe/probe_runner.h"
#include "aim/runtime/device.h"
#include "saved_probe.h"

namespace fs = std::filesystem;

namespace aim::probe {

std::vector<Prediction> predict_folder(const config::RunConfig& configured, const std::string& probe_path,
                                       const std::string& dir, int topk) {
  if (!fs::is_directory(dir)) throw Error("--predict: '" + dir + "' is not a directory");
  const config::RunConfig cfg = detail::with_probe_file_features(configured, probe_path, true);
  const torch::Device device = runtime::select_device(cfg.train.device, 0);
  FeatureExtractor fx(cfg, device);
  ProbeHead head = load_probe(probe_path, fx.heads());
  if (head->dim() != fx.dim())
    throw Error("probe file '" + probe_path + "' expects features of width " + std::to_string(head->dim()) +
                ", the configured model gives " + std::to_string(fx.dim()));
  head->to(device, torch::kFloat);
  head->eval();

  // A folder of images, or a labelled split (<class>/<image>); other files are counted and
  // reported as training and `aim-data pack` do, not tried as images.
  const data::ImageListing listing = data::list_image_files(dir);
  if (listing.skipped > 0) spdlog::warn("--predict: {}", data::skipped_note(listing));
  const std::vector<std::string>& files = listing.images;

  data::TransformConfig tc;
  tc.img_size = static_cast<int>(cfg.model.img_size);
  tc.channels = static_cast<int>(cfg.model.channels);
  tc.train = false;
  tc.augment = cfg.data.augment;
  data::SampleTransform transform(tc);

  std::vector<Prediction> out;
  torch::NoGradGuard no_grad;
  for (const auto& f : files) {
    Prediction p;
    p.file = f;
    data::RawSample raw;
    raw.where = f;
    std::ifstream in(f, std::ios::binary);
    raw.bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    auto img = torch::empty({1, tc.channels, tc.img_size, tc.img_size}, torch::kUInt8);
    std::string why;
    if (raw.bytes.empty()) {
      p.error = "empty file";
    } else if (!transform.apply(raw, 0, img.data_ptr<uint8_t>(), &why)) {
      p.error = why.empty() ? "not a readable image" : why;
    } else {
      auto probs = torch::softmax(head->forward(fx(img)).to(torch::kFloat), 1)[0].cpu();
      auto [values, indices] = probs.topk(std::min<int64_t>(topk, probs.size(0)));
      for (int64_t i = 0; i < values.size(0); ++i)
        p.top.emplace_back(indices[i].item<int64_t>(), values[i].item<double>());
    }
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace aim::probe
