#include "xpmem_core/attach_cache.hpp"

#include <algorithm>
#include <utility>
#include <vector>

namespace xpmem_core {

AttachCache::Lease::Lease(Lease &&other) noexcept
    : cache_(std::exchange(other.cache_, nullptr)), entry_(std::exchange(other.entry_, nullptr)),
      ptr_(std::exchange(other.ptr_, nullptr)) {}

AttachCache::Lease &AttachCache::Lease::operator=(Lease &&other) noexcept {
  if (this != &other) {
    reset();
    cache_ = std::exchange(other.cache_, nullptr);
    entry_ = std::exchange(other.entry_, nullptr);
    ptr_ = std::exchange(other.ptr_, nullptr);
  }
  return *this;
}

void AttachCache::Lease::reset() noexcept {
  if (cache_)
    cache_->release(entry_);
  cache_ = nullptr;
  entry_ = nullptr;
  ptr_ = nullptr;
}

AttachCache::AttachCache(Attacher &attacher, AttachCacheConfig config)
    : attacher_(attacher), config_(config) {}

AttachCache::~AttachCache() {
  std::lock_guard guard(lock_);
  // Leases must not outlive the cache; whatever is left is detached.
  for (auto &[start, entry] : by_start_)
    attacher_.detach(entry->local, entry->end - entry->start);
  for (auto &[key, entry] : retired_)
    attacher_.detach(entry->local, entry->end - entry->start);
}

AttachCache::Lease AttachCache::map(std::uintptr_t remote, std::size_t len) {
  const std::uintptr_t align = config_.alignment;
  if (len == 0 || remote + len < remote || remote + len > config_.address_limit)
    return {};
  std::lock_guard guard(lock_);
  Entry *entry = lookup_locked(remote, remote + len);
  if (entry) {
    stats_.hits++;
    lru_.splice(lru_.begin(), lru_, entry->lru);
  } else {
    stats_.misses++;
    std::uintptr_t start = remote & ~(align - 1);
    std::uintptr_t end = remote + len;
    // Round the end out unless that passes the peer's last address.
    std::uintptr_t rounded = (end + align - 1) & ~(align - 1);
    end = rounded > end && rounded <= config_.address_limit ? rounded : end;
    entry = insert_locked(start, end);
    if (!entry) {
      stats_.failures++;
      return {};
    }
  }
  entry->users++;
  evict_locked();
  auto *local = static_cast<char *>(entry->local) + (remote - entry->start);
  return Lease(this, entry, local);
}

AttachCache::Entry *AttachCache::lookup_locked(std::uintptr_t start, std::uintptr_t end) {
  auto it = by_start_.upper_bound(start);
  if (it == by_start_.begin())
    return nullptr;
  Entry *candidate = std::prev(it)->second.get();
  return candidate->end >= end ? candidate : nullptr;
}

// Makes an attachment for [start, end) grown to cover every attachment it
// overlaps, which leaves the cache; idle ones are detached now, busy ones
// when their last lease ends.
AttachCache::Entry *AttachCache::insert_locked(std::uintptr_t start, std::uintptr_t end) {
  std::vector<std::map<std::uintptr_t, std::unique_ptr<Entry>>::iterator> overlapping;
  auto it = by_start_.upper_bound(start);
  if (it != by_start_.begin() && std::prev(it)->second->end > start)
    --it;
  for (; it != by_start_.end() && it->first < end; ++it) {
    overlapping.push_back(it);
    start = std::min(start, it->second->start);
    end = std::max(end, it->second->end);
  }

  void *local = attacher_.attach(start, end - start);
  if (!local)
    return nullptr;

  for (auto old : overlapping) {
    std::unique_ptr<Entry> owned = std::move(old->second);
    by_start_.erase(old);
    lru_.erase(owned->lru);
    if (owned->users == 0) {
      destroy_locked(owned.get());
    } else {
      owned->retired = true;
      Entry *key = owned.get();
      retired_.emplace(key, std::move(owned));
    }
  }

  auto entry = std::make_unique<Entry>();
  entry->start = start;
  entry->end = end;
  entry->local = local;
  lru_.push_front(entry.get());
  entry->lru = lru_.begin();
  stats_.entries++;
  stats_.bytes += end - start;
  Entry *raw = entry.get();
  by_start_.emplace(start, std::move(entry));
  return raw;
}

void AttachCache::destroy_locked(Entry *entry) {
  attacher_.detach(entry->local, entry->end - entry->start);
  stats_.entries--;
  stats_.bytes -= entry->end - entry->start;
}

void AttachCache::evict_locked() {
  auto it = lru_.end();
  while ((stats_.bytes > config_.max_bytes || stats_.entries > config_.max_entries) &&
         it != lru_.begin()) {
    Entry *victim = *--it;
    if (victim->users != 0)
      continue;
    it = lru_.erase(it);
    destroy_locked(victim);
    stats_.evictions++;
    by_start_.erase(victim->start);
  }
}

void AttachCache::release(Entry *entry) noexcept {
  std::lock_guard guard(lock_);
  if (--entry->users != 0)
    return;
  if (entry->retired) {
    destroy_locked(entry);
    retired_.erase(entry);
    return;
  }
  evict_locked();
}

void AttachCache::clear() {
  std::lock_guard guard(lock_);
  for (auto it = by_start_.begin(); it != by_start_.end();) {
    Entry *entry = it->second.get();
    if (entry->users != 0) {
      ++it;
      continue;
    }
    lru_.erase(entry->lru);
    destroy_locked(entry);
    it = by_start_.erase(it);
  }
}

AttachCacheStats AttachCache::stats() const {
  std::lock_guard guard(lock_);
  return stats_;
}

} // namespace xpmem_core
