// The plugins' shared core over real attachments: a whole-address-space
// export, the attachment cache and the copy engine, and the stale-cache
// trap (the peer frees a buffer and gets new memory at the same address).
#include "helpers.hpp"

#include "xpmem_core/attach_cache.hpp"
#include "xpmem_core/copy_engine.hpp"
#include "xpmem_core/xpmem_attacher.hpp"

using namespace xt;

namespace {

enum : std::int64_t { kNewBuffer = 1, kReplaceAtSameAddress = 2, kDone = 3 };

TEST(Core, CachedAttachmentsFollowTheRemoteAddressSpace) {
  const std::size_t size = 3 << 20;
  Channel ch;
  pid_t peer = spawn([&] {
    xpmem::Segment seg = xpmem::Segment::make_whole_address_space(0600);
    ch.send(1, seg.id());
    char *buf = nullptr;
    for (std::uint32_t seed = 1;; seed++) {
      std::int64_t cmd = ch.recv(1);
      if (cmd == kNewBuffer) {
        void *p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        buf = static_cast<char *>(p);
      } else if (cmd == kReplaceAtSameAddress) {
        munmap(buf, size); // "free" ...
        void *p = mmap(buf, size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (p != buf) // ... and "malloc" the same address again
          return 2;
      } else {
        return 0;
      }
      fill(buf, size, seed);
      ch.send(1, reinterpret_cast<std::int64_t>(buf));
      ch.send(1, seed);
    }
  });
  xpmem::Permit permit = xpmem::Permit::get(ch.recv(0));
  ASSERT_TRUE(permit);
  xpmem_core::XpmemAttacher attacher(permit.id());
  xpmem_core::AttachCache cache(attacher, {});
  xpmem_core::CopyEngine engine(xpmem_core::CopyConfig{true, 1 << 20}); // both paths
  std::vector<char> local(size);

  auto fetch = [&](std::int64_t cmd) {
    ch.send(0, cmd);
    auto remote = static_cast<std::uintptr_t>(ch.recv(0));
    auto seed = static_cast<std::uint32_t>(ch.recv(0));
    auto lease = cache.map(remote, size);
    if (!lease)
      return false;
    engine.copy(local.data(), lease.get(), size); // NT path
    bool head_ok = std::memcmp(lease.get(), local.data(), 64 * 1024) == 0;
    engine.copy(local.data(), lease.get(), 512 * 1024); // memcpy path
    return head_ok && check(local.data(), size, seed);
  };
  ASSERT_TRUE(fetch(kNewBuffer));
  auto first = cache.stats();
  ASSERT_TRUE(fetch(kReplaceAtSameAddress)) << "stale contents through a cached attachment";
  ASSERT_TRUE(fetch(kReplaceAtSameAddress));
  auto after = cache.stats();
  EXPECT_EQ(after.misses, first.misses) << "the cache had to re-attach";
  EXPECT_EQ(after.hits, first.hits + 2);
  ASSERT_TRUE(fetch(kNewBuffer));
  cache.clear();
  EXPECT_EQ(cache.stats().entries, 0u);
  ch.send(0, kDone);
  EXPECT_TRUE(wait_child(peer).ok());
}

TEST(Core, WritesThroughTheCacheReachThePeer) {
  Mapping buf(4 << 20);
  std::memset(buf.data(), 0, buf.size());
  xpmem::Segment seg = xpmem::Segment::make_whole_address_space(0600);
  Outcome o = run_child([&] {
    xpmem::Permit permit = xpmem::Permit::get(seg.id());
    xpmem_core::XpmemAttacher attacher(permit.id());
    xpmem_core::AttachCache cache(attacher, {});
    xpmem_core::CopyEngine engine(xpmem_core::CopyConfig{true, 1 << 20});
    std::vector<char> src(buf.size());
    fill(src.data(), src.size(), 77);
    auto remote = reinterpret_cast<std::uintptr_t>(buf.data());
    for (std::size_t off = 0; off < buf.size(); off += 1 << 20) {
      auto lease = cache.map(remote + off, 1 << 20);
      if (!lease)
        return 1;
      engine.copy(lease.get(), src.data() + off, 1 << 20);
    }
    return 0;
  });
  EXPECT_TRUE(o.ok());
  EXPECT_TRUE(check(buf.data(), buf.size(), 77));
}

} // namespace
