// copy_engine.hpp - the one copy of a single-copy transport.
//
// Below a threshold, ordinary stores.  Above it (by default the last-level
// cache size), non-temporal stores: the destination is written around the
// caches, which saves the read-for-ownership of every destination line and
// keeps a copy larger than the cache from evicting the receiver's working set.
//
// Copies of kVectorLoopMin bytes and more below the threshold use our own
// vector loop rather than memcpy: glibc's memcpy turns to `rep movsb` for
// medium sizes (8 KiB to about 512 KiB), whose speed depends on the CPU's
// microcode and on the hypervisor.  Natively on an AMD EPYC with FSRM the
// loop ran 1-17% faster than memcpy at 8 KiB-1 MiB; under QEMU/TCG, which
// emulates `rep movsb` a byte at a time, about 8x faster.
#ifndef XPMEM_CORE_COPY_ENGINE_HPP
#define XPMEM_CORE_COPY_ENGINE_HPP

#include <cstddef>

namespace xpmem_core {

struct CopyConfig {
  bool non_temporal = true;
  // Copies of at least this many bytes use non-temporal stores; 0 means
  // "the last-level cache size" (see last_level_cache_bytes()).
  std::size_t non_temporal_threshold = 0;
};

class CopyEngine {
public:
  explicit CopyEngine(CopyConfig config = {});

  void copy(void *dst, const void *src, std::size_t n) const noexcept;
  std::size_t non_temporal_threshold() const noexcept { return nt_threshold_; }

  // Which streaming loop: the best this CPU has, or a given one (tests).
  enum class Stream { Best, Sse2, Avx2 };
  static bool cpu_has(Stream stream) noexcept;
  // memcpy with non-temporal stores regardless of size.
  static void copy_non_temporal(void *dst, const void *src, std::size_t n,
                                Stream stream = Stream::Best) noexcept;
  // memcpy by the vector loop with ordinary stores, regardless of size.
  static void copy_temporal(void *dst, const void *src, std::size_t n,
                            Stream stream = Stream::Best) noexcept;
  static constexpr std::size_t kVectorLoopMin = 4096;

private:
  std::size_t nt_threshold_; // SIZE_MAX when disabled or unsupported
};

// Size of the largest data/unified cache of CPU 0 from sysfs, or a 32 MiB
// guess if sysfs does not say.  Plugins pass hwloc's figure when they have it.
std::size_t last_level_cache_bytes();

} // namespace xpmem_core

#endif // XPMEM_CORE_COPY_ENGINE_HPP
