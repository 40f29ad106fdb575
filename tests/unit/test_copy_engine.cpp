// The copy engine: every size and alignment around the line and threshold
// boundaries copies exactly the bytes asked for, on both paths.
#include <cstdint>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "xpmem_core/copy_engine.hpp"

namespace {

using xpmem_core::CopyConfig;
using xpmem_core::CopyEngine;

void expect_exact_copy(const CopyEngine &engine, std::size_t n, std::size_t src_off,
                       std::size_t dst_off) {
  std::vector<unsigned char> src(n + 256), dst(n + 256, 0xee);
  for (std::size_t i = 0; i < src.size(); i++)
    src[i] = static_cast<unsigned char>(i * 131 + 7);
  engine.copy(dst.data() + dst_off, src.data() + src_off, n);
  ASSERT_EQ(std::memcmp(dst.data() + dst_off, src.data() + src_off, n), 0)
      << n << " " << src_off << " " << dst_off;
  for (std::size_t i = 0; i < dst_off; i++)
    ASSERT_EQ(dst[i], 0xee) << "wrote before the destination";
  for (std::size_t i = dst_off + n; i < dst.size(); i++)
    ASSERT_EQ(dst[i], 0xee) << "wrote past the destination";
}

TEST(CopyEngine, NonTemporalPathIsExactForAllAlignments) {
  CopyEngine always_nt(CopyConfig{true, 1});
  for (std::size_t n : {0, 1, 15, 63, 64, 65, 127, 128, 129, 1000, 4096, 65537})
    for (std::size_t so : {0, 1, 8, 33, 63})
      for (std::size_t d : {0, 1, 16, 48, 63})
        expect_exact_copy(always_nt, n, so, d);
}

TEST(CopyEngine, VectorLoopPathIsExactForAllAlignments) {
  CopyEngine never_nt(CopyConfig{false, 0});
  for (std::size_t n : {4096, 4097, 4159, 4160, 4161, 8191, 65537})
    for (std::size_t so : {0, 1, 8, 33, 63})
      for (std::size_t d : {0, 1, 16, 31, 32, 48, 63})
        expect_exact_copy(never_nt, n, so, d);
}

TEST(CopyEngine, EveryLoopIsExact) {
  for (auto stream : {CopyEngine::Stream::Sse2, CopyEngine::Stream::Avx2}) {
    if (!CopyEngine::cpu_has(stream))
      continue;
    for (auto copy : {&CopyEngine::copy_non_temporal, &CopyEngine::copy_temporal})
      for (std::size_t n : {0, 31, 63, 64, 65, 127, 128, 129, 200, 4096, 100000}) {
        std::vector<unsigned char> src(n + 64), dst(n + 128, 0xee);
        for (std::size_t i = 0; i < src.size(); i++)
          src[i] = static_cast<unsigned char>(i * 7 + 1);
        copy(dst.data() + 3, src.data() + 5, n, stream);
        ASSERT_EQ(std::memcmp(dst.data() + 3, src.data() + 5, n), 0) << n;
        ASSERT_EQ(dst[2], 0xee);
        ASSERT_EQ(dst[3 + n], 0xee);
      }
  }
  EXPECT_TRUE(CopyEngine::cpu_has(CopyEngine::Stream::Sse2));
}

TEST(CopyEngine, ThresholdSelectsThePath) {
  CopyEngine engine(CopyConfig{true, 4096});
  EXPECT_EQ(engine.non_temporal_threshold(), 4096u);
  for (std::size_t n : {4095, 4096, 4097, 1 << 20})
    expect_exact_copy(engine, n, 3, 5);
  CopyEngine off(CopyConfig{false, 4096});
  EXPECT_EQ(off.non_temporal_threshold(), SIZE_MAX);
  expect_exact_copy(off, 1 << 20, 0, 0);
}

TEST(CopyEngine, DefaultThresholdIsTheLastLevelCache) {
  std::size_t llc = xpmem_core::last_level_cache_bytes();
  EXPECT_GE(llc, 64u * 1024);
  EXPECT_LE(llc, 4ull << 30);
  EXPECT_EQ(CopyEngine().non_temporal_threshold(), llc);
}

} // namespace
