// The README's "Your own images" walkthrough, run as written: the four command lines between
// its markers, in a folder holding photos/train/<class>/ and photos/val/<class>/, with only
// the training shortened (a few steps, one probe epoch) so the suite stays fast.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "data/data_test_util.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace aim;

namespace {

std::vector<std::string> walkthrough_commands() {
  std::ifstream in(std::string(AIM_SOURCE_DIR) + "/README.md");
  std::vector<std::string> out;
  bool inside = false, in_code = false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("<!-- own-images-walkthrough", 0) == 0) inside = true;
    else if (line.rfind("<!-- end of own-images-walkthrough", 0) == 0) break;
    else if (inside && line.rfind("```", 0) == 0) in_code = !in_code;
    else if (inside && in_code && !line.empty()) out.push_back(line);
  }
  return out;
}

}  // namespace

TEST(Walkthrough, OwnImagesCommandsRunAsWritten) {
  const auto commands = walkthrough_commands();
  ASSERT_EQ(commands.size(), 4u) << "the README's own-images walkthrough block changed shape";
  test::TempDir dir;
  const fs::path root = dir.path();
  for (const char* split : {"train", "val"})
    for (int c = 0; c < 3; ++c)
      for (int i = 0; i < (split[0] == 't' ? 10 : 3); ++i)
        data::testing::write_bytes((root / "photos" / split / ("class" + std::to_string(c)) / (std::to_string(i) + ".jpg")).string(),
                                   data::testing::jpeg(48 + 4 * i, 40 + 6 * c, 100 * c + i));
  fs::create_directory_symlink(fs::path(AIM_BIN_DIR).parent_path(), root / "build");
  fs::create_directory_symlink(fs::path(AIM_SOURCE_DIR) / "configs", root / "configs");
  std::string last;
  for (std::string cmd : commands) {
    if (cmd.find("aim-train") != std::string::npos) cmd += " train.steps=3 train.log_every=1 probe.epochs=1";
    last = test::capture("cd '" + root.string() + "' && " + cmd);
    ASSERT_NE(last.find("[exit 0]"), std::string::npos) << cmd << "\n" << last;
  }
  EXPECT_TRUE(fs::exists(root / "runs/own-images/trunk.safetensors"));
  EXPECT_TRUE(fs::exists(root / "runs/own-images/probe/results.json"));
  // Nine validation photos, each with its top 3 classes.
  EXPECT_NE(last.find("photos/val/class2/2.jpg"), std::string::npos) << last;
  EXPECT_NE(last.find("class1"), std::string::npos) << last;
}
