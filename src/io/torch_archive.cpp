#include "aim/io/torch_archive.h"

#include <torch/torch.h>

#include <fstream>
#include <map>
#include <optional>

#include "aim/error.h"
#include "unpickler.h"
#include "zip_archive.h"

namespace aim::io {
namespace {

using detail::PyRef;
using detail::PyValue;

// torch.<Name>Storage -> dtype (the typed storages torch.save names in its persistent ids).
std::optional<torch::Dtype> storage_dtype(const std::string& type) {
  static const std::map<std::string, torch::Dtype> table = {
      {"torch.FloatStorage", torch::kFloat32}, {"torch.DoubleStorage", torch::kFloat64},
      {"torch.HalfStorage", torch::kFloat16},  {"torch.BFloat16Storage", torch::kBFloat16},
      {"torch.LongStorage", torch::kInt64},    {"torch.IntStorage", torch::kInt32},
      {"torch.ShortStorage", torch::kInt16},   {"torch.CharStorage", torch::kInt8},
      {"torch.ByteStorage", torch::kUInt8},    {"torch.BoolStorage", torch::kBool}};
  auto it = table.find(type);
  if (it == table.end()) return std::nullopt;
  return it->second;
}

// The pre-1.6 format begins with the pickled magic number 0x1950a86a20f9469cfc6c.
bool is_legacy_format(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char b[6] = {};
  in.read(reinterpret_cast<char*>(b), 6);
  return in && b[0] == 0x80 && b[2] == 0x8a && b[3] == 0x0a && b[4] == 0x6c && b[5] == 0xfc;
}

class ArchiveReader {
 public:
  explicit ArchiveReader(const std::string& path) : path_(path), zip_(path) {
    // Every record sits under one folder named after the file it was saved as.
    for (const auto& e : zip_.entries()) {
      const auto slash = e.name.find('/');
      if (slash != std::string::npos && e.name.compare(slash, std::string::npos, "/data.pkl") == 0) {
        prefix_ = e.name.substr(0, slash + 1);
        pickle_ = &e;
      }
    }
    if (!pickle_) {
      if (zip_.find("constants.pkl") || has_suffix("/constants.pkl"))
        throw fail("a TorchScript archive (torch.jit.save), not a state dict; save the module's state_dict() "
                   "with torch.save instead");
      throw fail("a ZIP archive without data.pkl: not a torch.save file");
    }
    if (has_suffix("/constants.pkl"))
      throw fail("a TorchScript archive (torch.jit.save), not a state dict; save the module's state_dict() with "
                 "torch.save instead");
    if (const auto* order = zip_.find(prefix_ + "byteorder")) {
      const std::string bo = zip_.read_all(*order, false);
      if (bo != "little")
        throw fail("written on a '" + bo + "'-endian machine; only little-endian archives are read");
    }
  }

  PyRef read_top() {
    detail::UnpickleHooks hooks;
    hooks.persistent_load = [this](const PyRef& pid) { return storage(pid); };
    hooks.reduce = [this](const std::string& callable, const PyRef& args) { return reduce(callable, args); };
    return detail::unpickle(zip_.read_all(*pickle_, true), hooks, path_ + ":" + pickle_->name);
  }

  Error fail(const std::string& msg) const { return Error("torch.save file '" + path_ + "': " + msg); }

 private:
  bool has_suffix(const std::string& suffix) const {
    for (const auto& e : zip_.entries())
      if (e.name.size() >= suffix.size() && e.name.compare(e.name.size() - suffix.size(), suffix.size(), suffix) == 0)
        return true;
    return false;
  }

  // ('storage', torch.FloatStorage, key, location, numel) -> a flat CPU tensor of the record.
  PyRef storage(const PyRef& pid) {
    if (pid->kind != PyValue::kTuple || pid->items.size() < 5 || pid->items[0]->kind != PyValue::kStr ||
        pid->items[0]->s != "storage")
      throw fail("a persistent id that is not a storage (" + pid->describe() + ")");
    const auto& type = pid->items[1];
    const auto& key = pid->items[2];
    const auto& numel = pid->items[4];
    if (type->kind != PyValue::kGlobal || key->kind != PyValue::kStr || numel->kind != PyValue::kInt || numel->i < 0)
      throw fail("a malformed storage reference");
    auto cached = storages_.find(key->s);
    if (cached != storages_.end()) return cached->second;
    const auto dtype = storage_dtype(type->s);
    if (!dtype)
      throw fail("storage " + key->s + " has type " + type->s +
                 ", which is not read (float32/64, float16, bfloat16, int8/16/32/64, uint8, bool are)");
    const std::string record = prefix_ + "data/" + key->s;
    const auto* e = zip_.find(record);
    if (!e) throw fail("storage record '" + record + "' is missing");
    const uint64_t bytes = static_cast<uint64_t>(numel->i) * c10::elementSize(*dtype);
    if (e->size != bytes)
      throw fail("storage record '" + record + "' holds " + std::to_string(e->size) + " bytes, but " +
                 std::to_string(numel->i) + " " + type->s + " values need " + std::to_string(bytes));
    auto t = torch::empty({numel->i}, torch::TensorOptions().dtype(*dtype));
    zip_.read(*e, 0, t.data_ptr(), bytes);
    auto v = PyValue::make(PyValue::kTensor);
    v->tensor = t;
    storages_[key->s] = v;
    return v;
  }

  std::vector<int64_t> ints(const PyRef& tuple, const std::string& what) {
    if (tuple->kind != PyValue::kTuple) throw fail(what + " is " + tuple->describe() + ", expected a tuple");
    std::vector<int64_t> out;
    for (const auto& x : tuple->items) {
      if (x->kind != PyValue::kInt) throw fail(what + " holds " + x->describe());
      out.push_back(x->i);
    }
    return out;
  }

  // _rebuild_tensor(_v2)(storage, offset, size, stride, ...): a view of the storage, with its
  // extent checked against the storage so a crafted file cannot read outside it.
  PyRef rebuild_tensor(const PyRef& args) {
    if (args->kind != PyValue::kTuple || args->items.size() < 4 || args->items[0]->kind != PyValue::kTensor ||
        args->items[1]->kind != PyValue::kInt)
      throw fail("a tensor rebuilt from something other than (storage, offset, size, stride)");
    const torch::Tensor& storage = args->items[0]->tensor;
    const int64_t offset = args->items[1]->i;
    const auto size = ints(args->items[2], "a tensor's size"), stride = ints(args->items[3], "a tensor's stride");
    if (size.size() != stride.size()) throw fail("a tensor's size and stride differ in length");
    int64_t last = offset, numel = 1;
    for (size_t i = 0; i < size.size(); ++i) {
      if (size[i] < 0 || stride[i] < 0) throw fail("a tensor with a negative size or stride");
      numel *= size[i];
      last += (size[i] - 1) * stride[i];
    }
    if (offset < 0 || (numel > 0 && last >= storage.numel()))
      throw fail("a tensor reaches element " + std::to_string(last) + " of a storage of " +
                 std::to_string(storage.numel()));
    auto v = PyValue::make(PyValue::kTensor);
    v->tensor = numel == 0 ? torch::empty(size, storage.options()) : storage.as_strided(size, stride, offset);
    return v;
  }

  PyRef reduce(const std::string& callable, const PyRef& args) {
    if (callable == "collections.OrderedDict") return PyValue::make(PyValue::kDict);
    if (callable == "torch._utils._rebuild_tensor_v2" || callable == "torch._utils._rebuild_tensor")
      return rebuild_tensor(args);
    if (callable == "torch._utils._rebuild_parameter" || callable == "torch._utils._rebuild_parameter_with_state") {
      if (args->kind != PyValue::kTuple || args->items.empty() || args->items[0]->kind != PyValue::kTensor)
        throw fail("a parameter rebuilt from something other than a tensor");
      return args->items[0];
    }
    if (callable == "torch._tensor._rebuild_from_type_v2") {  // (func, type, args, state): a tensor subclass
      if (args->kind != PyValue::kTuple || args->items.size() < 3 || args->items[0]->kind != PyValue::kGlobal)
        throw fail("a malformed _rebuild_from_type_v2");
      if (PyRef v = reduce(args->items[0]->s, args->items[2])) return v;
    }
    if (callable.rfind("torch._utils._rebuild_", 0) == 0 || callable.rfind("torch._tensor._rebuild_", 0) == 0)
      throw fail("holds a tensor rebuilt by " + callable +
                 " (quantized, sparse or another special tensor); only dense tensors are read");
    return nullptr;  // anything else stays an inert object
  }

  std::string path_;
  detail::ZipArchive zip_;
  std::string prefix_;
  const detail::ZipEntry* pickle_ = nullptr;
  std::map<std::string, PyRef> storages_;
};

// A dict whose keys are strs and whose values are all tensors.
bool is_state_dict(const PyRef& v) {
  if (v->kind != PyValue::kDict || v->dict.empty()) return false;
  for (const auto& [k, t] : v->dict)
    if (k->kind != PyValue::kStr || t->kind != PyValue::kTensor) return false;
  return true;
}

std::string keys_of(const PyRef& dict) {
  std::string out;
  size_t n = 0;
  for (const auto& [k, v] : dict->dict) {
    if (++n > 12) return out + ", ...";
    out += (out.empty() ? "" : ", ") + (k->kind == PyValue::kStr ? "'" + k->s + "'" : k->describe()) + ": " +
           v->describe();
  }
  return out;
}

}  // namespace

bool looks_like_torch_save(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char b[4] = {};
  in.read(b, 4);
  return (in && b[0] == 'P' && b[1] == 'K' && b[2] == 3 && b[3] == 4) || is_legacy_format(path);
}

TorchStateDict load_torch_state_dict(const std::string& path) {
  if (is_legacy_format(path))
    throw Error("torch.save file '" + path + "': the pre-1.6 (non-ZIP) format, which is not read; save it again "
                "with a current PyTorch (torch.save(torch.load(f), f2)) and read the new file");
  ArchiveReader reader(path);
  const PyRef top = reader.read_top();
  TorchStateDict out;
  PyRef sd;
  if (is_state_dict(top)) {
    sd = top;
  } else if (top->kind == PyValue::kDict) {
    for (const char* key : {"model", "state_dict", "model_state_dict", "module"})
      for (const auto& [k, v] : top->dict)
        if (!sd && k->kind == PyValue::kStr && k->s == key && is_state_dict(v)) {
          sd = v;
          out.location = key;
        }
    if (!sd)
      throw reader.fail("holds a dict {" + keys_of(top) + "} with no state dict (a dict of tensors) at the top "
                        "or under 'model', 'state_dict', 'model_state_dict' or 'module'");
  } else {
    throw reader.fail("holds " + top->describe() + ", not a state dict (a dict of tensors)");
  }
  bool ddp = true;
  for (const auto& [k, v] : sd->dict) ddp = ddp && k->s.rfind("module.", 0) == 0;
  for (const auto& [k, v] : sd->dict) out.tensors.emplace_back(ddp ? k->s.substr(7) : k->s, v->tensor);
  return out;
}

}  // namespace aim::io
