// Class labels matched by name (issue: a val folder with other classes probed at 12.5 %, rc 0),
// and the printed report's top-5 and plurals.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "aim/error.h"
#include "aim/probe/class_labels.h"
#include "aim/probe/probe_runner.h"

using namespace aim;

namespace {

std::string labels_error_of(const std::vector<std::string>& ref, const std::vector<std::string>& other, const std::string& mode) {
  try {
    probe::match_classes(ref, "probe.train", other, "probe.val", mode);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(ClassLabels, DifferentNamesAreAnErrorNamingEachSide) {
  const std::string e = labels_error_of({"cool", "dark", "warm"}, {"dark", "warm", "zblue"}, "names");
  EXPECT_NE(e.find("only in probe.val: zblue"), std::string::npos) << e;
  EXPECT_NE(e.find("only in probe.train: cool"), std::string::npos) << e;
  EXPECT_NE(e.find("[cool, dark, warm]"), std::string::npos) << e;
  // A subset is an error unless asked for, and the message says how to ask.
  const std::string sub = labels_error_of({"cool", "dark", "warm"}, {"dark", "warm"}, "names");
  EXPECT_NE(sub.find("probe.class_match=subset"), std::string::npos) << sub;
  EXPECT_NE(labels_error_of({"cool", "dark", "warm"}, {"dark", "zblue"}, "subset").find("zblue"), std::string::npos);
}

TEST(ClassLabels, LabelsAreMappedByName) {
  // probe.val holds dark and warm: its labels 0, 1 are probe.train's 1, 2.
  auto m = probe::match_classes({"cool", "dark", "warm"}, "probe.train", {"dark", "warm"}, "probe.val", "subset");
  ASSERT_FALSE(m.identity());
  EXPECT_TRUE(torch::equal(m.apply(torch::tensor({0, 1, 1, -1}, torch::kLong)), torch::tensor({1, 2, 2, -1}, torch::kLong)));
  // Same names: identity. No names on one side, or position: identity (counts checked elsewhere).
  EXPECT_TRUE(probe::match_classes({"a", "b"}, "x", {"a", "b"}, "y", "names").identity());
  EXPECT_TRUE(probe::match_classes({"a", "b"}, "x", {}, "y", "names").identity());
  EXPECT_TRUE(probe::match_classes({"a", "b", "c"}, "x", {"c", "b"}, "y", "position").identity());
  EXPECT_EQ(probe::decode_class_names(probe::encode_class_names({"a b", "c\"d"}), "f"),
            (std::vector<std::string>{"a b", "c\"d"}));
  EXPECT_THROW(probe::decode_class_names("{\"a\": 1}", "f"), Error);
}

TEST(ProbeReportTable, TopFiveOnlyAboveFiveClassesAndSingularsRight) {
  probe::ProbeReport r;
  r.heads = {{1e-3, 0.05, 0.5, 0.6, 0.75, 1.0, 0.4, 1.0}};
  r.classes = 3;
  r.val_samples = 1;
  r.select_samples = 1;
  r.selection = "train_holdout";
  r.weights = "w";
  r.out_dir = "o";
  config::ProbeConfig pc;
  std::string t = probe::format_probe_report(r, pc);
  EXPECT_EQ(t.find("top5"), std::string::npos) << t;
  EXPECT_EQ(t.find("top-5"), std::string::npos) << t;
  EXPECT_NE(t.find("on 1 image (3 classes)"), std::string::npos) << t;
  EXPECT_NE(t.find("1 held-out image of"), std::string::npos) << t;
  EXPECT_NE(t.find("one head: nothing chosen"), std::string::npos) << t;
  EXPECT_EQ(t.find("optimistic"), std::string::npos) << t;
  r.selection = "none";
  EXPECT_EQ(probe::format_probe_report(r, pc).find("optimistic"), std::string::npos);
  r.classes = 10;
  r.val_samples = 20;
  t = probe::format_probe_report(r, pc);
  EXPECT_NE(t.find("top-5 100.00 %"), std::string::npos) << t;
  EXPECT_NE(t.find("on 20 images (10 classes)"), std::string::npos) << t;
}
