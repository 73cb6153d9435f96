#pragma once
// A data-only reader of Python pickles (protocols 2 to 5), enough for the data.pkl of a
// torch.save archive. Nothing is ever executed: GLOBAL yields a name, REDUCE / NEWOBJ build
// an inert object that records its class and arguments unless the caller's `reduce` hook
// recognizes the callable (OrderedDict, torch's tensor rebuild functions). Internal to src/io.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

namespace aim::io::detail {

struct PyValue;
using PyRef = std::shared_ptr<PyValue>;

struct PyValue {
  enum Kind { kNone, kBool, kInt, kFloat, kStr, kBytes, kTuple, kList, kDict, kGlobal, kObject, kTensor };
  Kind kind = kNone;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;                                // kStr, kBytes; kGlobal and kObject: "module.name"
  std::vector<PyRef> items;                     // kTuple, kList; kObject: the constructor's arguments
  std::vector<std::pair<PyRef, PyRef>> dict;    // kDict, in insertion order
  torch::Tensor tensor;                         // kTensor

  static PyRef make(Kind k) {
    auto v = std::make_shared<PyValue>();
    v->kind = k;
    return v;
  }
  /// "an int", "a str", "collections.OrderedDict", ... for messages.
  std::string describe() const;
};

struct UnpickleHooks {
  /// BINPERSID: the persistent id (torch: ('storage', type, key, location, numel)) -> value.
  std::function<PyRef(const PyRef& pid)> persistent_load;
  /// REDUCE with a kGlobal callable: a value, or nullptr to build an inert kObject.
  std::function<PyRef(const std::string& callable, const PyRef& args)> reduce;
};

/// Runs the pickle in `bytes` and returns its top object. Throws aim::Error naming `where`
/// and the byte offset on a malformed or truncated stream or an unsupported opcode.
PyRef unpickle(const std::string& bytes, const UnpickleHooks& hooks, const std::string& where);

}  // namespace aim::io::detail
