#include "field_io.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "aim/config/run_config.h"

namespace aim::config {

size_t levenshtein(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

namespace detail {

/// The closest candidate, if it is close enough to be a plausible typo.
std::optional<std::string> closest(const std::string& bad, const std::vector<std::string>& candidates) {
  std::optional<std::string> best;
  size_t best_d = std::numeric_limits<size_t>::max();
  for (const auto& c : candidates) {
    size_t d = levenshtein(bad, c);
    if (d < best_d) best_d = d, best = c;
  }
  size_t limit = std::max<size_t>(2, bad.size() / 3);
  if (best && best_d <= limit) return best;
  return std::nullopt;
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

std::string describe(const Node& n) {
  if (!n.IsDefined() || n.IsNull()) return "nothing (null)";
  if (n.IsScalar()) return "'" + n.Scalar() + "'";
  if (n.IsSequence()) return "a list";
  return "a map";
}

[[noreturn]] void type_error(const std::string& key, const std::string& expected, const Node& n, const Ctx& c) {
  throw Error(key + ": expected " + expected + ", got " + describe(n) + " (" + c.where(key, n) + ")");
}

bool parse_double_text(std::string s, double& out) {
  s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
  if (s.empty()) return false;
  // A fraction such as 3/4 (RandomResizedCrop ratios are usually written that way).
  auto slash = s.find('/');
  if (slash != std::string::npos) {
    double num, den;
    if (!parse_double_text(s.substr(0, slash), num) || !parse_double_text(s.substr(slash + 1), den) || den == 0)
      return false;
    out = num / den;
    return true;
  }
  const char* b = s.c_str();
  char* e = nullptr;
  errno = 0;
  double v = std::strtod(b, &e);
  if (e != b + s.size() || errno == ERANGE || !std::isfinite(v)) return false;
  out = v;
  return true;
}

bool parse_int_text(std::string s, int64_t& out) {
  s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
  if (s.empty()) return false;
  const char* b = s.c_str() + (s[0] == '+' ? 1 : 0);
  auto [p, ec] = std::from_chars(b, s.c_str() + s.size(), out);
  if (ec == std::errc() && p == s.c_str() + s.size()) return true;
  // 1.2e6 and 5e5 are integers too.
  double d;
  if (s.find_first_of(".eE") != std::string::npos && parse_double_text(s, d) && std::floor(d) == d &&
      std::fabs(d) < 9.0e18) {
    out = static_cast<int64_t>(d);
    return true;
  }
  return false;
}

const Node& require_scalar(const std::string& key, const Node& n, const std::string& expected, const Ctx& c) {
  if (!n.IsScalar()) type_error(key, expected, n, c);
  return n;
}

int64_t get_int64(const std::string& key, const Node& n, const Ctx& c) {
  int64_t v;
  if (!parse_int_text(require_scalar(key, n, "an integer", c).Scalar(), v)) type_error(key, "an integer", n, c);
  return v;
}

int get_int(const std::string& key, const Node& n, const Ctx& c) {
  int64_t v = get_int64(key, n, c);
  if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max())
    type_error(key, "a 32-bit integer", n, c);
  return static_cast<int>(v);
}

uint64_t get_uint64(const std::string& key, const Node& n, const Ctx& c) {
  std::string s = require_scalar(key, n, "a non-negative integer", c).Scalar();
  s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
  uint64_t v;
  auto [p, ec] = std::from_chars(s.c_str(), s.c_str() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.c_str() + s.size()) {
    int64_t i;  // also 1e6-style
    if (!parse_int_text(s, i) || i < 0) type_error(key, "a non-negative integer", n, c);
    v = static_cast<uint64_t>(i);
  }
  return v;
}

double get_double(const std::string& key, const Node& n, const Ctx& c) {
  double v;
  if (!parse_double_text(require_scalar(key, n, "a number", c).Scalar(), v)) type_error(key, "a number", n, c);
  return v;
}

bool get_bool(const std::string& key, const Node& n, const Ctx& c) {
  std::string s = require_scalar(key, n, "true or false", c).Scalar();
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char ch) { return std::tolower(ch); });
  if (s == "true" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "no" || s == "off") return false;
  type_error(key, "true or false", n, c);
}

std::string get_string(const std::string& key, const Node& n, const Ctx& c) {
  return require_scalar(key, n, "a string", c).Scalar();
}

std::string get_choice(const std::string& key, const Node& n, const Ctx& c, const std::vector<std::string>& options) {
  std::string s = get_string(key, n, c);
  if (std::find(options.begin(), options.end(), s) != options.end()) return s;
  std::string msg = key + ": expected one of " + join(options) + "; got '" + s + "'";
  if (auto near = closest(s, options)) msg += " (did you mean '" + *near + "'?)";
  throw Error(msg + " (" + c.where(key, n) + ")");
}

std::pair<double, double> get_pair(const std::string& key, const Node& n, const Ctx& c) {
  if (!n.IsSequence() || n.size() != 2) type_error(key, "a list of two numbers [a, b]", n, c);
  return {get_double(key + "[0]", n[0], c), get_double(key + "[1]", n[1], c)};
}

std::vector<double> get_double_list(const std::string& key, const Node& n, const Ctx& c) {
  std::vector<double> out;
  if (n.IsScalar()) return {get_double(key, n, c)};
  if (!n.IsSequence()) type_error(key, "a list of numbers", n, c);
  for (size_t i = 0; i < n.size(); ++i) out.push_back(get_double(key + "[" + std::to_string(i) + "]", n[i], c));
  return out;
}

std::vector<std::string> get_string_list(const std::string& key, const Node& n, const Ctx& c) {
  if (n.IsScalar()) return {n.Scalar()};
  if (!n.IsSequence()) type_error(key, "a string or a list of strings", n, c);
  std::vector<std::string> out;
  for (size_t i = 0; i < n.size(); ++i) out.push_back(get_string(key + "[" + std::to_string(i) + "]", n[i], c));
  return out;
}

// Emission: numbers as their shortest round-trip text, strings quoted when a YAML reader
// could take them for something else.

std::string fmt_double(double v) {
  char buf[64];
  auto [p, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  std::string s(buf, p);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

bool needs_quotes(const std::string& s) {
  if (s.empty()) return true;
  std::string l = s;
  std::transform(l.begin(), l.end(), l.begin(), [](unsigned char ch) { return std::tolower(ch); });
  static const std::set<std::string> special = {"~", "null", "true", "false", "yes", "no", "on", "off", "y", "n"};
  if (special.count(l)) return true;
  double d;
  return parse_double_text(s, d);
}

void emit(YAML::Emitter& e, const std::string& s) {
  if (needs_quotes(s)) e << YAML::DoubleQuoted << s;
  else e << s;
}
void emit(YAML::Emitter& e, int64_t v) { e << std::to_string(v); }
void emit(YAML::Emitter& e, int v) { e << std::to_string(v); }
void emit(YAML::Emitter& e, uint64_t v) { e << std::to_string(v); }
void emit(YAML::Emitter& e, double v) { e << fmt_double(v); }
void emit(YAML::Emitter& e, bool v) { e << (v ? "true" : "false"); }
void emit_pair(YAML::Emitter& e, double a, double b) {
  e << YAML::Flow << YAML::BeginSeq << fmt_double(a) << fmt_double(b) << YAML::EndSeq;
}

void emit_double_list(YAML::Emitter& e, const std::vector<double>& v) {
  e << YAML::Flow << YAML::BeginSeq;
  for (double x : v) e << fmt_double(x);
  e << YAML::EndSeq;
}

}  // namespace detail
}  // namespace aim::config
