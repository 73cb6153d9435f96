#include "aim/data/shard_list.h"

#include <glob.h>

#include <cctype>
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

bool has_space(const std::string& s) {
  for (unsigned char c : s)
    if (std::isspace(c)) return true;
  return false;
}

std::vector<std::string> expand_range(const std::string& a, const std::string& b, const std::string& body,
                                      const std::string& pattern) {
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

// What a group expands to: true with `items` for a range or a list of alternatives (each may
// hold groups of its own); false when the braces are not brace expansion and stay as written.
bool group_items(const std::string& body, const std::string& pattern, bool strict, std::vector<std::string>& items) {
  if (has_space(body)) return false;  // "{ cat X; }": shell code, not a list
  auto alternatives = split_top(body, ',');
  if (alternatives.size() > 1) {
    items = std::move(alternatives);
    return true;
  }
  const auto dots = body.find("..");
  if (dots == std::string::npos) return false;  // "{}", "{DIR}", "{print}"
  const std::string a = body.substr(0, dots), b = body.substr(dots + 2);
  if (!all_digits(a) || !all_digits(b)) {
    if (!strict) return false;
    throw Error("shard pattern '" + pattern + "': range {" + body + "} must be {INT..INT}");
  }
  items = expand_range(a, b, body, pattern);
  return true;
}

void check_balanced(const std::string& pattern) {
  int depth = 0;
  for (char c : pattern) {
    if (c == '{') ++depth;
    if (c == '}' && --depth < 0) throw Error("shard pattern '" + pattern + "': unbalanced '}'");
  }
  if (depth != 0) throw Error("shard pattern '" + pattern + "': unbalanced '{'");
}

size_t matching_close(const std::string& p, size_t open) {
  int depth = 0;
  for (size_t i = open; i < p.size(); ++i) {
    if (p[i] == '{') ++depth;
    if (p[i] == '}' && --depth == 0) return i;
  }
  return std::string::npos;
}

// Expands the first group that is brace expansion (groups before it stay as written), then
// recurses on its items and on the rest: several groups and nesting without a parser.
std::vector<std::string> expand(const std::string& p, const std::string& pattern, bool strict) {
  for (size_t open = p.find('{'); open != std::string::npos; open = p.find('{', open + 1)) {
    const size_t close = matching_close(p, open);
    if (close == std::string::npos) break;  // unbalanced inside a command: the shell's business
    std::vector<std::string> items;
    if (!group_items(p.substr(open + 1, close - open - 1), pattern, strict, items)) continue;
    const std::string head = p.substr(0, open);
    const auto tails = expand(p.substr(close + 1), pattern, strict);
    std::vector<std::string> out;
    for (const auto& item : items)
      for (const auto& mid : expand(item, pattern, strict))
        for (const auto& t : tails) out.push_back(head + mid + t);
    return out;
  }
  return {p};
}

}  // namespace

std::vector<std::string> expand_braces(const std::string& pattern) {
  const bool strict = shard_location(pattern) != ShardLocation::kPipe;
  if (strict) check_balanced(pattern);
  return expand(pattern, pattern, strict);
}

std::vector<std::string> split_shard_lists(const std::string& p) {
  std::vector<std::string> out(1);
  int braces = 0, brackets = 0;
  char quote = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (quote) {
      if (c == quote) quote = 0;
    } else if (c == '\'' || c == '"') {
      quote = c;
    } else if (c == '{') {
      ++braces;
    } else if (c == '}') {
      --braces;
    } else if (c == '[') {
      ++brackets;
    } else if (c == ']') {
      --brackets;
    } else if (c == ':' && i + 1 < p.size() && p[i + 1] == ':' && braces == 0 && brackets == 0) {
      out.emplace_back();
      ++i;
      continue;
    }
    out.back() += c;
  }
  return out;
}

std::vector<std::string> expand_shard_patterns(const std::vector<std::string>& patterns) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  auto add = [&](const std::string& s) {
    if (seen.insert(s).second) out.push_back(s);
  };
  for (const auto& p : patterns) {
    for (const auto& one : split_shard_lists(p)) {
      if (one.empty()) continue;
      for (const auto& e : expand_braces(one)) {
        // Commands and URLs are passed on as written ('?' starts a URL's query, not a glob).
        if (is_remote_shard(e) || e.find_first_of("*?[") == std::string::npos) {
          add(e);
          continue;
        }
        glob_t g{};
        if (::glob(e.c_str(), 0, nullptr, &g) == 0)
          for (size_t i = 0; i < g.gl_pathc; ++i) {  // glob sorts
            const std::string found = g.gl_pathv[i];
            // Found on disk, so a file: "./" keeps "pipe:..." or "http:..." from reading as one.
            add(is_remote_shard(found) ? "./" + found : found);
          }
        globfree(&g);
      }
    }
  }
  return out;
}

}  // namespace aim::data
