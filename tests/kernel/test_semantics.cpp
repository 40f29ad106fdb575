// What users depend on: data between processes, access modes, holes,
// coherence with the exporter's address space, exit and fork.
#include "helpers.hpp"

#include <fcntl.h>
#include <grp.h>
#include <sys/uio.h>

using namespace xt;

namespace {

void *mode(int m) {
  return reinterpret_cast<void *>(static_cast<long>(m));
}

// An exporter child: exports `size` bytes filled with `seed`, sends the
// segid (and buffer address), then serves commands until told to quit.
enum Cmd : std::int64_t { kQuit = 1, kRefill = 2, kRemap = 3, kFork = 4, kRemove = 5, kExit = 6 };

struct Exporter {
  Channel ch;
  pid_t pid = -1;
  xpmem_segid_t segid = -1;
  char *addr = nullptr;

  Exporter(std::size_t size, std::uint32_t seed, int mode_bits = 0600,
           int prot = PROT_READ | PROT_WRITE) {
    pid = spawn([&, size, seed, mode_bits, prot] {
      Mapping buf(size);
      fill(buf.data(), size, seed);
      if (prot != (PROT_READ | PROT_WRITE))
        mprotect(buf.data(), size, prot);
      xpmem_segid_t s = xpmem_make(buf.data(), size, XPMEM_PERMIT_MODE, mode(mode_bits));
      ch.send(1, s);
      ch.send(1, reinterpret_cast<std::int64_t>(buf.data()));
      pid_t grandchild = -1;
      for (;;) {
        std::int64_t cmd = ch.recv(1);
        switch (cmd) {
        case kRefill:
          fill(buf.data(), size, static_cast<std::uint32_t>(ch.recv(1)));
          break;
        case kRemap: {
          // New memory at the same address, with new contents.
          void *p = mmap(buf.data(), size, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
          if (p != buf.data())
            return 3;
          fill(buf.data(), size, static_cast<std::uint32_t>(ch.recv(1)));
          break;
        }
        case kFork:
          // The child keeps the old pages; our next write copies them.
          grandchild = fork();
          if (grandchild == 0) {
            pause();
            _exit(0);
          }
          fill(buf.data(), size, static_cast<std::uint32_t>(ch.recv(1)));
          break;
        case kRemove:
          xpmem_remove(s);
          break;
        case kExit:
        case kQuit:
        default:
          if (grandchild > 0) {
            kill(grandchild, SIGKILL);
            waitpid(grandchild, nullptr, 0);
          }
          return cmd == kExit || cmd == kQuit ? 0 : 2;
        }
        ch.send(1, 0); // done
      }
    });
    segid = ch.recv(0);
    addr = reinterpret_cast<char *>(ch.recv(0));
  }
  void command(Cmd c, std::int64_t arg = 0) {
    ch.send(0, c);
    if (c == kRefill || c == kRemap || c == kFork)
      ch.send(0, arg);
    if (c != kQuit && c != kExit) {
      EXPECT_EQ(ch.recv(0), 0);
    }
  }
  Outcome quit() {
    ch.send(0, kQuit);
    return wait_child(pid);
  }
};

TEST(Semantics, ReadWriteBothDirections) {
  const std::size_t size = 64 * kPage;
  Exporter ex(size, 11);
  ASSERT_GT(ex.segid, 0);
  xpmem::Permit permit = xpmem::Permit::get(ex.segid);
  ASSERT_TRUE(permit) << strerror(permit.error());
  xpmem::Attachment att = xpmem::Attachment::attach(permit, 0, size);
  ASSERT_TRUE(att) << strerror(att.error());
  auto *p = static_cast<char *>(att.data());
  EXPECT_TRUE(check(p, size, 11));
  fill(p, size, 12);       // we write, the exporter reads
  ex.command(kRefill, 13); // the exporter overwrites, we read
  EXPECT_TRUE(check(p, size, 13));
  EXPECT_TRUE(ex.quit().ok());
}

TEST(Semantics, ExporterSeesOurWrites) {
  const std::size_t size = 16 * kPage;
  Channel ch;
  pid_t pid = spawn([&] {
    Mapping buf(size);
    std::memset(buf.data(), 0, size);
    ch.send(1, xpmem_make(buf.data(), size, XPMEM_PERMIT_MODE, mode(0600)));
    ch.recv(1);
    return check(buf.data(), size, 21) ? 0 : 1;
  });
  xpmem::Permit permit = xpmem::Permit::get(ch.recv(0));
  xpmem::Attachment att = xpmem::Attachment::attach(permit, 0, size);
  ASSERT_TRUE(att);
  fill(static_cast<char *>(att.data()), size, 21);
  ch.send(0, 1);
  EXPECT_TRUE(wait_child(pid).ok()) << "the exporter did not see our writes";
}

TEST(Semantics, ReadOnlyPermitReadsAndWritesFault) {
  const std::size_t size = 8 * kPage;
  Exporter ex(size, 31, 0644);
  xpmem::Permit permit = xpmem::Permit::get(ex.segid, /*writable=*/false);
  ASSERT_TRUE(permit);
  xpmem::Attachment att = xpmem::Attachment::attach(permit, 0, size);
  ASSERT_TRUE(att) << "a read-only permit must attach: " << strerror(att.error());
  auto *p = static_cast<char *>(att.data());
  EXPECT_TRUE(check(p, size, 31));
  EXPECT_EQ(touch_signal(p + kPage, true), SIGSEGV);
  errno = 0;
  EXPECT_EQ(mprotect(p, size, PROT_READ | PROT_WRITE), -1) << "cannot be upgraded";
  EXPECT_EQ(errno, EACCES);
  EXPECT_TRUE(ex.quit().ok());
}

TEST(Semantics, ReadOnlyExporterPagesStayReadOnly) {
  const std::size_t size = 8 * kPage;
  Exporter ex(size, 41, 0600, PROT_READ);
  Attached a = attach_segment(ex.segid, size);
  ASSERT_TRUE(a);
  char *p = a.data();
  EXPECT_TRUE(check(p, size, 41));
  int sig = touch_signal(p, true);
  EXPECT_TRUE(sig == SIGSEGV || sig == SIGBUS) << "signal " << sig;
  // Also when the page was first mapped by a read.
  (void)*(volatile char *)(p + 2 * kPage);
  sig = touch_signal(p + 2 * kPage, true);
  EXPECT_TRUE(sig == SIGSEGV || sig == SIGBUS) << "signal " << sig;
  EXPECT_TRUE(check(p, size, 41));
  EXPECT_TRUE(ex.quit().ok());
}

TEST(Semantics, UntouchedPagesAreNotTheSharedZeroPage) {
  // A read maps the exporter's zero page read-only; a write must give the
  // exporter a real page, never scribble on the zero page.
  const std::size_t size = 4 * kPage;
  Channel ch;
  pid_t pid = spawn([&] {
    Mapping buf(size);
    ch.send(1, xpmem_make(buf.data(), size, XPMEM_PERMIT_MODE, mode(0600)));
    ch.recv(1);
    return buf.data()[kPage] == 'z' && buf.data()[2 * kPage] == 0 ? 0 : 1;
  });
  xpmem::Permit permit = xpmem::Permit::get(ch.recv(0));
  xpmem::Attachment att = xpmem::Attachment::attach(permit, 0, size);
  ASSERT_TRUE(att);
  auto *p = static_cast<volatile char *>(att.data());
  EXPECT_EQ(p[kPage], 0);
  EXPECT_EQ(p[2 * kPage], 0);
  p[kPage] = 'z';
  EXPECT_EQ(p[kPage], 'z');
  EXPECT_EQ(p[2 * kPage], 0);
  ch.send(0, 1);
  EXPECT_TRUE(wait_child(pid).ok());
  Mapping fresh(kPage);
  EXPECT_EQ(fresh.data()[0], 0) << "the zero page was written";
}

TEST(Semantics, HolesAttachAndFaultSigbus) {
  // Segment: [hole][4 pages][hole]; attach all of it.
  Mapping reserve(8 * kPage, PROT_NONE);
  char *base = reserve.data();
  ASSERT_EQ(munmap(base, 2 * kPage), 0);
  ASSERT_EQ(munmap(base + 6 * kPage, 2 * kPage), 0);
  ASSERT_EQ(mprotect(base + 2 * kPage, 4 * kPage, PROT_READ | PROT_WRITE), 0);
  fill(base + 2 * kPage, 4 * kPage, 51);
  Outcome o = run_child([&] {
    xpmem_segid_t s = xpmem_make(base, 8 * kPage, XPMEM_PERMIT_MODE, mode(0600));
    xpmem::Permit permit = xpmem::Permit::get(s);
    xpmem::Attachment att = xpmem::Attachment::attach(permit, 0, 8 * kPage);
    if (!att)
      return 10;
    auto *p = static_cast<char *>(att.data());
    if (!check(p + 2 * kPage, 4 * kPage, 51))
      return 11;
    if (touch_signal(p, false) != SIGBUS || touch_signal(p + 7 * kPage, true) != SIGBUS)
      return 12;
    return 0;
  });
  EXPECT_EQ(o.exit_code, 0);
  EXPECT_EQ(o.signal, 0);
}

TEST(Semantics, UnmapAndRemapShowsNewContents) {
  const std::size_t size = 32 * kPage;
  Exporter ex(size, 61);
  Attached a = attach_segment(ex.segid, size);
  ASSERT_TRUE(a);
  char *p = a.data();
  ASSERT_TRUE(check(p, size, 61));
  ex.command(kRemap, 62);
  EXPECT_TRUE(check(p, size, 62)) << "stale pages after the exporter remapped";
  fill(p, size, 63);
  ex.command(kRemap, 64);
  EXPECT_TRUE(check(p, size, 64));
  EXPECT_TRUE(ex.quit().ok());
}

TEST(Semantics, ExporterForkCopyOnWriteShowsParentsPage) {
  const std::size_t size = 16 * kPage;
  Exporter ex(size, 71);
  Attached a = attach_segment(ex.segid, size);
  ASSERT_TRUE(a);
  char *p = a.data();
  fill(p, size, 72);     // writable PTEs everywhere before the fork
  ex.command(kFork, 73); // exporter forks, then writes (COW) new contents
  EXPECT_TRUE(check(p, size, 73)) << "attachment still shows the pre-fork page";
  fill(p, size, 74); // our writes land in the parent's new pages
  ex.command(kRefill, 74);
  EXPECT_TRUE(check(p, size, 74));
  EXPECT_TRUE(ex.quit().ok());
}

TEST(Semantics, ExporterExitMeansSigbus) {
  const std::size_t size = 8 * kPage;
  Exporter ex(size, 81);
  Attached a = attach_segment(ex.segid, size);
  ASSERT_TRUE(a);
  char *p = a.data();
  ASSERT_TRUE(check(p, size, 81)); // mapped now
  EXPECT_TRUE(ex.quit().ok());
  EXPECT_EQ(touch_signal(p, false), SIGBUS);
  EXPECT_EQ(touch_signal(p + 5 * kPage, true), SIGBUS);
  errno = 0;
  EXPECT_EQ(xpmem_get(ex.segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, nullptr), -1) << "stale segid";
  EXPECT_EQ(errno, ENOENT);
}

TEST(Semantics, RemoveMeansSigbus) {
  const std::size_t size = 8 * kPage;
  Exporter ex(size, 91);
  Attached a = attach_segment(ex.segid, size);
  ASSERT_TRUE(a);
  char *p = a.data();
  ASSERT_TRUE(check(p, size, 91));
  ex.command(kRemove);
  EXPECT_EQ(touch_signal(p, false), SIGBUS);
  EXPECT_EQ(touch_signal(p + 3 * kPage, true), SIGBUS);
  EXPECT_TRUE(ex.quit().ok());
}

TEST(Semantics, ReleaseInvalidatesAttachments) {
  Mapping buf(4 * kPage);
  fill(buf.data(), buf.size(), 3);
  xpmem::Segment seg = xpmem::Segment::make(buf.data(), buf.size(), 0600);
  xpmem::Permit permit = xpmem::Permit::get(seg.id());
  auto *p = static_cast<char *>(xpmem_attach(at(permit.id()), buf.size(), nullptr));
  ASSERT_FALSE(failed(p));
  ASSERT_TRUE(check(p, buf.size(), 3));
  permit.reset();
  EXPECT_EQ(touch_signal(p, false), SIGBUS);
  EXPECT_EQ(xpmem_detach(p), 0);
}

TEST(Semantics, AttacherExitWithoutDetachIsCleanedUp) {
  Mapping buf(16 * kPage);
  fill(buf.data(), buf.size(), 5);
  xpmem::Segment seg = xpmem::Segment::make(buf.data(), buf.size(), 0600);
  auto before = stats();
  Outcome o = run_child([&] {
    xpmem_apid_t apid = xpmem_get(seg.id(), XPMEM_RDWR, XPMEM_PERMIT_MODE, nullptr);
    for (int i = 0; i < 8; i++) {
      auto *p = static_cast<char *>(xpmem_attach(at(apid), buf.size(), nullptr));
      if (failed(p) || !check(p, buf.size(), 5))
        return 1;
    }
    return 0; // exit holding a permit and 8 attachments
  });
  EXPECT_TRUE(o.ok());
  EXPECT_TRUE(check(buf.data(), buf.size(), 5));
  if (auto after = stats(); after && before) {
    EXPECT_EQ((*after)["attachments"], (*before)["attachments"]);
    EXPECT_EQ((*after)["permits"], (*before)["permits"]);
  }
}

TEST(Semantics, AttacherForkDoesNotInheritAttachments) {
  Mapping buf(4 * kPage);
  fill(buf.data(), buf.size(), 6);
  xpmem::Segment seg = xpmem::Segment::make(buf.data(), buf.size(), 0600);
  xpmem::Permit permit = xpmem::Permit::get(seg.id());
  xpmem::Attachment att = xpmem::Attachment::attach(permit, 0, buf.size());
  ASSERT_TRUE(att);
  auto *p = static_cast<volatile char *>(att.data());
  ASSERT_EQ(p[0], buf.data()[0]);
  Outcome o = run_child([&] {
    (void)p[0]; // not mapped in the child
    return 0;
  });
  EXPECT_EQ(o.signal, SIGSEGV);
  // The child can still use the library on its own (re-registers).
  o = run_child([&] {
    Mapping own(kPage);
    own.data()[0] = 'c';
    xpmem::Segment s = xpmem::Segment::make(own.data(), kPage, 0600);
    xpmem::Permit pm = xpmem::Permit::get(s.id());
    xpmem::Attachment a = xpmem::Attachment::attach(pm, 0, kPage);
    xpmem::Permit parents = xpmem::Permit::get(seg.id());
    xpmem::Attachment b = xpmem::Attachment::attach(parents, 0, kPage);
    return a && b && static_cast<char *>(a.data())[0] == 'c' &&
                   static_cast<char *>(b.data())[0] == buf.data()[0]
               ? 0
               : 1;
  });
  EXPECT_TRUE(o.ok());
  EXPECT_EQ(p[1], buf.data()[1]) << "the parent's attachment still works";
}

TEST(Semantics, ExporterForkChildReRegisters) {
  Mapping buf(kPage);
  xpmem::Segment seg = xpmem::Segment::make(buf.data(), kPage, 0600);
  ASSERT_TRUE(seg);
  Outcome o = run_child([&] {
    // Inherited state is the parent's: the child registers anew.
    xpmem::Segment mine = xpmem::Segment::make(buf.data(), kPage, 0600);
    return mine && mine.id() != seg.id() ? 0 : 1;
  });
  EXPECT_TRUE(o.ok());
}

TEST(Semantics, ForeignAccessIsRefusedCleanly) {
  // process_vm_readv() and /proc/pid/mem go through GUP, which refuses
  // PFN mappings: a clean EFAULT/EIO, never a crash or a stale page.
  Mapping buf(4 * kPage);
  fill(buf.data(), buf.size(), 8);
  xpmem::Segment seg = xpmem::Segment::make(buf.data(), buf.size(), 0600);
  xpmem::Permit permit = xpmem::Permit::get(seg.id());
  xpmem::Attachment att = xpmem::Attachment::attach(permit, 0, buf.size());
  ASSERT_TRUE(att);
  pid_t self = getpid();
  Outcome o = run_child([&] {
    char local[64];
    iovec liov{local, sizeof local}, riov{att.data(), sizeof local};
    ssize_t n = process_vm_readv(self, &liov, 1, &riov, 1, 0);
    return n == -1 && errno == EFAULT ? 0 : 1;
  });
  EXPECT_TRUE(o.ok());
  EXPECT_TRUE(check(static_cast<char *>(att.data()), buf.size(), 8));
}

// --- Permissions: owner, group, other x read, write.  Needs root to switch
// users; the unprivileged run covers owner access above.

struct PermCase {
  int mode;
  int who; // 0 owner, 1 group member, 2 supplementary group, 3 other
  bool rd_ok, wr_ok;
};

TEST(Permissions, Matrix) {
  if (geteuid() != 0)
    GTEST_SKIP() << "needs root to act as other users; the root run covers it";
  const uid_t owner = 4001, member = 4002, other = 4003;
  const gid_t group = 5001, supp = 5002;
  const PermCase cases[] = {
      {0600, 0, true, true},   {0400, 0, true, false},  {0200, 0, false, false},
      {0000, 0, false, false}, {0640, 1, true, false},  {0660, 1, true, true},
      {0600, 1, false, false}, {0620, 1, false, false}, {0660, 2, true, true},
      {0640, 2, true, false},  {0604, 3, true, false},  {0606, 3, true, true},
      {0660, 3, false, false}, {0666, 3, true, true},   {0002, 3, false, false},
  };
  for (const PermCase &c : cases) {
    Channel ch;
    pid_t ex = spawn([&] {
      gid_t none[1] = {group};
      if (setgroups(1, none) ||
          setresgid(c.who == 2 ? supp : group, c.who == 2 ? supp : group,
                    c.who == 2 ? supp : group) ||
          setresuid(owner, owner, owner))
        return 9;
      Mapping buf(kPage);
      ch.send(1, xpmem_make(buf.data(), kPage, XPMEM_PERMIT_MODE, mode(c.mode)));
      ch.recv(1);
      return 0;
    });
    xpmem_segid_t s = ch.recv(0);
    ASSERT_GT(s, 0);
    Outcome o = run_child([&] {
      uid_t uid = c.who == 0 ? owner : c.who == 3 ? other : member;
      gid_t gid = c.who == 1 ? group : 6000;
      gid_t extra[1] = {c.who == 2 ? supp : (gid_t)6001};
      if (setgroups(1, extra) || setresgid(gid, gid, gid) || setresuid(uid, uid, uid))
        return 9;
      xpmem_apid_t r = xpmem_get(s, XPMEM_RDONLY, XPMEM_PERMIT_MODE, nullptr);
      int rerr = errno;
      xpmem_apid_t w = xpmem_get(s, XPMEM_RDWR, XPMEM_PERMIT_MODE, nullptr);
      int werr = errno;
      bool ok = (r > 0) == c.rd_ok && (w > 0) == c.wr_ok && (r > 0 || rerr == EACCES) &&
                (w > 0 || werr == EACCES);
      return ok ? 0 : 1;
    });
    EXPECT_TRUE(o.ok()) << "mode " << std::oct << c.mode << std::dec << " who " << c.who;
    ch.send(0, 1);
    EXPECT_TRUE(wait_child(ex).ok());
  }
}

TEST(Permissions, CapIpcOwnerOverrides) {
  if (geteuid() != 0)
    GTEST_SKIP() << "needs root; the root run covers it";
  Mapping buf(kPage);
  buf.data()[0] = 'r';
  // Root (CAP_IPC_OWNER) gets a segment of another user with mode 0.
  Channel ch;
  pid_t ex = spawn([&] {
    if (setresuid(4102, 4102, 4102))
      return 9;
    ch.send(1, xpmem_make(buf.data(), kPage, XPMEM_PERMIT_MODE, mode(0)));
    ch.recv(1);
    return 0;
  });
  xpmem::Permit permit = xpmem::Permit::get(ch.recv(0));
  EXPECT_TRUE(permit) << strerror(permit.error());
  xpmem::Attachment att = xpmem::Attachment::attach(permit, 0, kPage);
  ASSERT_TRUE(att);
  EXPECT_EQ(static_cast<char *>(att.data())[0], 'r');
  att.reset();
  permit.reset();
  ch.send(0, 1);
  EXPECT_TRUE(wait_child(ex).ok());
}

} // namespace
