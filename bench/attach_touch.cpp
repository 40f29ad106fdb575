// What an attacher pays to reach memory it has not touched yet, per MiB:
//   first-touch  attach SIZE MiB once and read one word of every page;
//   window-W     attach, touch and detach W-sized windows one after another
//                over SIZE MiB, as MPI does with fresh buffers;
// for exporter memory of 4 KiB pages and of transparent huge pages, with
// the module installing PTEs one at a time ("single": batch_ptes and
// huge_mappings off, the module as it was), in one walk per fault
// ("batched") and, from Linux 6.12, with huge mappings too ("pmds"); beside
// a memcpy of the same bytes within one process.  Runs as root in the VM
// (bench/run-attach-touch.sh): it switches the module parameters and reads
// the module's counters, so each line also says how many faults, PTEs, PMDs
// and page-table lock rounds a MiB cost.  Configurations run in a new order
// each round (a shuffle seeded by the round), so drift favours none.
//
//   attach_touch [--rounds N] [--size-mib S]
// Prints "round config measure ns_per_mib faults_per_mib ptes_per_mib
// pmds_per_mib table_locks_per_mib".
#include <xpmem.hpp>

#include "module_debug.hpp"

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace {

constexpr std::size_t kHuge = 2UL << 20;
constexpr std::size_t kMiB = 1UL << 20;
const std::size_t kPage = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));

// 2 MiB-aligned anonymous memory, huge or not, every page touched.
char *touched_buffer(std::size_t size, bool huge) {
  void *raw =
      mmap(nullptr, size + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED)
    return nullptr;
  char *buf =
      reinterpret_cast<char *>((reinterpret_cast<std::uintptr_t>(raw) + kHuge - 1) & ~(kHuge - 1));
  madvise(buf, size, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  for (std::size_t off = 0; off < size; off += kPage)
    buf[off] = static_cast<char>(off >> 12);
  return buf;
}

long touch(const char *p, std::size_t size) {
  long sum = 0;
  for (std::size_t off = 0; off < size; off += kPage)
    sum += *reinterpret_cast<const volatile char *>(p + off);
  return sum;
}

struct Sample {
  double ns_per_mib = 0;
  double faults = 0, ptes = 0, pmds = 0, table_locks = 0; // per MiB
};

template <typename F> Sample measure(std::size_t bytes, F &&body) {
  using xpmem_debug::counter_delta;
  auto before = xpmem_debug::read_counters().value_or(xpmem_debug::Counters{});
  auto t0 = std::chrono::steady_clock::now();
  body();
  auto t1 = std::chrono::steady_clock::now();
  auto after = xpmem_debug::read_counters().value_or(xpmem_debug::Counters{});
  const double mib = static_cast<double>(bytes) / kMiB;
  Sample s;
  s.ns_per_mib = std::chrono::duration<double, std::nano>(t1 - t0).count() / mib;
  s.faults = counter_delta(after, before, "faults") / mib;
  s.ptes = counter_delta(after, before, "ptes_installed") / mib;
  s.pmds = counter_delta(after, before, "pmds_installed") / mib;
  s.table_locks = counter_delta(after, before, "pte_table_locks") / mib;
  return s;
}

volatile long sink;

Sample first_touch(const xpmem::Permit &permit, std::size_t size) {
  xpmem::Attachment att;
  Sample s = measure(size, [&] {
    att = xpmem::Attachment::attach(permit, 0, size);
    if (!att) {
      std::fprintf(stderr, "attach: %s\n", std::strerror(att.error()));
      std::exit(1);
    }
    sink = touch(static_cast<char *>(att.data()), size);
  });
  return s;
}

Sample windows(const xpmem::Permit &permit, std::size_t size, std::size_t window) {
  return measure(size, [&] {
    for (std::size_t off = 0; off + window <= size; off += window) {
      xpmem::Attachment att = xpmem::Attachment::attach(permit, static_cast<off_t>(off), window);
      if (!att) {
        std::fprintf(stderr, "attach: %s\n", std::strerror(att.error()));
        std::exit(1);
      }
      sink = touch(static_cast<char *>(att.data()), window);
    }
  });
}

} // namespace

int main(int argc, char **argv) {
  int rounds = 5;
  std::size_t size = 256 * kMiB;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--rounds"))
      rounds = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--size-mib"))
      size = std::strtoul(argv[i + 1], nullptr, 10) * kMiB;
  }
  const bool have_huge = access(xpmem_debug::param_path("huge_mappings").c_str(), W_OK) == 0;
  if (!xpmem_debug::read_counters() ||
      access(xpmem_debug::param_path("batch_ptes").c_str(), W_OK) != 0) {
    std::fprintf(stderr, "attach_touch: needs root, the module's debugfs counters and its "
                         "batch_ptes parameter\n");
    return 1;
  }

  // The exporter: one buffer of 4 KiB pages, one of huge pages.
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0)
    return 1;
  pid_t exporter = fork();
  if (exporter == 0) {
    close(fds[0]);
    char *small_buf = touched_buffer(size, false), *huge_buf = touched_buffer(size, true);
    if (!small_buf || !huge_buf)
      _exit(1);
    xpmem::Segment small = xpmem::Segment::make(small_buf, size, 0600);
    xpmem::Segment huge = xpmem::Segment::make(huge_buf, size, 0600);
    xpmem_segid_t ids[2] = {small ? small.id() : -1, huge ? huge.id() : -1};
    if (write(fds[1], ids, sizeof ids) != sizeof ids)
      _exit(1);
    char c;
    while (read(fds[1], &c, 1) < 0) { // until the parent is done
    }
    _exit(0);
  }
  close(fds[1]);
  xpmem_segid_t ids[2];
  if (read(fds[0], ids, sizeof ids) != sizeof ids || ids[0] <= 0 || ids[1] <= 0) {
    std::fprintf(stderr, "attach_touch: the exporter failed\n");
    return 1;
  }
  xpmem::Permit permits[2] = {xpmem::Permit::get(ids[0], false), xpmem::Permit::get(ids[1], false)};

  struct Config {
    std::string name;
    int memory;       // 0: 4 KiB pages, 1: huge pages, -1: memcpy within one process
    bool batch, huge; // the module parameters batch_ptes, huge_mappings
  };
  std::vector<Config> configs = {{"memcpy", -1, false, false}};
  for (int memory : {0, 1}) {
    const std::string kind = memory ? "huge-pages" : "4k-pages";
    configs.push_back({kind + ".single", memory, false, false});
    configs.push_back({kind + ".batched", memory, true, false});
    if (have_huge)
      configs.push_back({kind + ".pmds", memory, true, true});
  }
  if (!have_huge)
    std::printf("# no huge_mappings parameter (kernel before 6.12): PTEs only\n");
  char *src = touched_buffer(size, true), *dst = touched_buffer(size, true);
  if (!src || !dst)
    return 1;
  const std::size_t window_sizes[] = {64 * 1024, kMiB, 4 * kMiB};

  std::printf("# size %zu MiB, %d rounds\n", size / kMiB, rounds);
  std::printf("round config measure ns_per_mib faults_per_mib ptes_per_mib pmds_per_mib "
              "table_locks_per_mib\n");
  for (int round = 0; round < rounds; round++) {
    std::vector<Config> order = configs;
    std::shuffle(order.begin(), order.end(), std::mt19937(static_cast<unsigned>(round)));
    for (const Config &c : order) {
      auto report = [&](const std::string &measure_name, const Sample &s) {
        std::printf("%d %s %s %.0f %.2f %.1f %.3f %.2f\n", round, c.name.c_str(),
                    measure_name.c_str(), s.ns_per_mib, s.faults, s.ptes, s.pmds, s.table_locks);
      };
      if (c.memory < 0) {
        report("copy", measure(size, [&] { std::memcpy(dst, src, size); }));
        continue;
      }
      xpmem_debug::ScopedParam batch("batch_ptes", c.batch ? "Y" : "N");
      std::optional<xpmem_debug::ScopedParam> huge;
      if (have_huge)
        huge.emplace("huge_mappings", c.huge ? "Y" : "N");
      if (!batch.ok() || (huge && !huge->ok())) {
        std::fprintf(stderr, "attach_touch: cannot set the module's parameters\n");
        return 1;
      }
      report("first-touch", first_touch(permits[c.memory], size));
      for (std::size_t w : window_sizes)
        report("window-" + std::to_string(w / 1024) + "k", windows(permits[c.memory], size, w));
    }
    std::fflush(stdout);
  }
  permits[0] = {};
  permits[1] = {};
  close(fds[0]);
  waitpid(exporter, nullptr, 0);
  return 0;
}
