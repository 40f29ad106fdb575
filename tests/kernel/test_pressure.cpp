// Memory pressure while pages are attached: the kernel moves, merges,
// splits, collapses and swaps the exporter's pages under the attacher's
// feet, and what the attacher reads and writes through its attachment must
// always be the exporter's current page.  Each test runs one kind of
// pressure in the exporter while the attacher verifies a pattern, writes a
// new one through the attachment, and verifies again; at the end the
// exporter checks it holds every word the attacher wrote.
//
// System-wide knobs (compaction, drop_caches, khugepaged, KSM, THP split)
// need root; the VM suite runs this file as root and as nobody.
#include "helpers.hpp"

#include <fcntl.h>
#include <sys/syscall.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

using namespace xt;

namespace {

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#ifndef MPOL_MF_MOVE
#define MPOL_MF_MOVE (1 << 1)
#endif

constexpr std::size_t kHuge = 2UL << 20;

bool write_file(const std::string &path, const std::string &value) {
  std::ofstream out(path);
  out << value;
  out.flush();
  return static_cast<bool>(out);
}

long read_long(const std::string &path) {
  std::ifstream in(path);
  long v = -1;
  in >> v;
  return v;
}

// The pattern: word w of page p holds a value of (seed, p mod dup, w), so
// with dup > 0 many pages are identical (for KSM) and otherwise none are.
std::uint64_t word_of(std::uint32_t seed, std::size_t page, std::size_t word, std::size_t dup) {
  std::uint64_t p = dup ? page % dup : page;
  std::uint64_t x = (std::uint64_t{seed} << 40) ^ (p << 20) ^ word;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return x | 1; // never zero: a zero page is always wrong
}

void fill_pattern(char *buf, std::size_t size, std::uint32_t seed, std::size_t dup) {
  auto *w = reinterpret_cast<std::uint64_t *>(buf);
  const std::size_t per_page = kPage / sizeof(std::uint64_t);
  for (std::size_t i = 0; i < size / sizeof(std::uint64_t); i++)
    w[i] = word_of(seed, i / per_page, i % per_page, dup);
}

// The first wrong word's index, or -1.
long first_mismatch(const char *buf, std::size_t size, std::uint32_t seed, std::size_t dup) {
  auto *w = reinterpret_cast<const volatile std::uint64_t *>(buf);
  const std::size_t per_page = kPage / sizeof(std::uint64_t);
  for (std::size_t i = 0; i < size / sizeof(std::uint64_t); i++)
    if (w[i] != word_of(seed, i / per_page, i % per_page, dup))
      return static_cast<long>(i);
  return -1;
}

struct Buffer {
  char *data;
  std::size_t size;
};

using Pressure = std::function<void(const Buffer &)>;

struct Scenario {
  std::size_t size = 8 * kHuge;
  std::size_t dup = 0;    // identical pages every `dup` pages (KSM)
  bool huge = false;      // THP-aligned with MADV_HUGEPAGE
  bool mergeable = false; // MADV_MERGEABLE
  int seconds_per_phase = 3;
};

// Runs the scenario described at the top of the file; `pressure` is called
// in a loop by a thread of the exporter until the attacher is done.
void attached_under_pressure(const Scenario &setup, const Pressure &pressure) {
  const std::uint32_t first = 0x1111, second = 0x2222;
  Channel ch;
  pid_t exporter = spawn([&] {
    alarm(150);
    std::size_t span = setup.size + kHuge;
    char *raw = static_cast<char *>(
        mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (raw == MAP_FAILED)
      return 10;
    char *buf = reinterpret_cast<char *>((reinterpret_cast<std::uintptr_t>(raw) + kHuge - 1) &
                                         ~(kHuge - 1));
    madvise(buf, setup.size, setup.huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    if (setup.mergeable && madvise(buf, setup.size, MADV_MERGEABLE) != 0)
      return 11;
    fill_pattern(buf, setup.size, first, setup.dup);
    xpmem::Segment seg = xpmem::Segment::make(buf, setup.size, 0600);
    if (!seg)
      return 12;
    ch.send(1, seg.id());
    std::atomic<bool> stop{false};
    std::thread pressing([&] {
      while (!stop)
        pressure(Buffer{buf, setup.size});
    });
    ch.recv(1); // the attacher is done
    stop = true;
    pressing.join();
    long bad = first_mismatch(buf, setup.size, second, setup.dup);
    if (bad >= 0) {
      std::printf("exporter: word %ld (page %ld) is not what the attacher wrote\n", bad,
                  bad * 8 / static_cast<long>(kPage));
      return 13;
    }
    return 0;
  });
  xpmem_segid_t segid = ch.recv(0);
  ASSERT_GT(segid, 0);
  Attached a = attach_segment(segid, setup.size);
  ASSERT_TRUE(a);
  auto phase = [&](std::uint32_t seed) {
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(setup.seconds_per_phase);
    int rounds = 0;
    do {
      long bad = first_mismatch(a.data(), setup.size, seed, setup.dup);
      if (bad >= 0)
        return ::testing::AssertionFailure() << "round " << rounds << ": word " << bad << " (page "
                                             << bad * 8 / static_cast<long>(kPage) << ") is stale";
      rounds++;
    } while (std::chrono::steady_clock::now() < until);
    return ::testing::AssertionSuccess() << rounds << " rounds";
  };
  EXPECT_TRUE(phase(first));
  fill_pattern(a.data(), setup.size, second, setup.dup); // written under pressure too
  EXPECT_TRUE(phase(second));
  a.att = {};
  ch.send(0, 1);
  Outcome o = wait_child(exporter);
  EXPECT_TRUE(o.ok()) << "exporter " << o.exit_code << "/" << o.signal;
}

bool root() {
  return geteuid() == 0;
}

// A counter the exporter child updates and the test reads afterwards.
class SharedCounter {
public:
  SharedCounter()
      : value_(static_cast<std::atomic<long> *>(mmap(nullptr, sizeof(std::atomic<long>),
                                                     PROT_READ | PROT_WRITE,
                                                     MAP_SHARED | MAP_ANONYMOUS, -1, 0))) {
    new (value_) std::atomic<long>(0);
  }
  ~SharedCounter() { munmap(value_, sizeof(*value_)); }
  SharedCounter(const SharedCounter &) = delete;
  SharedCounter &operator=(const SharedCounter &) = delete;
  void add(long n = 1) const { *value_ += n; }
  void max_with(long v) const {
    long cur = *value_;
    while (v > cur && !value_->compare_exchange_weak(cur, v)) {
    }
  }
  long get() const { return *value_; }

private:
  std::atomic<long> *value_;
};

} // namespace

TEST(Pressure, PageoutAndSwapIn) {
  if (read_long("/proc/sys/vm/swappiness") < 0)
    GTEST_SKIP() << "no /proc/sys/vm";
  Scenario s;
  attached_under_pressure(s, [](const Buffer &b) {
    for (std::size_t off = 0; off < b.size; off += kHuge) {
      madvise(b.data + off, kHuge, MADV_PAGEOUT);
      usleep(1000);
    }
  });
}

// The same with transparent huge pages, which the attacher maps with PMDs
// where the kernel can (test_huge.cpp); swapping one out splits it.
TEST(Pressure, PageoutAndSwapInOfHugePages) {
  if (read_long("/proc/sys/vm/swappiness") < 0)
    GTEST_SKIP() << "no /proc/sys/vm";
  Scenario s;
  s.huge = true;
  attached_under_pressure(s, [](const Buffer &b) {
    for (std::size_t off = 0; off < b.size; off += kHuge) {
      madvise(b.data + off, kHuge, MADV_PAGEOUT);
      usleep(1000);
    }
  });
}

TEST(Pressure, CompactionAndDropCaches) {
  if (!root())
    GTEST_SKIP() << "needs root for /proc/sys/vm/compact_memory";
  Scenario s;
  attached_under_pressure(s, [](const Buffer &) {
    write_file("/proc/sys/vm/compact_memory", "1");
    write_file("/proc/sys/vm/drop_caches", "3");
    usleep(20000);
  });
}

TEST(Pressure, HugePagesCollapseAndSplit) {
  if (!root())
    GTEST_SKIP() << "needs root for debugfs split_huge_pages";
  const std::string split = "/sys/kernel/debug/split_huge_pages";
  ASSERT_EQ(access(split.c_str(), W_OK), 0) << "debugfs must be mounted in the VM";
  const std::string khugepaged = "/sys/kernel/mm/transparent_hugepage/khugepaged/";
  long sleep_ms = read_long(khugepaged + "scan_sleep_millisecs");
  long to_scan = read_long(khugepaged + "pages_to_scan");
  write_file(khugepaged + "scan_sleep_millisecs", "10");
  write_file(khugepaged + "pages_to_scan", "4096");
  Scenario s;
  s.huge = true;
  SharedCounter collapses, splits;
  attached_under_pressure(s, [&](const Buffer &b) {
    // Collapse every 2 MiB block (khugepaged does too), then split them all.
    for (std::size_t off = 0; off < b.size; off += kHuge)
      if (madvise(b.data + off, kHuge, MADV_COLLAPSE) == 0)
        collapses.add();
    char range[96];
    std::snprintf(range, sizeof range, "%d,0x%lx,0x%lx", getpid(),
                  reinterpret_cast<unsigned long>(b.data),
                  reinterpret_cast<unsigned long>(b.data + b.size));
    if (write_file(split, range))
      splits.add();
    usleep(5000);
  });
  write_file(khugepaged + "scan_sleep_millisecs", std::to_string(sleep_ms));
  write_file(khugepaged + "pages_to_scan", std::to_string(to_scan));
  EXPECT_GT(collapses.get(), 0) << "no block was ever collapsed under the attachment";
  EXPECT_GT(splits.get(), 0) << "no split was ever requested";
  std::printf("%ld collapses, %ld split passes\n", collapses.get(), splits.get());
}

TEST(Pressure, KsmMergesAndUnmerges) {
  if (!root())
    GTEST_SKIP() << "needs root to run ksmd";
  const std::string ksm = "/sys/kernel/mm/ksm/";
  ASSERT_EQ(access((ksm + "run").c_str(), W_OK), 0) << "Debian kernels have KSM";
  long sleep_ms = read_long(ksm + "sleep_millisecs");
  long to_scan = read_long(ksm + "pages_to_scan");
  write_file(ksm + "sleep_millisecs", "0");
  write_file(ksm + "pages_to_scan", "10000");
  write_file(ksm + "run", "1");
  Scenario s;
  s.size = 2 * kHuge;
  s.dup = 4; // many identical pages
  s.mergeable = true;
  s.seconds_per_phase = 5;
  SharedCounter merged;
  attached_under_pressure(s, [&](const Buffer &) {
    merged.max_with(read_long("/proc/self/ksm_merging_pages"));
    usleep(20000);
  });
  write_file(ksm + "run", "2"); // unmerge everything
  write_file(ksm + "sleep_millisecs", std::to_string(sleep_ms));
  write_file(ksm + "pages_to_scan", std::to_string(to_scan));
  EXPECT_GT(merged.get(), 0) << "ksmd never merged the exporter's pages";
  std::printf("up to %ld of the exporter's pages merged\n", merged.get());
}

namespace {

void numa_migration(bool huge) {
  Scenario s;
  s.huge = huge;
  SharedCounter moved;
  attached_under_pressure(s, [&](const Buffer &b) {
    static int target = 1;
    const std::size_t n = b.size / kPage;
    std::vector<void *> pages(n);
    std::vector<int> nodes(n, target), status(n, 0);
    for (std::size_t i = 0; i < n; i++)
      pages[i] = b.data + i * kPage;
    long r = syscall(SYS_move_pages, 0, n, pages.data(), nodes.data(), status.data(), MPOL_MF_MOVE);
    if (r == 0)
      moved.add();
    target ^= 1;
  });
  EXPECT_GT(moved.get(), 1) << "the exporter's pages were never moved between nodes";
}

} // namespace

TEST(Pressure, NumaMigration) {
  if (access("/sys/devices/system/node/node1", F_OK) != 0)
    GTEST_SKIP() << "a single NUMA node (the VM suite boots a two-node guest)";
  numa_migration(false);
}

TEST(Pressure, NumaMigrationOfHugePages) {
  if (access("/sys/devices/system/node/node1", F_OK) != 0)
    GTEST_SKIP() << "a single NUMA node (the VM suite boots a two-node guest)";
  numa_migration(true);
}
