// The shape of the YAML tree, derived from the sections' key tables: unknown-key checks
// with did-you-mean, config_keys(), and key=value overrides by dotted path.
#include "sections.h"

#include <algorithm>
#include <cctype>

namespace aim::config {
namespace detail {

struct Schema {
  enum Kind { kLeaf, kMap, kList } kind = kLeaf;
  std::vector<std::pair<std::string, const Schema*>> children;  // kMap
  const Schema* item = nullptr;                                  // kList
  bool nullable = false;                                         // a map that may be null

  const Schema* child(const std::string& k) const {
    for (const auto& [name, s] : children)
      if (name == k) return s;
    return nullptr;
  }
  std::vector<std::string> keys() const {
    std::vector<std::string> out;
    for (const auto& c : children) out.push_back(c.first);
    return out;
  }
};

const Schema& root_schema() {
  static const Schema leaf;
  static const auto map_of = [](const std::vector<std::string>& names) {
    Schema s;
    s.kind = Schema::kMap;
    for (const auto& n : names) s.children.push_back({n, &leaf});
    return s;
  };
  static const Schema model = map_of(names_of(model_fields()));
  static const Schema source = map_of(names_of(source_fields()));
  static const Schema val = [] {
    Schema s = source;
    s.nullable = true;
    return s;
  }();
  static const Schema sources = [] {
    Schema s;
    s.kind = Schema::kList;
    s.item = &source;
    return s;
  }();
  static const Schema augment = map_of(names_of(augment_fields()));
  static const Schema data = [] {
    Schema s = map_of(names_of(data_fields()));
    for (auto& [name, child] : s.children) {
      if (name == "sources") child = &sources;
      if (name == "val") child = &val;
      if (name == "augment") child = &augment;
    }
    return s;
  }();
  static const Schema optim = map_of(names_of(optim_fields()));
  static const Schema train = map_of(names_of(train_fields()));
  static const Schema knn = map_of(names_of(knn_fields()));
  static const Schema probe = [] {
    Schema s = map_of(names_of(probe_fields()));
    for (auto& [name, child] : s.children) {
      if (name == "train" || name == "val") child = &val;
      if (name == "knn") child = &knn;
    }
    return s;
  }();
  static const Schema root = [] {
    Schema s;
    s.kind = Schema::kMap;
    s.children = {{"model", &model}, {"data", &data}, {"optim", &optim}, {"train", &train}, {"probe", &probe}};
    return s;
  }();
  return root;
}

namespace {

void collect_keys(const Schema& s, const std::string& prefix, std::vector<std::string>& out) {
  if (s.kind == Schema::kLeaf) {
    out.push_back(prefix);
  } else if (s.kind == Schema::kList) {
    collect_keys(*s.item, prefix + "[]", out);
  } else {
    if (s.nullable) out.push_back(prefix);
    for (const auto& [name, c] : s.children) collect_keys(*c, prefix.empty() ? name : prefix + "." + name, out);
  }
}

std::string join_key(const std::string& prefix, const std::string& k) { return prefix.empty() ? k : prefix + "." + k; }

[[noreturn]] void unknown_key(const std::string& prefix, const std::string& key, const Schema& section,
                              const std::string& where) {
  std::string full = join_key(prefix, key);
  std::string msg = "unknown key '" + full + "' in " + where;
  // The right key in the wrong section (train.lr for optim.lr) beats a near miss here.
  std::vector<std::string> elsewhere;
  for (const auto& k : config_keys()) {
    auto dot = k.find_last_of('.');
    if (k.substr(dot == std::string::npos ? 0 : dot + 1) == key) elsewhere.push_back(k);
  }
  if (!elsewhere.empty())
    msg += "; did you mean '" + elsewhere.front() + "'?";
  else if (auto near = closest(key, section.keys()))
    msg += "; did you mean '" + join_key(prefix, *near) + "'?";
  else
    msg += "; valid keys" + std::string(prefix.empty() ? "" : " of '" + prefix + "'") + ": " + join(section.keys());
  throw Error(msg);
}

void check_keys_in(const Node& n, const Schema& s, const std::string& path, const Ctx& c) {
  if (s.kind == Schema::kLeaf || !n.IsDefined() || n.IsNull()) return;
  if (s.kind == Schema::kList) {
    if (!n.IsSequence()) type_error(path, "a list", n, c);
    for (size_t i = 0; i < n.size(); ++i) check_keys_in(n[i], *s.item, path + "[" + std::to_string(i) + "]", c);
    return;
  }
  if (!n.IsMap()) type_error(path.empty() ? "config" : path, "a map of keys", n, c);
  for (auto it = n.begin(); it != n.end(); ++it) {
    std::string key = it->first.IsScalar() ? it->first.Scalar() : "?";
    const Schema* child = s.child(key);
    if (!child) unknown_key(path, key, s, c.where(join_key(path, key), it->first));
    check_keys_in(it->second, *child, join_key(path, key), c);
  }
}

bool parse_list_index(const std::string& s, size_t& out) {
  if (s.empty() || !std::all_of(s.begin(), s.end(), [](unsigned char ch) { return std::isdigit(ch); })) return false;
  out = std::stoul(s);
  return true;
}

/// "data.sources[1].weight" and "data.sources.1.weight" -> {data, sources, 1, weight}.
std::vector<std::string> split_path(const std::string& key, const std::string& text) {
  std::string flat;
  bool in_bracket = false;
  for (char ch : key) {
    if (ch == '[') {
      if (in_bracket) throw Error("override '" + text + "': malformed key '" + key + "'");
      in_bracket = true;
      flat += '.';
    } else if (ch == ']') {
      if (!in_bracket) throw Error("override '" + text + "': malformed key '" + key + "'");
      in_bracket = false;
    } else {
      flat += ch;
    }
  }
  if (in_bracket) throw Error("override '" + text + "': malformed key '" + key + "'");
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t dot = flat.find('.', start);
    std::string part = flat.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (part.empty()) throw Error("override '" + text + "': malformed key '" + key + "'");
    parts.push_back(part);
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return parts;
}

}  // namespace

std::string apply_override(Node& root, const std::string& text, Ctx& c) {
  auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0)
    throw Error("override '" + text + "': expected key=value (e.g. train.steps=100)");
  std::string key = text.substr(0, eq), value_text = text.substr(eq + 1);
  std::vector<std::string> parts = split_path(key, text);

  const Schema* s = &root_schema();
  std::string path;
  Node cur;
  cur.reset(root);
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    bool last = i + 1 == parts.size();
    Node next;
    if (s->kind == Schema::kList) {
      size_t idx;
      if (!parse_list_index(p, idx))
        throw Error("override '" + text + "': '" + path + "' is a list; expected an index, got '" + p + "'");
      if (!cur.IsSequence()) {
        if (cur.IsDefined() && !cur.IsNull())
          type_error(path, "a list", cur, c);
        cur = Node(YAML::NodeType::Sequence);  // cur is a handle into the tree: this assigns there
      }
      if (idx > cur.size())
        throw Error("override '" + text + "': index " + p + " is out of range; '" + path + "' has " +
                    std::to_string(cur.size()) + " entries (use index " + std::to_string(cur.size()) +
                    " to append one)");
      if (idx == cur.size()) cur.push_back(Node(YAML::NodeType::Map));
      next.reset(cur[idx]);
      path += "[" + p + "]";
      s = s->item;
    } else if (s->kind == Schema::kMap) {
      const Schema* child = s->child(p);
      if (!child) unknown_key(path, p, *s, "override '" + text + "'");
      if (!cur.IsMap()) {
        if (cur.IsDefined() && !cur.IsNull()) type_error(path.empty() ? "config" : path, "a map of keys", cur, c);
        cur = Node(YAML::NodeType::Map);
      }
      next.reset(cur[p]);
      path = join_key(path, p);
      s = child;
    } else {
      throw Error("override '" + text + "': '" + path + "' is a value, it has no key '" + p + "'");
    }
    if (last) {
      Node value;
      if (value_text.empty()) {
        value = Node(std::string());
      } else {
        try {
          value = YAML::Load(value_text);
        } catch (const YAML::Exception&) {
          value = Node(value_text);  // not YAML: take the text as it is
        }
        // A leaf never holds a map: "{000..009}.tar" is a string, not a flow map.
        if (s->kind == Schema::kLeaf && value.IsMap()) value = Node(value_text);
      }
      next = value;
    }
    cur.reset(next);
  }
  c.overridden[path] = text;
  return path;
}

void check_keys(const Node& root, const Ctx& c) { check_keys_in(root, root_schema(), "", c); }

}  // namespace detail

std::vector<std::string> config_keys() {
  std::vector<std::string> out;
  detail::collect_keys(detail::root_schema(), "", out);
  return out;
}

}  // namespace aim::config
