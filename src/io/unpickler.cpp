#include "unpickler.h"

#include <cstring>
#include <unordered_map>

#include "aim/error.h"

namespace aim::io::detail {

std::string PyValue::describe() const {
  switch (kind) {
    case kNone: return "None";
    case kBool: return "a bool";
    case kInt: return "an int";
    case kFloat: return "a float";
    case kStr: return "a str";
    case kBytes: return "bytes";
    case kTuple: return "a tuple";
    case kList: return "a list";
    case kDict: return "a dict";
    case kGlobal: return "the name " + s;
    case kObject: return "a " + s + " object";
    case kTensor: return "a tensor";
  }
  return "?";
}

namespace {

class Machine {
 public:
  Machine(const std::string& bytes, const UnpickleHooks& hooks, const std::string& where)
      : p_(bytes), hooks_(hooks), where_(where) {}

  PyRef run() {
    for (;;) {
      op_at_ = pos_;
      const unsigned char op = byte();
      switch (op) {
        case 0x80: byte(); break;                       // PROTO
        case 0x95: take(8); break;                      // FRAME (a length hint)
        case '.': {                                     // STOP
          if (stack_.empty()) throw fail("STOP with an empty stack");
          return stack_.back();
        }
        case '(': marks_.push_back(stack_.size()); break;  // MARK
        case ')': push(PyValue::make(PyValue::kTuple)); break;
        case ']': push(PyValue::make(PyValue::kList)); break;
        case '}': push(PyValue::make(PyValue::kDict)); break;
        case 0x8f: push(PyValue::make(PyValue::kList)); break;  // EMPTY_SET: kept as a list
        case 'N': push(PyValue::make(PyValue::kNone)); break;
        case 0x88: push(boolean(true)); break;
        case 0x89: push(boolean(false)); break;
        case 'K': push(integer(static_cast<int64_t>(uint_le(1)))); break;
        case 'M': push(integer(static_cast<int64_t>(uint_le(2)))); break;
        case 'J': push(integer(static_cast<int32_t>(uint_le(4)))); break;
        case 0x8a: push(integer(long_le(uint_le(1)))); break;   // LONG1
        case 0x8b: push(integer(long_le(uint_le(4)))); break;   // LONG4
        case 'G': {                                              // BINFLOAT, big-endian
          uint64_t bits = 0;
          for (int i = 0; i < 8; ++i) bits = (bits << 8) | byte();
          auto v = PyValue::make(PyValue::kFloat);
          std::memcpy(&v->f, &bits, 8);
          push(v);
          break;
        }
        case 'X': push(text(PyValue::kStr, uint_le(4))); break;      // BINUNICODE
        case 0x8c: push(text(PyValue::kStr, uint_le(1))); break;     // SHORT_BINUNICODE
        case 0x8d: push(text(PyValue::kStr, uint_le(8))); break;     // BINUNICODE8
        case 'T': push(text(PyValue::kStr, uint_le(4))); break;      // BINSTRING (Python 2 str)
        case 'U': push(text(PyValue::kStr, uint_le(1))); break;      // SHORT_BINSTRING
        case 'B': push(text(PyValue::kBytes, uint_le(4))); break;    // BINBYTES
        case 'C': push(text(PyValue::kBytes, uint_le(1))); break;    // SHORT_BINBYTES
        case 0x8e: push(text(PyValue::kBytes, uint_le(8))); break;   // BINBYTES8
        case 0x96: push(text(PyValue::kBytes, uint_le(8))); break;   // BYTEARRAY8
        case 't': {
          auto v = PyValue::make(PyValue::kTuple);
          v->items = pop_mark();
          push(v);
          break;
        }
        case 0x85: case 0x86: case 0x87: {  // TUPLE1..3
          const size_t n = op - 0x84;
          if (stack_.size() < n) throw fail("TUPLE" + std::to_string(n) + " on a short stack");
          auto v = PyValue::make(PyValue::kTuple);
          v->items.assign(stack_.end() - n, stack_.end());
          stack_.resize(stack_.size() - n);
          push(v);
          break;
        }
        case 'l': case 0x91: {  // LIST, FROZENSET
          auto v = PyValue::make(PyValue::kList);
          v->items = pop_mark();
          push(v);
          break;
        }
        case 'd': {
          auto v = PyValue::make(PyValue::kDict);
          auto items = pop_mark();
          if (items.size() % 2) throw fail("DICT with an odd number of items");
          for (size_t i = 0; i < items.size(); i += 2) v->dict.emplace_back(items[i], items[i + 1]);
          push(v);
          break;
        }
        case 'a': {  // APPEND
          auto item = pop();
          append(top(), {item});
          break;
        }
        case 'e': case 0x90: {  // APPENDS, ADDITEMS
          auto items = pop_mark();
          append(top(), items);
          break;
        }
        case 's': {  // SETITEM
          auto value = pop(), key = pop();
          setitems(top(), {key, value});
          break;
        }
        case 'u': {  // SETITEMS
          auto items = pop_mark();
          if (items.size() % 2) throw fail("SETITEMS with an odd number of items");
          setitems(top(), items);
          break;
        }
        case 'q': memo_[uint_le(1)] = top(); break;
        case 'r': memo_[uint_le(4)] = top(); break;
        case 0x94: memo_[memo_.size()] = top(); break;  // MEMOIZE
        case 'h': push(memo(uint_le(1))); break;
        case 'j': push(memo(uint_le(4))); break;
        case 'c': {  // GLOBAL "module\nname\n"
          const std::string module = line(), name = line();
          push(global(module + "." + name));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          auto name = pop(), module = pop();
          if (module->kind != PyValue::kStr || name->kind != PyValue::kStr) throw fail("STACK_GLOBAL needs two strs");
          push(global(module->s + "." + name->s));
          break;
        }
        case 'R': {  // REDUCE
          auto args = pop(), callable = pop();
          push(reduce(callable, args));
          break;
        }
        case 0x81: {  // NEWOBJ
          auto args = pop(), cls = pop();
          push(object(cls, args));
          break;
        }
        case 0x92: {  // NEWOBJ_EX
          pop();  // kwargs
          auto args = pop(), cls = pop();
          push(object(cls, args));
          break;
        }
        case 'b': pop(); break;  // BUILD: object state (e.g. a state dict's _metadata) is not needed
        case 'Q': {              // BINPERSID
          auto pid = pop();
          if (!hooks_.persistent_load) throw fail("persistent id without a loader");
          push(hooks_.persistent_load(pid));
          break;
        }
        case '0': pop(); break;  // POP
        case '2': push(top()); break;  // DUP
        case '1': pop_mark(); break;  // POP_MARK
        default: {
          char hex[8];
          std::snprintf(hex, sizeof hex, "0x%02x", op);
          throw fail(std::string("unsupported pickle opcode ") + hex);
        }
      }
    }
  }

 private:
  Error fail(const std::string& msg) const {
    return Error("'" + where_ + "': " + msg + " at byte " + std::to_string(op_at_) +
                 " of the pickle (damaged, or not a state dict written by torch.save)");
  }
  unsigned char byte() {
    if (pos_ >= p_.size()) throw fail("the pickle ends early");
    return static_cast<unsigned char>(p_[pos_++]);
  }
  std::string take(uint64_t n) {
    if (n > p_.size() - pos_) throw fail("the pickle ends early");
    std::string s = p_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  uint64_t uint_le(int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(byte()) << (8 * i);
    return v;
  }
  int64_t long_le(uint64_t n) {  // two's complement, little-endian, n bytes
    if (n > 8) throw fail("an integer of " + std::to_string(n) + " bytes does not fit 64 bits");
    const std::string b = take(n);
    uint64_t v = 0;
    for (uint64_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(b[i])) << (8 * i);
    if (n > 0 && n < 8 && (static_cast<unsigned char>(b[n - 1]) & 0x80)) v |= ~uint64_t{0} << (8 * n);
    return static_cast<int64_t>(v);
  }
  std::string line() {
    const size_t end = p_.find('\n', pos_);
    if (end == std::string::npos) throw fail("GLOBAL without its newline");
    std::string s = p_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return s;
  }
  PyRef text(PyValue::Kind kind, uint64_t n) {
    auto v = PyValue::make(kind);
    v->s = take(n);
    return v;
  }
  static PyRef boolean(bool b) {
    auto v = PyValue::make(PyValue::kBool);
    v->b = b;
    return v;
  }
  static PyRef integer(int64_t i) {
    auto v = PyValue::make(PyValue::kInt);
    v->i = i;
    return v;
  }
  static PyRef global(const std::string& name) {
    auto v = PyValue::make(PyValue::kGlobal);
    v->s = name;
    return v;
  }
  PyRef object(const PyRef& cls, const PyRef& args) {
    auto v = PyValue::make(PyValue::kObject);
    v->s = cls->kind == PyValue::kGlobal ? cls->s : "?";
    if (args->kind == PyValue::kTuple) v->items = args->items;
    return v;
  }
  PyRef reduce(const PyRef& callable, const PyRef& args) {
    if (callable->kind == PyValue::kGlobal && hooks_.reduce)
      if (PyRef v = hooks_.reduce(callable->s, args)) return v;
    return object(callable, args);
  }
  void push(PyRef v) { stack_.push_back(std::move(v)); }
  PyRef pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) throw fail("pop from an empty stack");
    PyRef v = stack_.back();
    stack_.pop_back();
    return v;
  }
  PyRef& top() {
    if (stack_.empty()) throw fail("an empty stack");
    return stack_.back();
  }
  std::vector<PyRef> pop_mark() {
    if (marks_.empty()) throw fail("no MARK to pop to");
    const size_t m = marks_.back();
    marks_.pop_back();
    if (m > stack_.size()) throw fail("a MARK above the stack");
    std::vector<PyRef> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  PyRef memo(uint64_t key) {
    auto it = memo_.find(key);
    if (it == memo_.end()) throw fail("memo key " + std::to_string(key) + " was never stored");
    return it->second;
  }
  void append(const PyRef& list, const std::vector<PyRef>& items) {
    if (list->kind == PyValue::kList) {
      list->items.insert(list->items.end(), items.begin(), items.end());
    } else if (list->kind != PyValue::kObject) {  // an object's own list (e.g. a deque) is not needed
      throw fail("APPEND to " + list->describe());
    }
  }
  void setitems(const PyRef& dict, const std::vector<PyRef>& items) {
    if (dict->kind == PyValue::kObject) return;  // a dict subclass we do not know: its items are not needed
    if (dict->kind != PyValue::kDict) throw fail("SETITEM on " + dict->describe());
    for (size_t i = 0; i + 1 < items.size(); i += 2) {
      bool replaced = false;
      if (items[i]->kind == PyValue::kStr)
        for (auto& [k, v] : dict->dict)
          if (k->kind == PyValue::kStr && k->s == items[i]->s) v = items[i + 1], replaced = true;
      if (!replaced) dict->dict.emplace_back(items[i], items[i + 1]);
    }
  }

  const std::string& p_;
  const UnpickleHooks& hooks_;
  std::string where_;
  size_t pos_ = 0, op_at_ = 0;
  std::vector<PyRef> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, PyRef> memo_;
};

}  // namespace

PyRef unpickle(const std::string& bytes, const UnpickleHooks& hooks, const std::string& where) {
  return Machine(bytes, hooks, where).run();
}

}  // namespace aim::io::detail
