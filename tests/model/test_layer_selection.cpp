#include <gtest/gtest.h>
#include <torch/torch.h>

#include "aim/error.h"
#include "aim/model/aim_encoder.h"
#include "aim/model/layer_selection.h"
#include "test_util.h"

using namespace aim::model;

namespace {
// A config named `preset` (its shape when it is a preset) with `depth` blocks.
ModelConfig shape(const std::string& preset, int64_t depth) {
  ModelConfig m;
  for (const auto& name : preset_names())
    if (name == preset) m = preset_config(name);
  m.preset = preset;
  m.depth = depth;
  return m;
}
}  // namespace

TEST(LayerSelection, LastAndBest) {
  EXPECT_EQ(select_blocks("last", shape("aim-600m", 24)), (std::vector<int64_t>{18, 19, 20, 21, 22, 23}));
  EXPECT_EQ(select_blocks("best", shape("aim-600m", 24)), (std::vector<int64_t>{14, 15, 16, 17, 18, 19}));
  EXPECT_EQ(select_blocks("best", shape("aim-1b", 24)), (std::vector<int64_t>{12, 13, 14, 15, 16, 17}));
  EXPECT_EQ(select_blocks("best", shape("aim-3b", 24)), (std::vector<int64_t>{12, 13, 14, 15, 16, 17}));
  EXPECT_EQ(select_blocks("best", shape("aim-7b", 32)), (std::vector<int64_t>{14, 15, 16, 17, 18, 19}));
  EXPECT_EQ(select_blocks("last", shape("x", 4)), (std::vector<int64_t>{0, 1, 2, 3}));
}

// A reshaped trunk keeps its preset's name but not the paper's measurement (issue 17).
TEST(LayerSelection, BestRefusedForAReshapedOfficialTrunk) {
  auto m = preset_config("aim-600m");
  m.width = 768;
  m.heads = 6;
  try {
    select_blocks("best", m);
    FAIL() << "'best' was taken from the preset name for a reshaped trunk";
  } catch (const aim::Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("probe.blocks"), std::string::npos) << what;
    EXPECT_NE(what.find("model.width=768 (aim-600m has 1536)"), std::string::npos) << what;
    EXPECT_NE(what.find("model.heads=6"), std::string::npos) << what;
  }
  m = preset_config("aim-1b");
  m.depth = 12;  // 12-17 would not even exist
  EXPECT_THROW(select_blocks("best", m), aim::Error);
  m.img_size = 448;  // the resolution is not the trunk's shape: still the released weights
  m.depth = 24;
  EXPECT_EQ(select_blocks("best", m), (std::vector<int64_t>{12, 13, 14, 15, 16, 17}));
  m.depth = 12;
  EXPECT_EQ(select_blocks("last", m).size(), 6u);  // the other specs do not care
}

TEST(LayerSelection, ExplicitListsAndRanges) {
  EXPECT_EQ(select_blocks("0,4-6", shape("x", 8)), (std::vector<int64_t>{0, 4, 5, 6}));
  EXPECT_EQ(select_blocks("3", shape("x", 8)), (std::vector<int64_t>{3}));
}

TEST(LayerSelection, BadSpecsAreClearErrors) {
  EXPECT_THROW(select_blocks("best", shape("aim-fmnist-tiny", 4)), aim::Error);
  EXPECT_THROW(select_blocks("8", shape("x", 8)), aim::Error);
  EXPECT_THROW(select_blocks("a,b", shape("x", 8)), aim::Error);
  EXPECT_THROW(select_blocks("5-2", shape("x", 8)), aim::Error);
  try {
    select_blocks("1,x", shape("x", 8), "probe.blocks");
    FAIL() << "a block list with a non-number was accepted";
  } catch (const aim::Error& e) {
    EXPECT_NE(std::string(e.what()).find("probe.blocks"), std::string::npos);
  }
}

// Features are the mean of the chosen blocks' raw outputs, before the post-trunk norm.
TEST(LayerSelection, EncoderFeaturesAverageChosenBlocks) {
  auto cfg = aim::test::tiny_config();
  cfg.depth = 4;
  torch::manual_seed(0);
  AimEncoder enc(cfg);
  auto images = torch::randn({2, 3, 16, 16});
  auto tokens = enc->preprocessor->forward(images);
  std::vector<torch::Tensor> outs;
  auto x = tokens;
  for (int i = 0; i < 4; ++i) {
    x = enc->trunk->blocks[i]->as<BlockImpl>()->forward(x, AttentionMask());
    outs.push_back(x);
  }
  auto expected = (outs[1] + outs[3]) / 2;
  EXPECT_TRUE(torch::allclose(enc->features(images, {1, 3}), expected, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(enc->forward(images), enc->trunk->post_trunk_norm->forward(outs[3]), 1e-5, 1e-6));
}
