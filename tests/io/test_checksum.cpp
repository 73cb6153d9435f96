// XXH64 against the reference implementation's values (computed with libxxhash 0.8.1's
// XXH64()), the block digest's independence from how many threads hash it, and the mapped
// file and in-memory safetensors index that checkpoint restores read through.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <string>

#include "aim/error.h"
#include "aim/io/checksum.h"
#include "aim/io/mapped_file.h"
#include "aim/io/safetensors.h"
#include "test_util.h"

using namespace aim;

TEST(Checksum, Xxh64MatchesTheReferenceImplementation) {
  EXPECT_EQ(io::xxh64("", 0), 0xef46db3751d8e999ull);
  EXPECT_EQ(io::xxh64("a", 1), 0xd24ec4f1a98c6e5bull);
  EXPECT_EQ(io::xxh64("abc", 3), 0x44bc2cf5ad770999ull);
  const std::string s33 = "0123456789abcdef0123456789abcdef!";  // the 32-byte stripes, then an 8-, 4- and 1-byte tail
  EXPECT_EQ(io::xxh64(s33.data(), s33.size()), 0x8afff4daac4e677eull);
  std::string bytes;
  for (int rep = 0; rep < 3; ++rep)
    for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>(i));
  EXPECT_EQ(io::xxh64(bytes.data(), bytes.size(), 7), 0xb1e10f6c5294cd6bull);
}

TEST(Checksum, BlockDigestIsTheSameOnAnyThreadCountAndSeesEveryByte) {
  std::string data(100003, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i * 2654435761u) >> 13);
  const uint64_t one = io::block_digest(data.data(), data.size(), 4096, 1);
  EXPECT_EQ(io::block_digest(data.data(), data.size(), 4096, 3), one);
  EXPECT_EQ(io::block_digest(data.data(), data.size(), 4096, 64), one);
  // By definition: XXH64 over the blocks' XXH64s.
  std::vector<uint64_t> blocks;
  for (size_t at = 0; at < data.size(); at += 4096) blocks.push_back(io::xxh64(data.data() + at, std::min<size_t>(4096, data.size() - at)));
  EXPECT_EQ(io::combine_block_hashes(blocks), one);
  EXPECT_NE(io::block_digest(data.data(), data.size(), 8192, 1), one);  // the block size is part of it
  for (size_t at : {size_t{0}, size_t{4095}, size_t{4096}, data.size() - 1}) {
    std::string flipped = data;
    flipped[at] ^= 1;
    EXPECT_NE(io::block_digest(flipped.data(), flipped.size(), 4096, 2), one) << at;
  }
  EXPECT_EQ(io::parse_digest_hex(io::digest_hex(one)), one);
  EXPECT_THROW(io::parse_digest_hex("12"), Error);
}

TEST(Checksum, SafetensorsIndexOfAMappedFileMatchesTheFile) {
  test::TempDir dir;
  io::NamedTensors in = {{"i64", torch::arange(3, torch::kInt64)}, {"f32", torch::randn({2, 5})}};
  io::save_safetensors(dir.file("a.safetensors"), in, {{"k", "v"}});
  // What save_safetensors writes starts with safetensors_prefix.
  std::ifstream f(dir.file("a.safetensors"), std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(f)), {});
  const auto prefix = io::safetensors_prefix({{"i64", torch::kInt64, {3}}, {"f32", torch::kFloat32, {2, 5}}}, {{"k", "v"}});
  EXPECT_EQ(bytes.substr(0, prefix.size()), prefix);
  EXPECT_EQ(bytes.size(), prefix.size() + 3 * 8 + 10 * 4);

  io::MappedFile m(dir.file("a.safetensors"));
  ASSERT_EQ(m.size(), bytes.size());
  const auto index = io::index_safetensors(m.data(), m.size(), m.path());
  EXPECT_EQ(index.metadata.at("k"), "v");
  ASSERT_EQ(index.tensors.size(), 2u);
  EXPECT_EQ(index.data_start, prefix.size());
  const auto& e = index.tensors[1];
  EXPECT_EQ(e.name, "f32");
  EXPECT_EQ(e.shape, (std::vector<int64_t>{2, 5}));
  auto t = torch::from_blob(const_cast<uint8_t*>(m.data() + e.offset), e.shape, torch::kFloat32);
  EXPECT_TRUE(torch::equal(t, in[1].second));
  // A truncated copy in memory is the same clear error as the file.
  try {
    io::index_safetensors(m.data(), m.size() - 4, "cut.safetensors");
    ADD_FAILURE() << "a truncated buffer was indexed";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("cut.safetensors"), std::string::npos) << err.what();
    EXPECT_NE(std::string(err.what()).find("truncated"), std::string::npos) << err.what();
  }
  EXPECT_THROW(io::MappedFile(dir.file("missing")), Error);
}
