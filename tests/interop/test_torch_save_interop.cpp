// The released weights as they are shipped: torch.save files written by Debian's python3-torch
// in the official layouts (tests/interop/official_aim.py export-torch) load natively — the
// apple/AIM `.pth` backbone and head, a {"model": ...} checkpoint, and a Hugging Face
// directory with config.json + pytorch_model.bin — in float32 and float16, and compute what
// the official modules compute from the same weights. aim-probe --convert writes them as
// safetensors, tensor for tensor.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <sstream>

#include "../../src/probe/saved_probe.h"
#include "aim/config/run_config.h"
#include "aim/io/safetensors.h"
#include "aim/io/torch_archive.h"
#include "aim/model/aim_encoder.h"
#include "aim/model/trunk_weights.h"
#include "aim/probe/hub_export.h"
#include "aim/probe/probe_head.h"
#include "aim/probe/probe_runner.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace aim;

namespace {

model::ModelConfig saved_interop_config() {
  model::ModelConfig c;
  c.preset = "interop";
  c.img_size = 20;
  c.patch_size = 4;
  c.channels = 3;
  c.width = 48;
  c.heads = 3;
  c.depth = 3;
  c.head_width = 32;
  c.head_blocks = 1;
  return c;
}
const std::vector<int64_t> kSavedBlocks = {1, 2};

// Writes the official files in `dtype` ("float32" / "float16") into dir/<dtype>/.
std::string export_torch(const test::TempDir& dir, const std::string& dtype) {
  const auto c = saved_interop_config();
  nlohmann::json j = {{"img_size", c.img_size}, {"patch_size", c.patch_size}, {"channels", c.channels},
                      {"width", c.width},       {"depth", c.depth},           {"heads", c.heads},
                      {"classes", 7},           {"blocks", kSavedBlocks}};
  std::ofstream(dir.file("config.json")) << j.dump();
  const std::string out = dir.file(dtype);
  const std::string cmd = std::string(AIM_PYTHON) + " " + AIM_SOURCE_DIR + "/tests/interop/official_aim.py export-torch " +
                          dir.file("config.json") + " " + out + " " + dtype;
  if (std::system(cmd.c_str()) != 0) return "";
  return out;
}

torch::Tensor saved_tensor(const io::NamedTensors& f, const std::string& name) {
  for (const auto& [n, t] : f)
    if (n == name) return t;
  ADD_FAILURE() << "no tensor " << name;
  return torch::zeros({1});
}

double saved_max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

// Our encoder and head (float64) on the given weights against the official float64 outputs.
void expect_agrees(const std::string& trunk, const std::string& head_path, const std::string& io_file) {
  model::AimEncoder enc(saved_interop_config());
  enc->to(torch::kFloat64);
  model::load_trunk_weights(enc, trunk);
  auto head = probe::load_probe(head_path, 3);
  head->to(torch::kFloat64);
  head->eval();
  const auto io = io::load_safetensors(io_file).tensors;
  torch::NoGradGuard ng;
  auto feats = enc->features(saved_tensor(io, "images"), kSavedBlocks);
  EXPECT_LT(saved_max_diff(feats, saved_tensor(io, "features")), 1e-9) << trunk;
  EXPECT_LT(saved_max_diff(head->forward(feats), saved_tensor(io, "logits")), 1e-9) << head_path;
}

}  // namespace

TEST(TorchSaveInterop, OfficialPthBackboneHeadAndCheckpointLoadInFloat32AndFloat16) {
  test::TempDir dir;
  for (const char* dtype : {"float32", "float16"}) {
    const std::string out = export_torch(dir, dtype);
    AIM_REQUIRE_DEPENDENCY(!out.empty(), "python3-torch (tests/interop/official_aim.py export-torch)");
    const auto backbone = io::load_torch_state_dict(out + "/backbone.pth").tensors;
    EXPECT_EQ(saved_tensor(backbone, "trunk.blocks.0.attn.qkv.weight").scalar_type(),
              std::string(dtype) == "float16" ? torch::kFloat16 : torch::kFloat32);
    expect_agrees(out + "/backbone.pth", out + "/head.pth", out + "/io.safetensors");
    // The same weights nested in a training checkpoint.
    expect_agrees(out + "/checkpoint.pth", out + "/checkpoint.pth", out + "/io.safetensors");
  }
}

TEST(TorchSaveInterop, HubDirectoryWithPytorchModelBinLoadsAndItsLicenceTravels) {
  test::TempDir dir;
  const std::string out = export_torch(dir, "float32");
  AIM_REQUIRE_DEPENDENCY(!out.empty(), "python3-torch (tests/interop/official_aim.py export-torch)");
  const std::string hub = out + "/hub";
  ASSERT_FALSE(fs::exists(hub + "/model.safetensors"));
  expect_agrees(hub, hub, out + "/io.safetensors");  // probe.weights=DIR and --probe DIR
  EXPECT_EQ(model::resolve_trunk_weights(hub).file, hub + "/pytorch_model.bin");

  // Exported again as a hub directory: the card's YAML header carries the licence fields and
  // the LICENSE is copied; the snippet loads the directory by its path.
  model::AimEncoder enc(saved_interop_config());
  model::load_trunk_weights(enc, hub);
  auto head = probe::load_probe(hub, 3);
  probe::HubCard card;
  card.trunk_source = hub;
  card.class_names = {"a", "b", "c", "d", "e", "f", "g"};
  probe::export_hub(dir.file("again"), saved_interop_config(), model::merged_trunk_tensors(enc), head, kSavedBlocks, card);
  const std::string readme = test::slurp(dir.file("again/README.md"));
  EXPECT_EQ(readme.rfind("---\nlibrary_name: ml-aim\npipeline_tag: image-classification\n", 0), 0u) << readme;
  EXPECT_NE(readme.find("license: \"other\"\nlicense_name: \"test-sample-license\"\nlicense_link: \"LICENSE\"\n"),
            std::string::npos)
      << readme;
  EXPECT_NE(readme.find("from_pretrained(\"" + fs::absolute(dir.file("again")).string() + "\")"), std::string::npos)
      << readme;
  EXPECT_EQ(test::slurp(dir.file("again/LICENSE")), "Test licence text of the trunk.\n");
  // Without a licence beside the trunk, the header says so instead of inventing one.
  card.trunk_source = out + "/none";
  probe::export_hub(dir.file("bare"), saved_interop_config(), model::merged_trunk_tensors(enc), head, kSavedBlocks, card);
  EXPECT_NE(test::slurp(dir.file("bare/README.md")).find("# license: the trunk's licence was not found"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(dir.file("bare/LICENSE")));
}

TEST(TorchSaveInterop, ConvertWritesTheSameTensorsAsSafetensors) {
  test::TempDir dir;
  const std::string out = export_torch(dir, "float16");
  AIM_REQUIRE_DEPENDENCY(!out.empty(), "python3-torch (tests/interop/official_aim.py export-torch)");
  const std::string probe_bin = std::string(AIM_BIN_DIR) + "/aim-probe";
  std::string log = test::capture(probe_bin + " --convert " + out + "/hub/pytorch_model.bin " + dir.file("m.safetensors"));
  ASSERT_NE(log.find("[exit 0]"), std::string::npos) << log;
  EXPECT_NE(log.find("from torch.save"), std::string::npos) << log;
  const auto want = io::load_torch_state_dict(out + "/hub/pytorch_model.bin").tensors;
  const auto got = io::load_safetensors(dir.file("m.safetensors"));
  ASSERT_EQ(got.tensors.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got.tensors[i].first, want[i].first);
    EXPECT_EQ(got.tensors[i].second.scalar_type(), want[i].second.scalar_type()) << want[i].first;
    EXPECT_TRUE(torch::equal(got.tensors[i].second, want[i].second)) << want[i].first;
  }
  EXPECT_EQ(got.metadata.at("converted_from"), "pytorch_model.bin");
  // The converted file is a trunk like any other.
  expect_agrees(dir.file("m.safetensors"), dir.file("m.safetensors"), out + "/io.safetensors");
  // Errors: the input itself as output, a file that is no torch.save archive.
  log = test::capture(probe_bin + " --convert " + out + "/head.pth " + out + "/head.pth");
  EXPECT_NE(log.find("[exit 2]"), std::string::npos) << log;
  EXPECT_NE(log.find("is the input file"), std::string::npos) << log;
  log = test::capture(probe_bin + " --convert " + out + "/hub/config.json " + dir.file("x.safetensors"));
  EXPECT_NE(log.find("[exit 2]"), std::string::npos) << log;
  EXPECT_NE(log.find("config.json"), std::string::npos) << log;
}

// A hub directory's probe_layers are compared with probe.blocks as block indices: "1-2" names
// the directory's blocks 1,2 and draws no warning; "2" does, naming both.
TEST(TorchSaveInterop, HubBlocksAreComparedAsIndicesNotText) {
  test::TempDir dir;
  const std::string out = export_torch(dir, "float32");
  AIM_REQUIRE_DEPENDENCY(!out.empty(), "python3-torch (tests/interop/official_aim.py export-torch)");
  auto warnings = [&](const std::string& blocks) {
    auto cfg = config::config_from_yaml_string(
        "model: {preset: aim-small-32, img_size: 20, patch_size: 4, channels: 3, width: 48, heads: 3, depth: 3,"
        " head_width: 32, head_blocks: 1}\nprobe: {weights: " + out + "/hub, blocks: '" + blocks + "'}\n",
        {}, "test");
    std::ostringstream log;
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
    auto previous = spdlog::default_logger();
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink));
    const auto applied = probe::detail::with_probe_file_features(cfg, out + "/hub", true);
    spdlog::set_default_logger(previous);
    EXPECT_EQ(applied.probe.blocks, "1,2");
    return log.str();
  };
  EXPECT_EQ(warnings("1-2").find("trained on trunk blocks"), std::string::npos) << warnings("1-2");
  const std::string w = warnings("2");
  EXPECT_NE(w.find("trained on trunk blocks 1,2; using them (probe.blocks=2 gives 2)"), std::string::npos) << w;
}
