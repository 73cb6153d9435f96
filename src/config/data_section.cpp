// The `data:` section: the weighted source mixture, the validation source, augmentation
// and loader threads; one source's keys are shared with probe.train / probe.val.
#include "sections.h"

#include <cmath>
#include <filesystem>
#include <tuple>

#include "aim/data/shard_list.h"
#include "aim/data/shard_stream.h"

namespace aim::config {

namespace fs = std::filesystem;

data::AugmentConfig DataSection::default_augment() {
  data::AugmentConfig a;
  a.color_jitter = 0.8;  // the released recipe (spec §6)
  return a;
}

bool DataSection::operator==(const DataSection& o) const {
  if (sources.size() != o.sources.size() || val.has_value() != o.val.has_value()) return false;
  for (size_t i = 0; i < sources.size(); ++i)
    if (!detail::same(sources[i], o.sources[i])) return false;
  if (val && !detail::same(*val, *o.val)) return false;
  return detail::same(augment, o.augment) &&
         std::tie(workers, prefetch, stream_lanes, max_member_mb, max_bad_streak, shard_retries,
                  shard_retry_backoff_s, shard_timeout_s) ==
             std::tie(o.workers, o.prefetch, o.stream_lanes, o.max_member_mb, o.max_bad_streak, o.shard_retries,
                      o.shard_retry_backoff_s, o.shard_timeout_s);
}

namespace detail {
namespace {

const std::vector<std::string> kSourceKinds = {"webdataset", "image_folder", "idx", "synthetic"};

}  // namespace

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

bool same_optional(const std::optional<data::SourceConfig>& a, const std::optional<data::SourceConfig>& b) {
  if (a.has_value() != b.has_value()) return false;
  return !a || same(*a, *b);
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
      plain("max_member_mb", &D::max_member_mb),
      plain("max_bad_streak", &D::max_bad_streak),
      plain("shard_retries", &D::shard_retries),
      plain("shard_retry_backoff_s", &D::shard_retry_backoff_s),
      plain("shard_timeout_s", &D::shard_timeout_s),
  };
  return f;
}

data::SourceConfig read_source(const Node& n, const std::string& key, const std::string& default_name, const Ctx& c) {
  data::SourceConfig s;
  read_section(s, n, source_fields(), key, c);
  if (s.name.empty()) s.name = default_name;
  return s;
}

void read_data_section(DataSection& data, const Node& d, const Ctx& c) {
  if (!d.IsDefined() || d.IsNull()) return;
  read_section(data, d, data_fields(), "data", c);
  const Node src = d["sources"];
  if (src.IsDefined() && !src.IsNull()) {
    for (size_t i = 0; i < src.size(); ++i) {
      std::string key = "data.sources[" + std::to_string(i) + "]";
      data::SourceConfig s = read_source(src[i], key, "", c);
      if (s.name.empty()) s.name = s.kind + std::to_string(i);  // the loader's default name
      data.sources.push_back(s);
    }
  }
  const Node val = d["val"];
  if (val.IsDefined() && !val.IsNull()) data.val = read_source(val, "data.val", "val", c);
  read_section(data.augment, d["augment"], augment_fields(), "data.augment", c);
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
        for (const auto& part : data::split_shard_lists(p))  // brace syntax is checkable without the filesystem
          if (!part.empty()) data::expand_braces(part);
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
      // Remote shards (pipe:, http(s)://) can only be checked by reading them: the loader
      // retries and counts them, and the dry run says they were not checked.
      auto local = std::find_if(files.begin(), files.end(), [](const std::string& f) { return !data::is_remote_shard(f); });
      if (local != files.end() && !fs::is_regular_file(*local))
        fail(key + ".shards", "first local shard '" + *local + "' does not exist (the pattern expands to " +
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

void validate_data_section(const DataSection& d, int world_size, bool check_paths) {
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
  if (d.max_member_mb < 1 || d.max_member_mb > (int64_t{1} << 30))
    fail("data.max_member_mb", "must be in [1, 2^30] (megabytes per tar member), got " + num(d.max_member_mb));
  if (d.max_bad_streak < 1)
    fail("data.max_bad_streak", "must be >= 1 (bad samples in a row that stop the run), got " + num(d.max_bad_streak));
  if (d.shard_retries < 0)
    fail("data.shard_retries", "must be >= 0 (re-opens of a failing pipe:/http shard), got " + num(d.shard_retries));
  if (!(d.shard_retry_backoff_s >= 0) || !std::isfinite(d.shard_retry_backoff_s))
    fail("data.shard_retry_backoff_s", "must be >= 0 seconds, got " + num(d.shard_retry_backoff_s));
  if (!(d.shard_timeout_s > 0) || !std::isfinite(d.shard_timeout_s))
    fail("data.shard_timeout_s", "must be > 0 seconds, got " + num(d.shard_timeout_s));

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

}

}  // namespace detail
}  // namespace aim::config
