// copy_engine.hpp - the one copy of a single-copy transport.
//
// Below a threshold, memcpy.  Above it (by default the last-level cache
// size), non-temporal stores: the destination is written around the caches,
// which saves the read-for-ownership of every destination line and keeps a
// copy larger than the cache from evicting the receiver's working set.
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

private:
  std::size_t nt_threshold_; // SIZE_MAX when disabled or unsupported
};

// Size of the largest data/unified cache of CPU 0 from sysfs, or a 32 MiB
// guess if sysfs does not say.  Plugins pass hwloc's figure when they have it.
std::size_t last_level_cache_bytes();

} // namespace xpmem_core

#endif // XPMEM_CORE_COPY_ENGINE_HPP
