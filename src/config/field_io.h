#pragma once
// The generic YAML machinery behind every config section: where a value came from (for
// error messages), typed scalar readers with did-you-mean, canonical emission, and Field<T>,
// one YAML key of a section with its reader and writer.
// Internal to src/config: not part of the public API (include/aim/config/run_config.h).
#include <yaml-cpp/yaml.h>

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "aim/error.h"

namespace aim::config::detail {

using YAML::Node;

// ------------------------------------------------------------------------------------------
// Suggestions

/// The closest candidate, if it is close enough to be a plausible typo.
std::optional<std::string> closest(const std::string& bad, const std::vector<std::string>& candidates);
std::string join(const std::vector<std::string>& v, const std::string& sep = ", ");

// ------------------------------------------------------------------------------------------
// Where a value came from, for error messages.

struct Ctx {
  std::string origin;                             // the file (or "<string>")
  std::map<std::string, std::string> overridden;  // display path -> "key=value"

  /// The override that set `key` (or a section above it), if any.
  const std::string* override_for(const std::string& key) const {
    const std::string* best = nullptr;
    size_t best_len = 0;
    for (const auto& [p, text] : overridden) {
      bool match = key == p || (key.size() > p.size() && key.compare(0, p.size(), p) == 0 &&
                                (key[p.size()] == '.' || key[p.size()] == '['));
      if (match && p.size() >= best_len) best = &text, best_len = p.size();
    }
    return best;
  }

  std::string where(const std::string& key, const Node& n) const {
    if (const std::string* o = override_for(key)) return "override '" + *o + "'";
    if (n.IsDefined() && !n.Mark().is_null()) return origin + ":" + std::to_string(n.Mark().line + 1);
    return origin;
  }
};

std::string describe(const Node& n);
[[noreturn]] void type_error(const std::string& key, const std::string& expected, const Node& n, const Ctx& c);

// ------------------------------------------------------------------------------------------
// Scalars (underscores allowed, 1e6-style integers, fractions such as 3/4)

bool parse_double_text(std::string s, double& out);
bool parse_int_text(std::string s, int64_t& out);
int64_t get_int64(const std::string& key, const Node& n, const Ctx& c);
int get_int(const std::string& key, const Node& n, const Ctx& c);
uint64_t get_uint64(const std::string& key, const Node& n, const Ctx& c);
double get_double(const std::string& key, const Node& n, const Ctx& c);
bool get_bool(const std::string& key, const Node& n, const Ctx& c);
std::string get_string(const std::string& key, const Node& n, const Ctx& c);
std::string get_choice(const std::string& key, const Node& n, const Ctx& c, const std::vector<std::string>& options);
std::pair<double, double> get_pair(const std::string& key, const Node& n, const Ctx& c);
std::vector<double> get_double_list(const std::string& key, const Node& n, const Ctx& c);
std::vector<std::string> get_string_list(const std::string& key, const Node& n, const Ctx& c);

// ------------------------------------------------------------------------------------------
// Emission: numbers as their shortest round-trip text, strings quoted when a YAML reader
// could take them for something else.

std::string fmt_double(double v);
void emit(YAML::Emitter& e, const std::string& s);
void emit(YAML::Emitter& e, int64_t v);
void emit(YAML::Emitter& e, int v);
void emit(YAML::Emitter& e, uint64_t v);
void emit(YAML::Emitter& e, double v);
void emit(YAML::Emitter& e, bool v);
void emit_pair(YAML::Emitter& e, double a, double b);
void emit_double_list(YAML::Emitter& e, const std::vector<double>& v);

template <class V>
V get_as(const std::string& key, const Node& n, const Ctx& c);
template <> inline int64_t get_as<int64_t>(const std::string& k, const Node& n, const Ctx& c) { return get_int64(k, n, c); }
template <> inline int get_as<int>(const std::string& k, const Node& n, const Ctx& c) { return get_int(k, n, c); }
template <> inline uint64_t get_as<uint64_t>(const std::string& k, const Node& n, const Ctx& c) { return get_uint64(k, n, c); }
template <> inline double get_as<double>(const std::string& k, const Node& n, const Ctx& c) { return get_double(k, n, c); }
template <> inline bool get_as<bool>(const std::string& k, const Node& n, const Ctx& c) { return get_bool(k, n, c); }
template <> inline std::string get_as<std::string>(const std::string& k, const Node& n, const Ctx& c) { return get_string(k, n, c); }

// ------------------------------------------------------------------------------------------
// Key tables: one entry per YAML key of a section, with its reader and writer.

template <class T>
struct Field {
  std::string name;
  std::function<void(T&, const Node&, const std::string& key, const Ctx&)> read;
  std::function<void(YAML::Emitter&, const T&)> write;
};

template <class T, class V>
Field<T> plain(const char* name, V T::*m) {
  return {name, [m](T& t, const Node& n, const std::string& k, const Ctx& c) { t.*m = get_as<V>(k, n, c); },
          [m](YAML::Emitter& e, const T& t) { emit(e, t.*m); }};
}

template <class T>
Field<T> choice(const char* name, std::string T::*m, std::vector<std::string> options) {
  return {name,
          [m, options](T& t, const Node& n, const std::string& k, const Ctx& c) { t.*m = get_choice(k, n, c, options); },
          [m](YAML::Emitter& e, const T& t) { emit(e, t.*m); }};
}

template <class T>
Field<T> pair(const char* name, double T::*a, double T::*b) {
  return {name,
          [a, b](T& t, const Node& n, const std::string& k, const Ctx& c) {
            std::tie(t.*a, t.*b) = get_pair(k, n, c);
          },
          [a, b](YAML::Emitter& e, const T& t) { emit_pair(e, t.*a, t.*b); }};
}

template <class T>
std::vector<std::string> names_of(const std::vector<Field<T>>& fields) {
  std::vector<std::string> out;
  for (const auto& f : fields) out.push_back(f.name);
  return out;
}

template <class T>
const Field<T>* find_field(const std::vector<Field<T>>& fields, const std::string& name) {
  for (const auto& f : fields)
    if (f.name == name) return &f;
  return nullptr;
}

template <class T>
void read_section(T& t, const Node& n, const std::vector<Field<T>>& fields, const std::string& prefix,
                  const Ctx& c, const std::set<std::string>& skip = {}) {
  if (!n.IsDefined() || n.IsNull()) return;
  for (const auto& f : fields) {
    if (!f.read || skip.count(f.name)) continue;
    Node v = n[f.name];
    if (v.IsDefined()) f.read(t, v, prefix + "." + f.name, c);
  }
}

template <class T>
std::string emit_field(const Field<T>& f, const T& t) {
  YAML::Emitter e;
  f.write(e, t);
  return e.c_str();
}

// ------------------------------------------------------------------------------------------
// Validation helpers

[[noreturn]] inline void fail(const std::string& key, const std::string& msg) { throw Error(key + ": " + msg); }

inline std::string num(double v) { return fmt_double(v); }
inline std::string num(int64_t v) { return std::to_string(v); }

inline std::string expect_one_of(const std::string& got, const std::vector<std::string>& options) {
  std::string msg = "expected one of " + join(options) + "; got '" + got + "'";
  if (auto near = closest(got, options)) msg += " (did you mean '" + *near + "'?)";
  return msg;
}

inline void check_prob(const std::string& key, double v) {
  if (!(v >= 0 && v <= 1)) fail(key, "must be a probability in [0, 1], got " + num(v));
}


}  // namespace aim::config::detail
