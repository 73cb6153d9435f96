// aim-data: pack an ImageFolder or IDX set into webdataset shards, and check shards.
//   aim-data pack --from image_folder --root DIR --out OUT [--shard-size N] [--limit N] [--seed S | --no-shuffle]
//                 [--replace] [--no-verify]
//   aim-data pack --from idx --path DIR|FILE [--split train|test] --out OUT [...]
//   aim-data check SHARDS... [--no-decode] [--max-report N] [--max-member-mb MB] [--shard-timeout-s S]
// `check` exits 1 when a shard is missing/damaged/empty or a sample is bad, so scripts can gate
// on it; 2 for a usage error (then, and only then, the usage text follows the error).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <string>
#include <vector>

#include "aim/data/decode.h"
#include "aim/data/idx_source.h"
#include "aim/data/image_folder_source.h"
#include "aim/data/rng.h"
#include "aim/data/shard_list.h"
#include "aim/data/tar_reader.h"
#include "aim/data/webdataset_source.h"
#include "aim/error.h"

namespace fs = std::filesystem;
using namespace aim::data;

namespace {

const char* kUsage = R"(usage:
  aim-data pack --from image_folder --root DIR --out OUT [options]
  aim-data pack --from idx [--path DIR|FILE] [--split train|test] --out OUT [options]
      --shard-size N   samples per shard (default 10000)
      --limit N        pack only the first N samples (in sorted order)
      --seed S         shuffle sample order with this seed (default 0)
      --no-shuffle     keep sorted order (shards then hold one class each: bad for streaming)
      --format png|jpg IDX images are encoded as PNG (default, lossless) or JPEG q95
      --replace        OUT may hold the shards of an earlier pack: they are replaced as a whole
                       (without it a non-empty OUT is refused, so no stale shard survives)
      --no-verify      keep images without decoding them first (default: every image is decoded
                       as `check` does, and a bad one is skipped and reported with its path)
  The shards are written to OUT.partial and moved to OUT when complete.
  aim-data check SHARDS... [--no-decode] [--max-report N] [--max-member-mb MB] [--shard-timeout-s S]
      SHARDS: brace patterns ("/data/{00000000..00000099}.tar"), "::"-joined lists or globs.
      Counts samples per shard, decodes every image, reports bad ones; exit 1 if any, or if a
      shard is missing, damaged (truncated, a size field that does not add up, a second tar
      appended) or holds no sample.
      --max-member-mb: members above this size are bad samples, as with data.max_member_mb
      (default 256).
      --shard-timeout-s: a pipe:/http shard that sends nothing (or a drip) for this long has
      failed, as with data.shard_timeout_s (default 120).
)";

// A mistake in how the tool was called: the usage text helps. Any other error (a missing
// folder, a shard that cannot be read) is printed alone, so it stays on the screen.
struct UsageError : aim::Error {
  using aim::Error::Error;
};

struct Args {
  std::string cmd;
  std::map<std::string, std::string> opt;
  std::vector<std::string> positional;
  bool flag(const std::string& k) const { return opt.count(k) > 0; }
  std::string get(const std::string& k, const std::string& def = "") const {
    auto it = opt.find(k);
    return it == opt.end() ? def : it->second;
  }
};

Args parse(int argc, char** argv) {
  Args a;
  if (argc < 2) throw UsageError("missing command");
  a.cmd = argv[1];
  static const std::vector<std::string> flags = {"--no-shuffle", "--no-decode", "--replace", "--no-verify", "--help"};
  for (int i = 2; i < argc; ++i) {
    std::string s = argv[i];
    if (s.rfind("--", 0) == 0) {
      if (std::find(flags.begin(), flags.end(), s) != flags.end()) {
        a.opt[s] = "1";
      } else {
        if (i + 1 >= argc) throw UsageError("option " + s + " needs a value");
        a.opt[s] = argv[++i];
      }
    } else {
      a.positional.push_back(s);
    }
  }
  return a;
}

std::string shard_name(int64_t i) {
  char b[32];
  std::snprintf(b, sizeof b, "%08lld.tar", static_cast<long long>(i));
  return b;
}

bool is_shard_name(const std::string& name) {
  return name.size() == 12 && name.compare(8, 4, ".tar") == 0 &&
         std::all_of(name.begin(), name.begin() + 8, [](char c) { return c >= '0' && c <= '9'; });
}

// A non-empty OUT is refused unless --replace, and --replace only replaces what pack writes:
// a folder holding anything else is somebody's data, not an old pack.
void check_out_dir(const std::string& out, bool replace) {
  if (!fs::exists(out)) return;
  if (!fs::is_directory(out)) throw aim::Error("pack: --out '" + out + "' exists and is not a folder");
  int64_t entries = 0;
  std::string first, foreign;
  for (const auto& e : fs::directory_iterator(out)) {
    const std::string name = e.path().filename().string();
    if (entries++ == 0) first = name;
    if (foreign.empty() && !(e.is_regular_file() && (is_shard_name(name) || name == "sizes.json"))) foreign = name;
  }
  if (entries == 0) return;
  if (!replace)
    throw aim::Error("pack: --out '" + out + "' is not empty (" + std::to_string(entries) + " entries, e.g. " + first +
                     "); shards of an earlier pack beyond the new count would stay and be read as data. Choose an "
                     "empty folder, or pass --replace to replace its shards as a whole");
  if (!foreign.empty())
    throw aim::Error("pack: --replace: '" + out + "' holds '" + foreign +
                     "', which is not a shard aim-data pack writes (NNNNNNNN.tar, sizes.json); refusing to delete it");
}

int pack(const Args& a) {
  std::string from = a.get("--from"), out = a.get("--out");
  if (out.empty()) throw UsageError("pack: --out is required");
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  check_out_dir(out, a.flag("--replace"));
  const bool verify = !a.flag("--no-verify");
  const int64_t shard_size = std::stoll(a.get("--shard-size", "10000"));
  if (shard_size <= 0) throw UsageError("pack: --shard-size must be > 0");
  std::unique_ptr<RandomAccessSource> src;
  std::vector<std::string> class_names;
  int64_t non_images = 0;
  if (from == "image_folder") {
    if (a.get("--root").empty()) throw UsageError("pack: --root is required for image_folder");
    auto f = std::make_unique<ImageFolderSource>(a.get("--root"));
    class_names = f->classes();
    non_images = f->skipped().skipped;
    const std::string note = skipped_note(f->skipped());
    if (!note.empty()) spdlog::warn("pack: {}", note);
    src = std::move(f);
  } else if (from == "idx") {
    src = std::make_unique<IdxSource>(a.get("--path", "/usr/share/datasets/fashion-mnist"),
                                      a.get("--split", "train"));
  } else {
    throw UsageError("pack: --from must be image_folder or idx (got '" + from + "')");
  }
  int64_t n = src->size();
  if (a.flag("--limit")) n = std::min<int64_t>(n, std::stoll(a.get("--limit")));
  const std::string format = a.get("--format", "png");
  if (format != "png" && format != "jpg") throw UsageError("pack: --format must be png or jpg");
  IndexPermutation perm(n, hash_key(std::stoull(a.get("--seed", "0")), 0x7061636b));
  const bool shuffle = !a.flag("--no-shuffle");
  // Written beside OUT and moved into place when complete: an interrupted pack leaves OUT as it was.
  const std::string partial = out + ".partial";
  fs::remove_all(partial);
  fs::create_directories(partial);
  std::unique_ptr<TarWriter> w;
  int64_t shards = 0, written = 0, skipped = 0;
  nlohmann::json sizes = nlohmann::json::object();  // sizes.json: each shard's sample count (open_clip's index)
  for (int64_t i = 0; i < n; ++i) {
    int64_t item = shuffle ? static_cast<int64_t>(perm(i)) : i;
    RawSample s;
    std::string why;
    if (!src->load(item, s, &why)) {
      spdlog::warn("pack: skipping {}: {}", s.where, why);
      ++skipped;
      continue;
    }
    char key[32];
    std::snprintf(key, sizeof key, "%012lld", static_cast<long long>(i));
    std::string ext;
    std::vector<uint8_t> bytes;
    if (!s.pixels.empty()) {
      ext = format;
      std::vector<int> params;
      if (format == "jpg") params = {cv::IMWRITE_JPEG_QUALITY, 95};
      cv::imencode("." + ext, s.pixels, bytes, params);
    } else {
      // Keep the original bytes (no re-encoding loss); name the member by its real format.
      ImageHeader h = probe_image(s.bytes.data(), s.bytes.size());
      ext = h.format == ImageFormat::kJpeg ? "jpg" : format_name(h.format);
      if (h.format == ImageFormat::kUnknown) {
        spdlog::warn("pack: skipping {}: not an image", s.where);
        ++skipped;
        continue;
      }
      std::string bad;
      DecodeOptions whole;
      whole.verify_jpeg_data = true;
      if (verify && decode_image(s.bytes.data(), s.bytes.size(), whole, &bad).empty()) {
        spdlog::warn("pack: skipping {}: {}", s.where, bad);  // a truncated JPEG would be a bad sample every epoch
        ++skipped;
        continue;
      }
      bytes = std::move(s.bytes);
    }
    std::string cls = s.label >= 0 && s.label < static_cast<int64_t>(class_names.size())
                          ? class_names[s.label]
                          : (s.label >= 0 ? std::to_string(s.label) : "");
    nlohmann::json meta = {{"key", key}, {"label", s.label}, {"class", cls}, {"source", s.where}};
    // Shards fill by samples written, so skipped images leave neither short nor empty shards.
    if (written % shard_size == 0) {
      if (w) w->close();
      w = std::make_unique<TarWriter>((fs::path(partial) / shard_name(shards++)).string());
    }
    w->add(std::string(key) + "." + ext, bytes.data(), bytes.size());
    if (s.label >= 0) w->add(std::string(key) + ".cls", std::to_string(s.label));
    w->add(std::string(key) + ".txt", cls);
    w->add(std::string(key) + ".json", meta.dump());
    ++written;
    sizes[shard_name(shards - 1)] = (written - 1) % shard_size + 1;
  }
  if (w) w->close();
  if (shards > 0) std::ofstream(fs::path(partial) / "sizes.json") << sizes.dump(1) << "\n";
  if (fs::exists(out)) fs::remove_all(out);  // checked above: empty, or only an earlier pack's shards
  fs::rename(partial, out);
  std::string pattern = (fs::path(out) / ("{" + shard_name(0).substr(0, 8) + ".." +
                                          shard_name(std::max<int64_t>(shards - 1, 0)).substr(0, 8) + "}.tar"))
                            .string();
  std::cout << nlohmann::json{{"samples", written}, {"skipped", skipped}, {"skipped_non_images", non_images},
                              {"shards", shards}, {"pattern", pattern}}
                   .dump()
            << std::endl;
  return 0;
}

int check(const Args& a) {
  if (a.positional.empty()) throw UsageError("check: give at least one shard pattern");
  auto paths = expand_shard_patterns(a.positional);
  if (paths.empty()) throw aim::Error("check: the patterns match nothing");
  const bool decode = !a.flag("--no-decode");
  const int64_t max_report = std::stoll(a.get("--max-report", "50"));
  const double max_member_mb = std::stod(a.get("--max-member-mb", std::to_string(kDefaultMaxMemberBytes >> 20)));
  if (!(max_member_mb > 0)) throw UsageError("check: --max-member-mb must be > 0");
  const double timeout_s = std::stod(a.get("--shard-timeout-s", "120"));
  if (!(timeout_s > 0)) throw UsageError("check: --shard-timeout-s must be > 0");
  const auto max_member_bytes = static_cast<uint64_t>(max_member_mb * 1048576.0);
  int64_t samples = 0, images = 0, bad = 0, missing = 0, damaged = 0, empty = 0, reported = 0;
  std::map<std::string, int64_t> reasons;
  // aim-data pack records where each sample came from in its .json member: name it too.
  auto origin = [](const WdsSample& s) -> std::string {
    for (const auto& [ext, data] : s.members) {
      if (ext != "json") continue;
      auto j = nlohmann::json::parse(data.begin(), data.end(), nullptr, false);
      if (j.is_object() && j.contains("source") && j["source"].is_string())
        return " (from " + j["source"].get<std::string>() + ")";
    }
    return "";
  };
  auto report = [&](const std::string& where, const std::string& why) {
    ++bad;
    ++reasons[why.substr(0, why.find(" ("))];
    if (reported++ < max_report) std::cout << "BAD " << where << ": " << why << "\n";
  };
  for (const auto& p : paths) {
    ShardSampleReader r(p, max_member_bytes, timeout_s);
    if (!r.ok()) {
      ++missing;
      std::cout << "MISSING " << p << ": " << r.error() << "\n";
      continue;
    }
    WdsSample s;
    int64_t n = 0;
    while (r.next(s, true)) {
      ++n;
      if (!s.damage.empty()) {
        report(p + ":" + s.key + origin(s), s.damage);
        continue;
      }
      std::vector<uint8_t>* img = nullptr;
      int64_t label = -1;
      if (!sample_image(s, &img, &label)) {
        report(p + ":" + s.key + origin(s), "no image member");
        continue;
      }
      ++images;
      if (!decode) continue;
      std::string why;
      DecodeOptions o;
      o.verify_jpeg_data = true;  // corrupt data counts as bad, as in training
      if (decode_image(img->data(), img->size(), o, &why).empty()) report(p + ":" + s.key + origin(s), why);
    }
    if (!r.ok()) {
      ++damaged;
      std::cout << "DAMAGED " << p << " after " << n << " samples: " << r.error() << "\n";
    } else if (n == 0) {
      // A tar of directories only, say: training counts it as a bad item, so must check.
      ++empty;
      std::cout << "EMPTY " << p << ": a valid tar without a single sample (only directories, links or the like)\n";
    }
    samples += n;
    std::cout << "shard " << p << ": " << n << " samples\n";
  }
  nlohmann::json summary = {{"shards", paths.size()}, {"missing", missing}, {"damaged", damaged},
                            {"empty", empty},         {"samples", samples}, {"images", images},
                            {"bad", bad},             {"bad_by_reason", reasons}};
  std::cout << summary.dump() << std::endl;
  return (bad || missing || damaged || empty) ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Args a = parse(argc, argv);
    if (a.cmd == "--help" || a.cmd == "-h" || a.cmd == "help" || a.flag("--help")) {
      std::cout << kUsage;
      return 0;
    }
    if (a.cmd == "pack") return pack(a);
    if (a.cmd == "check") return check(a);
    throw UsageError("unknown command '" + a.cmd + "'");
  } catch (const UsageError& e) {
    std::cerr << "aim-data: " << e.what() << "\n" << kUsage;
    return 2;
  } catch (const std::logic_error& e) {  // std::stoll/stod on an option that is not a number
    std::cerr << "aim-data: an option expects a number (" << e.what() << ")\n" << kUsage;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "aim-data: " << e.what() << "\n";
    return 2;
  }
}
