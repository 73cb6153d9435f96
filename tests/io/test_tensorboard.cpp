// TensorBoard event files: CRC-32C against published vectors, the writer read back by our
// reader and by an independent Python one (tests/io/read_tfevents.py: its own CRC and
// protobuf decoding), and the cut at a resumed step.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "aim/io/tensorboard_writer.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace aim;

namespace {

const std::string kReader = std::string(AIM_SOURCE_DIR) + "/tests/io/read_tfevents.py";

std::set<std::string> event_files(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().string());
  return out;
}

// Runs the Python reader on dir; its JSON and exit status.
std::pair<nlohmann::json, int> python_read(const std::string& dir) {
  const auto out = test::capture(std::string(AIM_PYTHON) + " " + kReader + " " + dir);
  const auto exit_at = out.rfind("\n[exit ");
  const int status = std::stoi(out.substr(exit_at + 7));
  return {nlohmann::json::parse(out.substr(0, exit_at), nullptr, /*allow_exceptions=*/false), status};
}

std::vector<int64_t> steps_of(const std::string& file) {
  std::vector<int64_t> out;
  for (const auto& s : io::read_scalars(file))
    if (out.empty() || out.back() != s.step) out.push_back(s.step);
  return out;
}

}  // namespace

TEST(TensorBoard, Crc32cMatchesPublishedVectors) {
  EXPECT_EQ(io::crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(io::crc32c("", 0), 0u);
  // RFC 3720 (iSCSI) B.4: 32 zero bytes, 32 0xFF bytes, bytes 0..31.
  std::string zeros(32, '\0'), ones(32, '\xff'), ascending;
  for (int i = 0; i < 32; ++i) ascending.push_back(static_cast<char>(i));
  EXPECT_EQ(io::crc32c(zeros.data(), 32), 0x8A9136AAu);
  EXPECT_EQ(io::crc32c(ones.data(), 32), 0x62A8AB43u);
  EXPECT_EQ(io::crc32c(ascending.data(), 32), 0x46DD794Eu);
  const uint32_t c = 0xE3069283u;
  EXPECT_EQ(io::masked_crc32c("123456789", 9), ((c >> 15) | (c << 17)) + 0xa282ead8u);
}

TEST(TensorBoard, TfRecordFraming) {
  const std::string rec = io::tfrecord("abc");
  ASSERT_EQ(rec.size(), 8u + 4 + 3 + 4);
  EXPECT_EQ(rec.substr(0, 8), std::string("\x03\0\0\0\0\0\0\0", 8));  // length, little-endian
  const std::string len = rec.substr(0, 8);
  const uint32_t len_crc = io::masked_crc32c(len.data(), 8), data_crc = io::masked_crc32c("abc", 3);
  EXPECT_EQ(rec.substr(8, 4), std::string(reinterpret_cast<const char*>(&len_crc), 4));
  EXPECT_EQ(rec.substr(12, 3), "abc");
  EXPECT_EQ(rec.substr(15, 4), std::string(reinterpret_cast<const char*>(&data_crc), 4));
}

TEST(TensorBoard, WriterRoundTripThroughBothReaders) {
  test::TempDir dir;
  const auto tb = dir.file("tb");
  std::string path;
  {
    io::TensorBoardWriter w(tb);
    path = w.path();
    w.add_session_start(1);
    w.add_scalars(1, {{"loss", 2.5}, {"lr", 1e-4}});
    w.add_scalars(2, {{"loss", 2.25}, {"val_loss", 3.0}});
    // Flushed per call: the records are on disk while the writer is still open.
    EXPECT_EQ(io::read_scalars(path).size(), 4u);
  }
  EXPECT_TRUE(std::regex_match(fs::path(path).filename().string(),
                               std::regex(R"(events\.out\.tfevents\.\d{10}\..+\.\d+\.\d+)")))
      << path;
  const auto s = io::read_scalars(path);
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[0].step, 1);
  EXPECT_EQ(s[0].tag, "loss");
  EXPECT_EQ(s[0].value, 2.5f);
  EXPECT_EQ(s[1].tag, "lr");
  EXPECT_EQ(s[1].value, static_cast<float>(1e-4));
  EXPECT_EQ(s[3].step, 2);
  EXPECT_EQ(s[3].tag, "val_loss");
  EXPECT_GT(s[0].wall_time, 1.6e9);

  auto [json, status] = python_read(tb);
  AIM_REQUIRE_DEPENDENCY(json.contains("files"), "python3 for tests/io/read_tfevents.py");
  ASSERT_EQ(status, 0) << json.dump();
  ASSERT_EQ(json["files"].size(), 1u);
  EXPECT_EQ(json["files"][0]["file_version"], "brain.Event:2");
  EXPECT_EQ(json["files"][0]["records"], 4);  // version, start, two steps
  EXPECT_EQ(json["starts"], nlohmann::json::parse("[[0, 1]]"));
  const auto& sc = json["scalars"];
  ASSERT_EQ(sc.size(), 4u);
  EXPECT_EQ(sc[1][1], 1);
  EXPECT_EQ(sc[1][2], "lr");
  EXPECT_EQ(sc[1][3].get<double>(), static_cast<double>(static_cast<float>(1e-4)));
  EXPECT_EQ(sc[3][1], 2);
  EXPECT_EQ(sc[3][2], "val_loss");
  EXPECT_EQ(sc[3][3].get<double>(), 3.0);

  // The Python reader checks both CRCs: one flipped payload byte is reported.
  std::string bytes = test::slurp(path);
  bytes[bytes.size() - 6] ^= 0x01;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  auto [bad, bad_status] = python_read(tb);
  EXPECT_EQ(bad_status, 1);
  EXPECT_NE(bad["problems"].dump().find("bad data CRC"), std::string::npos) << bad.dump();
  bool clean = true;
  EXPECT_EQ(io::read_tfrecords(path, &clean).size(), 3u);  // ours stops at the damaged record
  EXPECT_FALSE(clean);
}

// A resumed run cuts every event file at the resumed step: later steps (scalars and session
// starts) and a torn tail go,
// files that hold only earlier steps stay byte for byte, a file left without scalars and a
// dead rewrite's temporary are removed.
TEST(TensorBoard, TruncateAtResumedStep) {
  test::TempDir dir;
  const auto tb = dir.file("tb");
  std::string early, crossing, late;
  {
    io::TensorBoardWriter a(tb), b(tb), c(tb);
    early = a.path(), crossing = b.path(), late = c.path();
    for (int64_t s = 1; s <= 3; ++s) a.add_scalars(s, {{"loss", 1.0 / s}});
    b.add_session_start(4);
    c.add_session_start(7);
    for (int64_t s = 4; s <= 9; ++s) b.add_scalars(s, {{"loss", 1.0 / s}, {"lr", 0.1}});
    for (int64_t s = 7; s <= 9; ++s) c.add_scalars(s, {{"loss", 1.0 / s}});
  }
  std::ofstream(crossing, std::ios::binary | std::ios::app) << io::tfrecord("torn").substr(0, 9);
  std::ofstream(dir.file("tb/" + fs::path(crossing).filename().string() + ".tmp.99")) << "stale";
  const std::string early_bytes = test::slurp(early);

  EXPECT_EQ(io::truncate_event_files(tb, 6), 3 + 4);  // crossing's steps 7..9, late's start and 7..9
  EXPECT_EQ(event_files(tb), (std::set<std::string>{early, crossing}));
  EXPECT_EQ(test::slurp(early), early_bytes);
  EXPECT_EQ(steps_of(crossing), (std::vector<int64_t>{4, 5, 6}));
  bool clean = false;
  io::read_tfrecords(crossing, &clean);
  EXPECT_TRUE(clean) << "the torn record survived";
  auto [json, status] = python_read(tb);
  AIM_REQUIRE_DEPENDENCY(json.contains("files"), "python3 for tests/io/read_tfevents.py");
  EXPECT_EQ(status, 0) << json.dump();
  EXPECT_EQ(json["scalars"].size(), 3u + 3 * 2);
  EXPECT_EQ(json["starts"].size(), 1u);  // crossing's, at step 4

  EXPECT_EQ(io::truncate_event_files(tb, 6), 0);  // idempotent
  EXPECT_EQ(io::truncate_event_files(tb, 0), 3 + 4);
  EXPECT_TRUE(event_files(tb).empty());
  EXPECT_EQ(io::truncate_event_files(dir.file("missing"), 0), 0);
}
