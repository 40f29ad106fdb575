// attach_cache.hpp - a per-peer cache of attachments of the peer's exported
// address space, shared by the Open MPI and UCX plugins.
//
// A request for [addr, addr+len) of the peer is served from an attachment
// that already covers it, or a new one is made covering the request rounded
// out to `alignment` (and merged with neighbouring idle attachments it
// overlaps).  Attachments stay mapped for reuse, up to a bound on bytes and
// on entries; past it the least recently used idle ones are detached.
//
// Correctness does not depend on invalidation: the module keeps an
// attachment coherent with the peer's *virtual* range (free/re-allocate at
// the same address shows the new memory), so the cache only manages
// resources.  Entries in use (a live Lease) are never detached.
#ifndef XPMEM_CORE_ATTACH_CACHE_HPP
#define XPMEM_CORE_ATTACH_CACHE_HPP

#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>

namespace xpmem_core {

// How the cache makes and removes attachments; the production one wraps
// xpmem_attach/xpmem_detach of one permit, tests use a fake.
class Attacher {
public:
  virtual ~Attacher() = default;
  // Maps [remote, remote+len) of the peer; nullptr on failure.
  virtual void *attach(std::uintptr_t remote, std::size_t len) noexcept = 0;
  virtual void detach(void *local, std::size_t len) noexcept = 0;
};

struct AttachCacheConfig {
  std::size_t alignment = std::size_t{2} << 20;      // power of two, >= page size
  std::size_t max_bytes = std::size_t{64} << 30;     // attached bytes before LRU eviction
  std::size_t max_entries = 4096;                    // attachments before LRU eviction
  std::uintptr_t address_limit = ~std::uintptr_t{0}; // first remote address not attachable
};

struct AttachCacheStats {
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
  std::uint64_t evictions = 0;
  std::uint64_t failures = 0;
  std::size_t entries = 0;
  std::size_t bytes = 0;
};

class AttachCache {
  struct Entry;

public:
  // Keeps one attachment mapped while the caller copies through it.
  class Lease {
  public:
    Lease() = default;
    Lease(Lease &&other) noexcept;
    Lease &operator=(Lease &&other) noexcept;
    Lease(const Lease &) = delete;
    Lease &operator=(const Lease &) = delete;
    ~Lease() { reset(); }

    explicit operator bool() const noexcept { return ptr_ != nullptr; }
    // Local address of the requested remote address.
    void *get() const noexcept { return ptr_; }
    void reset() noexcept;

  private:
    friend class AttachCache;
    Lease(AttachCache *cache, Entry *entry, void *ptr) noexcept
        : cache_(cache), entry_(entry), ptr_(ptr) {}
    AttachCache *cache_ = nullptr;
    Entry *entry_ = nullptr;
    void *ptr_ = nullptr;
  };

  AttachCache(Attacher &attacher, AttachCacheConfig config);
  ~AttachCache();
  AttachCache(const AttachCache &) = delete;
  AttachCache &operator=(const AttachCache &) = delete;

  // A lease on an attachment covering [remote, remote+len); empty on failure.
  Lease map(std::uintptr_t remote, std::size_t len);

  // Detaches every idle attachment (e.g. when the peer goes away).
  void clear();

  AttachCacheStats stats() const;
  const AttachCacheConfig &config() const noexcept { return config_; }

private:
  struct Entry {
    std::uintptr_t start = 0; // remote range [start, end)
    std::uintptr_t end = 0;
    void *local = nullptr;
    unsigned users = 0;
    bool retired = false; // replaced by a larger attachment; detach when idle
    std::list<Entry *>::iterator lru;
  };

  void release(Entry *entry) noexcept;
  Entry *lookup_locked(std::uintptr_t start, std::uintptr_t end);
  Entry *insert_locked(std::uintptr_t start, std::uintptr_t end);
  void evict_locked();
  void destroy_locked(Entry *entry);

  Attacher &attacher_;
  const AttachCacheConfig config_;
  mutable std::mutex lock_;
  std::map<std::uintptr_t, std::unique_ptr<Entry>> by_start_; // non-overlapping
  std::map<Entry *, std::unique_ptr<Entry>> retired_;
  std::list<Entry *> lru_; // most recent first; every entry of by_start_
  AttachCacheStats stats_;
};

} // namespace xpmem_core

#endif // XPMEM_CORE_ATTACH_CACHE_HPP
