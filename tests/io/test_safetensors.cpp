#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "aim/error.h"
#include "aim/io/safetensors.h"
#include "aim/io/state_dict.h"
#include "aim/model/aim_encoder.h"
#include "aim/model/aim_pretrain.h"
#include "test_util.h"

using namespace aim;

namespace {

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_file_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string safetensors_error_of(const std::string& path) {
  try {
    io::load_safetensors(path);
  } catch (const aim::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Safetensors, RoundTripsEveryDtypeAndMetadata) {
  aim::test::TempDir dir;
  io::NamedTensors in = {
      {"f32", torch::randn({3, 4})},
      {"f64", torch::randn({2}, torch::kFloat64)},
      {"f16", torch::randn({5}).to(torch::kFloat16)},
      {"bf16", torch::randn({2, 2}).to(torch::kBFloat16)},
      {"i64", torch::arange(7, torch::kInt64)},
      {"i32", torch::arange(3, torch::kInt32)},
      {"u8", torch::arange(9, torch::kUInt8).view({3, 3})},
      {"bool", torch::tensor({true, false})},
      {"scalar", torch::tensor(3.5f)},
      {"empty", torch::zeros({0, 4})},
      {"strided", torch::randn({4, 4}).t()},  // non-contiguous input is written correctly
  };
  io::save_safetensors(dir.file("a.safetensors"), in, {{"format", "pt"}, {"note", "x"}});
  auto out = io::load_safetensors(dir.file("a.safetensors"));
  ASSERT_EQ(out.tensors.size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_EQ(out.tensors[i].first, in[i].first);
    EXPECT_EQ(out.tensors[i].second.scalar_type(), in[i].second.scalar_type()) << in[i].first;
    EXPECT_TRUE(torch::equal(out.tensors[i].second, in[i].second)) << in[i].first;
  }
  EXPECT_EQ(out.metadata.at("format"), "pt");
  // The header is padded so the data section is 8-byte aligned.
  auto bytes = read_bytes(dir.file("a.safetensors"));
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  EXPECT_EQ(n % 8, 0u);
  // No temporary is left behind.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
}

TEST(Safetensors, TruncatedFilesAreClearErrors) {
  aim::test::TempDir dir;
  io::save_safetensors(dir.file("w.safetensors"), {{"w", torch::randn({64, 64})}});
  const auto bytes = read_bytes(dir.file("w.safetensors"));
  for (size_t cut : {size_t(0), size_t(5), size_t(8), size_t(20), bytes.size() / 2, bytes.size() - 1}) {
    write_file_bytes(dir.file("t.safetensors"), bytes.substr(0, cut));
    auto msg = safetensors_error_of(dir.file("t.safetensors"));
    EXPECT_NE(msg.find("t.safetensors"), std::string::npos) << "cut " << cut << ": " << msg;
  }
  write_file_bytes(dir.file("t.safetensors"), bytes.substr(0, bytes.size() - 1));
  auto msg = safetensors_error_of(dir.file("t.safetensors"));
  EXPECT_NE(msg.find("tensor 'w'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
}

TEST(Safetensors, MalformedHeadersAreClearErrors) {
  aim::test::TempDir dir;
  auto with_header = [&](const std::string& json, size_t data_bytes) {
    std::string b(8, '\0');
    for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((json.size() >> (8 * i)) & 0xff);
    b += json + std::string(data_bytes, '\0');
    write_file_bytes(dir.file("m.safetensors"), b);
    return safetensors_error_of(dir.file("m.safetensors"));
  };
  EXPECT_NE(with_header("{not json", 0).find("not valid JSON"), std::string::npos);
  EXPECT_NE(with_header("[1,2]", 0).find("not a JSON object"), std::string::npos);
  EXPECT_NE(with_header(R"({"a":{"dtype":"F12","shape":[1],"data_offsets":[0,4]}})", 4).find("unsupported dtype"),
            std::string::npos);
  EXPECT_NE(with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 8).find("do not hold"),
            std::string::npos);
  EXPECT_NE(with_header(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4).find("non-negative"),
            std::string::npos);
  EXPECT_NE(with_header(R"({"a":{"dtype":"F32","shape":[1]}})", 4).find("needs dtype"), std::string::npos);
  EXPECT_NE(with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}})", 8)
                .find("overlap"),
            std::string::npos);
  // Element counts that wrap around 2^64: (2^62+1) x 4 elements, x 4 bytes = 2^66 + 16,
  // which wraps to 16 and would "match" data_offsets [0, 16].
  for (const char* shape : {"[4611686018427387905,4]", "[4294967296,4294967296,2]", "[9223372036854775807,2]"}) {
    const auto msg = with_header(std::string(R"({"huge":{"dtype":"F32","shape":)") + shape +
                                     R"(,"data_offsets":[0,16]}})",
                                 16);
    EXPECT_NE(msg.find("tensor 'huge': shape"), std::string::npos) << shape << ": " << msg;
    EXPECT_NE(msg.find("more elements than any file can hold"), std::string::npos) << shape << ": " << msg;
  }
  // A header length pointing far past the end (e.g. a random binary file).
  write_file_bytes(dir.file("m.safetensors"), std::string("\xff\xff\xff\x00\x00\x00\x00\x00{}", 10));
  EXPECT_NE(safetensors_error_of(dir.file("m.safetensors")).find("header length"), std::string::npos);
  EXPECT_NE(safetensors_error_of(dir.file("missing.safetensors")).find("cannot open"), std::string::npos);
}

// Random corruption anywhere in the file either still parses or raises aim::Error;
// it never crashes or throws anything else.
TEST(Safetensors, RandomCorruptionNeverCrashes) {
  aim::test::TempDir dir;
  io::save_safetensors(dir.file("w.safetensors"), {{"a", torch::randn({4, 4})}, {"b", torch::arange(5)}});
  const auto bytes = read_bytes(dir.file("w.safetensors"));
  std::mt19937 rng(123);
  for (int trial = 0; trial < 300; ++trial) {
    auto b = bytes;
    for (int flips = 0; flips < 1 + trial % 4; ++flips)
      b[rng() % (trial % 2 ? b.size() : 80)] = static_cast<char>(rng() & 0xff);
    write_file_bytes(dir.file("c.safetensors"), b);
    try {
      io::load_safetensors(dir.file("c.safetensors"));
    } catch (const aim::Error&) {
    } catch (const std::exception& e) {
      ADD_FAILURE() << "trial " << trial << " threw a non-aim error: " << e.what();
    }
  }
}

TEST(StateDict, NamesFollowTheOfficialCheckpoints) {
  auto cfg = aim::test::tiny_config();
  model::AimPretrainModel net(cfg);
  std::set<std::string> names;
  for (const auto& [n, t] : io::state_dict(*net)) names.insert(n);
  for (const char* expected :
       {"preprocessor.patchifier.proj.weight", "preprocessor.patchifier.proj.bias", "preprocessor.patchifier.norm.weight",
        "preprocessor.patchifier.norm.bias", "trunk.blocks.0.norm_1.weight", "trunk.blocks.0.norm_1.bias",
        "trunk.blocks.1.attn.qkv.weight", "trunk.blocks.1.attn.proj.weight", "trunk.blocks.0.norm_2.weight",
        "trunk.blocks.0.mlp.fc1.weight", "trunk.blocks.0.mlp.fc2.weight", "trunk.post_trunk_norm.weight",
        "trunk.post_trunk_norm.bias", "pretrain_head.proj_in.weight", "pretrain_head.blocks.1.mlp.fc2.weight",
        "pretrain_head.norm.bias", "pretrain_head.proj_out.bias"})
    EXPECT_TRUE(names.count(expected)) << expected;
  // Trunk linears carry no bias (spec §2).
  EXPECT_FALSE(names.count("trunk.blocks.0.attn.qkv.bias"));
  EXPECT_FALSE(names.count("trunk.blocks.0.mlp.fc1.bias"));
  EXPECT_EQ(net->trunk->blocks[0]->as<model::BlockImpl>()->attn->qkv->weight.sizes(), (std::vector<int64_t>{96, 32}));
}

TEST(StateDict, TrunkExportLoadsIntoEncoderAndBack) {
  aim::test::TempDir dir;
  auto cfg = aim::test::tiny_config();
  torch::manual_seed(1);
  model::AimPretrainModel net(cfg);
  auto trunk = io::filter_prefixes(io::state_dict(*net), {"preprocessor.", "trunk."});
  io::save_safetensors(dir.file("trunk.safetensors"), trunk);
  torch::manual_seed(2);
  model::AimEncoder enc(cfg);
  io::load_state_dict(*enc, io::load_safetensors(dir.file("trunk.safetensors")).tensors, "trunk.safetensors");
  auto images = torch::randn({2, 3, 16, 16});
  auto via_pretrain = net->trunk->forward(net->preprocessor->forward(images), model::AttentionMask()).normed;
  EXPECT_TRUE(torch::allclose(enc->forward(images), via_pretrain));
}

TEST(StateDict, MismatchesAreListedNeverPartiallyLoaded) {
  auto cfg = aim::test::tiny_config();
  model::AimEncoder enc(cfg);
  auto sd = io::state_dict(*enc);
  auto before = enc->trunk->post_trunk_norm->weight.clone();
  io::NamedTensors bad;
  for (auto& [n, t] : sd) {
    if (n == "trunk.blocks.1.mlp.fc2.weight") continue;                                  // missing
    if (n == "trunk.blocks.0.attn.proj.weight") { bad.emplace_back(n, torch::zeros({4, 4})); continue; }  // shape
    bad.emplace_back(n, t.detach().clone().fill_(7));
  }
  bad.emplace_back("trunk.blocks.9.norm_1.weight", torch::zeros({32}));  // unexpected
  bad.emplace_back("head.k.weight", torch::zeros({32, 32}));             // outside the prefixes: ignored
  try {
    io::load_state_dict(*enc, bad, "bad.safetensors", {"preprocessor.", "trunk."});
    FAIL() << "mismatched weights loaded";
  } catch (const aim::Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("bad.safetensors"), std::string::npos);
    EXPECT_NE(msg.find("missing (1):\n    trunk.blocks.1.mlp.fc2.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("unexpected (1):\n    trunk.blocks.9.norm_1.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("trunk.blocks.0.attn.proj.weight (expected [32, 32], got [4, 4])"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("head.k.weight"), std::string::npos);
  }
  EXPECT_TRUE(torch::equal(enc->trunk->post_trunk_norm->weight, before)) << "partial load happened";
}
