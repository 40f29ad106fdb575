// Huge mappings.  On kernels with huge PFN mappings (Linux 6.12 and later)
// an attachment of memory its exporter maps with PMDs (transparent huge
// pages, hugetlbfs) is mapped with PMDs too, each counted by the module's
// pmds_installed; wherever a PMD is not possible (a window not congruent
// with its source modulo 2 MiB, a split page, 4 KiB source pages) and on
// older kernels, with 4 KiB PTEs.  Contents and coherence are the same
// either way: every test here checks them, and the counter checks (root
// only) check which mapping was used.
#include "helpers.hpp"

#include <sys/utsname.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

using namespace xt;

namespace {

constexpr std::size_t kHuge = 2UL << 20;

// What the module should do with anonymous huge pages (THP, MAP_HUGETLB) on
// this kernel: PMDs from 6.12, unless THP is off or (as the module says in
// debugfs, root only) a debugging kernel's page-table checker forbids them.
bool kernel_maps_huge() {
  if (auto features = xpmem_debug::read_features();
      features && (*features)["huge_mappings_anonymous"] == 0)
    return false;
  utsname u{};
  int major = 0, minor = 0;
  if (uname(&u) != 0 || std::sscanf(u.release, "%d.%d", &major, &minor) != 2)
    return false;
  if (major < 6 || (major == 6 && minor < 12))
    return false;
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string setting;
  std::getline(in, setting);
  return setting.find("[never]") == std::string::npos;
}

// One word per page, different in every page and for every seed: enough to
// tell a page from any other page or an older version of itself, and cheap
// enough for a gibibyte under emulation.
std::uint64_t page_word(std::uint32_t seed, std::size_t page) {
  std::uint64_t x = (std::uint64_t{seed} << 32) ^ page;
  x ^= x >> 31;
  x *= 0x9e3779b97f4a7c15ULL;
  return x | 1;
}

void fill_pages(char *buf, std::size_t size, std::uint32_t seed) {
  for (std::size_t p = 0; p < size / kPage; p++)
    *reinterpret_cast<volatile std::uint64_t *>(buf + p * kPage) = page_word(seed, p);
}

// The first page whose word is wrong, or -1.  `first_page` numbers pages of
// a window that starts inside the buffer.
long first_bad_page(const char *buf, std::size_t size, std::uint32_t seed,
                    std::size_t first_page = 0) {
  for (std::size_t p = 0; p < size / kPage; p++)
    if (*reinterpret_cast<const volatile std::uint64_t *>(buf + p * kPage) !=
        page_word(seed, first_page + p))
      return static_cast<long>(p);
  return -1;
}

// Bytes of [buf, buf + size) this process maps with huge pages, from smaps.
std::size_t anon_huge_bytes(const char *buf, std::size_t size) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  std::size_t kib = 0;
  const auto lo = reinterpret_cast<std::uintptr_t>(buf), hi = lo + size;
  while (std::getline(smaps, line)) {
    unsigned long start, end;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &start, &end) == 2) {
      inside = start < hi && end > lo;
      continue;
    }
    unsigned long v;
    if (inside && std::sscanf(line.c_str(), "AnonHugePages: %lu kB", &v) == 1)
      kib += v;
  }
  return kib * 1024;
}

// The smaps block of the mapping at addr.
std::string smaps_of(const void *addr) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line, block;
  bool inside = false;
  const auto a = reinterpret_cast<std::uintptr_t>(addr);
  while (std::getline(smaps, line)) {
    unsigned long start, end;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &start, &end) == 2 &&
        line.find(':') > line.find(' ')) {
      if (inside)
        break;
      inside = start <= a && a < end;
    }
    if (inside)
      block += line + "\n";
  }
  return block;
}

// The number after `field` in an smaps block, or -1.
long smaps_field(const std::string &block, const std::string &field) {
  std::size_t at = block.find(field);
  return at == std::string::npos ? -1 : std::strtol(block.c_str() + at + field.size(), nullptr, 10);
}

long counter(const std::map<std::string, long> &s, const char *name) {
  auto it = s.find(name);
  return it == s.end() ? -1 : it->second;
}

enum Command : std::int64_t {
  kExit = 1,     // arg: seed to check first (0: none); exit status says
  kPunchHole,    // arg: offset of a page to unmap (splits its huge page)
  kReplace,      // arg: seed of fresh memory mapped over the whole buffer
  kForkAndWrite, // arg: seed written by the parent while a child shares the pages
  kPageout,      // arg: seed to check after MADV_PAGEOUT; answers the bad page or -1
};

// An exporter in a child process: `size` bytes, 2 MiB aligned, backed by
// transparent huge pages (MADV_HUGEPAGE) or hugetlbfs, holding pattern
// `seed`.  It reports its segment id and how many huge pages back the
// buffer, then obeys commands.
class Exporter {
public:
  Exporter(std::size_t size, std::uint32_t seed, bool hugetlb = false) : size_(size) {
    pid_ = spawn([&] { return run(seed, hugetlb); });
    segid_ = ch_.recv(0);
    huge_pages_ = ch_.recv(0);
  }
  ~Exporter() {
    if (pid_ > 0)
      finish(0);
  }
  Exporter(const Exporter &) = delete;
  Exporter &operator=(const Exporter &) = delete;

  xpmem_segid_t segid() const { return segid_; }
  long huge_pages() const { return huge_pages_; }
  std::int64_t command(Command c, std::int64_t arg) {
    ch_.send(0, c);
    ch_.send(0, arg);
    return ch_.recv(0);
  }
  Outcome finish(std::uint32_t check_seed) {
    ch_.send(0, kExit);
    ch_.send(0, check_seed);
    Outcome o = wait_child(pid_);
    pid_ = -1;
    return o;
  }

private:
  char *map_buffer(bool hugetlb) {
    if (hugetlb) {
      void *p = mmap(nullptr, size_, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
      return p == MAP_FAILED ? nullptr : static_cast<char *>(p);
    }
    void *raw =
        mmap(nullptr, size_ + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
      return nullptr;
    char *buf = reinterpret_cast<char *>((reinterpret_cast<std::uintptr_t>(raw) + kHuge - 1) &
                                         ~(kHuge - 1));
    madvise(buf, size_, MADV_HUGEPAGE);
    return buf;
  }

  int run(std::uint32_t seed, bool hugetlb) {
    alarm(600);
    char *buf = map_buffer(hugetlb);
    if (!buf) {
      ch_.send(1, -1);
      return 10;
    }
    fill_pages(buf, size_, seed);
    xpmem::Segment seg = xpmem::Segment::make(buf, size_, 0600);
    ch_.send(1, seg ? seg.id() : -1);
    ch_.send(1, static_cast<std::int64_t>((hugetlb ? size_ : anon_huge_bytes(buf, size_)) / kHuge));
    pid_t sharer = -1;
    for (;;) {
      std::int64_t cmd = ch_.recv(1), arg = ch_.recv(1);
      std::int64_t answer = 0;
      switch (cmd) {
      case kPunchHole:
        answer = munmap(buf + arg, kPage);
        break;
      case kReplace:
        if (mmap(buf, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
                 0) != buf)
          return 11;
        madvise(buf, size_, MADV_HUGEPAGE);
        fill_pages(buf, size_, static_cast<std::uint32_t>(arg));
        break;
      case kForkAndWrite:
        sharer = fork();
        if (sharer == 0) {
          pause(); // holds the old pages until killed
          _exit(0);
        }
        fill_pages(buf, size_, static_cast<std::uint32_t>(arg));
        break;
      case kPageout:
        madvise(buf, size_, MADV_PAGEOUT);
        answer = first_bad_page(buf, size_, static_cast<std::uint32_t>(arg));
        break;
      default: // kExit, or the test went away
        if (sharer > 0) {
          kill(sharer, SIGKILL);
          waitpid(sharer, nullptr, 0);
        }
        return cmd == kExit && arg &&
                       first_bad_page(buf, size_, static_cast<std::uint32_t>(arg)) >= 0
                   ? 12
                   : 0;
      }
      ch_.send(1, answer);
    }
  }

  std::size_t size_;
  Channel ch_;
  pid_t pid_ = -1;
  xpmem_segid_t segid_ = -1;
  long huge_pages_ = 0;
};

} // namespace

TEST(HugeMappings, OneGibOfTransparentHugePagesMapsInTwoMibUnits) {
  auto before = stats();
  if (!before)
    GTEST_SKIP() << "needs root for the module's counters";
  const std::size_t size = 1UL << 30;
  Exporter exporter(size, 0x51);
  ASSERT_GT(exporter.segid(), 0);
  Attached a = attach_segment(exporter.segid(), size);
  ASSERT_TRUE(a);
  EXPECT_EQ(first_bad_page(a.data(), size, 0x51), -1);
  auto after = stats();
  ASSERT_TRUE(after);
  const long pmds = counter(*after, "pmds_installed") - counter(*before, "pmds_installed");
  const long ptes = counter(*after, "ptes_installed") - counter(*before, "ptes_installed");
  const long faults = counter(*after, "faults") - counter(*before, "faults");
  const long huge = exporter.huge_pages();
  std::string smaps = smaps_of(a.data());
  std::printf(
      "exporter: %ld of %zu 2 MiB blocks huge; attacher: %ld faults, %ld PMDs, %ld PTEs\n%s", huge,
      size / kHuge, faults, pmds, ptes, smaps.c_str());
  // khugepaged may collapse more of the exporter's blocks meanwhile (each
  // collapse invalidates, and the block is mapped again), hence the bounds.
  const long blocks = static_cast<long>(size / kHuge), pages = static_cast<long>(size / kPage);
  if (kernel_maps_huge()) {
    ASSERT_GE(huge, blocks / 2) << "the exporter got too few huge pages to test with";
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a.data()) % kHuge, 0u)
        << "not placed congruent to its source";
    EXPECT_GE(pmds, huge) << "every huge source page is mapped with one PMD";
    EXPECT_LE(pmds, blocks);
    EXPECT_GE(pmds * static_cast<long>(kHuge / kPage) + ptes, pages);
    EXPECT_EQ(smaps_field(smaps, "THPeligible:"), 1);
  } else {
    EXPECT_EQ(pmds, 0);
    EXPECT_GE(ptes, pages);
  }
  // Writes through the (read-only, then upgraded) mappings reach the exporter.
  fill_pages(a.data(), size, 0x52);
  a.att = {};
  Outcome o = exporter.finish(0x52);
  EXPECT_TRUE(o.ok()) << "exporter " << o.exit_code << "/" << o.signal;
}

TEST(HugeMappings, WritesThroughHugeMappingsSurvivePageout) {
  const std::size_t size = 8 * kHuge;
  Exporter exporter(size, 0x61);
  ASSERT_GT(exporter.segid(), 0);
  Attached a = attach_segment(exporter.segid(), size);
  ASSERT_TRUE(a);
  // The first half is written first (writable PMDs at once), the second
  // read first (read-only PMDs, made writable by the write fault).
  fill_pages(a.data(), size / 2, 0x62);
  EXPECT_EQ(first_bad_page(a.data() + size / 2, size / 2, 0x61, size / 2 / kPage), -1);
  for (std::size_t p = size / 2 / kPage; p < size / kPage; p++)
    *reinterpret_cast<volatile std::uint64_t *>(a.data() + p * kPage) = page_word(0x62, p);
  a.att = {};
  EXPECT_EQ(exporter.command(kPageout, 0x62), -1) << "a write through a huge mapping was lost";
  Outcome o = exporter.finish(0x62);
  EXPECT_TRUE(o.ok()) << "exporter " << o.exit_code << "/" << o.signal;
}

TEST(HugeMappings, FollowsSplitRemapAndCopyOnWrite) {
  const std::size_t size = 8 * kHuge;
  Exporter exporter(size, 0x71);
  ASSERT_GT(exporter.segid(), 0);
  Attached a = attach_segment(exporter.segid(), size);
  ASSERT_TRUE(a);
  ASSERT_EQ(first_bad_page(a.data(), size, 0x71), -1);

  // A page unmapped inside a huge page splits it: a hole there, the rest intact.
  const std::size_t hole = kHuge + 5 * kPage;
  ASSERT_EQ(exporter.command(kPunchHole, hole), 0);
  EXPECT_EQ(touch_signal(a.data() + hole, false), SIGBUS);
  EXPECT_EQ(first_bad_page(a.data(), hole, 0x71), -1);
  EXPECT_EQ(first_bad_page(a.data() + hole + kPage, size - hole - kPage, 0x71, hole / kPage + 1),
            -1);

  // Fresh memory over the whole buffer, the hole included.
  ASSERT_EQ(exporter.command(kReplace, 0x72), 0);
  EXPECT_EQ(first_bad_page(a.data(), size, 0x72), -1);

  // The exporter forks, so its pages are shared copy-on-write, and writes:
  // the attacher sees the exporter's new pages, not the child's old ones.
  ASSERT_EQ(exporter.command(kForkAndWrite, 0x73), 0);
  EXPECT_EQ(first_bad_page(a.data(), size, 0x73), -1);
  a.att = {};
  Outcome o = exporter.finish(0x73);
  EXPECT_TRUE(o.ok()) << "exporter " << o.exit_code << "/" << o.signal;
}

TEST(HugeMappings, ReadOnlyAttachmentOfHugePages) {
  const std::size_t size = 4 * kHuge;
  Exporter exporter(size, 0x81);
  ASSERT_GT(exporter.segid(), 0);
  Attached a = attach_segment(exporter.segid(), size, false);
  ASSERT_TRUE(a);
  EXPECT_EQ(first_bad_page(a.data(), size, 0x81), -1);
  EXPECT_EQ(touch_signal(a.data() + kHuge, true), SIGSEGV);
  EXPECT_EQ(first_bad_page(a.data(), size, 0x81), -1);
}

// Untouched THP-eligible memory reads as the huge zero page.  The kernel
// keeps a page table deposited under every huge-zero PMD it makes itself and
// 7.x withdraws one when it zaps any PMD of that pfn, so an attachment must
// map it with 4 KiB PTEs: a PMD of it crashed the kernel on the first zap
// (NULL dereference in pgtable_trans_huge_withdraw, found by the fuzzer).
TEST(HugeMappings, HugeZeroPageIsMappedWithPtes) {
  const std::size_t size = 4 * kHuge;
  Mapping raw(size + kHuge);
  ASSERT_NE(raw.data(), nullptr);
  char *buf = reinterpret_cast<char *>((reinterpret_cast<std::uintptr_t>(raw.data()) + kHuge - 1) &
                                       ~(kHuge - 1));
  ASSERT_EQ(madvise(buf, size, MADV_HUGEPAGE), 0);
  xpmem::Segment seg = xpmem::Segment::make(buf, size, 0600);
  ASSERT_TRUE(seg);
  auto before = stats();
  {
    Attached a = attach_segment(seg.id(), size, false);
    ASSERT_TRUE(a);
    for (std::size_t off = 0; off < size; off += kPage)
      ASSERT_EQ(*reinterpret_cast<const volatile std::uint64_t *>(a.data() + off), 0u) << off;
    // An invalidation zaps part of it, the detach the rest.
    ASSERT_EQ(madvise(buf, kHuge, MADV_DONTNEED), 0);
    EXPECT_EQ(*reinterpret_cast<const volatile std::uint64_t *>(a.data()), 0u);
  }
  auto after = stats();
  if (before && after) {
    EXPECT_EQ(counter(*after, "pmds_installed"), counter(*before, "pmds_installed"));
  }
  // The exporter's writes replace the zero page; a new attachment sees them.
  fill_pages(buf, size, 0x5a);
  Attached b = attach_segment(seg.id(), size, false);
  ASSERT_TRUE(b);
  EXPECT_EQ(first_bad_page(b.data(), size, 0x5a), -1);
}

// Only whole 2 MiB blocks congruent with their source can take a PMD.
TEST(HugeMappings, WindowsOffTheSourceAlignmentUsePtesWhereTheyMust) {
  auto before = stats();
  if (!before)
    GTEST_SKIP() << "needs root for the module's counters";
  const std::size_t size = 4 * kHuge;
  Exporter exporter(size, 0x91);
  ASSERT_GT(exporter.segid(), 0);
  xpmem::Permit permit = xpmem::Permit::get(exporter.segid(), true);
  ASSERT_TRUE(permit);

  // A window starting a page into the segment, placed by the module: the
  // two whole blocks inside it can still be PMDs.
  xpmem::Attachment offset =
      xpmem::Attachment::attach(permit, static_cast<off_t>(kPage), 3 * kHuge - kPage);
  ASSERT_TRUE(offset);
  EXPECT_EQ(first_bad_page(static_cast<char *>(offset.data()), 3 * kHuge - kPage, 0x91, 1), -1);
  auto mid = stats();
  ASSERT_TRUE(mid);

  // A window at an address the user chose, a page off the source's alignment: no PMD at all.
  Mapping hole(6 * kHuge, PROT_NONE);
  ASSERT_NE(hole.data(), nullptr);
  char *want = reinterpret_cast<char *>(
      ((reinterpret_cast<std::uintptr_t>(hole.data()) + kHuge - 1) & ~(kHuge - 1)) + kPage);
  munmap(want, 2 * kHuge);
  xpmem::Attachment chosen = xpmem::Attachment::attach(permit, 0, 2 * kHuge, want);
  ASSERT_TRUE(chosen) << "errno " << chosen.error();
  ASSERT_EQ(chosen.data(), want);
  EXPECT_EQ(first_bad_page(want, 2 * kHuge, 0x91), -1);
  auto after = stats();
  ASSERT_TRUE(after);

  const long offset_pmds = counter(*mid, "pmds_installed") - counter(*before, "pmds_installed");
  const long chosen_pmds = counter(*after, "pmds_installed") - counter(*mid, "pmds_installed");
  const long chosen_ptes = counter(*after, "ptes_installed") - counter(*mid, "ptes_installed");
  if (!kernel_maps_huge()) {
    EXPECT_EQ(offset_pmds, 0);
  } else if (exporter.huge_pages() == static_cast<long>(size / kHuge)) {
    EXPECT_EQ(offset_pmds, 2);
  }
  EXPECT_LE(offset_pmds, 2);
  EXPECT_EQ(chosen_pmds, 0);
  EXPECT_GE(chosen_ptes, static_cast<long>(2 * kHuge / kPage));
}

TEST(HugeMappings, HugetlbfsPagesMapInTwoMibUnits) {
  const std::size_t size = 4 * kHuge;
  auto before = stats();
  Exporter exporter(size, 0xa1, true);
  ASSERT_GT(exporter.segid(), 0) << "no huge pages reserved (vm.nr_hugepages): the VM job sets it";
  Attached a = attach_segment(exporter.segid(), size);
  ASSERT_TRUE(a);
  EXPECT_EQ(first_bad_page(a.data(), size, 0xa1), -1);
  fill_pages(a.data(), size, 0xa2);
  auto after = stats();
  if (before && after) {
    const long pmds = counter(*after, "pmds_installed") - counter(*before, "pmds_installed");
    // Each block mapped once (read-only), then made writable in place.
    EXPECT_EQ(pmds, kernel_maps_huge() ? static_cast<long>(size / kHuge) : 0);
  }
  a.att = {};
  Outcome o = exporter.finish(0xa2);
  EXPECT_TRUE(o.ok()) << "exporter " << o.exit_code << "/" << o.signal;
}
