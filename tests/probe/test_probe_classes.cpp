// Class labels are matched by name between probe.train, probe.val and a saved probe's class
// names (a val folder of other classes used to probe at 12.5 %, rc 0): a mismatch is an
// error naming both sides; a subset is mapped by name when asked for.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <functional>
#include <map>
#include <opencv2/imgcodecs.hpp>

#include "aim/config/run_config.h"
#include "aim/error.h"
#include "aim/io/safetensors.h"
#include "aim/probe/probe_runner.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace aim;

namespace {

// Solid colours with a little noise: cool (blue), dark (black), warm (red), zblue (teal).
void write_split(const std::string& root, const std::vector<std::string>& classes, int per_class) {
  const std::map<std::string, cv::Scalar> bgr = {{"cool", {220, 60, 20}}, {"dark", {10, 10, 10}},
                                                 {"warm", {20, 40, 230}}, {"zblue", {200, 200, 20}}};
  cv::RNG rng(7);
  for (const auto& c : classes) {
    fs::create_directories(fs::path(root) / c);
    for (int i = 0; i < per_class; ++i) {
      cv::Mat img(28, 28, CV_8UC3, bgr.at(c));
      cv::Mat noise(28, 28, CV_8UC3);
      rng.fill(noise, cv::RNG::UNIFORM, 0, 12);
      img += noise;
      cv::imwrite((fs::path(root) / c / (std::to_string(i) + ".png")).string(), img);
    }
  }
}

config::RunConfig colour_probe(const test::TempDir& dir, const std::string& val, const std::string& match = "names") {
  return config::config_from_yaml_string(
      "model: {preset: aim-fmnist-tiny, depth: 2}\n"
      "data: {sources: [{kind: synthetic}], workers: 1}\n"
      "train: {device: cpu, out_dir: " + dir.file("run") + "}\n",
      {"probe.features=pixels", "probe.kind=linear", "probe.lrs=[3.0e-2]", "probe.epochs=6", "probe.batch_size=8",
       "probe.select_fraction=0", "probe.knn.k=0", "probe.class_match=" + match,
       "probe.train={kind: image_folder, root: " + dir.file("train") + "}",
       "probe.val={kind: image_folder, root: " + dir.file(val) + "}", "probe.out_dir=" + dir.file("probe")},
      "test");
}

std::string classes_error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(ProbeClasses, ValFoldersAreMatchedByClassName) {
  test::TempDir dir;
  write_split(dir.file("train"), {"cool", "dark", "warm"}, 8);
  write_split(dir.file("other"), {"dark", "warm", "zblue"}, 4);
  write_split(dir.file("subset"), {"dark", "warm"}, 4);

  // Other classes: an error naming both sides, before any training.
  std::string e = classes_error_of([&] { probe::run_probe(colour_probe(dir, "other"), {}, nullptr); });
  EXPECT_NE(e.find("only in probe.val: zblue"), std::string::npos) << e;
  EXPECT_NE(e.find("only in probe.train: cool"), std::string::npos) << e;
  // A subset: refused unless asked for; then its labels are mapped by name (position would
  // call dark "cool" and warm "dark" and score about 0).
  e = classes_error_of([&] { probe::run_probe(colour_probe(dir, "subset"), {}, nullptr); });
  EXPECT_NE(e.find("probe.class_match=subset"), std::string::npos) << e;
  auto r = probe::run_probe(colour_probe(dir, "subset", "subset"), {}, nullptr);
  EXPECT_EQ(r.classes, 3);
  EXPECT_EQ(r.class_names, (std::vector<std::string>{"cool", "dark", "warm"}));
  EXPECT_GT(r.heads[0].top1, 0.9);
  const std::string probe_file = dir.file("probe/probe.safetensors");
  EXPECT_EQ(io::read_safetensors_metadata(probe_file).at("class_names"), "[\"cool\",\"dark\",\"warm\"]");

  // The saved probe carries its names: --eval-only and --predict match them too.
  e = classes_error_of([&] { probe::evaluate_saved_probe(colour_probe(dir, "other"), {}, nullptr, probe_file); });
  EXPECT_NE(e.find("zblue"), std::string::npos) << e;
  EXPECT_NE(e.find(probe_file), std::string::npos) << e;
  auto ev = probe::evaluate_saved_probe(colour_probe(dir, "subset", "subset"), {}, nullptr, probe_file);
  EXPECT_NEAR(ev.top1, r.heads[0].top1, 1e-12);
  e = classes_error_of([&] { probe::prediction_class_names(colour_probe(dir, "other"), probe_file); });
  EXPECT_NE(e.find("zblue"), std::string::npos) << e;
  EXPECT_EQ(probe::prediction_class_names(colour_probe(dir, "train"), probe_file),
            (std::vector<std::string>{"cool", "dark", "warm"}));
}
