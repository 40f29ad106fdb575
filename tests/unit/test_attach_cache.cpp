// The attachment cache's bookkeeping, against a fake attacher that hands
// out distinct local addresses and records what is mapped.
#include <cstdint>
#include <map>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "xpmem_core/attach_cache.hpp"

namespace {

using xpmem_core::AttachCache;
using xpmem_core::AttachCacheConfig;

constexpr std::uintptr_t kMiB = 1 << 20;

class FakeAttacher : public xpmem_core::Attacher {
public:
  void *attach(std::uintptr_t remote, std::size_t len) noexcept override {
    if (fail_next) {
      fail_next = false;
      return nullptr;
    }
    std::uintptr_t local = next_local;
    next_local += len + kMiB; // gaps make overlaps between mappings impossible
    live[local] = {remote, len};
    attaches++;
    return reinterpret_cast<void *>(local);
  }
  void detach(void *p, std::size_t len) noexcept override {
    auto it = live.find(reinterpret_cast<std::uintptr_t>(p));
    ASSERT_NE(it, live.end()) << "detach of something never attached";
    EXPECT_EQ(it->second.second, len);
    live.erase(it);
    detaches++;
  }
  // The remote address a local address of a live mapping stands for.
  std::uintptr_t remote_of(const void *p) const {
    auto local = reinterpret_cast<std::uintptr_t>(p);
    auto it = live.upper_bound(local);
    if (it == live.begin())
      return 0;
    --it;
    if (local >= it->first + it->second.second)
      return 0;
    return it->second.first + (local - it->first);
  }

  std::map<std::uintptr_t, std::pair<std::uintptr_t, std::size_t>> live; // local -> remote, len
  std::uintptr_t next_local = 0x100000000000;
  int attaches = 0, detaches = 0;
  bool fail_next = false;
};

AttachCacheConfig config(std::size_t align = 2 * kMiB, std::size_t max_bytes = 1ull << 40,
                         std::size_t max_entries = 1000) {
  AttachCacheConfig c;
  c.alignment = align;
  c.max_bytes = max_bytes;
  c.max_entries = max_entries;
  return c;
}

TEST(AttachCache, MissThenHitWithAlignedRange) {
  FakeAttacher fake;
  AttachCache cache(fake, config());
  auto a = cache.map(5 * kMiB + 100, 1000);
  ASSERT_TRUE(a);
  EXPECT_EQ(fake.remote_of(a.get()), 5 * kMiB + 100);
  ASSERT_EQ(fake.live.size(), 1u);
  EXPECT_EQ(fake.live.begin()->second, std::make_pair(4 * kMiB, std::size_t{2 * kMiB}));
  auto b = cache.map(4 * kMiB, 2 * kMiB); // the same aligned block: hit
  EXPECT_EQ(fake.remote_of(b.get()), 4 * kMiB);
  EXPECT_EQ(fake.attaches, 1);
  auto s = cache.stats();
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.entries, 1u);
  EXPECT_EQ(s.bytes, 2 * kMiB);
}

TEST(AttachCache, RejectsEmptyOverflowingAndPastTheLimit) {
  FakeAttacher fake;
  auto c = config();
  c.address_limit = 64 * kMiB;
  AttachCache cache(fake, c);
  EXPECT_FALSE(cache.map(kMiB, 0));
  EXPECT_FALSE(cache.map(~std::uintptr_t{0} - 10, 100));
  EXPECT_FALSE(cache.map(63 * kMiB, 2 * kMiB));
  EXPECT_EQ(fake.attaches, 0);
  // Rounding stops at the limit rather than failing.
  auto a = cache.map(63 * kMiB + 4096, 4096);
  ASSERT_TRUE(a);
  EXPECT_EQ(fake.live.begin()->second, std::make_pair(62 * kMiB, std::size_t{2 * kMiB}));
}

TEST(AttachCache, AttachFailureIsReportedAndLeavesNoTrace) {
  FakeAttacher fake;
  AttachCache cache(fake, config());
  fake.fail_next = true;
  EXPECT_FALSE(cache.map(kMiB, 10));
  EXPECT_EQ(cache.stats().failures, 1u);
  EXPECT_EQ(cache.stats().entries, 0u);
  EXPECT_TRUE(cache.map(kMiB, 10));
}

TEST(AttachCache, OverlappingIdleEntriesMergeIntoOne) {
  FakeAttacher fake;
  AttachCache cache(fake, config());
  cache.map(0, kMiB).reset();           // [0, 2M)
  cache.map(4 * kMiB, kMiB).reset();    // [4M, 6M)
  auto big = cache.map(kMiB, 4 * kMiB); // [0, 6M) covers both
  ASSERT_TRUE(big);
  EXPECT_EQ(fake.live.size(), 1u);
  EXPECT_EQ(fake.live.begin()->second, std::make_pair(std::uintptr_t{0}, std::size_t{6 * kMiB}));
  EXPECT_EQ(fake.remote_of(big.get()), kMiB);
  EXPECT_EQ(cache.stats().entries, 1u);
}

TEST(AttachCache, BusyEntriesSurviveBeingReplaced) {
  FakeAttacher fake;
  AttachCache cache(fake, config());
  auto small = cache.map(0, kMiB); // [0, 2M), in use
  auto big = cache.map(kMiB, 4 * kMiB);
  EXPECT_EQ(fake.live.size(), 2u) << "the busy one stays mapped";
  EXPECT_EQ(fake.remote_of(small.get()), 0u);
  small.reset();
  EXPECT_EQ(fake.live.size(), 1u) << "and goes when its lease ends";
  auto again = cache.map(0, 10);
  EXPECT_EQ(fake.attaches, 2);
  EXPECT_EQ(fake.remote_of(again.get()), 0u);
}

TEST(AttachCache, LeastRecentlyUsedIdleEntriesAreEvicted) {
  FakeAttacher fake;
  AttachCache cache(fake, config(2 * kMiB, 6 * kMiB, 1000));
  cache.map(0, 1).reset();         // A
  cache.map(10 * kMiB, 1).reset(); // B
  cache.map(20 * kMiB, 1).reset(); // C
  cache.map(0, 1).reset();         // A used again: B is now the oldest
  cache.map(30 * kMiB, 1).reset(); // D: over 6 MiB, B goes
  EXPECT_EQ(cache.stats().evictions, 1u);
  EXPECT_EQ(cache.stats().bytes, 6 * kMiB);
  int before = fake.attaches;
  cache.map(0, 1).reset();
  cache.map(20 * kMiB, 1).reset();
  EXPECT_EQ(fake.attaches, before) << "A and C still cached";
  cache.map(10 * kMiB, 1).reset();
  EXPECT_EQ(fake.attaches, before + 1) << "B was evicted";
}

TEST(AttachCache, EntryBoundAndBusyEntriesAreNeverEvicted) {
  FakeAttacher fake;
  AttachCache cache(fake, config(2 * kMiB, 1ull << 40, 2));
  auto a = cache.map(0, 1);
  auto b = cache.map(10 * kMiB, 1);
  auto c = cache.map(20 * kMiB, 1); // over the bound, but all three are busy
  EXPECT_EQ(fake.live.size(), 3u);
  EXPECT_EQ(fake.remote_of(a.get()), 0u);
  a.reset(); // now idle and oldest: evicted
  EXPECT_EQ(fake.live.size(), 2u);
  EXPECT_EQ(cache.stats().evictions, 1u);
}

TEST(AttachCache, ClearDetachesIdleOnly) {
  FakeAttacher fake;
  {
    AttachCache cache(fake, config());
    auto busy = cache.map(0, 1);
    cache.map(10 * kMiB, 1).reset();
    cache.clear();
    EXPECT_EQ(fake.live.size(), 1u);
    EXPECT_EQ(fake.remote_of(busy.get()), 0u);
  }
  EXPECT_EQ(fake.live.size(), 0u) << "the destructor detaches the rest";
}

// Random requests and releases against a simple model: every lease points
// at the right remote address, live mappings never overlap inside the
// cache, the byte count matches, and nothing leaks.
TEST(AttachCache, RandomisedAgainstModel) {
  FakeAttacher fake;
  std::mt19937_64 rng(12345);
  {
    AttachCache cache(fake, config(64 * 1024, 8 * kMiB, 16));
    std::vector<std::pair<std::uintptr_t, AttachCache::Lease>> held;
    for (int step = 0; step < 20000; step++) {
      if (!held.empty() && (rng() % 3 == 0 || held.size() > 20)) {
        held.erase(held.begin() + static_cast<long>(rng() % held.size()));
        continue;
      }
      std::uintptr_t remote = (rng() % (64 * kMiB)) + 4096;
      std::size_t len = 1 + rng() % (rng() % 4 == 0 ? 3 * kMiB : 64 * 1024);
      auto lease = cache.map(remote, len);
      ASSERT_TRUE(lease);
      ASSERT_EQ(fake.remote_of(lease.get()), remote);
      ASSERT_EQ(fake.remote_of(static_cast<char *>(lease.get()) + len - 1), remote + len - 1);
      held.emplace_back(remote, std::move(lease));
      for (auto &[r, l] : held)
        ASSERT_EQ(fake.remote_of(l.get()), r) << "a held lease lost its mapping";
      std::size_t bytes = 0;
      for (auto &[local, m] : fake.live)
        bytes += m.second;
      ASSERT_EQ(cache.stats().bytes, bytes);
      ASSERT_EQ(cache.stats().entries, fake.live.size());
    }
    held.clear();
    auto s = cache.stats();
    EXPECT_LE(s.entries, 16u);
    EXPECT_LE(s.bytes, 8 * kMiB);
    EXPECT_GT(s.hits, 0u);
    EXPECT_GT(s.evictions, 0u);
  }
  EXPECT_TRUE(fake.live.empty());
  EXPECT_EQ(fake.attaches, fake.detaches);
}

} // namespace
