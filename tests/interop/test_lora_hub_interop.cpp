// LoRA and hub directories against the official module tree (tests/interop/official_aim.py):
//  - the official LoraAttention's state dict (loralib names and shapes) loads strictly into our
//    LoRA trunk and ours into it, float64 features and logits agreeing to rounding; the merged
//    export is a plain trunk computing the same features;
//  - a hub directory written by aim-probe builds the official model from config.json alone and
//    loads strictly, fp32 logits matching to 1e-6; the official hub layout (probe_layers as an
//    int) loads through probe.weights=DIR; a config.json that is missing, describes another
//    model or contradicts its weights is refused by name before anything loads.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "aim/error.h"
#include "aim/io/safetensors.h"
#include "aim/io/state_dict.h"
#include "aim/model/aim_encoder.h"
#include "aim/model/trunk_weights.h"
#include "aim/probe/hub_export.h"
#include "aim/probe/probe_head.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace aim;

namespace {

model::ModelConfig small_config() {
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
const std::vector<int64_t> kBlocks = {1, 2};
constexpr int64_t kClasses = 7;
constexpr int64_t kRank = 2;

std::string write_config(const test::TempDir& dir, const model::ModelConfig& c, int64_t lora_rank) {
  nlohmann::json j = {{"img_size", c.img_size}, {"patch_size", c.patch_size}, {"channels", c.channels},
                      {"width", c.width},       {"depth", c.depth},           {"heads", c.heads},
                      {"classes", kClasses},    {"blocks", kBlocks}};
  if (lora_rank > 0) j["lora_rank"] = lora_rank;
  const std::string path = dir.file(lora_rank > 0 ? "config_lora.json" : "config.json");
  std::ofstream(path) << j.dump();
  return path;
}

void run_python(const std::string& args) {
  const std::string cmd =
      std::string(AIM_PYTHON) + " " + AIM_SOURCE_DIR + "/tests/interop/official_aim.py " + args;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "official model script failed: " << cmd;
}

torch::Tensor lora_tensor(const io::SafetensorsFile& f, const std::string& name) {
  for (const auto& [n, t] : f.tensors)
    if (n == name) return t;
  ADD_FAILURE() << "no tensor " << name;
  return torch::zeros({1});
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

/// Random (seeded) encoder and attentive head, every tensor perturbed away from its init
/// (LoRA's B included, which starts at zero).
void randomize(model::AimEncoder& enc, probe::ProbeHead& head) {
  torch::NoGradGuard ng;
  for (auto* m : std::vector<torch::nn::Module*>{enc.get(), head.get()})
    for (auto& p : m->parameters()) p.add_(torch::randn_like(p) * 0.05);
  auto buffers = head->named_buffers();
  buffers["head.bn.running_mean"].copy_(torch::randn({head->dim()}) * 0.1);
  buffers["head.bn.running_var"].copy_(torch::rand({head->dim()}) + 0.5);
}

std::string lora_error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no aim::Error";
  return "";
}

TEST(LoraInterop, OfficialLoraAttentionLoadsIntoAimAndAgrees) {
  test::TempDir dir;
  const auto cfg = small_config();
  run_python("export " + write_config(dir, cfg, kRank) + " " + dir.file("official.safetensors") + " " +
             dir.file("io.safetensors"));
  const auto names = io::load_safetensors(dir.file("official.safetensors"));
  EXPECT_EQ(lora_tensor(names, "trunk.blocks.0.attn.qkv.lora_A").sizes(), (std::vector<int64_t>{2 * kRank, cfg.width}));
  EXPECT_EQ(lora_tensor(names, "trunk.blocks.0.attn.qkv.lora_B").sizes(), (std::vector<int64_t>{2 * cfg.width, kRank}));
  EXPECT_EQ(lora_tensor(names, "trunk.blocks.0.attn.proj.lora_A").sizes(), (std::vector<int64_t>{kRank, cfg.width}));
  EXPECT_EQ(lora_tensor(names, "trunk.blocks.0.attn.proj.lora_B").sizes(), (std::vector<int64_t>{cfg.width, kRank}));

  model::AimEncoder enc(cfg);
  enc->to(torch::kFloat64);
  model::load_trunk_weights(enc, dir.file("official.safetensors"), model::LoraSpec{kRank, 1.0});
  EXPECT_EQ(enc->trunk->lora_parameters().size(), 4u * cfg.depth);
  auto head = probe::load_probe(dir.file("official.safetensors"), cfg.heads);
  head->eval();
  auto io_file = io::load_safetensors(dir.file("io.safetensors"));
  torch::NoGradGuard ng;
  auto feats = enc->features(lora_tensor(io_file, "images"), kBlocks);
  EXPECT_LT(max_diff(feats, lora_tensor(io_file, "features")), 1e-9);
  EXPECT_LT(max_diff(head->forward(feats), lora_tensor(io_file, "logits")), 1e-9);

  // The same file without probe.lora_rank, or with another rank: refused by name, nothing loaded.
  model::AimEncoder plain(cfg);
  const auto before = plain->trunk->blocks[0]->as<model::BlockImpl>()->attn->qkv->weight.clone();
  std::string msg = lora_error_of([&] { model::load_trunk_weights(plain, dir.file("official.safetensors")); });
  EXPECT_NE(msg.find("trunk.blocks.0.attn.qkv.lora_A"), std::string::npos) << msg;
  EXPECT_NE(msg.find("probe.lora_rank"), std::string::npos) << msg;
  EXPECT_TRUE(torch::equal(before, plain->trunk->blocks[0]->as<model::BlockImpl>()->attn->qkv->weight));
  model::AimEncoder rank3(cfg);
  msg = lora_error_of([&] {
    model::load_trunk_weights(rank3, dir.file("official.safetensors"), model::LoraSpec{3, 1.0});
  });
  EXPECT_NE(msg.find("trunk.blocks.0.attn.qkv.lora_A (expected [6, 48], got [4, 48])"), std::string::npos) << msg;
}

TEST(LoraInterop, AimLoraTrunkLoadsStrictlyIntoOfficialLoraAttentionAndMergesToAPlainTrunk) {
  test::TempDir dir;
  const auto cfg = small_config();
  torch::manual_seed(3);
  model::AimEncoder enc(cfg);
  enc->trunk->enable_lora(model::LoraSpec{kRank, 1.0});  // loralib's default alpha, as LoraAttention
  probe::ProbeHead head("attentive", cfg.width, cfg.heads, kClasses);
  randomize(enc, head);
  enc->to(torch::kFloat64);
  head->to(torch::kFloat64);
  head->eval();
  model::export_trunk(dir.file("lora_trunk.safetensors"), *enc);
  model::export_trunk_tensors(dir.file("merged.safetensors"), model::merged_trunk_tensors(enc));
  probe::save_probe(dir.file("probe.safetensors"), head, cfg.heads);
  for (const auto& [n, t] : io::load_safetensors(dir.file("merged.safetensors")).tensors)
    EXPECT_EQ(n.find("lora_"), std::string::npos) << n;

  auto images = torch::randn({3, cfg.channels, cfg.img_size, cfg.img_size}, torch::kFloat64);
  io::save_safetensors(dir.file("images.safetensors"), {{"images", images}});
  torch::NoGradGuard ng;
  auto feats = enc->features(images, kBlocks);
  auto logits = head->forward(feats);
  // ours (with LoRA tensors) -> the official LoraAttention tree, strict
  run_python("run " + write_config(dir, cfg, kRank) + " " + dir.file("lora_trunk.safetensors") + " " +
             dir.file("probe.safetensors") + " " + dir.file("images.safetensors") + " " + dir.file("out.safetensors"));
  auto out = io::load_safetensors(dir.file("out.safetensors"));
  EXPECT_LT(max_diff(feats, lora_tensor(out, "features")), 1e-9);
  EXPECT_LT(max_diff(logits, lora_tensor(out, "logits")), 1e-9);
  // merged (W + scale B A) -> the plain official tree, strict, same features
  run_python("run " + write_config(dir, cfg, 0) + " " + dir.file("merged.safetensors") + " " +
             dir.file("probe.safetensors") + " " + dir.file("images.safetensors") + " " + dir.file("out2.safetensors"));
  auto merged = io::load_safetensors(dir.file("out2.safetensors"));
  EXPECT_LT(max_diff(feats, lora_tensor(merged, "features")), 1e-9);
  EXPECT_LT(max_diff(logits, lora_tensor(merged, "logits")), 1e-9);
  // LoRA changed the features: the comparisons above are not of an un-adapted trunk
  model::AimEncoder frozen(cfg);
  frozen->to(torch::kFloat64);
  io::NamedTensors base;
  for (auto& [n, t] : io::filter_prefixes(io::state_dict(*enc), {"preprocessor.", "trunk."}))
    if (n.find("lora_") == std::string::npos) base.emplace_back(n, t);
  io::load_state_dict(*frozen, base, "enc", {"preprocessor.", "trunk."});
  EXPECT_GT(max_diff(feats, frozen->features(images, kBlocks)), 1e-4);
}

TEST(HubInterop, ExportedDirectoryBuildsFromConfigJsonAloneAndAgreesInFp32) {
  test::TempDir dir;
  const auto cfg = small_config();
  torch::manual_seed(5);
  model::AimEncoder enc(cfg);
  probe::ProbeHead head("attentive", cfg.width, cfg.heads, kClasses);
  randomize(enc, head);
  head->eval();
  probe::HubCard card;
  card.trunk = "random";
  card.top1 = 0.5;
  probe::export_hub(dir.file("hub"), cfg, io::filter_prefixes(io::state_dict(*enc), {"preprocessor.", "trunk."}),
                    head, kBlocks, card);
  auto j = nlohmann::json::parse(std::ifstream(dir.file("hub/config.json")));
  EXPECT_EQ(j, nlohmann::json::parse(R"({"img_size": 20, "patch_size": 4, "embed_dim": 48, "num_blocks": 3,
      "num_heads": 3, "num_channels": 3, "probe_layers": [1, 2], "num_classes": 7})"));
  EXPECT_TRUE(fs::is_regular_file(dir.file("hub/README.md")));

  auto images = torch::randn({4, cfg.channels, cfg.img_size, cfg.img_size});
  io::save_safetensors(dir.file("images.safetensors"), {{"images", images}});
  run_python("hub-run " + dir.file("hub") + " " + dir.file("images.safetensors") + " " + dir.file("out.safetensors"));
  torch::NoGradGuard ng;
  auto logits = head->forward(enc->features(images, kBlocks));
  EXPECT_LT(max_diff(logits, lora_tensor(io::load_safetensors(dir.file("out.safetensors")), "logits")), 1e-6);
}

TEST(HubInterop, OfficialHubLayoutLoadsThroughProbeWeightsAndBadDirectoriesAreRefused) {
  test::TempDir dir;
  const auto cfg = small_config();
  run_python("hub-export " + write_config(dir, cfg, 0) + " " + dir.file("hub") + " " + dir.file("io.safetensors"));
  model::AimEncoder enc(cfg);
  EXPECT_EQ(model::load_trunk_weights(enc, dir.file("hub")), dir.file("hub/model.safetensors"));
  enc->to(torch::kFloat64);
  auto head = probe::load_probe(dir.file("hub"), 1);  // the heads come from config.json
  head->to(torch::kFloat64);
  head->eval();
  auto io_file = io::load_safetensors(dir.file("io.safetensors"));
  {
    torch::NoGradGuard ng;
    auto feats = enc->features(lora_tensor(io_file, "images"), kBlocks);  // probe_layers: 2 = the last two
    EXPECT_LT(max_diff(head->forward(feats), lora_tensor(io_file, "logits")), 1e-9);
  }

  // Another configured model: every differing key named, nothing loaded.
  auto deeper = cfg;
  deeper.depth = 4;
  deeper.width = 60;
  model::AimEncoder other(deeper);
  const auto before = other->trunk->post_trunk_norm->weight.clone();
  std::string msg = lora_error_of([&] { model::load_trunk_weights(other, dir.file("hub")); });
  EXPECT_NE(msg.find("embed_dim=48 vs model.width=60"), std::string::npos) << msg;
  EXPECT_NE(msg.find("num_blocks=3 vs model.depth=4"), std::string::npos) << msg;
  EXPECT_NE(msg.find(dir.file("hub/config.json")), std::string::npos) << msg;

  // A config.json that contradicts the weights (the configured model agrees with the config).
  auto edit = [&](const std::string& key, int64_t value) {
    auto j = nlohmann::json::parse(std::ifstream(dir.file("hub/config.json")));
    j[key] = value;
    std::ofstream(dir.file("hub/config.json")) << j.dump();
  };
  edit("num_blocks", 2);
  auto shallow = cfg;
  shallow.depth = 2;
  model::AimEncoder two(shallow);
  msg = lora_error_of([&] { model::load_trunk_weights(two, dir.file("hub")); });
  EXPECT_NE(msg.find("says num_blocks=2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("trunk.blocks.2.attn.qkv.weight of shape [144, 48]"), std::string::npos) << msg;
  edit("num_blocks", 3);
  edit("num_classes", 9);
  msg = lora_error_of([&] { model::load_trunk_weights(enc, dir.file("hub")); });
  EXPECT_NE(msg.find("num_classes=9"), std::string::npos) << msg;
  EXPECT_NE(msg.find("head.linear.weight of shape [7, 48]"), std::string::npos) << msg;
  EXPECT_TRUE(torch::equal(before, other->trunk->post_trunk_norm->weight));

  fs::remove(dir.file("hub/config.json"));
  msg = lora_error_of([&] { model::load_trunk_weights(enc, dir.file("hub")); });
  EXPECT_NE(msg.find("no config.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find(dir.file("hub")), std::string::npos) << msg;
}

}  // namespace
