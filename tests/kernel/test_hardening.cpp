// What an unprivileged user must not be able to do to the node through the
// module: make an invalidation recurse (attachments whose source window
// covers themselves or each other), lose a write through an attachment to
// reclaim, deadlock two processes in non-retryable faults, stay unkillable
// behind an exporter that keeps invalidating, or keep a closed exporter's
// segments alive through a child's inherited descriptor.
#include "helpers.hpp"

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "uapi/xpmem_abi.h"

using namespace xt;

namespace {

void *mode(int m) {
  return reinterpret_cast<void *>(static_cast<long>(m));
}

// A free, page-aligned range of `size` bytes in this process.
std::uintptr_t free_range(std::size_t size) {
  void *p = mmap(nullptr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return 0;
  munmap(p, size);
  return reinterpret_cast<std::uintptr_t>(p);
}

// In a child: export everything, attach `size` bytes at a free address V
// taking the source window at V + shift (so it covers the attachment, or
// overlaps it by all but |shift|), touch it, then detach or exit.
enum class End { Detach, Exit };
int self_window(std::ptrdiff_t shift, End end, std::uintptr_t at_addr = 0) {
  const std::size_t size = 256 * kPage;
  xpmem_segid_t seg = xpmem_make(nullptr, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, mode(0600));
  if (seg <= 0)
    return 10;
  xpmem_apid_t apid = xpmem_get(seg, XPMEM_RDWR, XPMEM_PERMIT_MODE, nullptr);
  if (apid <= 0)
    return 11;
  std::uintptr_t v = at_addr ? at_addr : free_range(size);
  if (!v)
    return 12;
  void *p =
      xpmem_attach(at(apid, static_cast<off_t>(v + shift)), size, reinterpret_cast<void *>(v));
  if (failed(p))
    return errno == EINVAL || errno == EFAULT ? 0 : 13; // refusing is allowed
  if (p != reinterpret_cast<void *>(v))
    return 14;
  // Where the window sees the attachment itself there is no page to map.
  volatile char *c = static_cast<volatile char *>(p);
  std::size_t own = shift >= 0 ? 0 : static_cast<std::size_t>(-shift);
  if (touch_signal(c + own, false) != SIGBUS)
    return 15;
  // Invalidate the window many times: every detach/re-attach, and munmap
  // of part of the range the window covers.
  for (int i = 0; i < 20; i++) {
    if (xpmem_detach(p) != 0)
      return 16;
    p = xpmem_attach(at(apid, static_cast<off_t>(v + shift)), size, reinterpret_cast<void *>(v));
    if (p != reinterpret_cast<void *>(v))
      return 17;
    (void)touch_signal(c + own, true);
  }
  if (end == End::Exit)
    _exit(0); // exit_mmap tears the attachment down inside its own window
  if (xpmem_detach(p) != 0)
    return 18;
  xpmem_release(apid);
  xpmem_remove(seg);
  return 0;
}

// XPMEM_CMD_MAKE through `fd`, bypassing the library's own descriptor.
xpmem_segid_t raw_make(int fd, const void *addr, std::size_t size) {
  xpmem_cmd_make make{};
  make.vaddr = reinterpret_cast<std::uintptr_t>(addr);
  make.size = size;
  make.permit_type = XPMEM_PERMIT_MODE;
  make.permit_value = 0600;
  return ioctl(fd, XPMEM_CMD_MAKE, &make) == 0 ? make.segid : -1;
}

} // namespace

TEST(Recursion, SelfCoveringWindowDetach) {
  Outcome o = run_child([] { return self_window(0, End::Detach); });
  EXPECT_TRUE(o.ok()) << o.exit_code << "/" << o.signal;
}

TEST(Recursion, SelfCoveringWindowExit) {
  Outcome o = run_child([] { return self_window(0, End::Exit); });
  EXPECT_TRUE(o.ok()) << o.exit_code << "/" << o.signal;
}

TEST(Recursion, SelfWindowOffsetByAPage) {
  for (std::ptrdiff_t shift :
       {static_cast<std::ptrdiff_t>(kPage), -static_cast<std::ptrdiff_t>(kPage)}) {
    for (End end : {End::Detach, End::Exit}) {
      Outcome o = run_child([=] { return self_window(shift, end); });
      EXPECT_TRUE(o.ok()) << "shift " << shift << ": " << o.exit_code << "/" << o.signal;
    }
  }
}

TEST(Recursion, SelfWindowAtTheTopOfTheAddressSpace) {
  // The last 256 pages below the x86-64 4-level task size.
  const std::uintptr_t task_size = 0x7ffffffff000UL;
  const std::uintptr_t v = task_size - 256 * kPage;
  void *probe = mmap(reinterpret_cast<void *>(v), 256 * kPage, PROT_NONE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (probe == MAP_FAILED)
    GTEST_SKIP() << "the top of the address space is in use: " << strerror(errno);
  munmap(probe, 256 * kPage);
  for (End end : {End::Detach, End::Exit}) {
    Outcome o = run_child([=] { return self_window(0, end, v); });
    EXPECT_TRUE(o.ok()) << o.exit_code << "/" << o.signal;
  }
}

// A ring of n processes: process i exports everything and attaches, at its
// own address V_i, the window of process i+1 at V_{i+1}, which is i+1's
// attachment of i+2's window, and so on back to i.  Every invalidation of
// one attachment is an invalidation of the next one's source.
void ring_of_attachments(int n, End end) {
  const std::size_t size = 64 * kPage;
  struct Shared {
    std::atomic<std::int64_t> segid[8];
    std::atomic<std::uint64_t> addr[8];
    std::atomic<int> attached, done;
  };
  auto *sh = static_cast<Shared *>(
      mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(sh, MAP_FAILED);
  new (sh) Shared{};
  std::vector<pid_t> pids;
  for (int i = 0; i < n; i++) {
    pids.push_back(spawn([=] {
      alarm(120);
      xpmem_segid_t seg = xpmem_make(nullptr, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, mode(0600));
      std::uintptr_t v = free_range(size);
      if (seg <= 0 || !v)
        return 10;
      // Keep V reserved until we attach there.
      mmap(reinterpret_cast<void *>(v), size, PROT_NONE,
           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
      sh->addr[i] = v;
      sh->segid[i] = seg;
      int next = (i + 1) % n;
      while (sh->segid[next].load() == 0)
        usleep(1000);
      xpmem_apid_t apid = xpmem_get(sh->segid[next], XPMEM_RDWR, XPMEM_PERMIT_MODE, nullptr);
      if (apid <= 0)
        return 11;
      munmap(reinterpret_cast<void *>(v), size);
      void *p = xpmem_attach(at(apid, static_cast<off_t>(sh->addr[next].load())), size,
                             reinterpret_cast<void *>(v));
      if (p != reinterpret_cast<void *>(v))
        return 12;
      sh->attached++;
      while (sh->attached.load() < n)
        usleep(1000);
      // Every source page is the next process's attachment: no page to map.
      if (touch_signal(static_cast<volatile char *>(p), false) != SIGBUS)
        return 13;
      for (int k = 0; k < 10; k++) {
        if (xpmem_detach(p) != 0)
          return 14;
        p = xpmem_attach(at(apid, static_cast<off_t>(sh->addr[next].load())), size,
                         reinterpret_cast<void *>(v));
        if (p != reinterpret_cast<void *>(v))
          return 15;
      }
      sh->done++;
      while (sh->done.load() < n)
        usleep(1000);
      if (end == End::Exit)
        _exit(0);
      return xpmem_detach(p) == 0 ? 0 : 16;
    }));
  }
  for (pid_t pid : pids) {
    bool hung = false;
    Outcome o = wait_child_for(pid, 150, &hung);
    EXPECT_FALSE(hung);
    EXPECT_TRUE(o.ok()) << o.exit_code << "/" << o.signal;
  }
  munmap(sh, sizeof(Shared));
}

TEST(Recursion, TwoProcessesAttachEachOthersAttachments) {
  ring_of_attachments(2, End::Detach);
  ring_of_attachments(2, End::Exit);
}

TEST(Recursion, ChainOfFiveAttachments) {
  ring_of_attachments(5, End::Detach);
  ring_of_attachments(5, End::Exit);
}

// --- Lost writes ------------------------------------------------------------

bool have_swap() {
  std::ifstream swaps("/proc/swaps");
  std::string line;
  int lines = 0;
  while (std::getline(swaps, line))
    lines++;
  return lines > 1;
}

// The exporter (a child) prepares a page with `prepare`, exports it and
// waits; we attach read-write, write 0x42 through the attachment (after a
// read when `read_first`), and exit the attacher; the exporter pages the
// page out and must read 0x42 back.
void write_survives_pageout(const std::function<char *()> &prepare, bool read_first) {
  Channel ch;
  pid_t exporter = spawn([&] {
    char *page = prepare();
    if (!page)
      return 20;
    xpmem_segid_t seg = xpmem_make(page, kPage, XPMEM_PERMIT_MODE, mode(0600));
    ch.send(1, seg);
    ch.recv(1); // the attacher has written and gone
    for (int i = 0; i < 3; i++)
      madvise(page, kPage, MADV_PAGEOUT);
    return page[0] == 0x42 && page[kPage - 1] == 0x42 ? 0 : 21;
  });
  xpmem_segid_t seg = ch.recv(0);
  ASSERT_GT(seg, 0);
  Outcome attacher = run_child([&] {
    Attached a = attach_segment(seg, kPage);
    if (!a)
      return 30;
    volatile char *p = a.data();
    if (read_first && p[0] == 0x42)
      return 31;
    p[0] = 0x42;
    p[kPage - 1] = 0x42;
    return 0;
  });
  EXPECT_TRUE(attacher.ok());
  ch.send(0, 1);
  Outcome o = wait_child(exporter);
  EXPECT_TRUE(o.ok()) << "the exporter lost our write (" << o.exit_code << "/" << o.signal << ")";
}

char *anon_page() {
  void *p = mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : static_cast<char *>(p);
}

TEST(LostWrites, LazyFreedAnonymousPage) {
  for (bool read_first : {false, true}) {
    write_survives_pageout(
        [] {
          char *p = anon_page();
          if (!p)
            return p;
          std::memset(p, 1, kPage);
          madvise(p, kPage, MADV_FREE); // jemalloc does this to free memory
          return p;
        },
        read_first);
  }
}

TEST(LostWrites, SharedMemoryFirstTouchedByARead) {
  if (!have_swap())
    GTEST_SKIP() << "needs swap (the VM suite sets up zram swap as root)";
  // memfd, /dev/shm (POSIX shm) and SysV shm pages are all shmem: a read
  // fault maps them writable but clean.
  auto memfd_page = [] {
    int fd = memfd_create("xpmem-lost-write", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, kPage) != 0)
      return static_cast<char *>(nullptr);
    void *p = mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
      return static_cast<char *>(nullptr);
    (void)*static_cast<volatile char *>(p);
    return static_cast<char *>(p);
  };
  auto shm_page = [] {
    std::string name = "/xpmem-lost-write-" + std::to_string(getpid());
    int fd = shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    shm_unlink(name.c_str());
    if (fd < 0 || ftruncate(fd, kPage) != 0)
      return static_cast<char *>(nullptr);
    void *p = mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
      return static_cast<char *>(nullptr);
    (void)*static_cast<volatile char *>(p);
    return static_cast<char *>(p);
  };
  for (bool read_first : {false, true}) {
    write_survives_pageout(memfd_page, read_first);
    write_survives_pageout(shm_page, read_first);
  }
}

TEST(LostWrites, SwappedAnonymousPage) {
  if (!have_swap())
    GTEST_SKIP() << "needs swap (the VM suite sets up zram swap as root)";
  write_survives_pageout(
      [] {
        char *p = anon_page();
        if (p) {
          std::memset(p, 1, kPage);
          madvise(p, kPage, MADV_PAGEOUT); // swapped out; our read swaps it in clean
        }
        return p;
      },
      true);
}

// --- Faults that cannot be retried ------------------------------------------

// Two processes attach each other's buffer and call FUTEX_WAKE_OP on it
// while the peer keeps zapping it: the kernel resolves the fault with
// fixup_user_fault() under the caller's mmap_lock, which cannot be retried.
// A second thread in each keeps writers queued on its own mmap_lock.  A
// fault that waited for the peer's mmap_lock here would deadlock both.
TEST(Deadlock, NonRetryableFaultsOnEachOthersAttachments) {
  const std::size_t size = 16 * kPage;
  const int seconds = 8;
  Channel ab, ba;
  auto side = [&](Channel &out, int out_end, Channel &in, int in_end) {
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
    std::atomic<bool> stop{false};
    std::thread churn([&] {
      while (!stop) {
        void *p = mmap(nullptr, kPage, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        munmap(p, kPage);
        madvise(buf.data(), size, MADV_DONTNEED); // zaps the peer's PTEs
      }
    });
    auto *peer = static_cast<char *>(att.data());
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    long calls = 0, faults = 0;
    int word = 0;
    while (std::chrono::steady_clock::now() < until) {
      for (std::size_t off = 0; off < size; off += kPage, calls++) {
        long r = syscall(SYS_futex, &word, FUTEX_WAKE_OP_PRIVATE, 1, nullptr, peer + off,
                         FUTEX_OP(FUTEX_OP_ADD, 1, FUTEX_OP_CMP_EQ, 0));
        if (r < 0 && errno == EFAULT)
          faults++; // allowed: the peer's lock was contended
        else if (r < 0)
          return 2;
      }
    }
    stop = true;
    churn.join();
    out.send(out_end, 2);
    in.recv(in_end);
    std::printf("futex wake_op: %ld calls, %ld EFAULT\n", calls, faults);
    return 0;
  };
  pid_t a = spawn([&] { return side(ab, 0, ba, 1); });
  pid_t b = spawn([&] { return side(ba, 0, ab, 1); });
  bool hung = false;
  Outcome oa = wait_child_for(a, 90, &hung);
  Outcome ob = wait_child_for(b, 30, &hung);
  EXPECT_FALSE(hung) << "deadlock: a process did not finish";
  EXPECT_TRUE(oa.ok()) << oa.exit_code << "/" << oa.signal;
  EXPECT_TRUE(ob.ok()) << ob.exit_code << "/" << ob.signal;
}

// An exporter child invalidates its whole buffer in a tight loop while
// `attacher` (a child) uses an attachment of it; after two seconds the
// attacher gets SIGKILL and must be gone within ten.
void attacher_dies_during_invalidation_storm(const std::function<int(const Attached &)> &attacher) {
  const std::size_t size = 64 * kPage;
  Channel ch;
  pid_t exporter = spawn([&] {
    Mapping buf(size);
    std::memset(buf.data(), 1, size);
    xpmem::Segment seg = xpmem::Segment::make(buf.data(), size, 0600);
    ch.send(1, seg.id());
    std::atomic<bool> stop{false};
    std::thread storm([&] {
      while (!stop)
        madvise(buf.data(), size, MADV_DONTNEED);
    });
    ch.recv(1);
    stop = true;
    storm.join();
    return 0;
  });
  xpmem_segid_t seg = ch.recv(0);
  ASSERT_GT(seg, 0);
  pid_t pid = spawn([&] {
    Attached a = attach_segment(seg, size);
    return a ? attacher(a) : 100;
  });
  sleep(2);
  auto killed = std::chrono::steady_clock::now();
  kill(pid, SIGKILL);
  bool hung = false;
  Outcome o = wait_child_for(pid, 30, &hung);
  auto took = std::chrono::steady_clock::now() - killed;
  EXPECT_FALSE(hung) << "the attacher could not be killed";
  EXPECT_EQ(o.signal, SIGKILL) << "exit code " << o.exit_code;
  EXPECT_LT(std::chrono::duration_cast<std::chrono::seconds>(took).count(), 10);
  ch.send(0, 1);
  EXPECT_TRUE(wait_child(exporter).ok());
}

// Faulting from user space on pages the exporter keeps invalidating.
TEST(Killable, AttacherDiesWhileTheExporterKeepsInvalidating) {
  attacher_dies_during_invalidation_storm([](const Attached &a) {
    for (;;)
      for (std::size_t off = 0; off < a.att.size(); off += kPage)
        static_cast<volatile char *>(a.data())[off] = 2;
    return 0;
  });
}

// The kernel itself copies from the attachment (write() into a pipe): on a
// fatal signal the copy must give up, not re-fault forever.
TEST(Killable, KernelCopyFromAnAttachmentDiesOnSigkill) {
  attacher_dies_during_invalidation_storm([](const Attached &a) {
    int fds[2];
    if (pipe(fds) != 0)
      return 2;
    fcntl(fds[1], F_SETPIPE_SZ, static_cast<int>(a.att.size()));
    std::thread drain([&] {
      static char sink[65536];
      while (read(fds[0], sink, sizeof sink) > 0) {
      }
    });
    drain.detach();
    for (;;)
      if (write(fds[1], a.data(), a.att.size()) < 0 && errno != EINTR)
        return 3;
  });
}

// Attachments cannot become an executable view of writable memory.
TEST(Mappings, AttachmentsAreNeverExecutable) {
  Mapping buf(4 * kPage);
  xpmem::Segment seg = xpmem::Segment::make(buf.data(), buf.size(), 0600);
  Attached a = attach_segment(seg.id(), buf.size());
  ASSERT_TRUE(a);
  errno = 0;
  EXPECT_EQ(mprotect(a.data(), buf.size(), PROT_READ | PROT_EXEC), -1);
  EXPECT_EQ(errno, EACCES);
}

// --- Closing the device -----------------------------------------------------

// The exporter opened the device itself, forked a child that still holds
// the descriptor, and closed its own copy: its segments are gone.
TEST(DeviceClose, AnInheritedDescriptorKeepsNothingAlive) {
  Channel ch;
  pid_t exporter = spawn([&] {
    Mapping buf(kPage);
    int fd = open("/dev/xpmem", O_RDWR); // no CLOEXEC: the child inherits it
    if (fd < 0)
      return 1;
    xpmem_segid_t seg = raw_make(fd, buf.data(), kPage);
    if (seg <= 0)
      return 2;
    pid_t child = fork();
    if (child == 0) {
      pause(); // holds the inherited descriptor
      _exit(0);
    }
    close(fd);
    ch.send(1, seg);
    ch.recv(1);
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    return 0;
  });
  xpmem_segid_t seg = ch.recv(0);
  ASSERT_GT(seg, 0);
  errno = 0;
  EXPECT_EQ(xpmem_get(seg, XPMEM_RDWR, XPMEM_PERMIT_MODE, nullptr), -1)
      << "the closed exporter's segment is still gettable";
  EXPECT_EQ(errno, ENOENT);
  ch.send(0, 1);
  EXPECT_TRUE(wait_child(exporter).ok());
}

// Closing a duplicate of the descriptor is not closing the device.
TEST(DeviceClose, ClosingADuplicateKeepsSegments) {
  Mapping buf(kPage);
  int fd = open("/dev/xpmem", O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  xpmem_segid_t seg = raw_make(fd, buf.data(), kPage);
  ASSERT_GT(seg, 0);
  int dup_fd = dup(fd);
  ASSERT_GE(dup_fd, 0);
  ASSERT_EQ(close(dup_fd), 0);
  xpmem_apid_t apid = xpmem_get(seg, XPMEM_RDWR, XPMEM_PERMIT_MODE, nullptr);
  EXPECT_GT(apid, 0) << "closing a dup revoked the segment: " << strerror(errno);
  if (apid > 0)
    xpmem_release(apid);
  ASSERT_EQ(close(fd), 0);
  errno = 0;
  EXPECT_EQ(xpmem_get(seg, XPMEM_RDWR, XPMEM_PERMIT_MODE, nullptr), -1);
  EXPECT_EQ(errno, ENOENT);
}

// A child's close of its inherited copy does not take the parent's
// segments with it.
TEST(DeviceClose, AChildClosingItsCopyChangesNothing) {
  Mapping buf(kPage);
  int fd = open("/dev/xpmem", O_RDWR);
  ASSERT_GE(fd, 0);
  xpmem_segid_t seg = raw_make(fd, buf.data(), kPage);
  ASSERT_GT(seg, 0);
  Outcome o = run_child([fd] { return close(fd) == 0 ? 0 : 1; });
  EXPECT_TRUE(o.ok());
  xpmem_apid_t apid = xpmem_get(seg, XPMEM_RDWR, XPMEM_PERMIT_MODE, nullptr);
  EXPECT_GT(apid, 0) << strerror(errno);
  if (apid > 0)
    xpmem_release(apid);
  close(fd);
}

// --- Per-user bounds ----------------------------------------------------------

TEST(Limits, SegmentsPerUserAreBounded) {
  if (geteuid() != 0)
    GTEST_SKIP() << "needs root to lower the module parameter";
  ScopedParam limit("max_segments_per_user", 8);
  ASSERT_TRUE(limit.ok());
  Mapping buf(kPage);
  std::vector<xpmem_segid_t> segs;
  for (int i = 0; i < 8; i++) {
    segs.push_back(xpmem_make(buf.data(), kPage, XPMEM_PERMIT_MODE, mode(0600)));
    ASSERT_GT(segs.back(), 0) << i << ": " << strerror(errno);
  }
  errno = 0;
  EXPECT_EQ(xpmem_make(buf.data(), kPage, XPMEM_PERMIT_MODE, mode(0600)), -1);
  EXPECT_EQ(errno, ENOSPC);
  // Another user is not affected by this user's segments.
  Outcome other = run_child([&] {
    if (setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0)
      return 1;
    return xpmem_make(buf.data(), kPage, XPMEM_PERMIT_MODE, mode(0600)) > 0 ? 0 : 2;
  });
  EXPECT_TRUE(other.ok()) << other.exit_code;
  // Removing one makes room for one.
  ASSERT_EQ(xpmem_remove(segs.back()), 0);
  segs.back() = xpmem_make(buf.data(), kPage, XPMEM_PERMIT_MODE, mode(0600));
  EXPECT_GT(segs.back(), 0);
  for (xpmem_segid_t s : segs)
    if (s > 0)
      xpmem_remove(s);
}

TEST(Limits, PermitsPerUserAreBounded) {
  if (geteuid() != 0)
    GTEST_SKIP() << "needs root to lower the module parameter";
  ScopedParam limit("max_permits_per_user", 4);
  ASSERT_TRUE(limit.ok());
  Mapping buf(kPage);
  xpmem::Segment seg = xpmem::Segment::make(buf.data(), kPage, 0600);
  ASSERT_TRUE(seg);
  std::vector<xpmem_apid_t> permits;
  for (int i = 0; i < 4; i++) {
    permits.push_back(xpmem_get(seg.id(), XPMEM_RDWR, XPMEM_PERMIT_MODE, nullptr));
    ASSERT_GT(permits.back(), 0) << i << ": " << strerror(errno);
  }
  errno = 0;
  EXPECT_EQ(xpmem_get(seg.id(), XPMEM_RDWR, XPMEM_PERMIT_MODE, nullptr), -1);
  EXPECT_EQ(errno, ENOSPC);
  ASSERT_EQ(xpmem_release(permits.back()), 0);
  permits.back() = xpmem_get(seg.id(), XPMEM_RDWR, XPMEM_PERMIT_MODE, nullptr);
  EXPECT_GT(permits.back(), 0);
  for (xpmem_apid_t a : permits)
    if (a > 0)
      xpmem_release(a);
}
