#include "xpmem_core/copy_engine.hpp"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace xpmem_core {

namespace {

// "32768K", "8M" or a plain byte count, as sysfs writes cache sizes.
std::size_t parse_size(const std::string &text) {
  std::size_t pos = 0;
  unsigned long long value = 0;
  try {
    value = std::stoull(text, &pos);
  } catch (...) {
    return 0;
  }
  switch (pos < text.size() ? text[pos] : '\0') {
  case 'K':
    return value << 10;
  case 'M':
    return value << 20;
  case 'G':
    return value << 30;
  default:
    return value;
  }
}

} // namespace

std::size_t last_level_cache_bytes() {
  std::size_t best = 0;
  int best_level = -1;
  for (int index = 0; index < 16; index++) {
    const std::string dir =
        "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/";
    std::ifstream level_file(dir + "level"), type_file(dir + "type"), size_file(dir + "size");
    int level = 0;
    std::string type, size;
    if (!(level_file >> level) || !(type_file >> type) || !(size_file >> size))
      break;
    if (type == "Instruction")
      continue;
    if (level > best_level) {
      best_level = level;
      best = parse_size(size);
    }
  }
  return best ? best : std::size_t{32} << 20;
}

CopyEngine::CopyEngine(CopyConfig config) {
  nt_threshold_ = std::numeric_limits<std::size_t>::max();
#if defined(__x86_64__)
  if (config.non_temporal)
    nt_threshold_ =
        config.non_temporal_threshold ? config.non_temporal_threshold : last_level_cache_bytes();
#else
  (void)config;
#endif
}

void CopyEngine::copy(void *dst, const void *src, std::size_t n) const noexcept {
  if (n >= nt_threshold_)
    copy_non_temporal(dst, src, n);
  else if (n >= kVectorLoopMin)
    copy_temporal(dst, src, n);
  else
    std::memcpy(dst, src, n);
}

#if defined(__x86_64__)
namespace {

// Copy whole 64-byte lines from s to d (aligned to 16 bytes at least):
// streamed around the caches, or through them.
template <bool NonTemporal> void lines_sse2(char *d, const char *s, std::size_t lines) noexcept {
  for (; lines; lines--, d += 64, s += 64) {
    __m128i v[4];
    for (int i = 0; i < 4; i++)
      v[i] = _mm_loadu_si128(reinterpret_cast<const __m128i *>(s + 16 * i));
    for (int i = 0; i < 4; i++) {
      auto *line = reinterpret_cast<__m128i *>(d + 16 * i);
      if constexpr (NonTemporal)
        _mm_stream_si128(line, v[i]);
      else
        _mm_store_si128(line, v[i]);
    }
  }
}

// The same with 32-byte vectors; d is 64-byte aligned for streaming, 32-byte
// aligned for copying through the caches (two lines per turn there).
__attribute__((target("avx2"))) void stream_lines_avx2(char *d, const char *s,
                                                       std::size_t lines) noexcept {
  for (; lines; lines--, d += 64, s += 64) {
    __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(s));
    __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(s + 32));
    _mm256_stream_si256(reinterpret_cast<__m256i *>(d), a);
    _mm256_stream_si256(reinterpret_cast<__m256i *>(d + 32), b);
  }
}

__attribute__((target("avx2"))) void copy_lines_avx2(char *d, const char *s,
                                                     std::size_t lines) noexcept {
  for (; lines >= 2; lines -= 2, d += 128, s += 128) {
    __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(s));
    __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(s + 32));
    __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(s + 64));
    __m256i e = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(s + 96));
    _mm256_store_si256(reinterpret_cast<__m256i *>(d), a);
    _mm256_store_si256(reinterpret_cast<__m256i *>(d + 32), b);
    _mm256_store_si256(reinterpret_cast<__m256i *>(d + 64), c);
    _mm256_store_si256(reinterpret_cast<__m256i *>(d + 96), e);
  }
  if (lines) {
    __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(s));
    __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(s + 32));
    _mm256_store_si256(reinterpret_cast<__m256i *>(d), a);
    _mm256_store_si256(reinterpret_cast<__m256i *>(d + 32), b);
  }
}

bool has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2");
}

const bool cpu_avx2 = has_avx2();

} // namespace
#endif

bool CopyEngine::cpu_has(Stream stream) noexcept {
#if defined(__x86_64__)
  return stream != Stream::Avx2 || cpu_avx2;
#else
  return stream == Stream::Best;
#endif
}

#if defined(__x86_64__)
namespace {

using LinesFn = void (*)(char *, const char *, std::size_t) noexcept;

// memcpy's head up to an `align`-byte destination boundary, whole 64-byte
// lines by `lines`, and memcpy's tail.
void copy_by_lines(void *dst, const void *src, std::size_t n, std::size_t align, LinesFn lines_fn,
                   bool non_temporal) noexcept {
  auto *d = static_cast<char *>(dst);
  auto *s = static_cast<const char *>(src);
  std::size_t head = (align - (reinterpret_cast<std::uintptr_t>(d) & (align - 1))) & (align - 1);
  if (head > n)
    head = n;
  std::memcpy(d, s, head);
  d += head;
  s += head;
  n -= head;
  const std::size_t lines = n / 64;
  lines_fn(d, s, lines);
  // Streamed stores are weakly ordered: fence before anyone is told "done".
  if (non_temporal)
    _mm_sfence();
  std::memcpy(d + lines * 64, s + lines * 64, n - lines * 64);
}

bool use_avx2(CopyEngine::Stream stream) {
  return stream == CopyEngine::Stream::Avx2 || (stream == CopyEngine::Stream::Best && cpu_avx2);
}

} // namespace
#endif

void CopyEngine::copy_temporal(void *dst, const void *src, std::size_t n, Stream stream) noexcept {
#if defined(__x86_64__)
  copy_by_lines(dst, src, n, 32, use_avx2(stream) ? copy_lines_avx2 : lines_sse2<false>, false);
#else
  (void)stream;
  std::memcpy(dst, src, n);
#endif
}

void CopyEngine::copy_non_temporal(void *dst, const void *src, std::size_t n,
                                   Stream stream) noexcept {
#if defined(__x86_64__)
  copy_by_lines(dst, src, n, 64, use_avx2(stream) ? stream_lines_avx2 : lines_sse2<true>, true);
#else
  (void)stream;
  std::memcpy(dst, src, n);
#endif
}

} // namespace xpmem_core
