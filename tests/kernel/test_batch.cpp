// Batched PTE installation.  A fault maps the pages of its window that the
// exporter has present in one locked walk of the attachment's page table
// (module parameter batch_ptes, on by default), instead of one
// vmf_insert_pfn_prot() per page.  What is mapped must not change: the same
// pages, the same protections, the same holes, whichever path installs
// them.  The data checks run for every user; the counter checks and the
// comparison with batch_ptes off need root.
#include "helpers.hpp"

#include <sys/mman.h>

#include <cstdint>
#include <vector>

using namespace xt;

namespace {

using xpmem_debug::counter_delta;

std::uint64_t word(std::uint32_t seed, std::size_t page) {
  return (std::uint64_t{seed} << 32) ^ (page * 0x9e3779b97f4a7c15ULL) ^ 1;
}

std::uint64_t read_word(const char *p, std::size_t page) {
  return *reinterpret_cast<const volatile std::uint64_t *>(p + page * kPage);
}

void write_word(char *p, std::size_t page, std::uint64_t v) {
  *reinterpret_cast<volatile std::uint64_t *>(p + page * kPage) = v;
}

// Every page of 4 KiB exporter memory, touched once through a read-only
// attachment: each fault takes the page table's lock once for its whole
// window, where one insertion per page takes it once per page.  The PTEs
// installed are the same either way.
TEST(BatchedPtes, OneTableLockPerFault) {
  if (geteuid() != 0)
    GTEST_SKIP() << "needs root (module parameters, debugfs counters); the root run covers it";
  ScopedParam around("fault_around_pages", 64);
  ASSERT_TRUE(around.ok());
  constexpr std::size_t kPages = 256;
  Mapping buf(kPages * kPage);
  ASSERT_NE(buf.data(), nullptr);
  ASSERT_EQ(madvise(buf.data(), buf.size(), MADV_NOHUGEPAGE), 0);
  for (std::size_t p = 0; p < kPages; p++)
    write_word(buf.data(), p, word(7, p));
  xpmem::Segment seg = xpmem::Segment::make(buf.data(), buf.size(), 0600);
  ASSERT_TRUE(seg);

  struct Run {
    long faults, ptes, locks;
  };
  auto run = [&](bool batch) -> Run {
    ScopedParam mode("batch_ptes", batch ? "Y" : "N");
    EXPECT_TRUE(mode.ok());
    Attached a = attach_segment(seg.id(), buf.size(), false);
    EXPECT_TRUE(a);
    if (!a)
      return {};
    auto before = stats();
    for (std::size_t p = 0; p < kPages; p++)
      EXPECT_EQ(read_word(a.data(), p), word(7, p)) << "page " << p;
    auto after = stats();
    return {counter_delta(*after, *before, "faults"),
            counter_delta(*after, *before, "ptes_installed"),
            counter_delta(*after, *before, "pte_table_locks")};
  };
  const Run single = run(false), batched = run(true);
  EXPECT_EQ(single.ptes, static_cast<long>(kPages));
  EXPECT_EQ(batched.ptes, static_cast<long>(kPages));
  EXPECT_EQ(single.locks, static_cast<long>(kPages)) << "one insertion per page";
  // 256 pages in windows of 64: four faults, or five when the attachment
  // does not start on a window boundary.
  EXPECT_GE(batched.faults, 4);
  EXPECT_LE(batched.faults, 5);
  EXPECT_EQ(batched.locks, batched.faults) << "one walk per fault";
}

// An exporter range made of page-cache pages (a memfd), anonymous pages it
// never touched (the zero page once read) and anonymous pages it wrote,
// read and written through an attachment with each installation path:
// the same contents, the same writes reaching the exporter, the same holes
// refilled after the exporter drops pages, and (root) the same number of
// faults.
TEST(BatchedPtes, SamePagesWhicheverPathInstallsThem) {
  constexpr std::size_t kPart = 32, kPages = 3 * kPart;
  const std::size_t size = kPages * kPage;
  const bool root = geteuid() == 0;

  auto run = [&](const char *mode_value) -> std::map<std::string, long> {
    std::optional<ScopedParam> mode;
    if (mode_value) {
      mode.emplace("batch_ptes", mode_value);
      EXPECT_TRUE(mode->ok());
    }
    Mapping buf(size);
    EXPECT_NE(buf.data(), nullptr);
    if (!buf.data())
      return {};
    EXPECT_EQ(madvise(buf.data(), size, MADV_NOHUGEPAGE), 0);
    // Pages [0, kPart): a memfd's page cache.
    int fd = memfd_create("xpmem-batch", 0);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(ftruncate(fd, kPart * kPage), 0);
    EXPECT_NE(
        mmap(buf.data(), kPart * kPage, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0),
        MAP_FAILED);
    close(fd);
    for (std::size_t p = 0; p < kPart; p++)
      write_word(buf.data(), p, word(1, p));
    // Pages [kPart, 2 kPart): never touched.  [2 kPart, 3 kPart): written.
    for (std::size_t p = 2 * kPart; p < kPages; p++)
      write_word(buf.data(), p, word(2, p));
    xpmem::Segment seg = xpmem::Segment::make(buf.data(), size, 0600);
    Attached a = attach_segment(seg.id(), size, true);
    EXPECT_TRUE(a);
    if (!a)
      return {};
    auto before = stats();

    auto expected = [&](std::size_t p) -> std::uint64_t {
      return p < kPart ? word(1, p) : p < 2 * kPart ? 0 : word(2, p);
    };
    for (std::size_t p = 0; p < kPages; p++)
      EXPECT_EQ(read_word(a.data(), p), expected(p)) << "page " << p;
    // Writes through the attachment (read-only PTEs made writable, or
    // refaulted) reach the exporter.
    for (std::size_t p = 0; p < kPages; p += 5)
      write_word(a.data(), p, word(3, p));
    for (std::size_t p = 0; p < kPages; p++)
      EXPECT_EQ(read_word(buf.data(), p), p % 5 == 0 ? word(3, p) : expected(p)) << "page " << p;
    // The exporter drops its written anonymous pages: the attachment must
    // read the zero page there, everything else unchanged.
    EXPECT_EQ(madvise(buf.data() + 2 * kPart * kPage, kPart * kPage, MADV_DONTNEED), 0);
    for (std::size_t p = 0; p < kPages; p++) {
      std::uint64_t want = p >= 2 * kPart ? 0 : p % 5 == 0 ? word(3, p) : expected(p);
      EXPECT_EQ(read_word(a.data(), p), want) << "page " << p;
    }
    auto after = stats();
    if (!before || !after)
      return {};
    return {{"faults", counter_delta(*after, *before, "faults")},
            {"ptes", counter_delta(*after, *before, "ptes_installed")}};
  };

  if (!root) {
    run(nullptr);
    return;
  }
  auto single = run("N");
  auto batched = run("Y");
  EXPECT_EQ(batched["faults"], single["faults"]);
  // One insertion at a time cannot tell a new PTE from one already there
  // (vmf_insert_pfn_prot() succeeds on both), so it counts every page of
  // every window; the walk counts only the PTEs it sets.
  EXPECT_GT(batched["ptes"], 0);
  EXPECT_LE(batched["ptes"], single["ptes"]);
}

// The exporter replaces pages in the middle of a mapped window: only
// their PTEs are zapped, and the next fault there installs exactly those,
// leaving the PTEs still in place alone.
TEST(BatchedPtes, RefillsOnlyTheZappedPtesOfAWindow) {
  constexpr std::size_t kPages = 64, kFirst = 10, kCount = 10;
  Mapping buf(kPages * kPage);
  ASSERT_NE(buf.data(), nullptr);
  ASSERT_EQ(madvise(buf.data(), buf.size(), MADV_NOHUGEPAGE), 0);
  for (std::size_t p = 0; p < kPages; p++)
    write_word(buf.data(), p, word(4, p));
  xpmem::Segment seg = xpmem::Segment::make(buf.data(), buf.size(), 0600);
  Attached a = attach_segment(seg.id(), buf.size(), false);
  ASSERT_TRUE(a);
  for (std::size_t p = 0; p < kPages; p++)
    ASSERT_EQ(read_word(a.data(), p), word(4, p)) << "page " << p;

  ASSERT_EQ(madvise(buf.data() + kFirst * kPage, kCount * kPage, MADV_DONTNEED), 0);
  for (std::size_t p = kFirst; p < kFirst + kCount; p++)
    write_word(buf.data(), p, word(5, p));
  auto before = stats();
  for (std::size_t p = 0; p < kPages; p++) {
    const bool replaced = p >= kFirst && p < kFirst + kCount;
    EXPECT_EQ(read_word(a.data(), p), word(replaced ? 5 : 4, p)) << "page " << p;
  }
  auto after = stats();
  if (before && after) {
    EXPECT_EQ(counter_delta(*after, *before, "ptes_installed"), static_cast<long>(kCount));
    EXPECT_GE(counter_delta(*after, *before, "faults"), 1);
    EXPECT_LE(counter_delta(*after, *before, "faults"), 2)
        << "the ten pages span at most two windows";
  }
}

// An attachment no larger than the fault-around window takes one fault
// wherever it lies, even across a boundary of that window's alignment
// (MPI attaches each fresh buffer on its own), unless it crosses a 2 MiB
// boundary (one page table per fault).
TEST(BatchedPtes, SmallAttachmentTakesOneFault) {
  if (geteuid() != 0)
    GTEST_SKIP() << "needs root (module parameters, debugfs counters); the root run covers it";
  ScopedParam around("fault_around_pages", 64);
  ASSERT_TRUE(around.ok());
  constexpr std::size_t kPages = 16;
  Mapping buf(64 * kPage);
  ASSERT_NE(buf.data(), nullptr);
  for (std::size_t p = 0; p < 64; p++)
    write_word(buf.data(), p, word(6, p));
  xpmem::Segment seg = xpmem::Segment::make(buf.data(), buf.size(), 0600);
  xpmem::Permit permit = xpmem::Permit::get(seg.id(), false);
  ASSERT_TRUE(permit);
  // A 4 MiB hole to place attachments in: 2 MiB-aligned base + 56 pages
  // crosses a 64-page boundary; + 2 MiB - 8 pages crosses a PMD.
  constexpr std::size_t kHuge = 2UL << 20;
  Mapping hole(3 * kHuge, PROT_NONE);
  ASSERT_NE(hole.data(), nullptr);
  const auto base = (reinterpret_cast<std::uintptr_t>(hole.data()) + kHuge - 1) & ~(kHuge - 1);
  ASSERT_EQ(munmap(hole.data(), hole.size()), 0);
  // 0: the kernel's choice.
  const std::uintptr_t places[] = {0, base + 56 * kPage, base + kHuge - 8 * kPage};
  for (std::size_t first : {0UL, 5UL, 48UL}) {
    for (std::uintptr_t place : places) {
      xpmem::Attachment att =
          xpmem::Attachment::attach(permit, static_cast<off_t>(first * kPage), kPages * kPage,
                                    reinterpret_cast<void *>(place));
      ASSERT_TRUE(att) << "errno " << att.error();
      const auto addr = reinterpret_cast<std::uintptr_t>(att.data());
      const long page_tables = (addr & (kHuge - 1)) + kPages * kPage > kHuge ? 2 : 1;
      auto before = stats();
      for (std::size_t p = 0; p < kPages; p++)
        ASSERT_EQ(read_word(static_cast<const char *>(att.data()), p), word(6, first + p));
      auto after = stats();
      EXPECT_EQ(counter_delta(*after, *before, "faults"), page_tables)
          << "first page " << first << ", placed at " << att.data();
      EXPECT_EQ(counter_delta(*after, *before, "ptes_installed"), static_cast<long>(kPages));
    }
  }
}

} // namespace
