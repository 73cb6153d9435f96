#include "aim/data/shard_list.h"

#include <glob.h>

#include <set>

#include "aim/data/shard_stream.h"
#include "aim/error.h"

namespace aim::data {
namespace {

// Splits s at top-level occurrences of sep (not inside braces).
std::vector<std::string> split_top(const std::string& s, char sep) {
  std::vector<std::string> out(1);
  int depth = 0;
  for (char c : s) {
    if (c == '{') ++depth;
    if (c == '}') --depth;
    if (c == sep && depth == 0) {
      out.emplace_back();
    } else {
      out.back() += c;
    }
  }
  return out;
}

bool all_digits(const std::string& s) {
  if (s.empty()) return false;
  size_t i = (s[0] == '-') ? 1 : 0;
  if (i == s.size()) return false;
  for (; i < s.size(); ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

std::vector<std::string> expand_group(const std::string& body, const std::string& pattern) {
  auto dots = body.find("..");
  if (dots != std::string::npos && body.find(',') == std::string::npos) {
    std::string a = body.substr(0, dots), b = body.substr(dots + 2);
    if (!all_digits(a) || !all_digits(b))
      throw Error("shard pattern '" + pattern + "': range {" + body + "} must be {INT..INT}");
    long long lo = std::stoll(a), hi = std::stoll(b);
    size_t width = a.size();  // "{00000000..00019999}" keeps eight digits
    std::vector<std::string> out;
    long long step = lo <= hi ? 1 : -1;
    if ((hi - lo) * step > 100'000'000)
      throw Error("shard pattern '" + pattern + "': range {" + body + "} is too large");
    for (long long v = lo;; v += step) {
      std::string s = std::to_string(v < 0 ? -v : v);
      if (s.size() < width - (v < 0 ? 1 : 0)) s.insert(0, width - (v < 0) - s.size(), '0');
      out.push_back((v < 0 ? "-" : "") + s);
      if (v == hi) break;
    }
    return out;
  }
  std::vector<std::string> out;
  for (const auto& alt : split_top(body, ','))
    for (auto& e : expand_braces(alt)) out.push_back(std::move(e));
  return out;
}

}  // namespace

std::vector<std::string> expand_braces(const std::string& pattern) {
  // Find the first top-level group; expand it, then recurse on each result (handles
  // several groups and nesting without a parser).
  size_t open = pattern.find('{');
  if (open == std::string::npos) {
    if (pattern.find('}') != std::string::npos)
      throw Error("shard pattern '" + pattern + "': unbalanced '}'");
    return {pattern};
  }
  int depth = 0;
  size_t close = std::string::npos;
  for (size_t i = open; i < pattern.size(); ++i) {
    if (pattern[i] == '{') ++depth;
    if (pattern[i] == '}' && --depth == 0) {
      close = i;
      break;
    }
  }
  if (close == std::string::npos) throw Error("shard pattern '" + pattern + "': unbalanced '{'");
  std::string head = pattern.substr(0, open);
  std::string body = pattern.substr(open + 1, close - open - 1);
  std::string tail = pattern.substr(close + 1);
  if (head.find('}') != std::string::npos)
    throw Error("shard pattern '" + pattern + "': unbalanced '}'");
  std::vector<std::string> out;
  auto tails = expand_braces(tail);
  for (const auto& mid : expand_group(body, pattern))
    for (const auto& t : tails) out.push_back(head + mid + t);
  return out;
}

std::vector<std::string> expand_shard_patterns(const std::vector<std::string>& patterns) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  auto add = [&](const std::string& s) {
    if (seen.insert(s).second) out.push_back(s);
  };
  for (const auto& p : patterns) {
    // "::" joins several lists (webdataset convention); it never occurs in a real path.
    size_t start = 0;
    while (start <= p.size()) {
      size_t end = p.find("::", start);
      std::string one = p.substr(start, end == std::string::npos ? std::string::npos : end - start);
      if (!one.empty()) {
        for (const auto& e : expand_braces(one)) {
          // Commands and URLs are passed on as written ('?' starts a URL's query, not a glob).
          if (is_remote_shard(e) || e.find_first_of("*?[") == std::string::npos) {
            add(e);
            continue;
          }
          glob_t g{};
          if (::glob(e.c_str(), 0, nullptr, &g) == 0)
            for (size_t i = 0; i < g.gl_pathc; ++i) add(g.gl_pathv[i]);  // glob sorts
          globfree(&g);
        }
      }
      if (end == std::string::npos) break;
      start = end + 2;
    }
  }
  return out;
}

}  // namespace aim::data
