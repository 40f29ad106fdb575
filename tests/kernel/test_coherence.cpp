// Coherence under concurrency and the less common address-space changes:
// the exporter remapping while we read, two processes faulting on each
// other's memory while both churn their mappings, mremap of an attachment,
// reclaim of the exporter's pages, closing the device, the fault-around knob.
#include "helpers.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>

#include <atomic>
#include <fstream>
#include <vector>

#include "uapi/xpmem_abi.h"

using namespace xt;

namespace {

std::uint64_t load_acquire(const char *p) {
  return __atomic_load_n(reinterpret_cast<const std::uint64_t *>(p), __ATOMIC_ACQUIRE);
}
void store_release(char *p, std::uint64_t v) {
  __atomic_store_n(reinterpret_cast<std::uint64_t *>(p), v, __ATOMIC_RELEASE);
}
std::uint64_t load(const char *p) {
  return __atomic_load_n(reinterpret_cast<const std::uint64_t *>(p), __ATOMIC_RELAXED);
}

// The exporter replaces its data pages with new memory, generation after
// generation, and publishes the generation only after filling them.  After
// generation g is published a page holds g or later, or 0 while the next
// generation's fresh page is being filled; anything else (an older
// generation, garbage from a freed page) was read through a stale mapping.
TEST(Coherence, ConcurrentRemapNeverShowsAStalePage) {
  const std::size_t data_pages = 16;
  const std::uint64_t generations = 300;
  Mapping region((1 + data_pages) * kPage);
  char *ctrl = region.data();
  char *data = ctrl + kPage;
  std::memset(region.data(), 0, region.size());
  xpmem::Segment seg = xpmem::Segment::make(region.data(), region.size(), 0600);
  ASSERT_TRUE(seg);

  Channel ch;
  pid_t reader = spawn([&] {
    alarm(120);
    xpmem::Permit permit = xpmem::Permit::get(seg.id(), false);
    xpmem::Attachment att = xpmem::Attachment::attach(permit, 0, region.size());
    if (!att)
      return 1;
    const char *actrl = static_cast<char *>(att.data());
    const char *adata = actrl + kPage;
    ch.send(1, 0);
    std::uint64_t reads = 0;
    for (;;) {
      std::uint64_t published = load_acquire(actrl);
      for (std::size_t i = 0; i < data_pages; i++) {
        std::uint64_t v = load(adata + i * kPage);
        if (v != 0 && (v < published || v > generations))
          return 2;
        reads++;
      }
      if (published == generations)
        return reads > 0 ? 0 : 3;
    }
  });
  ASSERT_EQ(ch.recv(0), 0);
  for (std::uint64_t g = 1; g <= generations; g++) {
    void *p = mmap(data, data_pages * kPage, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    ASSERT_EQ(p, data);
    for (std::size_t i = 0; i < data_pages; i++)
      std::memcpy(data + i * kPage, &g, sizeof g);
    store_release(ctrl, g);
  }
  Outcome o = wait_child(reader);
  EXPECT_EQ(o.exit_code, 0) << "2 means a stale page was read";
  EXPECT_EQ(o.signal, 0);
}

// Each of two processes exports a buffer and attaches the other's, then
// remaps its own buffer (write-locking its mmap_lock and invalidating the
// peer) while reading the peer's.  A fault path that blocked on the peer's
// mmap_lock while holding its own would deadlock here.
TEST(Coherence, MutualAttachUnderMappingChurnDoesNotDeadlock) {
  const std::size_t size = 32 * kPage;
  const int iterations = 300;
  Channel ab, ba;
  auto side = [&](Channel &out, int out_end, Channel &in, int in_end) {
    alarm(120);
    Mapping buf(size);
    std::memset(buf.data(), 0, size);
    xpmem::Segment seg = xpmem::Segment::make(buf.data(), size, 0600);
    out.send(out_end, seg.id());
    xpmem::Permit permit = xpmem::Permit::get(in.recv(in_end));
    xpmem::Attachment att = xpmem::Attachment::attach(permit, 0, size);
    if (!att)
      return 1;
    out.send(out_end, 1);
    in.recv(in_end);
    const char *peer = static_cast<char *>(att.data());
    std::uint64_t sum = 0;
    for (int i = 0; i < iterations; i++) {
      void *p = mmap(buf.data(), size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
      if (p != buf.data())
        return 2;
      std::memset(buf.data(), i & 0x7f, size);
      for (std::size_t off = 0; off < size; off += kPage)
        sum += static_cast<unsigned char>(peer[off]);
    }
    out.send(out_end, 2);
    in.recv(in_end); // keep our segment alive until the peer is done
    return sum > 0 ? 0 : 3;
  };
  pid_t a = spawn([&] { return side(ab, 0, ba, 1); });
  pid_t b = spawn([&] { return side(ba, 0, ab, 1); });
  Outcome oa = wait_child(a), ob = wait_child(b);
  EXPECT_TRUE(oa.ok()) << oa.exit_code << "/" << oa.signal;
  EXPECT_TRUE(ob.ok()) << ob.exit_code << "/" << ob.signal;
}

TEST(Coherence, MremapMovesAnAttachment) {
  Mapping buf(8 * kPage);
  fill(buf.data(), buf.size(), 401);
  xpmem::Segment seg = xpmem::Segment::make(buf.data(), buf.size(), 0600);
  xpmem::Permit permit = xpmem::Permit::get(seg.id());
  auto *p = static_cast<char *>(xpmem_attach(at(permit.id()), buf.size(), nullptr));
  ASSERT_FALSE(failed(p));
  ASSERT_TRUE(check(p, buf.size(), 401));
  Mapping target(8 * kPage, PROT_NONE);
  void *moved = mremap(p, buf.size(), buf.size(), MREMAP_MAYMOVE | MREMAP_FIXED, target.data());
  ASSERT_EQ(moved, target.data());
  auto *q = static_cast<char *>(moved);
  EXPECT_TRUE(check(q, buf.size(), 401));
  // Invalidation still reaches the moved mapping.
  void *r = mmap(buf.data(), buf.size(), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  ASSERT_EQ(r, buf.data());
  fill(buf.data(), buf.size(), 402);
  EXPECT_TRUE(check(q, buf.size(), 402));
  errno = 0;
  EXPECT_EQ(mremap(q, buf.size(), 2 * buf.size(), 0), MAP_FAILED) << "cannot grow";
  EXPECT_EQ(xpmem_detach(q + kPage), 0);
  EXPECT_EQ(xpmem_detach(q), -1);
}

TEST(Coherence, ClosingTheDeviceReleasesEverything) {
  Mapping buf(kPage);
  int fd = open("/dev/xpmem", O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  xpmem_cmd_make make{};
  make.vaddr = reinterpret_cast<std::uintptr_t>(buf.data());
  make.size = kPage;
  make.permit_type = XPMEM_PERMIT_MODE;
  make.permit_value = 0600;
  ASSERT_EQ(ioctl(fd, XPMEM_CMD_MAKE, &make), 0);
  ASSERT_GT(make.segid, 0);
  xpmem_apid_t apid = xpmem_get(make.segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, nullptr);
  ASSERT_GT(apid, 0);
  auto *p = static_cast<volatile char *>(xpmem_attach(at(apid), kPage, nullptr));
  ASSERT_FALSE(failed((void *)p));
  buf.data()[0] = 'k';
  EXPECT_EQ(p[0], 'k');
  ASSERT_EQ(close(fd), 0);
  errno = 0;
  EXPECT_EQ(xpmem_get(make.segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, nullptr), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(touch_signal(p, false), SIGBUS);
  EXPECT_EQ(xpmem_detach((void *)p), 0);
  EXPECT_EQ(xpmem_release(apid), 0);
}

TEST(Coherence, ReclaimedExporterPagesAreRefaulted) {
  // Page cache of a file only the exporter maps: MADV_PAGEOUT drops it
  // (reclaim runs the notifier from the rmap walk); our next read maps the
  // re-read page with the same contents.
  int fd = open("/usr/share/common-licenses/GPL-3", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  const std::size_t size = 8 * kPage;
  Mapping file(size, PROT_READ, MAP_SHARED, fd);
  ASSERT_NE(file.data(), nullptr);
  std::vector<char> want(size);
  ASSERT_EQ(pread(fd, want.data(), size, 0), (ssize_t)size);
  close(fd);
  xpmem::Segment seg = xpmem::Segment::make(file.data(), size, 0600);
  Attached a = attach_segment(seg.id(), size, false);
  ASSERT_TRUE(a);
  char *p = a.data();
  ASSERT_EQ(std::memcmp(p, want.data(), size), 0);
  auto before = stats();
  for (int i = 0; i < 3; i++) {
    ASSERT_EQ(madvise(file.data(), size, MADV_PAGEOUT), 0);
    EXPECT_EQ(std::memcmp(p, want.data(), size), 0);
  }
  if (auto after = stats(); after && before && geteuid() == 0) {
    EXPECT_GT((*after)["invalidations"], (*before)["invalidations"]);
  }
}

TEST(Coherence, FaultAroundIsTunable) {
  const char *knob = "/sys/module/xpmem/parameters/fault_around_pages";
  auto before = stats();
  std::ofstream set(knob);
  if (!before || !set)
    GTEST_SKIP() << "needs root (debugfs counters, module parameter); the root run covers it";
  set << 1 << std::flush;
  Mapping buf(32 * kPage);
  fill(buf.data(), buf.size(), 411);
  xpmem::Segment seg = xpmem::Segment::make(buf.data(), buf.size(), 0600);
  xpmem::Permit permit = xpmem::Permit::get(seg.id());
  xpmem::Attachment att = xpmem::Attachment::attach(permit, 0, buf.size());
  ASSERT_TRUE(att);
  EXPECT_TRUE(check(static_cast<char *>(att.data()), buf.size(), 411));
  auto after = stats();
  std::ofstream(knob) << 64 << std::flush;
  EXPECT_EQ((*after)["ptes_installed"] - (*before)["ptes_installed"], 32);
  EXPECT_GE((*after)["faults"] - (*before)["faults"], 32);
}

} // namespace

namespace {

long module_refcount() {
  std::ifstream in("/sys/module/xpmem/refcnt");
  long n = -1;
  in >> n;
  return n;
}

// The device file and every attachment hold the module, so it cannot be
// unloaded under a user; when they are gone the count is back.
TEST(Module, AttachmentsAndOpenFilesHoldTheModule) {
  long base = module_refcount();
  ASSERT_GE(base, 1) << "this process has the device open through libxpmem";
  Mapping buf(kPage);
  Channel ch;
  pid_t pid = spawn([&] {
    int fd = open("/dev/xpmem", O_RDWR | O_CLOEXEC);
    xpmem_cmd_make make{};
    make.vaddr = reinterpret_cast<std::uintptr_t>(buf.data());
    make.size = kPage;
    make.permit_type = XPMEM_PERMIT_MODE;
    make.permit_value = 0600;
    xpmem_cmd_get get{};
    xpmem_cmd_attach att{};
    if (fd < 0 || ioctl(fd, XPMEM_CMD_MAKE, &make))
      return 1;
    get.segid = make.segid;
    get.flags = XPMEM_RDWR;
    get.permit_type = XPMEM_PERMIT_MODE;
    if (ioctl(fd, XPMEM_CMD_GET, &get))
      return 2;
    att.apid = get.apid;
    att.size = kPage;
    if (ioctl(fd, XPMEM_CMD_ATTACH, &att))
      return 3;
    ch.send(1, 1); // device open + one attachment
    ch.recv(1);
    close(fd); // the attachment alone remains
    ch.send(1, 2);
    ch.recv(1);
    munmap(reinterpret_cast<void *>(att.vaddr), kPage);
    ch.send(1, 3);
    ch.recv(1);
    return 0;
  });
  ASSERT_EQ(ch.recv(0), 1);
  EXPECT_EQ(module_refcount(), base + 2);
  ch.send(0, 0);
  ASSERT_EQ(ch.recv(0), 2);
  EXPECT_EQ(module_refcount(), base + 1);
  ch.send(0, 0);
  ASSERT_EQ(ch.recv(0), 3);
  EXPECT_EQ(module_refcount(), base);
  ch.send(0, 0);
  EXPECT_TRUE(wait_child(pid).ok());
  EXPECT_EQ(module_refcount(), base);
}

// The exporter exits while a forked child still holds its device file:
// its segment dies with its address space, and the last close, in the
// child, tears the registration down without touching anyone else.
TEST(Module, ReleaseInAnotherProcessAfterExporterExit) {
  auto before = stats();
  Channel ch, to_holder;
  pid_t exporter = spawn([&] {
    Mapping buf(4 * kPage);
    fill(buf.data(), buf.size(), 501);
    ch.send(1,
            xpmem_make(buf.data(), buf.size(), XPMEM_PERMIT_MODE, reinterpret_cast<void *>(0600)));
    pid_t holder = fork(); // inherits the device file
    if (holder == 0) {
      to_holder.recv(1);
      _exit(0);
    }
    ch.send(1, holder);
    ch.recv(1);
    return 0;
  });
  xpmem_segid_t segid = ch.recv(0);
  ASSERT_GT(ch.recv(0), 0) << "holder forked";
  Attached a = attach_segment(segid, 4 * kPage);
  ASSERT_TRUE(a);
  char *p = a.data();
  ASSERT_TRUE(check(p, 4 * kPage, 501));
  ch.send(0, 0); // exporter exits
  EXPECT_TRUE(wait_child(exporter).ok());
  EXPECT_EQ(touch_signal(p, false), SIGBUS);
  errno = 0;
  EXPECT_EQ(xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, nullptr), -1);
  EXPECT_EQ(errno, ENOENT);
  to_holder.send(0, 0); // the holder exits; the last close runs in its context
  if (before) {
    // The holder is not our child: watch its registration go away.
    long live = -1;
    for (int i = 0; i < 500 && live != (*before)["registrations"]; i++) {
      usleep(10000);
      live = (*stats())["registrations"];
    }
    EXPECT_EQ(live, (*before)["registrations"]);
  }
  EXPECT_EQ(kill(getpid(), 0), 0) << "we are unharmed";
  EXPECT_EQ(touch_signal(p + kPage, true), SIGBUS);
  a.att.reset();
  a.permit.reset(); // the removed segment's memory goes with its last permit
  if (before) {
    EXPECT_EQ((*stats())["segments"], (*before)["segments"]);
  }
}

} // namespace
