#include "aim/config/run_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include "aim/data/shard_list.h"
#include "aim/error.h"
#include "aim/model/layer_selection.h"

namespace aim::config {

namespace fs = std::filesystem;
using YAML::Node;

// ------------------------------------------------------------------------------------------
// Equality (explicit, field by field: the round-trip test relies on it being independent of
// the key tables below).

namespace {

bool same(const model::ModelConfig& a, const model::ModelConfig& b) {
  return std::tie(a.preset, a.img_size, a.patch_size, a.channels, a.width, a.depth, a.heads,
                  a.mlp_ratio, a.head_width, a.head_blocks, a.head_mlp_ratio, a.head_identity_attn,
                  a.norm_eps, a.attention, a.order, a.order_seed, a.target) ==
         std::tie(b.preset, b.img_size, b.patch_size, b.channels, b.width, b.depth, b.heads,
                  b.mlp_ratio, b.head_width, b.head_blocks, b.head_mlp_ratio, b.head_identity_attn,
                  b.norm_eps, b.attention, b.order, b.order_seed, b.target);
}

bool same(const optim::OptimConfig& a, const optim::OptimConfig& b) {
  return std::tie(a.lr, a.beta1, a.beta2, a.eps, a.weight_decay, a.warmup, a.warmup_start, a.grad_clip) ==
         std::tie(b.lr, b.beta1, b.beta2, b.eps, b.weight_decay, b.warmup, b.warmup_start, b.grad_clip);
}

bool same(const data::AugmentConfig& a, const data::AugmentConfig& b) {
  return std::tie(a.scale_min, a.scale_max, a.ratio_min, a.ratio_max, a.hflip, a.color_jitter,
                  a.brightness, a.contrast, a.saturation, a.hue, a.eval_crop_pct) ==
         std::tie(b.scale_min, b.scale_max, b.ratio_min, b.ratio_max, b.hflip, b.color_jitter,
                  b.brightness, b.contrast, b.saturation, b.hue, b.eval_crop_pct);
}

bool same(const data::SourceConfig& a, const data::SourceConfig& b) {
  return std::tie(a.name, a.kind, a.shards, a.root, a.path, a.split, a.weight, a.limit, a.size,
                  a.classes, a.height, a.width) ==
         std::tie(b.name, b.kind, b.shards, b.root, b.path, b.split, b.weight, b.limit, b.size,
                  b.classes, b.height, b.width);
}

}  // namespace

bool same_optional(const std::optional<data::SourceConfig>& a, const std::optional<data::SourceConfig>& b);

bool TrainConfig::operator==(const TrainConfig& o) const {
  return std::tie(steps, batch_size, micro_batch_size, precision, seed, out_dir, log_every, ckpt_every,
                  keep_checkpoints, val_every, val_batches, max_nonfinite, peak_tflops, device, threads,
                  dist_timeout_s, resume) ==
         std::tie(o.steps, o.batch_size, o.micro_batch_size, o.precision, o.seed, o.out_dir, o.log_every,
                  o.ckpt_every, o.keep_checkpoints, o.val_every, o.val_batches, o.max_nonfinite,
                  o.peak_tflops, o.device, o.threads, o.dist_timeout_s, o.resume);
}

data::AugmentConfig DataSection::default_augment() {
  data::AugmentConfig a;
  a.color_jitter = 0.8;  // the released recipe (spec §6)
  return a;
}

bool DataSection::operator==(const DataSection& o) const {
  if (sources.size() != o.sources.size() || val.has_value() != o.val.has_value()) return false;
  for (size_t i = 0; i < sources.size(); ++i)
    if (!same(sources[i], o.sources[i])) return false;
  if (val && !same(*val, *o.val)) return false;
  return same(augment, o.augment) &&
         std::tie(workers, prefetch, stream_lanes) == std::tie(o.workers, o.prefetch, o.stream_lanes);
}

bool same_optional(const std::optional<data::SourceConfig>& a, const std::optional<data::SourceConfig>& b) {
  if (a.has_value() != b.has_value()) return false;
  return !a || same(*a, *b);
}

bool RunConfig::operator==(const RunConfig& o) const {
  return same(model, o.model) && data == o.data && same(optim, o.optim) && train == o.train && probe == o.probe;
}

}  // namespace aim::config

namespace aim::config {

bool ProbeConfig::operator==(const ProbeConfig& o) const {
  return std::tie(weights, kind, features, blocks, classes, epochs, batch_size, lrs, weight_decays, warmup,
                  label_smoothing, augment, crop_scale_min, crop_scale_max, hflip, cache_gb, epoch_size, seed,
                  out_dir, at_end) ==
             std::tie(o.weights, o.kind, o.features, o.blocks, o.classes, o.epochs, o.batch_size, o.lrs,
                      o.weight_decays, o.warmup, o.label_smoothing, o.augment, o.crop_scale_min, o.crop_scale_max,
                      o.hflip, o.cache_gb, o.epoch_size, o.seed, o.out_dir, o.at_end) &&
         aim::config::same_optional(train_data, o.train_data) && aim::config::same_optional(val_data, o.val_data);
}

}  // namespace aim::config

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

namespace {

// ------------------------------------------------------------------------------------------
// Suggestions

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

std::string join(const std::vector<std::string>& v, const std::string& sep = ", ") {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

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

std::string describe(const Node& n) {
  if (!n.IsDefined() || n.IsNull()) return "nothing (null)";
  if (n.IsScalar()) return "'" + n.Scalar() + "'";
  if (n.IsSequence()) return "a list";
  return "a map";
}

[[noreturn]] void type_error(const std::string& key, const std::string& expected, const Node& n, const Ctx& c) {
  throw Error(key + ": expected " + expected + ", got " + describe(n) + " (" + c.where(key, n) + ")");
}

// ------------------------------------------------------------------------------------------
// Scalars

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

template <class V>
V get_as(const std::string& key, const Node& n, const Ctx& c);
template <> int64_t get_as<int64_t>(const std::string& k, const Node& n, const Ctx& c) { return get_int64(k, n, c); }
template <> int get_as<int>(const std::string& k, const Node& n, const Ctx& c) { return get_int(k, n, c); }
template <> uint64_t get_as<uint64_t>(const std::string& k, const Node& n, const Ctx& c) { return get_uint64(k, n, c); }
template <> double get_as<double>(const std::string& k, const Node& n, const Ctx& c) { return get_double(k, n, c); }
template <> bool get_as<bool>(const std::string& k, const Node& n, const Ctx& c) { return get_bool(k, n, c); }
template <> std::string get_as<std::string>(const std::string& k, const Node& n, const Ctx& c) { return get_string(k, n, c); }

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

const std::vector<std::string> kSourceKinds = {"webdataset", "image_folder", "idx", "synthetic"};
const std::vector<std::string> kPrecisions = {"bf16", "fp32"};
const std::vector<std::string> kDevices = {"auto", "cpu", "cuda"};
const std::vector<std::string> kResumeModes = {"auto", "force"};
const std::vector<std::string> kOrders = {"raster", "spiral", "checkerboard", "random"};

const std::vector<Field<model::ModelConfig>>& model_fields() {
  using M = model::ModelConfig;
  static const std::vector<Field<M>> f = {
      {"preset", nullptr, [](YAML::Emitter& e, const M& m) { emit(e, m.preset); }},  // read specially
      plain("img_size", &M::img_size),
      plain("patch_size", &M::patch_size),
      plain("channels", &M::channels),
      plain("width", &M::width),
      plain("depth", &M::depth),
      plain("heads", &M::heads),
      plain("mlp_ratio", &M::mlp_ratio),
      plain("head_width", &M::head_width),
      plain("head_blocks", &M::head_blocks),
      plain("head_mlp_ratio", &M::head_mlp_ratio),
      plain("head_identity_attn", &M::head_identity_attn),
      plain("norm_eps", &M::norm_eps),
      {"attention",
       [](M& m, const Node& n, const std::string& k, const Ctx& c) {
         m.attention = model::attention_mode_from_string(get_choice(k, n, c, {"prefix", "causal", "bidirectional"}));
       },
       [](YAML::Emitter& e, const M& m) { emit(e, model::to_string(m.attention)); }},
      choice("order", &M::order, kOrders),
      plain("order_seed", &M::order_seed),
      {"target",
       [](M& m, const Node& n, const std::string& k, const Ctx& c) {
         m.target = model::target_kind_from_string(get_choice(k, n, c, {"norm_pixel", "pixel"}));
       },
       [](YAML::Emitter& e, const M& m) { emit(e, model::to_string(m.target)); }},
  };
  return f;
}

const std::vector<Field<data::SourceConfig>>& source_fields() {
  using S = data::SourceConfig;
  static const std::vector<Field<S>> f = {
      plain("name", &S::name),
      choice("kind", &S::kind, kSourceKinds),
      {"shards",
       [](S& s, const Node& n, const std::string& k, const Ctx& c) { s.shards = get_string_list(k, n, c); },
       [](YAML::Emitter& e, const S& s) {
         if (s.shards.size() == 1) {
           emit(e, s.shards[0]);
         } else {
           e << YAML::Flow << YAML::BeginSeq;
           for (const auto& p : s.shards) emit(e, p);
           e << YAML::EndSeq;
         }
       }},
      plain("root", &S::root),
      plain("path", &S::path),
      plain("split", &S::split),
      plain("weight", &S::weight),
      plain("limit", &S::limit),
      plain("size", &S::size),
      plain("classes", &S::classes),
      plain("height", &S::height),
      plain("width", &S::width),
  };
  return f;
}

/// Keys to_yaml writes for a source of this kind (others only when they differ from the default).
bool relevant(const std::string& kind, const std::string& key) {
  if (key == "name" || key == "kind" || key == "weight" || key == "limit") return true;
  if (kind == "webdataset") return key == "shards";
  if (kind == "image_folder") return key == "root";
  if (kind == "idx") return key == "path" || key == "split";
  if (kind == "synthetic") return key == "size" || key == "classes" || key == "height" || key == "width";
  return true;  // unknown kind: write everything
}

const std::vector<Field<data::AugmentConfig>>& augment_fields() {
  using A = data::AugmentConfig;
  static const std::vector<Field<A>> f = {
      pair("crop_scale", &A::scale_min, &A::scale_max),
      pair("ratio", &A::ratio_min, &A::ratio_max),
      plain("hflip", &A::hflip),
      plain("color_jitter", &A::color_jitter),
      plain("brightness", &A::brightness),
      plain("contrast", &A::contrast),
      plain("saturation", &A::saturation),
      plain("hue", &A::hue),
      plain("eval_crop_pct", &A::eval_crop_pct),
  };
  return f;
}

const std::vector<Field<DataSection>>& data_fields() {
  using D = DataSection;
  static const std::vector<Field<D>> f = {
      {"sources", nullptr, nullptr},  // handled specially (list of sources)
      {"val", nullptr, nullptr},      // a source, or null
      {"augment", nullptr, nullptr},  // a section
      plain("workers", &D::workers),
      plain("prefetch", &D::prefetch),
      plain("stream_lanes", &D::stream_lanes),
  };
  return f;
}

const std::vector<Field<optim::OptimConfig>>& optim_fields() {
  using O = optim::OptimConfig;
  static const std::vector<Field<O>> f = {
      plain("lr", &O::lr),
      pair("betas", &O::beta1, &O::beta2),
      plain("eps", &O::eps),
      plain("weight_decay", &O::weight_decay),
      plain("warmup", &O::warmup),
      plain("warmup_start", &O::warmup_start),
      plain("grad_clip", &O::grad_clip),
  };
  return f;
}

const std::vector<Field<TrainConfig>>& train_fields() {
  using T = TrainConfig;
  static const std::vector<Field<T>> f = {
      plain("steps", &T::steps),
      plain("batch_size", &T::batch_size),
      plain("micro_batch_size", &T::micro_batch_size),
      choice("precision", &T::precision, kPrecisions),
      plain("seed", &T::seed),
      plain("out_dir", &T::out_dir),
      plain("log_every", &T::log_every),
      plain("ckpt_every", &T::ckpt_every),
      plain("keep_checkpoints", &T::keep_checkpoints),
      plain("val_every", &T::val_every),
      plain("val_batches", &T::val_batches),
      plain("max_nonfinite", &T::max_nonfinite),
      plain("peak_tflops", &T::peak_tflops),
      choice("device", &T::device, kDevices),
      plain("threads", &T::threads),
      plain("dist_timeout_s", &T::dist_timeout_s),
      choice("resume", &T::resume, kResumeModes),
  };
  return f;
}

const std::vector<std::string> kProbeKinds = {"attentive", "linear"};
const std::vector<std::string> kProbeFeatures = {"trunk", "pixels"};

void emit_double_list(YAML::Emitter& e, const std::vector<double>& v) {
  e << YAML::Flow << YAML::BeginSeq;
  for (double x : v) e << fmt_double(x);
  e << YAML::EndSeq;
}

const std::vector<Field<config::ProbeConfig>>& probe_fields() {
  using P = config::ProbeConfig;
  static const std::vector<Field<P>> f = {
      plain("weights", &P::weights),
      choice("kind", &P::kind, kProbeKinds),
      choice("features", &P::features, kProbeFeatures),
      plain("blocks", &P::blocks),
      {"train", nullptr, nullptr},  // a source, or null
      {"val", nullptr, nullptr},    // a source, or null
      plain("classes", &P::classes),
      plain("epochs", &P::epochs),
      plain("batch_size", &P::batch_size),
      {"lrs", [](P& p, const Node& n, const std::string& k, const Ctx& c) { p.lrs = get_double_list(k, n, c); },
       [](YAML::Emitter& e, const P& p) { emit_double_list(e, p.lrs); }},
      {"weight_decays",
       [](P& p, const Node& n, const std::string& k, const Ctx& c) { p.weight_decays = get_double_list(k, n, c); },
       [](YAML::Emitter& e, const P& p) { emit_double_list(e, p.weight_decays); }},
      plain("warmup", &P::warmup),
      plain("label_smoothing", &P::label_smoothing),
      plain("augment", &P::augment),
      pair("crop_scale", &P::crop_scale_min, &P::crop_scale_max),
      plain("hflip", &P::hflip),
      plain("cache_gb", &P::cache_gb),
      plain("epoch_size", &P::epoch_size),
      plain("seed", &P::seed),
      plain("out_dir", &P::out_dir),
      plain("at_end", &P::at_end),
  };
  return f;
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

// ------------------------------------------------------------------------------------------
// Schema: the shape of the YAML tree, for unknown-key checks and override paths.

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
  static const Schema probe = [] {
    Schema s = map_of(names_of(probe_fields()));
    for (auto& [name, child] : s.children)
      if (name == "train" || name == "val") child = &val;
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

void check_keys(const Node& n, const Schema& s, const std::string& path, const Ctx& c) {
  if (s.kind == Schema::kLeaf || !n.IsDefined() || n.IsNull()) return;
  if (s.kind == Schema::kList) {
    if (!n.IsSequence()) type_error(path, "a list", n, c);
    for (size_t i = 0; i < n.size(); ++i) check_keys(n[i], *s.item, path + "[" + std::to_string(i) + "]", c);
    return;
  }
  if (!n.IsMap()) type_error(path.empty() ? "config" : path, "a map of keys", n, c);
  for (auto it = n.begin(); it != n.end(); ++it) {
    std::string key = it->first.IsScalar() ? it->first.Scalar() : "?";
    const Schema* child = s.child(key);
    if (!child) unknown_key(path, key, s, c.where(join_key(path, key), it->first));
    check_keys(it->second, *child, join_key(path, key), c);
  }
}

// ------------------------------------------------------------------------------------------
// Overrides

bool parse_index(const std::string& s, size_t& out) {
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

/// Applies one key=value to the tree; returns the display path it set.
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
      if (!parse_index(p, idx))
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

// ------------------------------------------------------------------------------------------
// Conversion

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

model::ModelConfig read_model(const Node& n, const Ctx& c) {
  std::string preset = "aim-600m";
  if (n.IsDefined() && !n.IsNull() && n["preset"].IsDefined())
    preset = get_choice("model.preset", n["preset"], c, model::preset_names());
  model::ModelConfig m = model::preset_config(preset);
  read_section(m, n, model_fields(), "model", c);
  return m;
}

data::SourceConfig read_source(const Node& n, const std::string& key, const std::string& default_name, const Ctx& c) {
  data::SourceConfig s;
  read_section(s, n, source_fields(), key, c);
  if (s.name.empty()) s.name = default_name;
  return s;
}

RunConfig convert(const Node& root, const Ctx& c) {
  RunConfig cfg;
  cfg.model = read_model(root["model"], c);

  const Node d = root["data"];
  if (d.IsDefined() && !d.IsNull()) {
    read_section(cfg.data, d, data_fields(), "data", c);
    const Node src = d["sources"];
    if (src.IsDefined() && !src.IsNull()) {
      for (size_t i = 0; i < src.size(); ++i) {
        std::string key = "data.sources[" + std::to_string(i) + "]";
        data::SourceConfig s = read_source(src[i], key, "", c);
        if (s.name.empty()) s.name = s.kind + std::to_string(i);  // the loader's default name
        cfg.data.sources.push_back(s);
      }
    }
    const Node val = d["val"];
    if (val.IsDefined() && !val.IsNull()) cfg.data.val = read_source(val, "data.val", "val", c);
    read_section(cfg.data.augment, d["augment"], augment_fields(), "data.augment", c);
  }
  read_section(cfg.optim, root["optim"], optim_fields(), "optim", c);
  read_section(cfg.train, root["train"], train_fields(), "train", c);
  const Node p = root["probe"];
  if (p.IsDefined() && !p.IsNull()) {
    read_section(cfg.probe, p, probe_fields(), "probe", c);
    if (p["train"].IsDefined() && !p["train"].IsNull())
      cfg.probe.train_data = read_source(p["train"], "probe.train", "probe-train", c);
    if (p["val"].IsDefined() && !p["val"].IsNull())
      cfg.probe.val_data = read_source(p["val"], "probe.val", "probe-val", c);
  }
  return cfg;
}

template <class T>
std::string emit_field(const Field<T>& f, const T& t) {
  YAML::Emitter e;
  f.write(e, t);
  return e.c_str();
}

/// When an override changes model.preset, model keys in the file that merely restate the
/// file's preset follow the new preset; keys that customize it stay.
void drop_restated_model_keys(Node& root, const std::string& file_preset, const Ctx& c) {
  Node m = root["model"];
  if (!m.IsMap()) return;
  model::ModelConfig base;
  try {
    base = model::preset_config(file_preset);
  } catch (const Error&) {
    return;
  }
  std::vector<std::string> drop;
  for (auto it = m.begin(); it != m.end(); ++it) {
    if (!it->first.IsScalar()) continue;
    std::string k = it->first.Scalar();
    const Field<model::ModelConfig>* f = find_field(model_fields(), k);
    if (!f || !f->read || c.override_for("model." + k)) continue;
    model::ModelConfig t = base;
    try {
      f->read(t, it->second, "model." + k, c);
    } catch (const Error&) {
      continue;  // reported by the conversion
    }
    if (emit_field(*f, t) == emit_field(*f, base)) drop.push_back(k);
  }
  for (const auto& k : drop) m.remove(k);
}

// ------------------------------------------------------------------------------------------
// Validation helpers

[[noreturn]] void fail(const std::string& key, const std::string& msg) { throw Error(key + ": " + msg); }

std::string num(double v) { return fmt_double(v); }
std::string num(int64_t v) { return std::to_string(v); }

std::string expect_one_of(const std::string& got, const std::vector<std::string>& options) {
  std::string msg = "expected one of " + join(options) + "; got '" + got + "'";
  if (auto near = closest(got, options)) msg += " (did you mean '" + *near + "'?)";
  return msg;
}

void validate_source(const data::SourceConfig& s, const std::string& key, bool train, int world_size,
                     bool check_paths) {
  if (s.kind.empty()) fail(key + ".kind", "required; expected one of " + join(kSourceKinds));
  if (std::find(kSourceKinds.begin(), kSourceKinds.end(), s.kind) == kSourceKinds.end())
    fail(key + ".kind", expect_one_of(s.kind, kSourceKinds));
  if (!(s.weight > 0) || !std::isfinite(s.weight))
    fail(key + ".weight", "must be > 0 (mixture weights are normalized over the sources), got " + num(s.weight));
  if (s.limit != -1 && s.limit <= 0) fail(key + ".limit", "must be -1 (all samples) or > 0, got " + num(s.limit));

  if (s.kind == "webdataset") {
    if (s.shards.empty()) fail(key + ".shards", "required for kind webdataset (e.g. \"/data/{00000000..00019999}.tar\")");
    for (const auto& p : s.shards) {
      if (p.empty()) fail(key + ".shards", "empty shard pattern");
      try {
        size_t start = 0;  // brace syntax is checkable without the filesystem
        while (true) {
          size_t sep = p.find("::", start);
          std::string part = p.substr(start, sep == std::string::npos ? std::string::npos : sep - start);
          if (!part.empty()) data::expand_braces(part);
          if (sep == std::string::npos) break;
          start = sep + 2;
        }
      } catch (const Error& e) {
        fail(key + ".shards", e.what());
      }
    }
    if (check_paths) {
      std::vector<std::string> files;
      try {
        files = data::expand_shard_patterns(s.shards);
      } catch (const Error& e) {
        fail(key + ".shards", e.what());
      }
      if (files.empty()) fail(key + ".shards", "'" + join(s.shards) + "' matches no files");
      if (!fs::is_regular_file(files.front()))
        fail(key + ".shards", "first shard '" + files.front() + "' does not exist (the pattern expands to " +
                                  std::to_string(files.size()) + " shards)");
      if (train && static_cast<int64_t>(files.size()) < world_size)
        fail(key + ".shards", std::to_string(files.size()) + " shards, fewer than the world size " +
                                  std::to_string(world_size) + "; every rank needs at least one shard");
    }
  } else if (s.kind == "image_folder") {
    if (s.root.empty()) fail(key + ".root", "required for kind image_folder (a directory of <class>/<image> files)");
    if (check_paths && !fs::is_directory(s.root)) fail(key + ".root", "directory '" + s.root + "' does not exist");
  } else if (s.kind == "idx") {
    if (s.path.empty()) fail(key + ".path", "required for kind idx (a directory of MNIST-format files, or an images file)");
    if (s.split.empty()) fail(key + ".split", "required for kind idx (train or test)");
    if (check_paths) {
      if (fs::is_directory(s.path)) {
        std::string prefix = s.split == "test" ? "t10k" : s.split;
        std::string base = (fs::path(s.path) / (prefix + "-images-idx3-ubyte")).string();
        if (!fs::exists(base) && !fs::exists(base + ".gz"))
          fail(key + ".path", "no " + prefix + "-images-idx3-ubyte[.gz] in '" + s.path + "' (split " + s.split +
                                  "; Fashion-MNIST comes with Debian's dataset-fashion-mnist package)");
      } else if (!fs::exists(s.path)) {
        fail(key + ".path", "'" + s.path + "' does not exist");
      }
    }
  } else if (s.kind == "synthetic") {
    if (s.size <= 0) fail(key + ".size", "must be > 0, got " + num(s.size));
    if (s.classes <= 0) fail(key + ".classes", "must be > 0, got " + num(s.classes));
    if (s.height <= 0) fail(key + ".height", "must be > 0, got " + num(static_cast<int64_t>(s.height)));
    if (s.width <= 0) fail(key + ".width", "must be > 0, got " + num(static_cast<int64_t>(s.width)));
  }
}

std::string micro_batch_suggestions(int64_t batch, int world) {
  if (batch % world != 0) return "";
  int64_t per_rank = batch / world;
  std::vector<std::string> ok;
  for (int64_t d = per_rank; d >= 1 && ok.size() < 8; --d)
    if (per_rank % d == 0) ok.push_back(std::to_string(d));
  return "; micro-batch sizes that work at world size " + std::to_string(world) + ": " + join(ok) +
         (ok.size() == 8 ? ", ..." : "");
}

void check_prob(const std::string& key, double v) {
  if (!(v >= 0 && v <= 1)) fail(key, "must be a probability in [0, 1], got " + num(v));
}

/// The probe section; `from_training` when aim-train probes its own export (weights optional).
void validate_probe_section(const RunConfig& cfg, int world_size, bool check_paths, bool from_training) {
  const config::ProbeConfig& p = cfg.probe;
  if (p.weights.empty() && !from_training && p.features == "trunk")
    fail("probe.weights", "required: a .safetensors file (our trunk export or an official checkpoint), a run "
                          "directory, or 'random' for a randomly initialized trunk");
  if (!p.weights.empty() && p.weights != "random" && check_paths && !fs::exists(p.weights))
    fail("probe.weights", "'" + p.weights + "' does not exist (expected a .safetensors file or a run directory)");
  if (std::find(kProbeKinds.begin(), kProbeKinds.end(), p.kind) == kProbeKinds.end())
    fail("probe.kind", expect_one_of(p.kind, kProbeKinds));
  if (std::find(kProbeFeatures.begin(), kProbeFeatures.end(), p.features) == kProbeFeatures.end())
    fail("probe.features", expect_one_of(p.features, kProbeFeatures));
  if (p.features == "pixels" && p.kind != "linear")
    fail("probe.kind", "features=pixels is the raw-pixel baseline and takes kind=linear, got '" + p.kind + "'");
  if (p.features == "trunk") model::select_blocks(p.blocks, cfg.model.preset, cfg.model.depth, "probe.blocks");
  if (!p.train_data) fail("probe.train", "required: the labelled training split (e.g. {kind: idx, split: train})");
  if (!p.val_data) fail("probe.val", "required: the labelled evaluation split (e.g. {kind: idx, split: test})");
  validate_source(*p.train_data, "probe.train", true, world_size, check_paths);
  validate_source(*p.val_data, "probe.val", false, world_size, check_paths);
  if (p.classes < 0) fail("probe.classes", "must be >= 0 (0 = from the data), got " + num(p.classes));
  if (p.epochs <= 0) fail("probe.epochs", "must be > 0, got " + num(p.epochs));
  if (p.batch_size <= 0) fail("probe.batch_size", "must be > 0, got " + num(p.batch_size));
  if (p.batch_size % world_size != 0)
    fail("probe.batch_size", num(p.batch_size) + " is not divisible by the world size " + std::to_string(world_size));
  if (p.lrs.empty()) fail("probe.lrs", "needs at least one learning rate");
  for (double lr : p.lrs)
    if (!(lr > 0) || !std::isfinite(lr)) fail("probe.lrs", "every learning rate must be > 0, got " + num(lr));
  if (p.weight_decays.empty()) fail("probe.weight_decays", "needs at least one weight decay");
  for (double wd : p.weight_decays)
    if (!(wd >= 0) || !std::isfinite(wd)) fail("probe.weight_decays", "every weight decay must be >= 0, got " + num(wd));
  if (!(p.warmup >= 0 && p.warmup < 1))
    fail("probe.warmup", "is a fraction of the probe's steps, in [0, 1); got " + num(p.warmup));
  if (!(p.label_smoothing >= 0 && p.label_smoothing < 1))
    fail("probe.label_smoothing", "must be in [0, 1), got " + num(p.label_smoothing));
  if (!(p.crop_scale_min > 0 && p.crop_scale_min <= p.crop_scale_max && p.crop_scale_max <= 1))
    fail("probe.crop_scale", "must satisfy 0 < min <= max <= 1, got [" + num(p.crop_scale_min) + ", " +
                                 num(p.crop_scale_max) + "]");
  check_prob("probe.hflip", p.hflip);
  if (!(p.cache_gb >= 0) || !std::isfinite(p.cache_gb))
    fail("probe.cache_gb", "must be >= 0 (0 = never cache features), got " + num(p.cache_gb));
  if (p.epoch_size < 0)
    fail("probe.epoch_size", "must be >= 0 (0 = the training split's size), got " + num(p.epoch_size));
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Public API

std::vector<std::string> config_keys() {
  std::vector<std::string> out;
  collect_keys(root_schema(), "", out);
  return out;
}

RunConfig config_from_yaml_string(const std::string& yaml, const std::vector<std::string>& overrides,
                                  const std::string& origin) {
  Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    std::string where = origin;
    if (!e.mark.is_null()) where += ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1);
    throw Error(where + ": YAML syntax error: " + e.msg);
  }
  Ctx c{origin, {}};
  if (!root.IsDefined() || root.IsNull()) root = Node(YAML::NodeType::Map);
  if (!root.IsMap())
    throw Error(origin + ": expected a map with the sections model, data, optim and train at the top level");

  std::string file_preset = "aim-600m";
  {
    const Node& croot = root;
    const Node m = croot["model"];
    if (m.IsDefined() && m.IsMap() && m["preset"].IsDefined() && m["preset"].IsScalar())
      file_preset = m["preset"].Scalar();
  }
  bool preset_overridden = false;
  for (const auto& o : overrides)
    if (apply_override(root, o, c) == "model.preset") preset_overridden = true;

  check_keys(root, root_schema(), "", c);
  if (preset_overridden) drop_restated_model_keys(root, file_preset, c);
  const Node& croot = root;
  return convert(croot, c);
}

RunConfig load_run_config(const std::string& yaml_path, const std::vector<std::string>& overrides) {
  if (!fs::exists(yaml_path)) throw Error("config file '" + yaml_path + "' does not exist");
  if (fs::is_directory(yaml_path)) throw Error("config file '" + yaml_path + "' is a directory");
  std::ifstream in(yaml_path, std::ios::binary);
  if (!in) throw Error("config file '" + yaml_path + "' cannot be read");
  std::stringstream ss;
  ss << in.rdbuf();
  return config_from_yaml_string(ss.str(), overrides, yaml_path);
}

void validate(const RunConfig& cfg, int world_size, bool check_paths) {
  if (world_size < 1) fail("world_size", "must be >= 1, got " + std::to_string(world_size));
  cfg.model.validate();
  // validate() accepts any preset name (custom models); the YAML reader restricts it.

  const TrainConfig& t = cfg.train;
  if (t.steps <= 0) fail("train.steps", "must be > 0, got " + num(t.steps));
  if (t.batch_size <= 0) fail("train.batch_size", "must be > 0, got " + num(t.batch_size));
  if (t.micro_batch_size <= 0) fail("train.micro_batch_size", "must be > 0, got " + num(t.micro_batch_size));
  if (t.batch_size % world_size != 0)
    fail("train.batch_size", num(t.batch_size) + " is not divisible by the world size " + std::to_string(world_size) +
                                 "; the global batch must be a multiple of world size × train.micro_batch_size");
  if (t.batch_size % (t.micro_batch_size * world_size) != 0)
    fail("train.batch_size", num(t.batch_size) + " must be divisible by train.micro_batch_size × world size = " +
                                 num(t.micro_batch_size) + " × " + std::to_string(world_size) + " = " +
                                 num(t.micro_batch_size * world_size) +
                                 " (gradient accumulation needs whole micro-batches)" +
                                 micro_batch_suggestions(t.batch_size, world_size));
  if (std::find(kPrecisions.begin(), kPrecisions.end(), t.precision) == kPrecisions.end())
    fail("train.precision", expect_one_of(t.precision, kPrecisions));
  if (std::find(kDevices.begin(), kDevices.end(), t.device) == kDevices.end())
    fail("train.device", expect_one_of(t.device, kDevices));
  if (t.out_dir.empty()) fail("train.out_dir", "must not be empty");
  if (t.log_every <= 0) fail("train.log_every", "must be > 0, got " + num(t.log_every));
  if (t.ckpt_every < 0) fail("train.ckpt_every", "must be >= 0 (0 = no periodic checkpoints), got " + num(t.ckpt_every));
  if (t.keep_checkpoints < 1) fail("train.keep_checkpoints", "must be >= 1, got " + num(t.keep_checkpoints));
  if (t.val_every < 0) fail("train.val_every", "must be >= 0 (0 = never), got " + num(t.val_every));
  if (t.val_batches < 0) fail("train.val_batches", "must be >= 0 (0 = one full pass), got " + num(t.val_batches));
  if (t.max_nonfinite < 1) fail("train.max_nonfinite", "must be >= 1, got " + num(t.max_nonfinite));
  if (!(t.peak_tflops >= 0) || !std::isfinite(t.peak_tflops))
    fail("train.peak_tflops", "must be >= 0 (0 = detect), got " + num(t.peak_tflops));
  if (t.threads < 0) fail("train.threads", "must be >= 0 (0 = default), got " + std::to_string(t.threads));
  if (t.dist_timeout_s < 1) fail("train.dist_timeout_s", "must be >= 1 (seconds), got " + num(t.dist_timeout_s));
  if (std::find(kResumeModes.begin(), kResumeModes.end(), t.resume) == kResumeModes.end())
    fail("train.resume", expect_one_of(t.resume, kResumeModes));

  const optim::OptimConfig& o = cfg.optim;
  if (!(o.lr > 0) || !std::isfinite(o.lr)) fail("optim.lr", "must be > 0, got " + num(o.lr));
  if (!(o.beta1 >= 0 && o.beta1 < 1) || !(o.beta2 >= 0 && o.beta2 < 1))
    fail("optim.betas", "both must be in [0, 1), got [" + num(o.beta1) + ", " + num(o.beta2) + "]");
  if (!(o.eps > 0)) fail("optim.eps", "must be > 0, got " + num(o.eps));
  if (!(o.weight_decay >= 0) || !std::isfinite(o.weight_decay))
    fail("optim.weight_decay", "must be >= 0, got " + num(o.weight_decay));
  if (!(o.warmup >= 0 && o.warmup < 1))
    fail("optim.warmup", "is a fraction of train.steps and must be in [0, 1), got " + num(o.warmup));
  if (!(o.warmup_start >= 0 && o.warmup_start <= o.lr))
    fail("optim.warmup_start", "must be in [0, optim.lr], got " + num(o.warmup_start));
  if (!std::isfinite(o.grad_clip)) fail("optim.grad_clip", "must be finite (<= 0 disables clipping)");

  const DataSection& d = cfg.data;
  if (d.sources.empty())
    fail("data.sources", "at least one source is required (e.g. {kind: idx, path: /usr/share/datasets/fashion-mnist})");
  std::set<std::string> names;
  for (size_t i = 0; i < d.sources.size(); ++i) {
    std::string key = "data.sources[" + std::to_string(i) + "]";
    validate_source(d.sources[i], key, true, world_size, check_paths);
    if (!names.insert(d.sources[i].name).second)
      fail(key + ".name", "'" + d.sources[i].name + "' is used by two sources; names must be unique");
  }
  if (d.val) validate_source(*d.val, "data.val", false, world_size, check_paths);
  if (d.workers < 0) fail("data.workers", "must be >= 0 (0 decodes on the training thread), got " + std::to_string(d.workers));
  if (d.prefetch < 1) fail("data.prefetch", "must be >= 1, got " + std::to_string(d.prefetch));
  if (d.stream_lanes < 1) fail("data.stream_lanes", "must be >= 1, got " + std::to_string(d.stream_lanes));

  const data::AugmentConfig& a = d.augment;
  if (!(a.scale_min > 0 && a.scale_min <= a.scale_max && a.scale_max <= 1))
    fail("data.augment.crop_scale", "must satisfy 0 < min <= max <= 1, got [" + num(a.scale_min) + ", " +
                                        num(a.scale_max) + "]");
  if (!(a.ratio_min > 0 && a.ratio_min <= a.ratio_max) || !std::isfinite(a.ratio_max))
    fail("data.augment.ratio", "must satisfy 0 < min <= max, got [" + num(a.ratio_min) + ", " + num(a.ratio_max) + "]");
  check_prob("data.augment.hflip", a.hflip);
  check_prob("data.augment.color_jitter", a.color_jitter);
  if (!(a.brightness >= 0)) fail("data.augment.brightness", "must be >= 0, got " + num(a.brightness));
  if (!(a.contrast >= 0)) fail("data.augment.contrast", "must be >= 0, got " + num(a.contrast));
  if (!(a.saturation >= 0)) fail("data.augment.saturation", "must be >= 0, got " + num(a.saturation));
  if (!(a.hue >= 0 && a.hue <= 0.5)) fail("data.augment.hue", "must be in [0, 0.5], got " + num(a.hue));
  if (!(a.eval_crop_pct > 0 && a.eval_crop_pct <= 1))
    fail("data.augment.eval_crop_pct", "must be in (0, 1], got " + num(a.eval_crop_pct));

  if (cfg.probe.at_end) validate_probe_section(cfg, world_size, check_paths, /*from_training=*/true);
}

void validate_probe(const RunConfig& cfg, int world_size, bool check_paths) {
  if (world_size < 1) fail("world_size", "must be >= 1, got " + std::to_string(world_size));
  cfg.model.validate();
  validate_probe_section(cfg, world_size, check_paths, /*from_training=*/false);
  if (cfg.data.workers < 0) fail("data.workers", "must be >= 0, got " + std::to_string(cfg.data.workers));
  if (cfg.data.prefetch < 1) fail("data.prefetch", "must be >= 1, got " + std::to_string(cfg.data.prefetch));
  if (!(cfg.data.augment.eval_crop_pct > 0 && cfg.data.augment.eval_crop_pct <= 1))
    fail("data.augment.eval_crop_pct", "must be in (0, 1], got " + num(cfg.data.augment.eval_crop_pct));
}

std::string to_yaml(const RunConfig& cfg) {
  YAML::Emitter e;
  e << YAML::BeginMap;

  e << YAML::Key << "model" << YAML::Value << YAML::BeginMap;
  for (const auto& f : model_fields()) {
    e << YAML::Key << f.name << YAML::Value;
    f.write(e, cfg.model);
  }
  e << YAML::EndMap;

  static const data::SourceConfig kDefaultSource;
  auto write_source = [&](const data::SourceConfig& s) {
    e << YAML::BeginMap;
    for (const auto& f : source_fields()) {
      if (!relevant(s.kind, f.name) && emit_field(f, s) == emit_field(f, kDefaultSource)) continue;
      e << YAML::Key << f.name << YAML::Value;
      f.write(e, s);
    }
    e << YAML::EndMap;
  };
  e << YAML::Key << "data" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "sources" << YAML::Value << YAML::BeginSeq;
  for (const auto& s : cfg.data.sources) write_source(s);
  e << YAML::EndSeq;
  e << YAML::Key << "val" << YAML::Value;
  if (cfg.data.val) write_source(*cfg.data.val);
  else e << YAML::Null;
  e << YAML::Key << "augment" << YAML::Value << YAML::BeginMap;
  for (const auto& f : augment_fields()) {
    e << YAML::Key << f.name << YAML::Value;
    f.write(e, cfg.data.augment);
  }
  e << YAML::EndMap;
  for (const auto& f : data_fields()) {
    if (!f.write) continue;
    e << YAML::Key << f.name << YAML::Value;
    f.write(e, cfg.data);
  }
  e << YAML::EndMap;

  e << YAML::Key << "optim" << YAML::Value << YAML::BeginMap;
  for (const auto& f : optim_fields()) {
    e << YAML::Key << f.name << YAML::Value;
    f.write(e, cfg.optim);
  }
  e << YAML::EndMap;

  e << YAML::Key << "train" << YAML::Value << YAML::BeginMap;
  for (const auto& f : train_fields()) {
    e << YAML::Key << f.name << YAML::Value;
    f.write(e, cfg.train);
  }
  e << YAML::EndMap;

  e << YAML::Key << "probe" << YAML::Value << YAML::BeginMap;
  for (const auto& f : probe_fields()) {
    e << YAML::Key << f.name << YAML::Value;
    const auto& split = f.name == "train" ? cfg.probe.train_data : cfg.probe.val_data;
    if (f.write) f.write(e, cfg.probe);
    else if (split) write_source(*split);
    else e << YAML::Null;
  }
  e << YAML::EndMap;

  e << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

std::string fingerprint(const RunConfig& cfg) {
  // FNV-1a over the resolved YAML. Nothing in the config differs per rank today; a field
  // that may (a per-rank path, say) must be blanked here before hashing.
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : to_yaml(cfg)) {
    h ^= ch;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string run_identity(const RunConfig& cfg) {
  RunConfig c = cfg;
  const TrainConfig defaults;
  TrainConfig& t = c.train;
  t.out_dir = defaults.out_dir;
  t.log_every = defaults.log_every;
  t.ckpt_every = defaults.ckpt_every;
  t.keep_checkpoints = defaults.keep_checkpoints;
  t.val_every = defaults.val_every;
  t.val_batches = defaults.val_batches;
  t.max_nonfinite = defaults.max_nonfinite;
  t.peak_tflops = defaults.peak_tflops;
  t.micro_batch_size = defaults.micro_batch_size;
  t.device = defaults.device;
  t.threads = defaults.threads;
  t.dist_timeout_s = defaults.dist_timeout_s;
  t.resume = defaults.resume;
  c.data.workers = DataSection().workers;
  c.data.prefetch = DataSection().prefetch;
  c.data.stream_lanes = DataSection().stream_lanes;
  c.data.val.reset();
  c.probe = config::ProbeConfig();
  return fingerprint(c);
}

data::LoaderConfig loader_config(const RunConfig& cfg, bool train, int rank, int world_size) {
  data::LoaderConfig lc;
  if (train) {
    lc.sources = cfg.data.sources;
  } else {
    if (!cfg.data.val) throw Error("data.val: not set; validation needs a source (e.g. {kind: idx, split: test})");
    lc.sources = {*cfg.data.val};
  }
  lc.img_size = static_cast<int>(cfg.model.img_size);
  lc.channels = static_cast<int>(cfg.model.channels);
  lc.train = train;
  lc.augment = cfg.data.augment;
  lc.batch_size = cfg.train.micro_batch_size;
  lc.rank = rank;
  lc.world_size = world_size;
  lc.workers = cfg.data.workers;
  lc.prefetch = cfg.data.prefetch;
  lc.seed = cfg.train.seed;
  lc.stream_lanes = cfg.data.stream_lanes;
  return lc;
}

data::LoaderConfig probe_loader_config(const RunConfig& cfg, bool train_split, bool augment, int rank,
                                       int world_size) {
  const auto& p = cfg.probe;
  const auto& split = train_split ? p.train_data : p.val_data;
  if (!split) throw Error(std::string(train_split ? "probe.train" : "probe.val") + ": not set");
  data::LoaderConfig lc;
  lc.sources = {*split};
  lc.sources[0].weight = 1.0;
  lc.img_size = static_cast<int>(cfg.model.img_size);
  lc.channels = static_cast<int>(cfg.model.channels);
  lc.train = augment;
  lc.augment = cfg.data.augment;  // eval_crop_pct
  lc.augment.scale_min = p.crop_scale_min;
  lc.augment.scale_max = p.crop_scale_max;
  lc.augment.hflip = p.hflip;
  lc.augment.color_jitter = 0;  // probes train on lightly augmented views
  lc.batch_size = p.batch_size / world_size;
  lc.rank = rank;
  lc.world_size = world_size;
  lc.workers = cfg.data.workers;
  lc.prefetch = cfg.data.prefetch;
  lc.seed = p.seed;
  lc.stream_lanes = cfg.data.stream_lanes;
  return lc;
}

}  // namespace aim::config
