#include "aim/io/safetensors.h"

#include <torch/torch.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>

#include "aim/error.h"
#include "aim/io/atomic_file.h"

namespace aim::io {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // the reference implementation's cap

const std::vector<std::pair<std::string, torch::Dtype>>& dtype_table() {
  static const std::vector<std::pair<std::string, torch::Dtype>> table = {
      {"F64", torch::kFloat64}, {"F32", torch::kFloat32}, {"F16", torch::kFloat16},
      {"BF16", torch::kBFloat16}, {"I64", torch::kInt64}, {"I32", torch::kInt32},
      {"I16", torch::kInt16}, {"I8", torch::kInt8}, {"U8", torch::kUInt8}, {"BOOL", torch::kBool}};
  return table;
}

std::string dtype_name(torch::Dtype dtype, const std::string& tensor) {
  for (const auto& [name, dt] : dtype_table())
    if (dt == dtype) return name;
  throw Error("safetensors: tensor '" + tensor + "' has dtype " + std::string(c10::toString(dtype)) +
              ", which safetensors cannot store");
}

}  // namespace

std::string safetensors_prefix(const std::vector<TensorSpec>& specs, const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& t : specs) {
    if (t.name == "__metadata__") throw Error("safetensors: '__metadata__' is reserved and cannot name a tensor");
    uint64_t numel = 1;
    for (auto d : t.shape) numel *= static_cast<uint64_t>(d);
    const uint64_t bytes = numel * c10::elementSize(t.dtype);
    header[t.name] = {{"dtype", dtype_name(t.dtype, t.name)}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');  // keep the data 8-byte aligned
  std::string prefix(8, '\0');
  for (int i = 0; i < 8; ++i) prefix[i] = static_cast<char>((json.size() >> (8 * i)) & 0xff);
  return prefix + json;
}

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<TensorSpec> specs;
  std::vector<torch::Tensor> data;
  for (const auto& [name, t] : tensors) {
    auto c = t.detach().to(torch::kCPU).contiguous();
    specs.push_back({name, c.scalar_type(), c.sizes().vec()});
    data.push_back(std::move(c));
  }
  const std::string prefix = safetensors_prefix(specs, metadata);
  AtomicFileWriter writer(path);
  writer.write(prefix);
  for (const auto& t : data) writer.write(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  writer.commit();
}

namespace {

struct Header {
  nlohmann::ordered_json json;
  uint64_t header_len = 0, file_size = 0;
};

Error file_error(const std::string& path, const std::string& msg) { return Error("safetensors file '" + path + "': " + msg); }

// Checks the header length against the file and parses the JSON that follows it.
Header parse_header(const std::string& path, uint64_t header_len, uint64_t file_size, const std::string& json_text) {
  auto fail = [&](const std::string& msg) { return file_error(path, msg); };
  Header h;
  h.header_len = header_len;
  h.file_size = file_size;
  try {
    h.json = nlohmann::ordered_json::parse(json_text);
  } catch (const std::exception& e) {
    throw fail(std::string("header is not valid JSON: ") + e.what());
  }
  if (!h.json.is_object()) throw fail("header is not a JSON object");
  return h;
}

uint64_t checked_header_len(const std::string& path, const unsigned char* len, uint64_t file_size) {
  auto fail = [&](const std::string& msg) { return file_error(path, msg); };
  if (file_size < 8) throw fail("only " + std::to_string(file_size) + " bytes; too small to hold a header");
  uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) header_len |= static_cast<uint64_t>(len[i]) << (8 * i);
  if (header_len > kMaxHeaderBytes)
    throw fail("header length " + std::to_string(header_len) + " exceeds the 100 MiB limit (not a safetensors file?)");
  if (header_len > file_size - 8)
    throw fail("header length " + std::to_string(header_len) + " runs past the end of the " +
               std::to_string(file_size) + "-byte file (truncated?)");
  return header_len;
}

// Reads and parses the length-prefixed JSON header, leaving `in` at the first data byte.
Header read_header(const std::string& path, std::ifstream& in) {
  auto fail = [&](const std::string& msg) { return file_error(path, msg); };
  if (!in) throw fail("cannot open (" + std::string(std::strerror(errno)) + ")");
  std::error_code ec;
  const uint64_t file_size = std::filesystem::file_size(path, ec);
  if (ec) throw fail("cannot stat: " + ec.message());
  unsigned char len[8] = {0};
  if (file_size >= 8) in.read(reinterpret_cast<char*>(len), 8);
  const uint64_t header_len = checked_header_len(path, len, file_size);
  std::string json(header_len, '\0');
  in.read(json.data(), static_cast<std::streamsize>(header_len));
  if (!in) throw fail("could not read the header");
  return parse_header(path, header_len, file_size, json);
}

std::map<std::string, std::string> parse_metadata(const std::string& path, const nlohmann::ordered_json& entry) {
  std::map<std::string, std::string> out;
  if (!entry.is_object()) throw file_error(path, "__metadata__ must be an object of strings");
  for (auto m = entry.begin(); m != entry.end(); ++m) {
    if (!m.value().is_string()) throw file_error(path, "__metadata__['" + m.key() + "'] must be a string");
    out[m.key()] = m.value().get<std::string>();
  }
  return out;
}

// Every entry of a parsed header, checked against the data region's size.
SafetensorsIndex index_of(const std::string& path, const Header& h) {
  auto fail = [&](const std::string& msg) { return file_error(path, msg); };
  const auto& header = h.json;
  const uint64_t data_size = h.file_size - 8 - h.header_len;
  SafetensorsIndex out;
  out.data_start = 8 + h.header_len;
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const auto& entry = it.value();
    if (name == "__metadata__") {
      out.metadata = parse_metadata(path, entry);
      continue;
    }
    auto bad = [&](const std::string& msg) { return fail("tensor '" + name + "': " + msg); };
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") || !entry.contains("data_offsets"))
      throw bad("entry needs dtype, shape and data_offsets");
    if (!entry["dtype"].is_string()) throw bad("dtype must be a string");
    const auto dtype_str = entry["dtype"].get<std::string>();
    std::optional<torch::Dtype> dtype;
    for (const auto& [n, dt] : dtype_table())
      if (n == dtype_str) dtype = dt;
    if (!dtype) throw bad("unsupported dtype '" + dtype_str + "'");
    std::vector<int64_t> shape;
    if (!entry["shape"].is_array()) throw bad("shape must be an array");
    // Checked products: a crafted shape such as [2^62+1, 4] must not wrap around into a
    // plausible byte count.
    uint64_t numel = 1;
    bool overflow = false;
    for (const auto& s : entry["shape"]) {
      if (!s.is_number_integer() || s.get<int64_t>() < 0) throw bad("shape entries must be non-negative integers");
      shape.push_back(s.get<int64_t>());
      overflow = overflow || __builtin_mul_overflow(numel, static_cast<uint64_t>(shape.back()), &numel);
    }
    uint64_t bytes = 0;
    overflow = overflow || numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
               __builtin_mul_overflow(numel, static_cast<uint64_t>(c10::elementSize(*dtype)), &bytes);
    if (overflow) throw bad("shape " + entry["shape"].dump() + " has more elements than any file can hold");
    const auto& offs = entry["data_offsets"];
    if (!offs.is_array() || offs.size() != 2 || !offs[0].is_number_unsigned() || !offs[1].is_number_unsigned())
      throw bad("data_offsets must be [begin, end]");
    const uint64_t begin = offs[0].get<uint64_t>(), end = offs[1].get<uint64_t>();
    if (end < begin || end - begin != bytes)
      throw bad("data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + ") do not hold " +
                std::to_string(numel) + " " + dtype_str + " values");
    if (end > data_size)
      throw bad("data ends at byte " + std::to_string(end) + " but the file holds only " +
                std::to_string(data_size) + " data bytes (truncated?)");
    spans.emplace_back(begin, end);
    out.tensors.push_back({name, *dtype, std::move(shape), out.data_start + begin, bytes});
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i)
    if (spans[i].first < spans[i - 1].second) throw fail("tensor data regions overlap");
  return out;
}

}  // namespace

std::map<std::string, std::string> read_safetensors_metadata(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const Header h = read_header(path, in);
  auto it = h.json.find("__metadata__");
  return it == h.json.end() ? std::map<std::string, std::string>{} : parse_metadata(path, *it);
}

SafetensorsIndex index_safetensors(const uint8_t* data, size_t size, const std::string& path) {
  const uint64_t header_len = checked_header_len(path, data, size);
  const Header h = parse_header(path, header_len, size, std::string(reinterpret_cast<const char*>(data) + 8, header_len));
  return index_of(path, h);
}

SafetensorsFile load_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const SafetensorsIndex index = index_of(path, read_header(path, in));
  SafetensorsFile out;
  out.metadata = index.metadata;
  for (const auto& e : index.tensors) {
    // Read straight into the tensor's own storage: peak memory is the weights, not twice that.
    auto t = torch::empty(e.shape, torch::TensorOptions().dtype(e.dtype));
    in.seekg(static_cast<std::streamoff>(e.offset));
    in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(e.bytes));
    if (!in) throw file_error(path, "tensor '" + e.name + "': read failed");
    out.tensors.emplace_back(e.name, std::move(t));
  }
  return out;
}

}  // namespace aim::io
