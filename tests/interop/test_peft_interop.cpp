// The peft adapter of a LoRA trunk (probe/peft_adapter.h) applied by peft's own rules
// (tests/interop/peft_adapter_check.py) gives exactly the merged trunk: q/v slices of the
// fused qkv as one rank-2r LoRA with a block-structured B and alpha doubled, proj as is.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "aim/io/safetensors.h"
#include "aim/io/state_dict.h"
#include "aim/model/aim_encoder.h"
#include "aim/model/trunk_weights.h"
#include "aim/probe/peft_adapter.h"
#include "test_util.h"

using namespace aim;

TEST(PeftInterop, AdapterAppliedByPeftsRulesEqualsTheMergedTrunk) {
  test::TempDir dir;
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
  torch::manual_seed(5);
  model::AimEncoder enc(c);
  enc->trunk->enable_lora(model::LoraSpec{2, 3.0});  // alpha 3: the adjusted alpha is visible
  {
    torch::NoGradGuard ng;
    for (auto& p : enc->trunk->lora_parameters()) p.add_(torch::randn_like(p) * 0.1);  // B away from zero
  }
  io::NamedTensors base;
  for (auto& [n, t] : io::filter_prefixes(io::state_dict(*enc), {"preprocessor.", "trunk."}))
    if (n.find("lora_") == std::string::npos) base.emplace_back(n, t.detach());
  io::save_safetensors(dir.file("base.safetensors"), base);
  model::export_trunk_tensors(dir.file("merged.safetensors"), model::merged_trunk_tensors(enc));
  probe::write_peft_adapter(dir.file("adapter"), enc, "base.safetensors");

  const auto cfg = nlohmann::json::parse(test::slurp(dir.file("adapter/adapter_config.json")));
  EXPECT_EQ(cfg["r"].get<int64_t>(), 2);
  EXPECT_EQ(cfg["lora_alpha"].get<double>(), 3.0);
  EXPECT_EQ(cfg["rank_pattern"]["qkv"].get<int64_t>(), 4);
  EXPECT_EQ(cfg["alpha_pattern"]["qkv"].get<double>(), 6.0);
  const auto t = io::load_safetensors(dir.file("adapter/adapter_model.safetensors")).tensors;
  ASSERT_EQ(t.size(), 4u * c.depth);
  EXPECT_EQ(t[1].first, "base_model.model.trunk.blocks.0.attn.qkv.lora_B.weight");
  EXPECT_EQ(t[1].second.sizes(), (std::vector<int64_t>{3 * c.width, 4}));
  // The key rows and the cross blocks of B are zero.
  EXPECT_EQ(t[1].second.narrow(0, c.width, c.width).abs().max().item<double>(), 0.0);
  EXPECT_EQ(t[1].second.narrow(0, 0, c.width).narrow(1, 2, 2).abs().max().item<double>(), 0.0);

  const std::string cmd = std::string(AIM_PYTHON) + " " + AIM_SOURCE_DIR + "/tests/interop/peft_adapter_check.py " +
                          dir.file("base.safetensors") + " " + dir.file("adapter") + " " + dir.file("merged.safetensors");
  const std::string out = test::capture(cmd);
  ASSERT_NE(out.find("[exit 0]"), std::string::npos) << out;
  EXPECT_NE(out.find("trunk.blocks.2.attn.qkv r=4 alpha=6"), std::string::npos) << out;
  EXPECT_NE(out.find("trunk.blocks.2.attn.proj r=2 alpha=3"), std::string::npos) << out;
  EXPECT_EQ(out.find("patchifier"), std::string::npos) << out;
}
