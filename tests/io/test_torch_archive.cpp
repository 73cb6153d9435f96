// The native torch.save reader against files Debian's python3-torch writes
// (tests/io/write_torch_save.py): every dtype, shared storages, strides, nested and DDP
// layouts, and a clear error for each kind of file it does not read.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "aim/error.h"
#include "aim/io/safetensors.h"
#include "aim/io/torch_archive.h"
#include "aim/io/weights_file.h"
#include "test_util.h"

using namespace aim;

namespace {

// One directory of files for the whole suite: the Python script takes seconds.
const std::string& archive_files() {
  static test::TempDir dir;
  static const bool written = [] {
    const std::string cmd = std::string(AIM_PYTHON) + " " + AIM_SOURCE_DIR + "/tests/io/write_torch_save.py " +
                            dir.path().string() + " >/dev/null 2>&1";
    return std::system(cmd.c_str()) == 0;
  }();
  static const std::string path = written ? dir.path().string() : "";
  return path;
}

#define NEED_FILES()                                                                          \
  AIM_REQUIRE_DEPENDENCY(!archive_files().empty(), "python3-torch (tests/io/write_torch_save.py)")

std::string file(const std::string& name) { return archive_files() + "/" + name; }

std::string archive_error_of(const std::string& path) {
  try {
    io::load_weights_file(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

torch::Tensor find(const io::NamedTensors& tensors, const std::string& name) {
  for (const auto& [n, t] : tensors)
    if (n == name) return t;
  ADD_FAILURE() << "no tensor " << name;
  return torch::Tensor();
}

}  // namespace

TEST(TorchArchive, ReadsEveryDtypeViewsAndStridesExactly) {
  NEED_FILES();
  const auto sd = io::load_torch_state_dict(file("plain.pth"));
  EXPECT_EQ(sd.location, "");
  const auto ref = io::load_safetensors(file("plain.ref.safetensors")).tensors;
  ASSERT_EQ(sd.tensors.size(), ref.size());
  for (size_t i = 0; i < ref.size(); ++i) {
    EXPECT_EQ(sd.tensors[i].first, ref[i].first) << "the pickle's order";
    const auto& got = sd.tensors[i].second;
    const auto& want = ref[i].second;
    ASSERT_EQ(got.sizes(), want.sizes()) << ref[i].first;
    if (ref[i].first == "bf16") {
      EXPECT_EQ(got.scalar_type(), torch::kBFloat16);
      EXPECT_TRUE(torch::equal(got.to(torch::kFloat), want)) << ref[i].first;
    } else {
      EXPECT_EQ(got.scalar_type(), want.scalar_type()) << ref[i].first;
      EXPECT_TRUE(torch::equal(got, want)) << ref[i].first;
    }
  }
  // A view keeps its place in the shared storage.
  EXPECT_TRUE(torch::equal(find(sd.tensors, "shared.row"), find(sd.tensors, "shared.whole")[2]));
  EXPECT_FALSE(find(sd.tensors, "shared.col_t").is_contiguous());
}

TEST(TorchArchive, ModuleStateDictWithMetadataNestedAndDdpLayouts) {
  NEED_FILES();
  const auto ref = io::load_safetensors(file("module.ref.safetensors")).tensors;
  for (const char* name : {"module.pth", "nested.pth", "ddp.pth"}) {
    const auto sd = io::load_torch_state_dict(file(name));
    ASSERT_EQ(sd.tensors.size(), ref.size()) << name;
    for (size_t i = 0; i < ref.size(); ++i) {
      EXPECT_EQ(sd.tensors[i].first, ref[i].first) << name;
      EXPECT_TRUE(torch::equal(sd.tensors[i].second, ref[i].second)) << name << " " << ref[i].first;
    }
  }
  EXPECT_EQ(io::load_torch_state_dict(file("nested.pth")).location, "model");
  // Through the format-blind entry point too, with no metadata.
  EXPECT_EQ(io::load_weights_file(file("nested.pth")).tensors.size(), ref.size());
  EXPECT_TRUE(io::read_weights_metadata(file("nested.pth")).empty());
  EXPECT_EQ(io::weights_format(file("nested.pth")), "torch.save");
}

TEST(TorchArchive, RefusesWhatItDoesNotReadByName) {
  NEED_FILES();
  EXPECT_NE(archive_error_of(file("legacy.pth")).find("pre-1.6"), std::string::npos) << archive_error_of(file("legacy.pth"));
  EXPECT_NE(archive_error_of(file("script.pt")).find("TorchScript"), std::string::npos) << archive_error_of(file("script.pt"));
  EXPECT_NE(archive_error_of(file("list.pth")).find("a list, not a state dict"), std::string::npos)
      << archive_error_of(file("list.pth"));
  const std::string nostate = archive_error_of(file("nostate.pth"));
  EXPECT_NE(nostate.find("'epoch': an int"), std::string::npos) << nostate;
  EXPECT_NE(nostate.find("no state dict"), std::string::npos) << nostate;
  EXPECT_NE(archive_error_of(file("deflated.pth")).find("compressed"), std::string::npos) << archive_error_of(file("deflated.pth"));
  EXPECT_NE(archive_error_of(file("complex.pth")).find("torch.ComplexFloatStorage"), std::string::npos)
      << archive_error_of(file("complex.pth"));
  for (const char* name : {"legacy.pth", "script.pt", "list.pth", "deflated.pth"})
    EXPECT_NE(archive_error_of(file(name)).find(file(name)), std::string::npos) << "names the file: " << name;
}

TEST(TorchArchive, TruncatedOrDamagedArchivesFailCleanly) {
  NEED_FILES();
  test::TempDir dir;
  const std::string bytes = test::slurp(file("plain.pth"));
  // Cut anywhere: an error naming the file, never a crash or a partial state dict.
  for (size_t cut : {size_t{10}, bytes.size() / 3, bytes.size() / 2, bytes.size() - 30, bytes.size() - 1}) {
    const std::string path = dir.file("cut.pth");
    std::ofstream(path, std::ios::binary) << bytes.substr(0, cut);
    const std::string err = archive_error_of(path);
    EXPECT_NE(err.find(path), std::string::npos) << "cut at " << cut << ": " << err;
  }
  // A flipped byte in the pickle fails its CRC.
  std::string damaged = bytes;
  ASSERT_EQ(damaged.compare(30, 14, "plain/data.pkl"), 0) << "data.pkl is the first record";
  auto u16 = [&](size_t at) { return static_cast<unsigned char>(damaged[at]) | static_cast<unsigned char>(damaged[at + 1]) << 8; };
  const size_t data = 30 + u16(26) + u16(28);  // past the local header, its name and its extra field
  damaged[data + 20] ^= 0x5a;
  const std::string path = dir.file("crc.pth");
  std::ofstream(path, std::ios::binary) << damaged;
  EXPECT_NE(archive_error_of(path).find("CRC"), std::string::npos) << archive_error_of(path);
}
