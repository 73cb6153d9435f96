#include "aim/io/tensorboard_writer.h"

#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "aim/error.h"
#include "aim/io/atomic_file.h"
#include "tensorboard/event.pb.h"

namespace fs = std::filesystem;

namespace aim::io {
namespace {

// Byte-wise table of the reflected Castagnoli polynomial.
std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t get_le(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

double unix_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) return "localhost";
  return buf;
}

// Wall time, step, and nothing else yet.
tensorboard::Event event_at(int64_t step) {
  tensorboard::Event e;
  e.set_wall_time(unix_seconds());
  e.set_step(step);
  return e;
}

}  // namespace

uint32_t crc32c(const void* data, size_t n) {
  static const auto table = make_crc32c_table();
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

uint32_t masked_crc32c(const void* data, size_t n) {
  const uint32_t c = crc32c(data, n);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

std::string tfrecord(const std::string& data) {
  std::string out;
  out.reserve(data.size() + 16);
  put_le(out, data.size(), 8);
  put_le(out, masked_crc32c(out.data(), 8), 4);
  out += data;
  put_le(out, masked_crc32c(data.data(), data.size()), 4);
  return out;
}

std::vector<std::string> read_tfrecords(const std::string& path, bool* clean) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read '" + path + "'");
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  std::vector<std::string> records;
  size_t pos = 0;
  while (bytes.size() - pos >= 12) {
    const char* p = bytes.data() + pos;
    const uint64_t len = get_le(p, 8);
    if (get_le(p + 8, 4) != masked_crc32c(p, 8) || len > bytes.size() - pos - 16) break;
    if (get_le(p + 12 + len, 4) != masked_crc32c(p + 12, len)) break;
    records.emplace_back(p + 12, len);
    pos += 16 + len;
  }
  if (clean) *clean = pos == bytes.size();
  return records;
}

std::vector<ScalarRecord> read_scalars(const std::string& path) {
  std::vector<ScalarRecord> out;
  for (const auto& r : read_tfrecords(path)) {
    tensorboard::Event e;
    if (!e.ParseFromString(r)) throw Error("'" + path + "': a record that is not a TensorBoard Event");
    for (const auto& v : e.summary().value())
      if (v.has_simple_value()) out.push_back({e.step(), e.wall_time(), v.tag(), v.simple_value()});
  }
  return out;
}

bool is_event_file(const std::string& filename) { return filename.find("tfevents") != std::string::npos; }

namespace {

// TensorBoard reads a directory's event files in name order, so a new file's seconds field
// is after every existing one's: a resumed run's file sorts after the files it continues even
// when it starts within the same second (or after a clock step back).
int64_t file_seconds(const std::string& dir) {
  auto seconds = static_cast<int64_t>(unix_seconds());
  const std::string prefix = "events.out.tfevents.";
  for (const auto& e : fs::directory_iterator(dir)) {
    const auto name = e.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    const auto end = name.find('.', prefix.size());
    try {
      seconds = std::max<int64_t>(seconds, std::stoll(name.substr(prefix.size(), end - prefix.size())) + 1);
    } catch (const std::exception&) {
    }
  }
  return seconds;
}

}  // namespace

TensorBoardWriter::TensorBoardWriter(const std::string& dir) {
  // The counter tells apart two writers of one process in one directory that file_seconds
  // cannot order (opened before either wrote).
  static std::atomic<int> counter{0};
  fs::create_directories(dir);
  path_ = (fs::path(dir) / ("events.out.tfevents." + std::to_string(file_seconds(dir)) + "." + hostname() + "." +
                            std::to_string(::getpid()) + "." + std::to_string(counter++)))
              .string();
  file_ = std::fopen(path_.c_str(), "ab");
  if (!file_) throw Error("cannot create the TensorBoard event file '" + path_ + "': " + std::strerror(errno));
  auto e = event_at(0);
  e.set_file_version("brain.Event:2");
  write_event(e.SerializeAsString());
}

TensorBoardWriter::~TensorBoardWriter() {
  if (file_) std::fclose(file_);
}

void TensorBoardWriter::add_scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values) {
  if (values.empty()) return;
  auto e = event_at(step);
  for (const auto& [tag, value] : values) {
    auto* v = e.mutable_summary()->add_value();
    v->set_tag(tag);
    v->set_simple_value(static_cast<float>(value));
  }
  write_event(e.SerializeAsString());
}

void TensorBoardWriter::add_session_start(int64_t step) {
  auto e = event_at(step);
  e.mutable_session_log()->set_status(tensorboard::SessionLog::START);
  write_event(e.SerializeAsString());
}

// One fwrite of the whole record, then a flush: a reader (or a crash) sees whole records
// plus at most one torn tail, which TensorBoard waits on and truncate_event_files drops.
void TensorBoardWriter::write_event(const std::string& serialized) {
  const std::string rec = tfrecord(serialized);
  if (std::fwrite(rec.data(), 1, rec.size(), file_) != rec.size() || std::fflush(file_) != 0)
    throw Error("writing the TensorBoard event file '" + path_ + "' failed: " + std::strerror(errno));
}

int64_t truncate_event_files(const std::string& dir, int64_t step) {
  if (!fs::is_directory(dir)) return 0;
  // The names first: the rewrites below add and rename files in this directory.
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_regular_file() && is_event_file(entry.path().filename().string())) files.push_back(entry.path());
  int64_t dropped = 0;
  for (const auto& file : files) {
    if (file.filename().string().find(".tmp.") != std::string::npos) {  // the temporary of a rewrite that died
      fs::remove(file);
      continue;
    }
    bool clean = true;
    const auto records = read_tfrecords(file.string(), &clean);
    std::string kept;
    bool has_scalars = false;
    int64_t file_dropped = 0;
    for (const auto& r : records) {
      tensorboard::Event e;
      if (!e.ParseFromString(r)) throw Error("'" + file.string() + "': a record that is not a TensorBoard Event");
      if (!e.has_file_version() && e.step() > step) {
        ++file_dropped;
        continue;
      }
      has_scalars = has_scalars || e.has_summary();
      kept += tfrecord(r);
    }
    if (!has_scalars) fs::remove(file);
    else if (file_dropped > 0 || !clean) write_file_atomic(file.string(), kept);
    dropped += file_dropped;
  }
  return dropped;
}

}  // namespace aim::io
