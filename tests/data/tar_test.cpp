#include <gtest/gtest.h>

#include <cstdlib>

#include "aim/data/tar_reader.h"
#include "aim/data/webdataset_source.h"
#include "data_test_util.h"

using namespace aim::data;
namespace t = aim::data::testing;

namespace {
std::vector<std::pair<std::string, std::string>> read_all_members(const std::string& path, std::string* error) {
  TarReader r(path);
  std::vector<std::pair<std::string, std::string>> out;
  TarEntry e;
  while (r.next(e)) {
    std::vector<uint8_t> d;
    if (!r.read_data(d)) break;
    if (e.regular) out.emplace_back(e.name, std::string(d.begin(), d.end()));
  }
  *error = r.error();
  return out;
}
}  // namespace

TEST(DataTar, RoundTripWithLongNamesAndEmptyMembers) {
  t::TempDir d;
  std::string long_name = std::string(150, 'n') + ".jpg";
  std::string big(70000, 'x');
  big[12345] = 'y';
  {
    TarWriter w(d / "a.tar");
    w.add("000001.jpg", "hello");
    w.add(long_name, big);
    w.add("000002.txt", "");
  }
  std::string err;
  auto all = read_all_members(d / "a.tar", &err);
  EXPECT_EQ(err, "");
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0], std::make_pair(std::string("000001.jpg"), std::string("hello")));
  EXPECT_EQ(all[1].first, long_name);
  EXPECT_EQ(all[1].second, big);
  EXPECT_EQ(all[2].second, "");
}

TEST(DataTar, ReadsGnuTarPaxAndGnuFormats) {
  AIM_REQUIRE_DEPENDENCY(std::system("tar --version > /dev/null 2>&1") == 0, "GNU tar");
  t::TempDir d;
  std::string deep = "sub/" + std::string(120, 'k') + ".json";
  t::write_text(d / ("src/" + deep), "{\"a\":1}");
  t::write_text(d / "src/0001.cls", "7");
  for (std::string fmt : {"pax", "gnu", "ustar"}) {
    std::string tar = d / (fmt + ".tar");
    std::string cmd = "cd " + d / "src" + " && tar --format=" + fmt + " -cf " + tar + " 0001.cls " +
                      (fmt == "ustar" ? "" : deep) + " 2>/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    std::string err;
    auto all = read_all_members(tar, &err);
    EXPECT_EQ(err, "") << fmt;
    ASSERT_GE(all.size(), 1u) << fmt;
    EXPECT_EQ(all[0], std::make_pair(std::string("0001.cls"), std::string("7")));
    if (fmt != "ustar") {
      ASSERT_EQ(all.size(), 2u) << fmt;
      EXPECT_EQ(all[1].first, deep) << fmt;
    }
  }
}

TEST(DataTar, TruncatedArchiveAndBadChecksumAreReported) {
  t::TempDir d;
  {
    TarWriter w(d / "a.tar");
    w.add("1.jpg", std::string(5000, 'a'));
    w.add("2.jpg", std::string(5000, 'b'));
  }
  auto full = std::filesystem::file_size(d / "a.tar");
  std::filesystem::copy_file(d / "a.tar", d / "cut.tar");
  std::filesystem::resize_file(d / "cut.tar", full - 1024 - 3000);  // inside 2.jpg's data
  std::string err;
  auto all = read_all_members(d / "cut.tar", &err);
  EXPECT_EQ(all.size(), 1u);
  EXPECT_EQ(err.rfind("truncated tar (member '2.jpg' declares 5000 bytes", 0), 0u) << err;

  std::filesystem::copy_file(d / "a.tar", d / "bad.tar");
  {
    std::fstream f(d / "bad.tar", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(0);
    f.put('Z');  // first header's name changes, its checksum no longer matches
  }
  all = read_all_members(d / "bad.tar", &err);
  EXPECT_TRUE(all.empty());
  EXPECT_EQ(err, "bad tar header checksum");
  TarReader missing(d / "nope.tar");
  EXPECT_FALSE(missing.ok());
}

TEST(DataTar, SamplesGroupByKeyLikeWebdataset) {
  EXPECT_EQ(split_key("dir/000123.seg.JPG"), std::make_pair(std::string("dir/000123"), std::string("seg.jpg")));
  EXPECT_EQ(split_key("a.b/c.png"), std::make_pair(std::string("a.b/c"), std::string("png")));
  EXPECT_EQ(split_key("noext"), std::make_pair(std::string("noext"), std::string("")));
  t::TempDir d;
  {
    TarWriter w(d / "s.tar");
    w.add("000000000001.jpg", "J1");
    w.add("000000000001.txt", "caption");
    w.add("000000000001.json", "{}");
    w.add("000000000002.txt", "only text");
    w.add("000000000003.png", "P3");
    w.add("000000000003.cls", "4");
  }
  ShardSampleReader r(d / "s.tar");
  WdsSample s;
  std::vector<std::string> keys;
  std::vector<size_t> sizes;
  while (r.next(s)) {
    keys.push_back(s.key);
    sizes.push_back(s.members.size());
    std::vector<uint8_t>* img = nullptr;
    int64_t label = -2;
    bool has = sample_image(s, &img, &label);
    if (s.key == "000000000003") {
      ASSERT_TRUE(has);
      EXPECT_EQ(std::string(img->begin(), img->end()), "P3");
      EXPECT_EQ(label, 4);
    }
    if (s.key == "000000000002") {
      EXPECT_FALSE(has);
    }
  }
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(keys, (std::vector<std::string>{"000000000001", "000000000002", "000000000003"}));
  EXPECT_EQ(sizes, (std::vector<size_t>{3, 1, 2}));
}
