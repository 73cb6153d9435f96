#include "zip_archive.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>

#include "aim/error.h"

namespace aim::io::detail {
namespace {

constexpr uint32_t kLocalHeader = 0x04034b50, kCentralHeader = 0x02014b50, kEndOfDirectory = 0x06054b50,
                   kZip64Locator = 0x07064b50, kZip64End = 0x06064b50;
constexpr uint64_t kMaxEntries = 1u << 24;  // far above any state dict (one record per storage)

uint64_t le(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

}  // namespace

uint32_t zip_crc32(const void* data, size_t n) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

ZipArchive::ZipArchive(const std::string& path) : path_(path), in_(path, std::ios::binary) {
  auto fail = [&](const std::string& msg) { return Error("'" + path + "': " + msg); };
  if (!in_) throw fail("cannot open (" + std::string(std::strerror(errno)) + ")");
  std::error_code ec;
  file_size_ = std::filesystem::file_size(path, ec);
  if (ec) throw fail("cannot stat: " + ec.message());
  auto read_at = [&](uint64_t offset, uint64_t n, const std::string& what) {
    if (offset > file_size_ || n > file_size_ - offset)
      throw fail(what + " lies past the end of the " + std::to_string(file_size_) + "-byte file (truncated?)");
    std::string buf(n, '\0');
    in_.clear();
    in_.seekg(static_cast<std::streamoff>(offset));
    in_.read(buf.data(), static_cast<std::streamsize>(n));
    if (!in_) throw fail("could not read " + what);
    return buf;
  };
  auto u = [](const std::string& buf, size_t at, int bytes) {
    return le(reinterpret_cast<const unsigned char*>(buf.data()) + at, bytes);
  };

  // The end-of-central-directory record sits in the last 22 + 65535 (comment) bytes.
  const uint64_t tail_len = std::min<uint64_t>(file_size_, 22 + 65535);
  if (file_size_ < 22) throw fail("only " + std::to_string(file_size_) + " bytes; not a ZIP archive");
  const std::string tail = read_at(file_size_ - tail_len, tail_len, "the end of the archive");
  int64_t eocd = -1;
  for (int64_t i = static_cast<int64_t>(tail_len) - 22; i >= 0; --i)
    if (u(tail, static_cast<size_t>(i), 4) == kEndOfDirectory) {
      eocd = i;
      break;
    }
  if (eocd < 0) throw fail("no ZIP end-of-central-directory record (truncated, or not a torch.save archive)");
  uint64_t count = u(tail, eocd + 10, 2), dir_size = u(tail, eocd + 12, 4), dir_offset = u(tail, eocd + 16, 4);
  const uint64_t eocd_pos = file_size_ - tail_len + static_cast<uint64_t>(eocd);
  if (count == 0xFFFF || dir_size == 0xFFFFFFFF || dir_offset == 0xFFFFFFFF) {
    // ZIP64: a locator just before the record points at the 64-bit directory record.
    if (eocd_pos < 20) throw fail("ZIP64 archive without its locator");
    const std::string loc = read_at(eocd_pos - 20, 20, "the ZIP64 locator");
    if (u(loc, 0, 4) != kZip64Locator) throw fail("ZIP64 archive without its locator");
    const std::string end64 = read_at(u(loc, 8, 8), 56, "the ZIP64 end-of-directory record");
    if (u(end64, 0, 4) != kZip64End) throw fail("bad ZIP64 end-of-directory record");
    count = u(end64, 32, 8);
    dir_size = u(end64, 40, 8);
    dir_offset = u(end64, 48, 8);
  }
  if (count > kMaxEntries) throw fail(std::to_string(count) + " records; more than any state dict holds");
  const std::string dir = read_at(dir_offset, dir_size, "the central directory");
  size_t at = 0;
  for (uint64_t k = 0; k < count; ++k) {
    if (at + 46 > dir.size() || u(dir, at, 4) != kCentralHeader)
      throw fail("central directory entry " + std::to_string(k) + " is damaged");
    ZipEntry e;
    e.method = static_cast<uint16_t>(u(dir, at + 10, 2));
    e.crc32 = static_cast<uint32_t>(u(dir, at + 16, 4));
    uint64_t csize = u(dir, at + 20, 4), usize = u(dir, at + 24, 4), local = u(dir, at + 42, 4);
    const size_t name_len = u(dir, at + 28, 2), extra_len = u(dir, at + 30, 2), comment_len = u(dir, at + 32, 2);
    if (at + 46 + name_len + extra_len + comment_len > dir.size())
      throw fail("central directory entry " + std::to_string(k) + " runs past the directory");
    e.name = dir.substr(at + 46, name_len);
    // ZIP64 extra field: the 64-bit values of whichever 32-bit fields are saturated, in order.
    for (size_t x = at + 46 + name_len; x + 4 <= at + 46 + name_len + extra_len;) {
      const uint64_t id = u(dir, x, 2), len = u(dir, x + 2, 2);
      if (x + 4 + len > at + 46 + name_len + extra_len) break;
      if (id == 0x0001) {
        size_t f = x + 4;
        auto take = [&](uint64_t& v) {
          if (v != 0xFFFFFFFF) return;
          if (f + 8 > x + 4 + len) throw fail("record '" + e.name + "': short ZIP64 extra field");
          v = u(dir, f, 8);
          f += 8;
        };
        take(usize);
        take(csize);
        take(local);
      }
      x += 4 + len;
    }
    if (e.method == 0 && csize != usize)
      throw fail("record '" + e.name + "' is stored with " + std::to_string(csize) + " bytes for " +
                 std::to_string(usize));
    e.size = csize;
    const std::string lh = read_at(local, 30, "the local header of '" + e.name + "'");
    if (u(lh, 0, 4) != kLocalHeader) throw fail("record '" + e.name + "' has no local header where the directory says");
    e.data_offset = local + 30 + u(lh, 26, 2) + u(lh, 28, 2);
    if (e.data_offset > file_size_ || e.size > file_size_ - e.data_offset)
      throw fail("record '" + e.name + "' (" + std::to_string(e.size) + " bytes) runs past the end of the " +
                 std::to_string(file_size_) + "-byte file (truncated?)");
    entries_.push_back(std::move(e));
    at += 46 + name_len + extra_len + comment_len;
  }
}

const ZipEntry* ZipArchive::find(const std::string& name) const {
  for (const auto& e : entries_)
    if (e.name == name) return &e;
  return nullptr;
}

void ZipArchive::read(const ZipEntry& e, uint64_t offset, void* dst, uint64_t n) {
  if (e.method != 0)
    throw Error("'" + path_ + "': record '" + e.name + "' is compressed (method " + std::to_string(e.method) +
                "); torch.save stores its records uncompressed, so this archive was repacked: unzip and re-zip "
                "it with `zip -0`, or save it again with torch.save");
  if (offset > e.size || n > e.size - offset)
    throw Error("'" + path_ + "': read of " + std::to_string(n) + " bytes at " + std::to_string(offset) +
                " outside record '" + e.name + "' (" + std::to_string(e.size) + " bytes)");
  in_.clear();
  in_.seekg(static_cast<std::streamoff>(e.data_offset + offset));
  in_.read(static_cast<char*>(dst), static_cast<std::streamsize>(n));
  if (!in_) throw Error("'" + path_ + "': could not read record '" + e.name + "'");
}

std::string ZipArchive::read_all(const ZipEntry& e, bool check_crc) {
  std::string out(e.size, '\0');
  read(e, 0, out.data(), e.size);
  if (check_crc && zip_crc32(out.data(), out.size()) != e.crc32)
    throw Error("'" + path_ + "': record '" + e.name + "' fails its CRC-32 check (the file is damaged)");
  return out;
}

}  // namespace aim::io::detail
