// The ioctl surface: version, make/remove, get/release, attach/detach, and
// every error path.
#include "helpers.hpp"

#include <sys/ioctl.h>

using namespace xt;

namespace {

void *mode(int m) {
  return reinterpret_cast<void *>(static_cast<long>(m));
}

TEST(Api, VersionIsPositive) {
  int v = xpmem_version();
  ASSERT_GT(v, 0) << xpmem_unavailable_reason();
  EXPECT_EQ(v, 0x30000);
  EXPECT_EQ(xpmem_init(), 0);
  EXPECT_EQ(xpmem_unavailable_reason(), nullptr);
}

TEST(Api, MakeAndRemove) {
  Mapping buf(4 * kPage);
  xpmem_segid_t seg = xpmem_make(buf.data(), buf.size(), XPMEM_PERMIT_MODE, mode(0600));
  ASSERT_GT(seg, 0);
  EXPECT_EQ(xpmem_remove(seg), 0);
  errno = 0;
  EXPECT_EQ(xpmem_remove(seg), -1) << "double remove";
  EXPECT_EQ(errno, ENOENT);
}

TEST(Api, IdsAreDistinctAndUnpredictable) {
  Mapping buf(kPage);
  xpmem_segid_t a = xpmem_make(buf.data(), kPage, XPMEM_PERMIT_MODE, mode(0600));
  xpmem_segid_t b = xpmem_make(buf.data(), kPage, XPMEM_PERMIT_MODE, mode(0600));
  ASSERT_GT(a, 0);
  ASSERT_GT(b, 0);
  EXPECT_NE(a, b);
  // Not pid-based, not a small counter.
  EXPECT_NE(a & 0xffffffff, getpid());
  EXPECT_GT(std::llabs(a - b), 1 << 20);
  EXPECT_EQ(xpmem_remove(a), 0);
  EXPECT_EQ(xpmem_remove(b), 0);
}

TEST(Api, MakeRejectsBadArguments) {
  Mapping buf(4 * kPage);
  struct Case {
    const char *what;
    void *addr;
    size_t size;
    int type;
    void *value;
  } cases[] = {
      {"bad permit type", buf.data(), kPage, 2, mode(0600)},
      {"mode bits beyond 0777", buf.data(), kPage, XPMEM_PERMIT_MODE, mode(01000)},
      {"unaligned address", buf.data() + 8, kPage, XPMEM_PERMIT_MODE, mode(0600)},
      {"unaligned size", buf.data(), kPage + 1, XPMEM_PERMIT_MODE, mode(0600)},
      {"zero size", buf.data(), 0, XPMEM_PERMIT_MODE, mode(0600)},
      {"vaddr + size overflows", reinterpret_cast<void *>(~0UL - kPage + 1), 2 * kPage,
       XPMEM_PERMIT_MODE, mode(0600)},
      {"beyond the task size", reinterpret_cast<void *>(1UL << 57), kPage, XPMEM_PERMIT_MODE,
       mode(0600)},
      {"size past the task size", buf.data(), 1UL << 60, XPMEM_PERMIT_MODE, mode(0600)},
  };
  for (const Case &c : cases) {
    errno = 0;
    EXPECT_EQ(xpmem_make(c.addr, c.size, c.type, c.value), -1) << c.what;
    EXPECT_EQ(errno, EINVAL) << c.what;
  }
}

TEST(Api, WholeAddressSpaceExport) {
  xpmem_segid_t seg = xpmem_make(nullptr, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, mode(0666));
  ASSERT_GT(seg, 0);
  // Any address of ours is reachable through it at offset == address.
  Mapping buf(2 * kPage);
  fill(buf.data(), buf.size(), 7);
  xpmem_apid_t apid = xpmem_get(seg, XPMEM_RDWR, XPMEM_PERMIT_MODE, mode(0666));
  ASSERT_GT(apid, 0);
  auto *p = static_cast<char *>(
      xpmem_attach(at(apid, reinterpret_cast<off_t>(buf.data())), buf.size(), nullptr));
  ASSERT_FALSE(failed(p));
  EXPECT_NE(p, buf.data());
  EXPECT_TRUE(check(p, buf.size(), 7));
  p[0] = 'x';
  EXPECT_EQ(buf.data()[0], 'x');
  EXPECT_EQ(xpmem_detach(p), 0);
  EXPECT_EQ(xpmem_release(apid), 0);
  EXPECT_EQ(xpmem_remove(seg), 0);
}

TEST(Api, RemoveErrors) {
  errno = 0;
  EXPECT_EQ(xpmem_remove(0), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(xpmem_remove(-5), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(xpmem_remove(0x123456789abcLL), -1);
  EXPECT_EQ(errno, ENOENT);
}

TEST(Api, OnlyTheOwnerRemoves) {
  Mapping buf(kPage);
  xpmem_segid_t seg = xpmem_make(buf.data(), kPage, XPMEM_PERMIT_MODE, mode(0666));
  ASSERT_GT(seg, 0);
  Outcome o = run_child([&] { return xpmem_remove(seg) == -1 && errno == EACCES ? 0 : 1; });
  EXPECT_TRUE(o.ok());
  EXPECT_EQ(xpmem_remove(seg), 0);
}

TEST(Api, GetAndReleaseErrors) {
  Mapping buf(kPage);
  xpmem_segid_t seg = xpmem_make(buf.data(), kPage, XPMEM_PERMIT_MODE, mode(0600));
  ASSERT_GT(seg, 0);
  for (int flags : {0, 3, 4, -1}) {
    errno = 0;
    EXPECT_EQ(xpmem_get(seg, flags, XPMEM_PERMIT_MODE, nullptr), -1) << flags;
    EXPECT_EQ(errno, EINVAL) << flags;
  }
  errno = 0;
  EXPECT_EQ(xpmem_get(seg, XPMEM_RDWR, 7, nullptr), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(xpmem_get(0, XPMEM_RDWR, XPMEM_PERMIT_MODE, nullptr), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(xpmem_get(seg ^ 0x5555, XPMEM_RDWR, XPMEM_PERMIT_MODE, nullptr), -1);
  EXPECT_EQ(errno, ENOENT);

  // The library ignores the permit value callers pass (0666, 0600, NULL).
  xpmem_apid_t apid = xpmem_get(seg, XPMEM_RDWR, XPMEM_PERMIT_MODE, mode(0666));
  ASSERT_GT(apid, 0);
  Outcome o = run_child([&] { return xpmem_release(apid) == -1 && errno == EACCES ? 0 : 1; });
  EXPECT_TRUE(o.ok()) << "a permit is released only by its holder";
  EXPECT_EQ(xpmem_release(apid), 0);
  errno = 0;
  EXPECT_EQ(xpmem_release(apid), -1) << "double release";
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(xpmem_release(0), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(xpmem_remove(seg), 0);
  errno = 0;
  EXPECT_EQ(xpmem_get(seg, XPMEM_RDWR, XPMEM_PERMIT_MODE, nullptr), -1) << "after remove";
  EXPECT_EQ(errno, ENOENT);
}

TEST(Api, AttachErrors) {
  Mapping buf(4 * kPage);
  xpmem_segid_t seg = xpmem_make(buf.data(), buf.size(), XPMEM_PERMIT_MODE, mode(0600));
  ASSERT_GT(seg, 0);
  xpmem_apid_t apid = xpmem_get(seg, XPMEM_RDWR, XPMEM_PERMIT_MODE, nullptr);
  ASSERT_GT(apid, 0);
  struct Case {
    const char *what;
    xpmem_addr addr;
    size_t size;
    void *vaddr;
    int err;
  } cases[] = {
      {"apid 0", at(0), kPage, nullptr, EINVAL},
      {"unknown apid", at(apid ^ 0x777), kPage, nullptr, ENOENT},
      {"unaligned offset", at(apid, 100), kPage, nullptr, EINVAL},
      {"negative offset", at(apid, -4096), kPage, nullptr, EINVAL},
      {"zero size", at(apid), 0, nullptr, EINVAL},
      {"past the segment", at(apid, 2 * kPage), 3 * kPage, nullptr, EINVAL},
      {"offset past the segment", at(apid, 8 * kPage), kPage, nullptr, EINVAL},
      {"huge size", at(apid), ~0UL, nullptr, EINVAL},
      {"unaligned address", at(apid), kPage, buf.data() + 1, EINVAL},
      {"address already mapped", at(apid), kPage, buf.data(), EEXIST},
  };
  for (const Case &c : cases) {
    errno = 0;
    EXPECT_TRUE(failed(xpmem_attach(c.addr, c.size, c.vaddr))) << c.what;
    EXPECT_EQ(errno, c.err) << c.what;
  }
  Outcome o = run_child(
      [&] { return failed(xpmem_attach(at(apid), kPage, nullptr)) && errno == EACCES ? 0 : 1; });
  EXPECT_TRUE(o.ok()) << "another process's permit";

  // Sizes round up to pages; a requested free address is honoured.
  Mapping hole(kPage, PROT_NONE);
  void *want = hole.data();
  ASSERT_EQ(munmap(want, kPage), 0);
  void *p = xpmem_attach(at(apid, kPage), 10, want);
  ASSERT_EQ(p, want);
  EXPECT_EQ(xpmem_detach(p), 0);
  EXPECT_EQ(xpmem_release(apid), 0);
  errno = 0;
  EXPECT_TRUE(failed(xpmem_attach(at(apid), kPage, nullptr))) << "after release";
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(xpmem_remove(seg), 0);
}

TEST(Api, DetachErrors) {
  Mapping buf(4 * kPage);
  xpmem::Segment seg = xpmem::Segment::make(buf.data(), buf.size(), 0600);
  ASSERT_TRUE(seg);
  xpmem::Permit permit = xpmem::Permit::get(seg.id());
  ASSERT_TRUE(permit);
  auto *p = static_cast<char *>(xpmem_attach(at(permit.id()), buf.size(), nullptr));
  ASSERT_FALSE(failed(p));
  errno = 0;
  EXPECT_EQ(xpmem_detach(buf.data()), -1) << "not an attachment";
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(xpmem_detach(p + 2 * kPage + 17), 0) << "any address inside detaches";
  errno = 0;
  EXPECT_EQ(xpmem_detach(p), -1) << "double detach";
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(xpmem_detach(nullptr), -1);
  EXPECT_EQ(errno, EINVAL);
}

TEST(Api, AttachmentsCannotBeSplit) {
  Mapping buf(4 * kPage);
  xpmem::Segment seg = xpmem::Segment::make(buf.data(), buf.size(), 0600);
  xpmem::Permit permit = xpmem::Permit::get(seg.id());
  xpmem::Attachment att = xpmem::Attachment::attach(permit, 0, buf.size());
  ASSERT_TRUE(att);
  auto *p = static_cast<char *>(att.data());
  errno = 0;
  EXPECT_EQ(munmap(p + kPage, kPage), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(mprotect(p, kPage, PROT_READ), -1);
  buf.data()[3 * kPage] = 'q';
  EXPECT_EQ(p[3 * kPage], 'q');
}

TEST(Api, UnknownCommandsAreNotSupported) {
  errno = 0;
  EXPECT_EQ(xpmem_ioctl(_IO('x', 7), nullptr), -1);
  EXPECT_EQ(errno, ENOTTY);
  EXPECT_EQ(xpmem_ioctl(_IO('x', 42), nullptr), -1);
  EXPECT_EQ(errno, ENOTTY);
  EXPECT_EQ(xpmem_ioctl(_IO('x', 1), reinterpret_cast<void *>(16)), -1) << "bad pointer";
  EXPECT_EQ(errno, EFAULT);
}

} // namespace
