#include "aim/data/tar_reader.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "aim/error.h"

namespace aim::data {
namespace {

constexpr size_t kBlock = 512;
// read_data grows its buffer by at most this much per read, so where the file's size is not
// known (a pipe) a lying header costs the bytes that really arrive, not what it declares.
constexpr uint64_t kSkipChunkBytes = 4u << 20;

// Numeric header fields are octal text, or big-endian base-256 when the top bit is set (GNU,
// for sizes >= 8 GiB). The base-256 field has room for 95 bits; only values below 2^63 are
// accepted, so a crafted one can neither wrap around nor turn into a backward seek.
bool parse_number(const uint8_t* p, size_t n, uint64_t& out) {
  out = 0;
  if (p[0] & 0x80) {
    if (p[0] != 0x80) return false;  // negative (0xFF...) or value bits in the flag byte
    for (size_t i = 1; i < n; ++i) {
      if (out >> 55) return false;  // one more byte would pass 2^63
      out = (out << 8) | p[i];
    }
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

bool all_zero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (p[i]) return false;
  return true;
}

uint64_t padded(uint64_t n) { return (n + kBlock - 1) / kBlock * kBlock; }

}  // namespace

TarReader::TarReader(const std::string& path, double timeout_s, const std::atomic<bool>* abort)
    : path_(path), stream_(std::make_unique<ShardStream>(path, timeout_s, abort)), buffer_(1 << 20) {
  if (!stream_->ok()) {
    error_ = stream_->error();
    return;
  }
  file_ = stream_->file();
  std::setvbuf(file_, buffer_.data(), _IOFBF, buffer_.size());
  struct stat st {};
  if (::fstat(::fileno(file_), &st) == 0 && S_ISREG(st.st_mode)) file_size_ = static_cast<uint64_t>(st.st_size);
}

TarReader::~TarReader() {
  stream_.reset();  // closes the file or ends the command while buffer_ (its stdio buffer) still exists
}

bool TarReader::fail(const std::string& why) {
  if (error_.empty()) {
    error_ = why;
    // A remote stream that stops early mostly means its command failed: say how.
    std::string note = stream_ ? stream_->failure_note() : "";
    if (!note.empty()) error_ += "; " + note;
  }
  pending_ = 0;
  return false;
}

uint64_t TarReader::remaining() const {
  if (file_size_ == UINT64_MAX) return UINT64_MAX;
  return file_size_ > pos_ ? file_size_ - pos_ : 0;
}

bool TarReader::read_exact(void* dst, size_t n) {
  size_t got = std::fread(dst, 1, n, file_);
  pos_ += got;
  if (got != n) return fail("truncated tar (ends inside a member's data)");
  return true;
}

bool TarReader::skip_bytes(uint64_t n) {
  if (n == 0) return true;
  if (n > remaining()) return fail("truncated tar (ends inside a member's data)");
  if (file_size_ != UINT64_MAX) {  // a regular file: n bytes are known to be there
    if (::fseeko(file_, static_cast<off_t>(n), SEEK_CUR) != 0)
      return fail(std::string("seek failed: ") + std::strerror(errno));
    pos_ += n;
    return true;
  }
  std::vector<uint8_t> sink(static_cast<size_t>(std::min<uint64_t>(n, kSkipChunkBytes)));
  while (n > 0) {
    size_t step = static_cast<size_t>(std::min<uint64_t>(n, sink.size()));
    if (!read_exact(sink.data(), step)) return false;
    n -= step;
  }
  return true;
}

TarReader::Block TarReader::read_header_block(uint8_t* block) {
  size_t got = std::fread(block, 1, kBlock, file_);
  pos_ += got;
  if (got == kBlock) return Block::kData;
  if (pos_ == 0) {
    fail(stream_->remote() ? "empty stream (0 bytes, not a tar)" : "empty file (0 bytes, not a tar)");
  } else if (got == 0) {
    fail("truncated tar (no end-of-archive blocks after " + std::to_string(members_) + " members)");
  } else {
    fail("truncated tar (ends inside a header)");
  }
  return Block::kDamaged;
}

bool TarReader::next(TarEntry& entry) {
  if (!ok() || !file_ || ended_) return false;
  if (pending_ && !skip_data()) return false;
  std::string long_name;
  uint8_t h[kBlock];
  for (;;) {
    if (read_header_block(h) != Block::kData) return false;
    if (all_zero(h, kBlock)) {
      // The end of the archive is two zero blocks; a file cut after the first is truncated.
      uint8_t second[kBlock];
      size_t got = std::fread(second, 1, kBlock, file_);
      pos_ += got;
      if (got != kBlock) return fail("truncated tar (ends inside the end-of-archive blocks)");
      if (!all_zero(second, kBlock)) return fail("bad tar (a zero block inside the archive)");
      if (members_ == 0) return fail("empty tar (no members before the end-of-archive blocks)");
      ended_ = true;
      check_trailing();
      return false;
    }
    uint64_t stored = 0, sum = 0;
    parse_number(h + 148, 8, stored);
    for (size_t i = 0; i < kBlock; ++i) sum += (i >= 148 && i < 156) ? ' ' : h[i];
    if (sum != stored) return fail("bad tar header checksum");
    ++members_;
    const std::string raw_name = field(h, 100);
    uint64_t size = 0;
    if (!parse_number(h + 124, 12, size)) return fail("bad tar size field (member '" + raw_name + "')");
    if (size > remaining())
      return fail("truncated tar (member '" + raw_name + "' declares " + std::to_string(size) + " bytes, " +
                  std::to_string(remaining()) + " remain)");
    char type = static_cast<char>(h[156]);
    if (type == 'L' || type == 'x' || type == 'g') {
      // Metadata for the next entry: read it whole (they are small).
      if (size > (1u << 20)) return fail("oversized tar metadata entry (" + std::to_string(size) + " bytes)");
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
          if (len == 0 || pos + len > meta.size() || sp + 2 > pos + len) break;
          std::string rec = meta.substr(sp + 1, pos + len - sp - 2);
          if (rec.rfind("path=", 0) == 0) long_name = rec.substr(5);
          pos += len;
        }
      }
      continue;
    }
    std::string name = raw_name;
    if (std::memcmp(h + 257, "ustar", 5) == 0) {
      std::string prefix = field(h + 345, 155);
      if (!prefix.empty()) name = prefix + "/" + name;
    }
    entry.name = long_name.empty() ? name : long_name;
    if (entry.name.rfind("./", 0) == 0) entry.name.erase(0, 2);
    entry.size = size;
    entry.regular = (type == '0' || type == '\0' || type == '7');
    entry.sparse = type == 'S';
    data_size_ = size;
    pending_ = padded(size);
    return true;
  }
}

bool TarReader::check_trailing() {
  // Tar writers pad the archive with zeros to a whole record (10 KiB for GNU tar): only
  // non-zero bytes mean more data, typically a second tar appended to the first. A stream
  // gets a second to show them: a second tar follows at once, while a command that lingers
  // after its tar (its own clean-up, a `; sleep`) must not hold the shard for the timeout.
  if (stream_->remote()) stream_->set_timeout(1.0);
  uint8_t chunk[kBlock * 8];
  for (;;) {
    const size_t got = std::fread(chunk, 1, sizeof chunk, file_);
    pos_ += got;
    if (!all_zero(chunk, got))
      return fail("data after the end-of-archive blocks at byte " + std::to_string(pos_ - got) +
                  " (two tars concatenated? only the first one's members are read)");
    if (got < sizeof chunk) return true;
  }
}

bool TarReader::read_data(std::vector<uint8_t>& out) {
  out.clear();
  uint64_t left = data_size_;
  const uint64_t padding = pending_ - data_size_;
  pending_ = 0;
  while (left > 0) {
    size_t step = static_cast<size_t>(std::min(left, kSkipChunkBytes));
    size_t at = out.size();
    out.resize(at + step);
    if (!read_exact(out.data() + at, step)) return false;
    left -= step;
  }
  return skip_bytes(padding);
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
