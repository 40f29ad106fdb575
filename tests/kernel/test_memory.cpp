// Kinds of exporter memory and scale: THP, hugetlbfs, memfd, files, a 1 GiB
// sparse attach, 10 000 attachments, concurrent faults, many attachers.
#include "helpers.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <atomic>
#include <thread>
#include <vector>

using namespace xt;

namespace {

constexpr std::size_t kHuge = 2u << 20;

// Exports [p, p+size) from this process and attaches it from a child that
// runs `body` on the attachment; returns the child's outcome.
Outcome attach_from_child(char *p, std::size_t size, bool writable,
                          const std::function<int(char *)> &body) {
  xpmem::Segment seg = xpmem::Segment::make(p, size, 0600);
  if (!seg)
    return Outcome{100, 0};
  return run_child([&] {
    xpmem::Permit permit = xpmem::Permit::get(seg.id(), writable);
    xpmem::Attachment att = xpmem::Attachment::attach(permit, 0, size);
    if (!att)
      return 101;
    return body(static_cast<char *>(att.data()));
  });
}

char *align_up(char *p, std::size_t a) {
  return reinterpret_cast<char *>((reinterpret_cast<std::uintptr_t>(p) + a - 1) & ~(a - 1));
}

TEST(Memory, TransparentHugePages) {
  Mapping raw(3 * kHuge);
  char *p = align_up(raw.data(), kHuge);
  ASSERT_EQ(madvise(p, 2 * kHuge, MADV_HUGEPAGE), 0);
  fill(p, 2 * kHuge, 201);
  Outcome o = attach_from_child(p, 2 * kHuge, true, [&](char *a) {
    if (!check(a, 2 * kHuge, 201))
      return 1;
    fill(a + kHuge, kHuge, 202);
    return 0;
  });
  EXPECT_TRUE(o.ok()) << o.exit_code << "/" << o.signal;
  EXPECT_TRUE(check(p, kHuge, 201));
  EXPECT_TRUE(check(p + kHuge, kHuge, 202));
}

TEST(Memory, HugetlbfsPages) {
  Mapping huge(2 * kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB);
  ASSERT_NE(huge.data(), nullptr) << "no huge pages reserved (vm.nr_hugepages): the VM job sets it";
  fill(huge.data(), kHuge, 210);
  fill(huge.data() + kHuge, kHuge, 211);
  Outcome o = attach_from_child(huge.data(), huge.size(), true, [&](char *a) {
    if (!check(a, kHuge, 210) || !check(a + kHuge, kHuge, 211))
      return 1;
    fill(a, kHuge, 212);
    return 0;
  });
  EXPECT_TRUE(o.ok()) << o.exit_code << "/" << o.signal;
  EXPECT_TRUE(check(huge.data(), kHuge, 212));
  EXPECT_TRUE(check(huge.data() + kHuge, kHuge, 211));
}

TEST(Memory, MemfdSharedMapping) {
  int fd = memfd_create("xpmem-test", 0);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 16 * kPage), 0);
  Mapping m(16 * kPage, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
  ASSERT_NE(m.data(), nullptr);
  fill(m.data(), m.size(), 221);
  Outcome o = attach_from_child(m.data(), m.size(), true, [&](char *a) {
    if (!check(a, 16 * kPage, 221))
      return 1;
    fill(a, 16 * kPage, 222);
    return 0;
  });
  EXPECT_TRUE(o.ok());
  EXPECT_TRUE(check(m.data(), m.size(), 222));
  // Through the file too: it is the same page cache.
  std::vector<char> back(m.size());
  ASSERT_EQ(pread(fd, back.data(), back.size(), 0), (ssize_t)back.size());
  EXPECT_TRUE(check(back.data(), back.size(), 222));
  close(fd);
}

TEST(Memory, FileBackedMappings) {
  char path[] = "/tmp/xpmem-file-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  unlink(path);
  std::vector<char> data(8 * kPage);
  fill(data.data(), data.size(), 231);
  ASSERT_EQ(pwrite(fd, data.data(), data.size(), 0), (ssize_t)data.size());

  // Private file mapping: reads see the file, writes stay private (COW).
  Mapping priv(8 * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd);
  Outcome o = attach_from_child(priv.data(), priv.size(), true, [&](char *a) {
    if (!check(a, 8 * kPage, 231))
      return 1;
    a[0] = 0x55;
    return 0;
  });
  EXPECT_TRUE(o.ok());
  EXPECT_EQ(priv.data()[0], 0x55);
  char first = 0;
  ASSERT_EQ(pread(fd, &first, 1, 0), 1);
  EXPECT_EQ(first, data[0]) << "a private mapping's write reached the file";

  // Read-only shared file mapping: never writable through an attachment.
  Mapping ro(8 * kPage, PROT_READ, MAP_SHARED, fd);
  o = attach_from_child(ro.data(), ro.size(), true, [&](char *a) {
    if (!check(a, 8 * kPage, 231))
      return 1;
    int sig = touch_signal(a + kPage, true);
    return sig == SIGSEGV || sig == SIGBUS ? 0 : 2;
  });
  EXPECT_TRUE(o.ok()) << o.exit_code;
  ASSERT_EQ(pread(fd, &first, 1, kPage), 1);
  EXPECT_EQ(first, data[kPage]);
  close(fd);
}

TEST(Memory, SparseOneGibAttach) {
  const std::size_t size = 1ul << 30;
  Mapping big(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
  ASSERT_NE(big.data(), nullptr);
  const std::size_t stride = 64ul << 20;
  for (std::size_t off = 0; off < size; off += stride)
    std::memcpy(big.data() + off, &off, sizeof off);
  Outcome o = attach_from_child(big.data(), size, true, [&](char *a) {
    for (std::size_t off = 0; off < size; off += stride) {
      std::size_t v;
      std::memcpy(&v, a + off, sizeof v);
      if (v != off)
        return 1;
      if (a[off + kPage] != 0) // untouched: reads zero
        return 2;
    }
    a[size - 1] = 9;
    return 0;
  });
  EXPECT_TRUE(o.ok()) << o.exit_code << "/" << o.signal;
  EXPECT_EQ(big.data()[size - 1], 9);
}

TEST(Memory, TenThousandAttachments) {
  const int n = 10000;
  Mapping buf(4 * kPage);
  fill(buf.data(), buf.size(), 241);
  xpmem::Segment seg = xpmem::Segment::make(buf.data(), buf.size(), 0600);
  Outcome o = run_child([&] {
    xpmem::Permit permit = xpmem::Permit::get(seg.id());
    std::vector<char *> atts;
    atts.reserve(n);
    for (int i = 0; i < n; i++) {
      auto *p = static_cast<char *>(xpmem_attach(at(permit.id(), (i % 4) * kPage), kPage, nullptr));
      if (failed(p))
        return 1;
      atts.push_back(p);
    }
    for (int i = 0; i < n; i++)
      if (std::memcmp(atts[i], buf.data() + (i % 4) * kPage, 64) != 0)
        return 2;
    if (auto st = stats(); st && (*st)["attachments"] < n)
      return 3;
    for (char *p : atts)
      if (xpmem_detach(p))
        return 4;
    return 0;
  });
  EXPECT_TRUE(o.ok()) << o.exit_code;
}

TEST(Memory, EightThreadsFaultOneAttachment) {
  const std::size_t size = 4 << 20;
  Mapping buf(size);
  fill(buf.data(), size, 251);
  Outcome o = attach_from_child(buf.data(), size, true, [&](char *a) {
    std::atomic<int> bad{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; t++)
      threads.emplace_back([&, t] {
        // Interleaved pages so every thread races on neighbouring faults.
        for (std::size_t off = t * kPage; off < size; off += 8 * kPage) {
          std::uint32_t v;
          std::memcpy(&v, a + off, sizeof v);
          std::uint32_t want = 251 ^ static_cast<std::uint32_t>(off * 2654435761u);
          if (v != want)
            bad++;
          a[off + 100] = static_cast<char>(t);
        }
      });
    for (auto &th : threads)
      th.join();
    return bad.load() == 0 ? 0 : 1;
  });
  EXPECT_TRUE(o.ok()) << o.exit_code << "/" << o.signal;
  for (std::size_t off = 0; off < size; off += kPage)
    ASSERT_EQ(buf.data()[off + 100], static_cast<char>((off / kPage) % 8)) << off;
}

TEST(Memory, ManyProcessesAttachOneSegment) {
  const int nproc = 8;
  const std::size_t slot = 16 * kPage;
  Mapping buf(nproc * slot);
  std::memset(buf.data(), 0, buf.size());
  xpmem::Segment seg = xpmem::Segment::make(buf.data(), buf.size(), 0600);
  ASSERT_TRUE(seg);
  std::vector<pid_t> pids;
  for (int i = 0; i < nproc; i++)
    pids.push_back(spawn([&, i] {
      xpmem::Permit permit = xpmem::Permit::get(seg.id());
      xpmem::Attachment att = xpmem::Attachment::attach(permit, 0, buf.size());
      if (!att)
        return 1;
      fill(static_cast<char *>(att.data()) + i * slot, slot, 300 + i);
      return 0;
    }));
  for (pid_t pid : pids)
    EXPECT_TRUE(wait_child(pid).ok());
  for (int i = 0; i < nproc; i++)
    EXPECT_TRUE(check(buf.data() + i * slot, slot, 300 + i)) << i;
}

TEST(Memory, OneFaultMapsNeighbours) {
  auto before = stats();
  if (!before)
    GTEST_SKIP() << "counters need root (debugfs); the root run covers it";
  const std::size_t size = 256 * kPage;
  Mapping buf(size);
  fill(buf.data(), size, 261);
  Outcome o = attach_from_child(buf.data(), size, true,
                                [&](char *a) { return check(a, size, 261) ? 0 : 1; });
  ASSERT_TRUE(o.ok());
  auto after = stats();
  long faults = (*after)["faults"] - (*before)["faults"];
  long ptes = (*after)["ptes_installed"] - (*before)["ptes_installed"];
  EXPECT_GT(faults, 0);
  EXPECT_GE(ptes, 256);
  EXPECT_LE(faults, 256 / 8) << "fault-around should map many pages per fault";
}

} // namespace
