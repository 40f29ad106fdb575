// What the two stress programs share: a seeded generator, memory shared
// between forked processes, guarded memory access (a SIGSEGV or SIGBUS
// becomes a return value), a per-process ring of the last operations for
// failure reports, the module's counters, and command-line parsing.
#pragma once

#include "module_debug.hpp"
#include "uapi/xpmem_abi.h"

#include <atomic>
#include <cerrno>
#include <cmath>
#include <csetjmp>
#include <csignal>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <map>
#include <new>
#include <optional>
#include <string>
#include <string_view>

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

namespace stress {

// x86_64 only, like the ABI; checked against sysconf at start.
constexpr std::size_t kPage = 4096;

inline std::uint64_t splitmix64(std::uint64_t &state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// A seed for one stream (process slot, incarnation, thread) of a run, so
// that each stream's decisions follow from the run's seed alone.
inline std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t a, std::uint64_t b = 0,
                                 std::uint64_t c = 0) {
  std::uint64_t s = seed;
  std::uint64_t h = splitmix64(s);
  for (std::uint64_t v : {a, b, c}) {
    s = h ^ (v * 0xd6e8feb86659fd93ULL);
    h = splitmix64(s);
  }
  return h;
}

// xoshiro256**: fast, good enough, and the same sequence on every machine.
class Rng {
public:
  explicit Rng(std::uint64_t seed) {
    for (auto &word : state_)
      word = splitmix64(seed);
  }
  std::uint64_t next() {
    const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const std::uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }
  // Uniform in [0, n); 0 when n is 0.
  std::uint64_t below(std::uint64_t n) { return n ? next() % n : 0; }
  // Uniform in [lo, hi].
  std::uint64_t between(std::uint64_t lo, std::uint64_t hi) { return lo + below(hi - lo + 1); }
  bool percent(unsigned p) { return below(100) < p; }
  bool one_in(unsigned n) { return below(n) == 0; }
  // Spread evenly over orders of magnitude: microseconds to milliseconds.
  std::uint64_t log_uniform(std::uint64_t lo, std::uint64_t hi) {
    double x = static_cast<double>(next() >> 11) / 9007199254740992.0;
    double v = static_cast<double>(lo) * std::pow(static_cast<double>(hi) / lo, x);
    return static_cast<std::uint64_t>(v);
  }
  template <typename T, std::size_t N> const T &pick(const T (&items)[N]) {
    return items[below(N)];
  }

private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t state_[4];
};

inline double monotonic_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

inline void sleep_microseconds(std::uint64_t us) {
  timespec ts{static_cast<time_t>(us / 1000000), static_cast<long>((us % 1000000) * 1000)};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

inline std::uint64_t seed_from_clock() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  std::uint64_t s = static_cast<std::uint64_t>(ts.tv_nsec) ^
                    (static_cast<std::uint64_t>(ts.tv_sec) << 20) ^
                    (static_cast<std::uint64_t>(getpid()) << 40);
  return splitmix64(s) & 0xffffffffffffULL; // short enough to type back in
}

// One T in anonymous MAP_SHARED memory: created before fork, every child
// sees the same object.  T must be usable from several processes at once
// (lock-free atomics and plain data written before the fork).
template <typename T> class SharedObject {
public:
  SharedObject() {
    void *p = mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      std::perror("mmap of the shared state");
      std::exit(2);
    }
    object_ = new (p) T();
  }
  ~SharedObject() {
    object_->~T();
    munmap(object_, sizeof(T));
  }
  SharedObject(const SharedObject &) = delete;
  SharedObject &operator=(const SharedObject &) = delete;
  T *operator->() const { return object_; }
  T &operator*() const { return *object_; }

private:
  T *object_ = nullptr;
};

// --- Guarded access -------------------------------------------------------
//
// touch() runs a function that reads or writes memory which may legitimately
// fault (a hole in the exporter, a removed segment, a dead exporter).  The
// process-wide SIGSEGV/SIGBUS handler jumps back to the touch() of the
// faulting thread; a fault outside any touch() is a crash of the test itself
// and goes to the hook installed with install_fault_handler().

struct Fault {
  int signal = 0; // 0: no fault
  int code = 0;   // si_code
  std::uintptr_t addr = 0;
};

namespace detail {
inline thread_local sigjmp_buf *armed_jump = nullptr;
inline thread_local Fault last_fault;
inline void (*unexpected_fault_hook)(int sig, const siginfo_t *info) = nullptr;

inline void on_fault(int sig, siginfo_t *info, void *) {
  if (sigjmp_buf *jump = armed_jump) {
    armed_jump = nullptr;
    last_fault = Fault{sig, info->si_code, reinterpret_cast<std::uintptr_t>(info->si_addr)};
    siglongjmp(*jump, 1);
  }
  if (unexpected_fault_hook)
    unexpected_fault_hook(sig, info);
  signal(sig, SIG_DFL);
  raise(sig);
}
} // namespace detail

inline void install_fault_handler(void (*unexpected)(int, const siginfo_t *)) {
  detail::unexpected_fault_hook = unexpected;
  struct sigaction sa {};
  sa.sa_sigaction = detail::on_fault;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, nullptr);
  sigaction(SIGBUS, &sa, nullptr);
}

// Runs access(context); returns the fault it raised, if any.  access must
// not own anything with a destructor: a fault leaves it by siglongjmp.  It
// reports progress through memory it is given, not through return values.
__attribute__((noinline)) inline Fault touch(void (*access)(void *), void *context) {
  sigjmp_buf jump;
  if (sigsetjmp(jump, 1) == 0) {
    detail::armed_jump = &jump;
    access(context);
    detail::armed_jump = nullptr;
    return Fault{};
  }
  return detail::last_fault;
}

// --- Operation log --------------------------------------------------------
//
// Each process (and the short-lived children it forks) appends to its own
// ring in shared memory, so the last operations of a process that failed,
// crashed or hung can be printed by itself or by its parent.

struct OpRecord {
  std::atomic<std::uint64_t> stamp; // index + 1 once complete
  std::int32_t pid;
  std::uint16_t thread;
  std::uint16_t op;
  std::uint8_t via; // 0 raw ioctl, 1 libxpmem, 2 not an xpmem call
  std::uint8_t pad[3];
  std::int32_t err;
  std::int64_t result;
  std::uint64_t args[4];
  double time;
};

enum class Via : std::uint8_t { Raw = 0, Lib = 1, None = 2 };

template <std::size_t N = 64> struct OpRing {
  std::atomic<std::uint64_t> head;
  OpRecord records[N];

  // Claims a record for an operation about to start; complete() fills in
  // its outcome.  A record torn by a kill is just shown as incomplete.
  std::uint64_t begin(std::uint16_t op, Via via, std::uint16_t thread,
                      std::initializer_list<std::uint64_t> args) {
    std::uint64_t index = head.fetch_add(1, std::memory_order_relaxed);
    OpRecord &r = records[index % N];
    r.stamp.store(0, std::memory_order_relaxed);
    r.pid = getpid();
    r.thread = thread;
    r.op = op;
    r.via = static_cast<std::uint8_t>(via);
    r.err = -1;
    r.result = 0;
    std::size_t i = 0;
    for (std::uint64_t a : args)
      if (i < 4)
        r.args[i++] = a;
    for (; i < 4; ++i)
      r.args[i] = 0;
    r.time = monotonic_seconds();
    r.stamp.store(index + 1, std::memory_order_release);
    return index;
  }
  void complete(std::uint64_t index, std::int64_t result, int err) {
    OpRecord &r = records[index % N];
    if (r.stamp.load(std::memory_order_acquire) != index + 1)
      return; // overwritten by 64 newer operations meanwhile
    r.result = result;
    r.err = err;
  }

  // Writes the ring, oldest first, with write(2) only: this also runs in a
  // signal handler of a crashing process.
  void dump(int fd, const char *(*op_name)(std::uint16_t), double t0) const {
    std::uint64_t end = head.load(std::memory_order_acquire);
    std::uint64_t start = end > N ? end - N : 0;
    char line[320];
    for (std::uint64_t i = start; i < end; ++i) {
      const OpRecord &r = records[i % N];
      if (r.stamp.load(std::memory_order_acquire) != i + 1)
        continue;
      static const char *const vias[] = {"raw", "lib", "mem"};
      int n;
      if (r.err == -1)
        n = std::snprintf(line, sizeof line,
                          "  #%-7llu %8.3fs pid %d t%u %-12s %s %#llx %#llx %#llx %#llx -> "
                          "(not completed)\n",
                          (unsigned long long)i, r.time - t0, r.pid, r.thread, op_name(r.op),
                          vias[r.via % 3], (unsigned long long)r.args[0],
                          (unsigned long long)r.args[1], (unsigned long long)r.args[2],
                          (unsigned long long)r.args[3]);
      else
        n = std::snprintf(line, sizeof line,
                          "  #%-7llu %8.3fs pid %d t%u %-12s %s %#llx %#llx %#llx %#llx -> %lld "
                          "%s\n",
                          (unsigned long long)i, r.time - t0, r.pid, r.thread, op_name(r.op),
                          vias[r.via % 3], (unsigned long long)r.args[0],
                          (unsigned long long)r.args[1], (unsigned long long)r.args[2],
                          (unsigned long long)r.args[3], (long long)r.result,
                          r.err ? errno_name(r.err) : "");
      if (n > 0 && write(fd, line, static_cast<std::size_t>(n) < sizeof line ? n : sizeof line - 1))
        continue;
    }
  }

  static const char *errno_name(int err) {
    if (err == XPMEM_ABI_ERRNO_NOPROC)
      return "NOPROC(2004)";
    const char *name = strerrorname_np(err);
    return name ? name : "E?";
  }
};

// Whole string to stderr in one write, so reports of several processes do
// not interleave line by line.
inline void write_all(int fd, const char *text, std::size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, text, len);
    if (n <= 0) {
      if (n < 0 && errno == EINTR)
        continue;
      return;
    }
    text += n;
    len -= static_cast<std::size_t>(n);
  }
}

__attribute__((format(printf, 2, 3))) inline void say(int fd, const char *fmt, ...) {
  char text[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = std::vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  if (n > 0)
    write_all(fd, text, static_cast<std::size_t>(n) < sizeof text ? n : sizeof text - 1);
}

// --- The module's counters ------------------------------------------------

// A /proc file's text without trailing newlines ("" if unreadable).
inline std::string read_text(const std::string &path) {
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!text.empty() && text.back() == '\n')
    text.pop_back();
  return text;
}

// What a process stuck in the kernel is doing: each thread's state, wait
// channel, system call and (root only) kernel stack, on stderr prefixed by
// `prog`; as root also sysrq w and l (blocked tasks, every CPU) into the
// kernel log.
inline void show_tasks(const char *prog, pid_t pid) {
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  if (DIR *d = opendir(dir.c_str())) {
    while (dirent *e = readdir(d)) {
      if (e->d_name[0] == '.')
        continue;
      std::string task = dir + "/" + e->d_name;
      std::string stat = read_text(task + "/stat");
      std::size_t paren = stat.rfind(')');
      char state = paren != std::string::npos && paren + 2 < stat.size() ? stat[paren + 2] : '?';
      say(2, "%s: task %s state %c wchan %s syscall %s\n%s\n", prog, e->d_name, state,
          read_text(task + "/wchan").c_str(), read_text(task + "/syscall").c_str(),
          read_text(task + "/stack").c_str());
    }
    closedir(d);
  }
  for (const char *key : {"w", "l"}) {
    int fd = open("/proc/sysrq-trigger", O_WRONLY);
    if (fd < 0)
      break;
    if (write(fd, key, 1) != 1) {
    }
    close(fd);
  }
}

// Debugfs is root-only: nullopt for other users (the check is skipped then).
inline std::optional<std::map<std::string, long>> read_module_stats() {
  return xpmem_debug::read_counters();
}

inline const char *const kLiveObjectCounters[] = {"registrations", "segments", "permits",
                                                  "attachments"};

// Waits up to `seconds` for every live-object counter to reach zero (the
// kernel may still be tearing down the last processes' files).  Returns the
// last reading, or nullopt if the counters are not readable.
inline std::optional<std::map<std::string, long>> wait_for_module_idle(double seconds, bool *idle) {
  double until = monotonic_seconds() + seconds;
  for (;;) {
    auto stats = read_module_stats();
    if (!stats) {
      *idle = true;
      return std::nullopt;
    }
    bool zero = true;
    for (const char *name : kLiveObjectCounters)
      zero = zero && (*stats)[name] == 0;
    if (zero || monotonic_seconds() > until) {
      *idle = zero;
      return stats;
    }
    sleep_microseconds(100000);
  }
}

// --- Command line ---------------------------------------------------------

// "--name value" options; unknown options are an error.
class Args {
public:
  Args(int argc, char **argv) : argc_(argc), argv_(argv) {}
  bool flag(std::string_view name) {
    for (int i = 1; i < argc_; ++i)
      if (argv_[i] && name == argv_[i]) {
        argv_[i] = nullptr;
        return true;
      }
    return false;
  }
  std::uint64_t number(std::string_view name, std::uint64_t fallback) {
    for (int i = 1; i + 1 < argc_; ++i)
      if (argv_[i] && name == argv_[i]) {
        char *end = nullptr;
        std::uint64_t v = std::strtoull(argv_[i + 1], &end, 0);
        if (!end || *end) {
          say(2, "%s: bad value '%s' for %s\n", argv_[0], argv_[i + 1], argv_[i]);
          std::exit(2);
        }
        argv_[i] = argv_[i + 1] = nullptr;
        return v;
      }
    return fallback;
  }
  // Call last: fails on anything not consumed.
  void reject_leftovers(const char *usage) {
    for (int i = 1; i < argc_; ++i)
      if (argv_[i]) {
        say(2, "%s: unknown argument '%s'\nusage: %s\n", argv_[0], argv_[i], usage);
        std::exit(2);
      }
  }

private:
  int argc_;
  char **argv_;
};

} // namespace stress
