// Parity with an independent PyTorch implementation written from the spec
// (tests/parity/reference_aim.py, run with Debian's python3-torch): same weights, same
// inputs; trunk outputs, head predictions, loss, probe features and logits must agree.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "aim/io/safetensors.h"
#include "aim/io/state_dict.h"
#include "aim/model/aim_encoder.h"
#include "aim/model/aim_pretrain.h"
#include "aim/model/layer_selection.h"
#include "aim/model/probes.h"
#include "test_util.h"

using namespace aim;

namespace {

struct Case {
  const char* name;
  model::ModelConfig cfg;
};

model::ModelConfig parity_config() {
  model::ModelConfig c;
  c.preset = "parity";
  c.img_size = 24;
  c.patch_size = 4;  // 36 tokens
  c.channels = 3;
  c.width = 48;
  c.heads = 3;
  c.depth = 3;
  c.head_width = 64;
  c.head_blocks = 2;
  return c;
}

std::map<std::string, torch::Tensor> as_map(const io::NamedTensors& t) {
  return std::map<std::string, torch::Tensor>(t.begin(), t.end());
}

void expect_close_to_reference(const torch::Tensor& ours, const torch::Tensor& ref, double rtol, double atol, const std::string& what) {
  ASSERT_EQ(ours.sizes(), ref.sizes()) << what;
  auto diff = (ours.to(torch::kFloat64) - ref.to(torch::kFloat64)).abs().max().item<double>();
  EXPECT_TRUE(torch::allclose(ours.to(torch::kFloat64), ref.to(torch::kFloat64), rtol, atol))
      << what << ": max abs diff " << diff;
}

void run_case(const Case& c) {
  SCOPED_TRACE(c.name);
  test::TempDir dir;
  const auto& cfg = c.cfg;
  torch::manual_seed(42);
  model::AimPretrainModel net(cfg);
  const int64_t classes = 5;
  model::AttentionPoolingProbe probe(cfg.width, cfg.heads, classes);
  model::LinearProbe linear(cfg.width, classes);
  {
    // Perturb every tensor so zero biases / unit norms cannot hide a mistake.
    torch::NoGradGuard g;
    for (auto* m : std::vector<torch::nn::Module*>{net.get(), probe.get(), linear.get()})
      for (auto& p : m->parameters()) p.add_(torch::randn_like(p) * 0.05);
  }
  net->to(torch::kFloat64);
  probe->to(torch::kFloat64);
  linear->to(torch::kFloat64);

  const int64_t B = 4, K = cfg.num_tokens();
  auto images = torch::randn({B, cfg.channels, cfg.img_size, cfg.img_size}, torch::kFloat64);
  auto prefix = cfg.attention == model::AttentionMode::kPrefixCausal ? torch::tensor({1L, 7L, 20L, K - 1}, torch::kInt64)
                                                                     : torch::zeros({B}, torch::kInt64);
  const std::vector<int64_t> blocks = {1, 2};

  io::NamedTensors inputs = io::state_dict(*net);
  for (auto& [n, t] : io::state_dict(*probe)) inputs.emplace_back("probe." + n, t);
  for (auto& [n, t] : io::state_dict(*linear)) inputs.emplace_back("linear_probe." + n, t);
  inputs.emplace_back("input.images", images);
  inputs.emplace_back("input.prefix", prefix);
  if (net->order().defined()) inputs.emplace_back("input.order", net->order());
  nlohmann::json jcfg = {{"img_size", cfg.img_size}, {"patch_size", cfg.patch_size}, {"width", cfg.width},
                         {"heads", cfg.heads}, {"depth", cfg.depth}, {"head_width", cfg.head_width},
                         {"head_blocks", cfg.head_blocks}, {"head_identity_attn", cfg.head_identity_attn},
                         {"norm_eps", cfg.norm_eps}, {"order", cfg.order},
                         {"target", model::to_string(cfg.target)}, {"probe_blocks", blocks}};
  io::save_safetensors(dir.file("in.safetensors"), inputs, {{"config", jcfg.dump()}});

  const std::string cmd = std::string(AIM_PYTHON) + " " + AIM_SOURCE_DIR + "/tests/parity/reference_aim.py " +
                          dir.file("in.safetensors") + " " + dir.file("out.safetensors");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "reference failed: " << cmd
                                         << "\n(needs Debian's python3-torch: bash scripts/setup.sh)";
  auto ref = as_map(io::load_safetensors(dir.file("out.safetensors")).tensors);

  torch::NoGradGuard no_grad;
  model::AimEncoder enc(cfg);
  io::load_state_dict(*enc, io::state_dict(*net), "pretrain model", {"preprocessor.", "trunk."});
  enc->to(torch::kFloat64);

  // float64: the implementations must agree to rounding.
  auto out = net->forward(images, prefix);
  expect_close_to_reference(out.trunk_out, ref["trunk_normed"], 1e-9, 1e-9, "trunk output (f64)");
  expect_close_to_reference(out.pred, ref["pred"], 1e-9, 1e-9, "head predictions (f64)");
  expect_close_to_reference(out.loss.mean.reshape({1}), ref["loss"], 1e-9, 1e-9, "loss (f64)");
  auto feats = enc->features(images, blocks);
  expect_close_to_reference(feats, ref["features"], 1e-9, 1e-9, "probe features (f64)");
  expect_close_to_reference(probe->forward(feats), ref["attentive_logits"], 1e-9, 1e-9, "attentive probe (f64)");
  expect_close_to_reference(linear->forward(feats), ref["linear_logits"], 1e-9, 1e-9, "linear probe (f64)");

  // float32, the training precision on CPU: close to the float64 reference.
  net->to(torch::kFloat32);
  auto out32 = net->forward(images.to(torch::kFloat32), prefix);
  expect_close_to_reference(out32.pred, ref["pred"], 1e-4, 1e-4, "head predictions (f32)");
  expect_close_to_reference(out32.loss.mean.reshape({1}), ref["loss"], 1e-5, 1e-5, "loss (f32)");
}

}  // namespace

TEST(Parity, PrefixCausalRasterMatchesPyTorch) { run_case({"prefix/raster", parity_config()}); }

TEST(Parity, CausalOrdersAndVariantsMatchPyTorch) {
  for (const char* order : {"spiral", "checkerboard", "random"}) {
    auto cfg = parity_config();
    cfg.attention = model::AttentionMode::kCausal;
    cfg.order = order;
    cfg.order_seed = 3;
    cfg.head_identity_attn = std::string(order) != "spiral";
    cfg.target = std::string(order) == "checkerboard" ? model::TargetKind::kRawPixels : model::TargetKind::kNormalizedPixels;
    run_case({order, cfg});
  }
}
