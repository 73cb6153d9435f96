// Bounded memory and one way of listing image folders: the warned-once set of bad samples is
// capped (its totals stay exact), ImageFolder files have the same size cap as tar members,
// and every tool counts and names the non-image files it passes over the same way.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include "aim/data/bad_sample_log.h"
#include "aim/data/image_folder_source.h"
#include "data_test_util.h"

using namespace aim::data;
namespace t = aim::data::testing;

// On main an unordered_set held every distinct bad sample (~42 B each, unbounded).
TEST(BoundedChecks, TheWarnedOnceSetIsCappedAndTotalsStayExact) {
  auto level = spdlog::get_level();
  spdlog::set_level(spdlog::level::off);
  BadSampleLog log;
  const int64_t n = BadSampleLog::kMaxTracked + 5000;
  for (int64_t i = 0; i < n; ++i) log.report("src", "shard.tar:" + std::to_string(i), "bad (x)");
  EXPECT_EQ(log.total(), n);
  EXPECT_EQ(log.by_source().at("src"), n);
  EXPECT_EQ(log.by_reason().at("bad"), n);
  EXPECT_EQ(log.unique(), BadSampleLog::kMaxTracked);
  EXPECT_FALSE(log.unique_exact());
  // A sample remembered before the cap is still a repeat: counted once more, not as new.
  log.report("src", "shard.tar:7", "bad (x)");
  EXPECT_EQ(log.unique(), BadSampleLog::kMaxTracked);
  EXPECT_EQ(log.total(), n + 1);
  spdlog::set_level(level);
}

TEST(BoundedChecks, DistinctCountsAreExactBelowTheCap) {
  BadSampleLog log;
  for (int epoch = 0; epoch < 3; ++epoch)
    for (int i = 0; i < 1000; ++i) log.report(i % 2 ? "a" : "b", "f" + std::to_string(i / 2), "bad");
  EXPECT_EQ(log.total(), 3000);
  EXPECT_EQ(log.unique(), 1000);
  EXPECT_TRUE(log.unique_exact());
}

// On main an ImageFolder file of any size was read whole into memory.
TEST(BoundedChecks, ImageFolderFilesHaveTheMemberSizeCap) {
  t::TempDir d;
  t::write_bytes(d / "root/c/small.jpg", t::jpeg(16, 16));
  t::write_bytes(d / "root/c/huge.jpg", std::vector<uint8_t>(3 << 20, 0xFF));
  ImageFolderSource src(d / "root", 1 << 20);
  ASSERT_EQ(src.size(), 2);
  RawSample s;
  std::string why;
  EXPECT_FALSE(src.load(0, s, &why));  // huge.jpg sorts first
  EXPECT_NE(why.find("file too large (3.0 MB, the cap is 1.0 MB: data.max_member_mb)"), std::string::npos) << why;
  EXPECT_TRUE(s.bytes.empty());
  EXPECT_TRUE(src.load(1, s, &why)) << why;
}

// One listing for ImageFolder, `aim-data pack` and `aim-probe --predict`.
TEST(BoundedChecks, NonImageFilesAreCountedAndNamedOneWay) {
  t::TempDir d;
  t::write_bytes(d / "root/a/1.jpg", t::jpeg(8, 8));
  t::write_bytes(d / "root/a/2.PNG", t::encode(t::photo(8, 8), ".png"));
  t::write_text(d / "root/a/notes.txt", "x");
  t::write_text(d / "root/b/labels.csv", "x");
  t::write_bytes(d / "root/b/3.jpeg", t::jpeg(8, 8));
  const ImageListing l = list_image_files(d / "root");
  EXPECT_EQ(l.images, (std::vector<std::string>{d / "root/a/1.jpg", d / "root/a/2.PNG", d / "root/b/3.jpeg"}));
  EXPECT_EQ(l.skipped, 2);
  EXPECT_EQ(skipped_note(l), "2 files that are not images by their extension (jpg, jpeg, png, webp, bmp, tif, tiff) "
                             "were skipped (" + d / "root/a/notes.txt" + ", " + d / "root/b/labels.csv" + ")");
  ImageFolderSource src(d / "root");
  EXPECT_EQ(src.size(), 3);
  EXPECT_EQ(src.skipped().skipped, 2);
  EXPECT_EQ(skipped_note(list_image_files(d / "root/b")).rfind("1 file that is not an image", 0), 0u);
}
