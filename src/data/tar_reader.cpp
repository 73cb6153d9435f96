#include "aim/data/tar_reader.h"

#include <cstring>

#include "aim/error.h"

namespace aim::data {
namespace {

constexpr size_t kBlock = 512;

// Numeric header fields are octal text, or big-endian base-256 when the top bit is set
// (GNU extension for sizes >= 8 GiB).
bool parse_number(const uint8_t* p, size_t n, uint64_t& out) {
  out = 0;
  if (p[0] & 0x80) {
    for (size_t i = 1; i < n; ++i) out = (out << 8) | p[i];
    return true;
  }
  size_t i = 0;
  while (i < n && (p[i] == ' ' || p[i] == 0)) ++i;
  bool any = false;
  for (; i < n && p[i] >= '0' && p[i] <= '7'; ++i) {
    out = out * 8 + (p[i] - '0');
    any = true;
  }
  return any || i == n;
}

std::string field(const uint8_t* p, size_t n) {
  size_t len = 0;
  while (len < n && p[len]) ++len;
  return std::string(reinterpret_cast<const char*>(p), len);
}

uint64_t padded(uint64_t n) { return (n + kBlock - 1) / kBlock * kBlock; }

}  // namespace

TarReader::TarReader(const std::string& path) : path_(path), buffer_(1 << 20) {
  file_ = std::fopen(path.c_str(), "rb");
  if (!file_) {
    error_ = std::string("cannot open: ") + std::strerror(errno);
    return;
  }
  std::setvbuf(file_, buffer_.data(), _IOFBF, buffer_.size());
}

TarReader::~TarReader() {
  if (file_) std::fclose(file_);
}

bool TarReader::read_exact(void* dst, size_t n) {
  if (std::fread(dst, 1, n, file_) != n) {
    error_ = "truncated tar";
    return false;
  }
  return true;
}

bool TarReader::skip_bytes(uint64_t n) {
  if (n == 0) return true;
  // fseek past the end succeeds silently; read the last byte instead to detect truncation.
  if (std::fseek(file_, static_cast<long>(n - 1), SEEK_CUR) != 0) {
    error_ = "seek failed";
    return false;
  }
  uint8_t last;
  return read_exact(&last, 1);
}

bool TarReader::read_block(uint8_t* block, bool eof_ok) {
  size_t got = std::fread(block, 1, kBlock, file_);
  if (got == kBlock) return true;
  if (got == 0 && eof_ok) return false;  // archive without end-of-archive blocks
  error_ = "truncated tar";
  return false;
}

bool TarReader::next(TarEntry& entry) {
  if (!ok() || !file_) return false;
  if (pending_ && !skip_data()) return false;
  std::string long_name;
  uint8_t h[kBlock];
  for (;;) {
    if (!read_block(h, true)) return false;
    bool zero = true;
    for (size_t i = 0; i < kBlock && zero; ++i) zero = h[i] == 0;
    if (zero) return false;  // end-of-archive marker
    uint64_t stored = 0, sum = 0;
    parse_number(h + 148, 8, stored);
    for (size_t i = 0; i < kBlock; ++i) sum += (i >= 148 && i < 156) ? ' ' : h[i];
    if (sum != stored) {
      error_ = "bad tar header checksum";
      return false;
    }
    uint64_t size = 0;
    if (!parse_number(h + 124, 12, size)) {
      error_ = "bad tar size field";
      return false;
    }
    char type = static_cast<char>(h[156]);
    if (type == 'L' || type == 'x' || type == 'g') {
      // Metadata for the next entry: read it whole (they are small).
      if (size > (1u << 20)) {
        error_ = "oversized tar metadata entry";
        return false;
      }
      std::string meta(padded(size), '\0');
      if (!read_exact(meta.data(), meta.size())) return false;
      meta.resize(size);
      if (type == 'L') {
        long_name = meta.c_str();
      } else if (type == 'x') {
        // pax records: "<len> key=value\n"
        size_t pos = 0;
        while (pos < meta.size()) {
          size_t sp = meta.find(' ', pos);
          if (sp == std::string::npos) break;
          size_t len = std::strtoull(meta.c_str() + pos, nullptr, 10);
          if (len == 0 || pos + len > meta.size()) break;
          std::string rec = meta.substr(sp + 1, pos + len - sp - 2);
          if (rec.rfind("path=", 0) == 0) long_name = rec.substr(5);
          pos += len;
        }
      }
      continue;
    }
    std::string name = field(h, 100);
    if (std::memcmp(h + 257, "ustar", 5) == 0) {
      std::string prefix = field(h + 345, 155);
      if (!prefix.empty()) name = prefix + "/" + name;
    }
    entry.name = long_name.empty() ? name : long_name;
    if (entry.name.rfind("./", 0) == 0) entry.name.erase(0, 2);
    entry.size = size;
    entry.regular = (type == '0' || type == '\0' || type == '7');
    data_size_ = size;
    pending_ = padded(size);
    return true;
  }
}

bool TarReader::read_data(std::vector<uint8_t>& out) {
  out.resize(data_size_);
  if (data_size_ && !read_exact(out.data(), data_size_)) return false;
  uint64_t rest = pending_ - data_size_;
  pending_ = 0;
  return skip_bytes(rest);
}

bool TarReader::skip_data() {
  uint64_t n = pending_;
  pending_ = 0;
  return skip_bytes(n);
}

// ---------------------------------------------------------------------------------------

TarWriter::TarWriter(const std::string& path) : path_(path) {
  file_ = std::fopen(path.c_str(), "wb");
  if (!file_) throw Error("cannot create '" + path + "': " + std::strerror(errno));
}

TarWriter::~TarWriter() {
  try {
    close();
  } catch (...) {
  }
}

void TarWriter::header(const std::string& name, uint64_t size, char type) {
  uint8_t h[kBlock] = {};
  std::memcpy(h, name.data(), std::min<size_t>(name.size(), 100));
  std::snprintf(reinterpret_cast<char*>(h + 100), 8, "%07o", 0644);
  std::snprintf(reinterpret_cast<char*>(h + 108), 8, "%07o", 0);
  std::snprintf(reinterpret_cast<char*>(h + 116), 8, "%07o", 0);
  std::snprintf(reinterpret_cast<char*>(h + 124), 12, "%011llo",
                static_cast<unsigned long long>(size));
  std::snprintf(reinterpret_cast<char*>(h + 136), 12, "%011o", 0);
  h[156] = static_cast<uint8_t>(type);
  std::memcpy(h + 257, "ustar\0" "00", 8);
  std::memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (size_t i = 0; i < kBlock; ++i) sum += h[i];
  std::snprintf(reinterpret_cast<char*>(h + 148), 8, "%06o", sum);
  h[155] = ' ';
  if (std::fwrite(h, 1, kBlock, file_) != kBlock) throw Error("write failed: " + path_);
}

void TarWriter::add(const std::string& name, const void* data, size_t size) {
  if (!file_) throw Error("tar already closed: " + path_);
  if (name.size() > 100) {
    header("././@LongLink", name.size() + 1, 'L');
    std::vector<uint8_t> buf(padded(name.size() + 1), 0);
    std::memcpy(buf.data(), name.c_str(), name.size());
    if (std::fwrite(buf.data(), 1, buf.size(), file_) != buf.size())
      throw Error("write failed: " + path_);
  }
  header(name, size, '0');
  if (size && std::fwrite(data, 1, size, file_) != size) throw Error("write failed: " + path_);
  static const uint8_t zeros[kBlock] = {};
  size_t pad = padded(size) - size;
  if (pad && std::fwrite(zeros, 1, pad, file_) != pad) throw Error("write failed: " + path_);
}

void TarWriter::close() {
  if (!file_) return;
  static const uint8_t zeros[2 * kBlock] = {};
  bool ok = std::fwrite(zeros, 1, sizeof zeros, file_) == sizeof zeros;
  ok = (std::fclose(file_) == 0) && ok;
  file_ = nullptr;
  if (!ok) throw Error("write failed: " + path_);
}

}  // namespace aim::data
