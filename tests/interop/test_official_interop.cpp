// Two-way weight interop with the official architecture (tests/interop/official_aim.py: the
// official module tree and names, written from the spec, run with Debian's python3-torch):
//  - official -> aim: a random official state dict (trunk + attentive head) saved as
//    safetensors loads into our encoder and probe by name; features and logits agree;
//  - aim -> official: our trunk export and our probe file load with strict=True into the
//    official modules; features and logits agree.
// float64 on both sides, so agreement is to rounding.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include <spdlog/fmt/fmt.h>

#include "aim/config/run_config.h"
#include "aim/io/safetensors.h"
#include "aim/probe/probe_runner.h"
#include "aim/model/aim_encoder.h"
#include "aim/probe/probe_head.h"
#include "aim/model/trunk_weights.h"
#include "test_util.h"

using namespace aim;

namespace {

model::ModelConfig interop_config() {
  model::ModelConfig c;
  c.preset = "interop";
  c.img_size = 20;
  c.patch_size = 4;  // 25 tokens
  c.channels = 3;
  c.width = 48;
  c.heads = 3;
  c.depth = 3;
  c.head_width = 32;
  c.head_blocks = 1;
  return c;
}
const std::vector<int64_t> kOfficialBlocks = {1, 2};
constexpr int64_t kOfficialClasses = 7;

std::string write_official_config(const test::TempDir& dir, const model::ModelConfig& c) {
  nlohmann::json j = {{"img_size", c.img_size}, {"patch_size", c.patch_size}, {"channels", c.channels},
                      {"width", c.width},       {"depth", c.depth},           {"heads", c.heads},
                      {"classes", kOfficialClasses},    {"blocks", kOfficialBlocks}};
  std::ofstream(dir.file("config.json")) << j.dump();
  return dir.file("config.json");
}

void run_official_python(const std::string& args) {
  const std::string cmd =
      std::string(AIM_PYTHON) + " " + AIM_SOURCE_DIR + "/tests/interop/official_aim.py " + args;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "official model script failed: " << cmd
                                         << "\n(needs Debian's python3-torch: bash scripts/setup.sh)";
}

torch::Tensor official_tensor(const io::SafetensorsFile& f, const std::string& name) {
  for (const auto& [n, t] : f.tensors)
    if (n == name) return t;
  ADD_FAILURE() << "no tensor " << name;
  return torch::zeros({1});
}

void expect_close(const torch::Tensor& ours, const torch::Tensor& ref, const std::string& what) {
  ASSERT_EQ(ours.sizes(), ref.sizes()) << what;
  const double diff = (ours.to(torch::kFloat64) - ref.to(torch::kFloat64)).abs().max().item<double>();
  EXPECT_LT(diff, 1e-9) << what;
}

TEST(OfficialInterop, OfficialWeightsLoadIntoAimAndAgree) {
  test::TempDir dir;
  const auto cfg = interop_config();
  const std::string json = write_official_config(dir, cfg);
  run_official_python("export " + json + " " + dir.file("official.safetensors") + " " + dir.file("io.safetensors"));

  // The official file holds trunk and head together: the trunk loader reads
  // preprocessor.* / trunk.* strictly and ignores head.*; the probe loader reads head.*.
  model::AimEncoder enc(cfg);
  enc->to(torch::kFloat64);  // receive the float64 weights without rounding them to float32
  model::load_trunk_weights(enc, dir.file("official.safetensors"));
  auto head = probe::load_probe(dir.file("official.safetensors"), cfg.heads);
  EXPECT_EQ(head->kind(), "attentive");
  EXPECT_EQ(head->classes(), kOfficialClasses);
  EXPECT_EQ(head->parameters()[0].scalar_type(), torch::kFloat64);
  head->eval();

  auto io_file = io::load_safetensors(dir.file("io.safetensors"));
  torch::NoGradGuard ng;
  auto feats = enc->features(official_tensor(io_file, "images"), kOfficialBlocks);
  expect_close(feats, official_tensor(io_file, "features"), "features (official -> aim)");
  expect_close(head->forward(feats), official_tensor(io_file, "logits"), "attentive probe logits (official -> aim)");
}

TEST(OfficialInterop, AimExportsLoadStrictlyIntoOfficialModel) {
  test::TempDir dir;
  const auto cfg = interop_config();
  const std::string json = write_official_config(dir, cfg);

  torch::manual_seed(3);
  model::AimEncoder enc(cfg);
  probe::ProbeHead head("attentive", cfg.width, cfg.heads, kOfficialClasses);
  {
    torch::NoGradGuard ng;
    for (auto* m : std::vector<torch::nn::Module*>{enc.get(), head.get()})
      for (auto& p : m->parameters()) p.add_(torch::randn_like(p) * 0.05);
    auto buffers = head->named_buffers();
    buffers["head.bn.running_mean"].copy_(torch::randn({cfg.width}) * 0.1);
    buffers["head.bn.running_var"].copy_(torch::rand({cfg.width}) + 0.5);
  }
  enc->to(torch::kFloat64);
  head->to(torch::kFloat64);
  head->eval();
  // The same writers aim-train and aim-probe use.
  model::export_trunk(dir.file("trunk.safetensors"), *enc);
  probe::save_probe(dir.file("probe.safetensors"), head, cfg.heads);

  auto images = torch::randn({3, cfg.channels, cfg.img_size, cfg.img_size}, torch::kFloat64);
  io::save_safetensors(dir.file("images.safetensors"), {{"images", images}});
  run_official_python("run " + json + " " + dir.file("trunk.safetensors") + " " + dir.file("probe.safetensors") + " " +
             dir.file("images.safetensors") + " " + dir.file("out.safetensors"));

  auto out = io::load_safetensors(dir.file("out.safetensors"));
  torch::NoGradGuard ng;
  auto feats = enc->features(images, kOfficialBlocks);
  expect_close(feats, official_tensor(out, "features"), "features (aim -> official)");
  expect_close(head->forward(feats), official_tensor(out, "logits"), "attentive probe logits (aim -> official)");
}

// The command line with an official file: `aim-probe --eval-only --probe official.safetensors`
// (trunk and head in one file, as the official code saves them) evaluates it end to end and
// prints what the library's evaluation of the same file computes.
TEST(OfficialInterop, AimProbeEvaluatesAnOfficialFileFromTheCommandLine) {
  test::TempDir dir;
  const auto mc = interop_config();
  run_official_python("export " + write_official_config(dir, mc) + " " + dir.file("official.safetensors") + " " + dir.file("io.safetensors"));
  const std::string synth = "{kind: synthetic, size: 28, classes: 7, height: 24, width: 24}";
  std::ofstream(dir.file("probe.yaml"))
      << "model: {preset: aim-small-32, img_size: 20, patch_size: 4, channels: 3, width: 48, heads: 3, depth: 3,"
      << " head_width: 32, head_blocks: 1}\n"
      << "data: {sources: [{kind: synthetic}], workers: 1}\n"
      << "train: {device: cpu, out_dir: " << dir.file("run") << "}\n"
      << "probe: {weights: " << dir.file("official.safetensors") << ", kind: attentive, blocks: '1,2', batch_size: 7,"
      << " train: " << synth << ", val: " << synth << ", out_dir: " << dir.file("probe") << "}\n";
  const std::string out = test::capture(std::string(AIM_BIN_DIR) + "/aim-probe --config " + dir.file("probe.yaml") +
                                        " --eval-only --probe " + dir.file("official.safetensors"));
  ASSERT_NE(out.find("[exit 0]"), std::string::npos) << out;
  auto cfg = config::load_run_config(dir.file("probe.yaml"));
  const auto e = probe::evaluate_saved_probe(cfg, {}, nullptr, dir.file("official.safetensors"));
  EXPECT_EQ(e.samples, 28);
  EXPECT_EQ(e.classes, 7);
  const std::string expected = fmt::format("{}: {} images, {} classes: top-1 {:.2f} %, top-5 {:.2f} %, loss {:.4f}",
                                           dir.file("official.safetensors"), e.samples, e.classes, 100 * e.top1,
                                           100 * e.top5, e.loss);
  EXPECT_NE(out.find(expected), std::string::npos) << "expected '" << expected << "' in:\n" << out;
}

}  // namespace
