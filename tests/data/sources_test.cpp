#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>

#include "aim/data/idx_source.h"
#include "aim/data/image_folder_source.h"
#include "aim/data/sample_count.h"
#include "aim/data/synthetic_source.h"
#include "aim/data/webdataset_source.h"
#include "aim/error.h"
#include "data_test_util.h"

using namespace aim::data;
namespace t = aim::data::testing;

TEST(DataImageFolder, SortedClassesAndImageFilesOnly) {
  t::TempDir d;
  t::write_bytes(d / "root/zebra/b.JPEG", t::jpeg(20, 20));
  t::write_bytes(d / "root/zebra/a.jpg", t::jpeg(20, 20));
  t::write_bytes(d / "root/ant/x.png", t::encode(t::photo(8, 8), ".png"));
  t::write_bytes(d / "root/ant/nested/y.jpeg", t::jpeg(8, 8));
  t::write_text(d / "root/ant/notes.txt", "not an image");
  t::write_text(d / "root/README", "top-level files are not classes");
  std::filesystem::create_directories(d / "root/empty_class");
  ImageFolderSource src(d / "root");
  EXPECT_EQ(src.classes(), (std::vector<std::string>{"ant", "empty_class", "zebra"}));
  ASSERT_EQ(src.size(), 4);
  EXPECT_EQ(src.label(0), 0);
  EXPECT_EQ(src.label(2), 2);
  EXPECT_NE(src.path(2).find("zebra/a.jpg"), std::string::npos);
  RawSample s;
  std::string why;
  ASSERT_TRUE(src.load(3, s, &why));
  EXPECT_EQ(s.label, 2);
  EXPECT_FALSE(s.bytes.empty());

  std::filesystem::create_directories(d / "hollow/cls");
  EXPECT_THROW(ImageFolderSource(d / "hollow"), aim::Error);
  EXPECT_THROW(ImageFolderSource(d / "does-not-exist"), aim::Error);
}

TEST(DataIdx, ReadsRawAndGzipFilesWithLabels) {
  t::TempDir d;
  t::write_idx(d / "train-images-idx3-ubyte", d / "train-labels-idx1-ubyte", 12, 5, 4, 3);
  // gzip the test split like Debian ships it
  t::write_idx(d / "raw-images-idx3-ubyte", d / "raw-labels-idx1-ubyte", 7, 3, 3, 10);
  for (std::string kind : {"images-idx3", "labels-idx1"}) {
    std::vector<uint8_t> b;
    ASSERT_TRUE(read_file(d / ("raw-" + kind + "-ubyte"), b, nullptr));
    gzFile z = gzopen((d / ("t10k-" + kind + "-ubyte.gz")).c_str(), "wb");
    gzwrite(z, b.data(), static_cast<unsigned>(b.size()));
    gzclose(z);
  }
  IdxSource train(d.path.string(), "train");
  EXPECT_EQ(train.size(), 12);
  EXPECT_EQ(train.num_classes(), 3);
  RawSample s;
  ASSERT_TRUE(train.load(5, s, nullptr));
  EXPECT_EQ(s.label, 2);
  ASSERT_EQ(s.pixels.size(), cv::Size(4, 5));
  EXPECT_EQ(s.pixels.at<uint8_t>(1, 2), (5 * 7 + 1 + 2) & 255);
  IdxSource test(d.path.string(), "test");
  EXPECT_EQ(test.size(), 7);
  ASSERT_TRUE(test.load(6, s, nullptr));
  EXPECT_EQ(s.label, 6);
  IdxSource by_file(d / "t10k-images-idx3-ubyte.gz");
  EXPECT_EQ(by_file.size(), 7);
  EXPECT_EQ(by_file.num_classes(), 7);
  EXPECT_THROW(IdxSource(d / "nothing"), aim::Error);
  t::write_text(d / "junk-images-idx3-ubyte", "garbage garbage garbage");
  EXPECT_THROW(IdxSource(d / "junk-images-idx3-ubyte"), aim::Error);
}

TEST(DataIdx, FashionMnistFromDebianPackage) {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  AIM_REQUIRE_DEPENDENCY(std::filesystem::exists(dir), "dataset-fashion-mnist");
  IdxSource test(dir, "test");
  EXPECT_EQ(test.size(), 10000);
  EXPECT_EQ(test.rows(), 28);
  EXPECT_EQ(test.num_classes(), 10);
}

TEST(DataSynthetic, DeterministicAndLabelled) {
  SyntheticSource a(100, 5, 24, 32, 3, 9), b(100, 5, 24, 32, 3, 9);
  cv::Mat x = a.render(17), y = b.render(17), z = a.render(18);
  EXPECT_EQ(cv::norm(x, y, cv::NORM_INF), 0);
  EXPECT_GT(cv::norm(x, z, cv::NORM_L1), 0);
  RawSample s;
  ASSERT_TRUE(a.load(17, s, nullptr));
  EXPECT_EQ(s.label, 2);
  EXPECT_EQ(s.pixels.size(), cv::Size(32, 24));
}

TEST(DataWebDataset, PatternsLimitsAndMissingShards) {
  t::TempDir d;
  for (int s = 0; s < 3; ++s) {
    TarWriter w(d / ("0000000" + std::to_string(s) + ".tar"));
    for (int k = 0; k < 4; ++k) w.add(std::to_string(s * 10 + k) + ".png", "x");
  }
  EXPECT_THROW(WebDatasetSource("dfn", {d / "nothing-{0..3}.tar"}), aim::Error);
  EXPECT_THROW(WebDatasetSource("dfn", {d / "*.none"}), aim::Error);
  WebDatasetSource all("dfn", {d / "{00000000..00000003}.tar"});  // 00000003 is missing
  EXPECT_EQ(all.shards().size(), 4u);
  EXPECT_EQ(all.missing_at_start(), 1);
  WebDatasetSource limited("dfn", {d / "{00000000..00000002}.tar"}, 6);
  ASSERT_EQ(limited.shards().size(), 2u);
  EXPECT_EQ(limited.shards()[0].max_samples, 4);
  EXPECT_EQ(limited.shards()[1].max_samples, 2);
}

// open_clip's sizes.json beside the shards gives their sample counts: `limit` cuts by it
// without reading the shards it lists (here it claims 3 for a shard that holds 4, which a scan
// would not say), scans the shards it does not list, and names the file when it is malformed.
TEST(DataWebDataset, LimitTakesShardSizesFromSizesJson) {
  t::TempDir d;
  for (int s = 0; s < 3; ++s) {
    TarWriter w(d / ("0000000" + std::to_string(s) + ".tar"));
    for (int k = 0; k < 4; ++k) w.add(std::to_string(s * 10 + k) + ".png", "x");
  }
  t::write_text(d / "sizes.json", R"({"00000000.tar": 3, "00000001.tar": "4"})");
  WebDatasetSource cut("dfn", {d / "{00000000..00000002}.tar"}, 5);
  ASSERT_EQ(cut.shards().size(), 2u);
  EXPECT_EQ(cut.shards()[0].max_samples, 3) << "shard 0 was scanned, not looked up";
  EXPECT_EQ(cut.shards()[1].max_samples, 2);
  WebDatasetSource past("dfn", {d / "{00000000..00000002}.tar"}, 100);
  ASSERT_EQ(past.shards().size(), 3u);
  EXPECT_EQ(past.shards()[1].max_samples, 4);
  EXPECT_EQ(past.shards()[2].max_samples, 4) << "a shard sizes.json does not list is scanned";
  SourceConfig sc;
  sc.name = "dfn";
  sc.kind = "webdataset";
  sc.shards = {d / "{00000000..00000002}.tar"};
  auto counted = count_samples_up_to(sc, 100);
  ASSERT_TRUE(counted.has_value());
  EXPECT_EQ(*counted, 11);
  t::write_text(d / "sizes.json", R"({"00000000.tar": -3})");
  try {
    WebDatasetSource bad("dfn", {d / "{00000000..00000002}.tar"}, 5);
    ADD_FAILURE() << "a negative count was accepted";
  } catch (const aim::Error& e) {
    EXPECT_NE(std::string(e.what()).find("sizes.json"), std::string::npos) << e.what();
  }
}

// Counting a source before training: exact below the cap, the cap above it (a web-scale
// source costs only the headers up to it), `limit` respected, missing shards count nothing,
// and a remote shard before the cap leaves the count unknown.
TEST(DataSampleCount, CountsUpToTheCapWithoutReadingFurther) {
  t::TempDir d;
  std::filesystem::create_directories(d / "shards");
  for (int s = 0; s < 3; ++s) {
    TarWriter w(d / ("shards/0000000" + std::to_string(s) + ".tar"));
    for (int k = 0; k < 5; ++k) {
      auto jpg = t::jpeg(8, 8, k);
      const std::string key = std::to_string(100 * s + k);
      w.add(key + ".jpg", jpg.data(), jpg.size());
      w.add(key + ".cls", "1", 1);
    }
  }
  SourceConfig wds;
  wds.kind = "webdataset";
  wds.shards = {d / "shards/{00000000..00000003}.tar"};  // the fourth is missing
  EXPECT_EQ(count_samples_up_to(wds, 100), 15);
  EXPECT_EQ(count_samples_up_to(wds, 7), 7);
  wds.limit = 4;
  EXPECT_EQ(count_samples_up_to(wds, 100), 4);
  wds.limit = -1;
  wds.shards = {d / "shards/00000000.tar", "pipe:cat " + (d / "shards/00000001.tar")};
  EXPECT_EQ(count_samples_up_to(wds, 5), 5) << "the cap is reached before the remote shard";
  EXPECT_EQ(count_samples_up_to(wds, 6), std::nullopt);
  SourceConfig synth;
  synth.kind = "synthetic";
  synth.size = 30;
  EXPECT_EQ(count_samples_up_to(synth, 100), 30);
  EXPECT_EQ(count_samples_up_to(synth, 12), 12);
}
