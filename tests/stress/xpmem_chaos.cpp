// xpmem_chaos: kill -9 at random moments.
//
//   xpmem_chaos [--seed S] [--rounds R] [--max-delay-us D]
//
// Each round forks a few exporters (they export a buffer or their whole
// address space, publish the segment, and keep remaking, rewriting and
// remapping) and a few attachers (get, attach, touch through signal
// handlers or have the kernel copy from the attachment, detach, release,
// in loops, on one or two threads), then kills
// them with SIGKILL, one by one in random order or the whole group at once,
// each after a random delay between 10 microseconds and --max-delay-us
// (default 100 ms, log-uniform) counted from its start or, mostly, from its
// first make or attach, and reaps them.  Every 100 rounds and at the end it checks that no
// process is left and, when /sys/kernel/debug/xpmem/stats is readable
// (root), that no registration, segment, permit or attachment is left.
//
// A failure (a process that cannot be reaped, a child dying of anything but
// SIGKILL, data read through an attachment that is not the exporter's, a
// leaked object) prints the seed and the last operations of the process
// concerned, and the program exits 1.  The same seed replays the same
// rounds, children and kill delays; the interleaving is the scheduler's.
#include "stress_common.hpp"

#include <xpmem.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>

using namespace stress;

namespace {

constexpr int kMaxExporters = 3;
constexpr int kMaxAttachers = 4;
constexpr int kMaxChildren = kMaxExporters + kMaxAttachers;
constexpr std::size_t kMaxPages = 32;
constexpr std::uint64_t kMaxAddr = ~std::uint64_t{0};

enum Op : std::uint16_t {
  OpMake,
  OpRemove,
  OpGet,
  OpRelease,
  OpAttach,
  OpDetach,
  OpTouch,
  OpRewrite,
  OpRemap,
  OpKernelCopy,
  OpSignal,
  OpFailure,
  kOps
};

const char *op_name(std::uint16_t op) {
  static const char *const names[] = {"make",   "remove",      "get",    "release",
                                      "attach", "detach",      "touch",  "rewrite",
                                      "remap",  "kernel_copy", "SIGNAL", "FAILURE"};
  static_assert(sizeof names / sizeof names[0] == kOps);
  return op < kOps ? names[op] : "?";
}

// What an exporter publishes: its segment, and where its buffer is.
struct Export {
  std::atomic<std::int64_t> segid;
  std::atomic<std::int32_t> pid;
  std::atomic<std::uint64_t> addr, pages;
  std::atomic<std::uint32_t> whole_space; // segid exports the whole address space
};

struct Round {
  std::uint64_t seed = 0;
  int exporters = 0, attachers = 0;
  Export exports[kMaxExporters];
  // Set by a child once it has done its first make or attach: most kill
  // delays count from then, so that they land in the middle of the work
  // rather than in process start-up.
  std::atomic<int> working[kMaxChildren];
  OpRing<64> rings[kMaxChildren];
};

struct Counters {
  std::atomic<std::uint64_t> attaches, touches, pages_verified, signals, makes;
};

struct Shared {
  std::uint64_t seed = 0;
  double start = 0;
  std::atomic<int> failed;
  Counters counters;
  Round round;
};

Shared *g_shared = nullptr;
int g_child = -1; // index of this child in the round

OpRing<64> &my_ring() {
  return g_shared->round.rings[g_child];
}

[[noreturn]] __attribute__((format(printf, 1, 2))) void fail(const char *fmt, ...) {
  static std::atomic<bool> reporting{false};
  if (reporting.exchange(true))
    for (;;)
      pause();
  char message[700];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  if (g_shared->failed.exchange(1) != 0) { // someone else reports in full
    say(2, "xpmem_chaos: also failed (child %d, pid %d): %s\n", g_child, getpid(), message);
    _exit(3);
  }
  my_ring().begin(OpFailure, Via::None, 0, {});
  say(2,
      "\nxpmem_chaos: FAIL (seed %llu, round seed %llu, child %d, pid %d): %s\n"
      "xpmem_chaos: last operations of this process, oldest first (args are hex):\n",
      (unsigned long long)g_shared->seed, (unsigned long long)g_shared->round.seed, g_child,
      getpid(), message);
  my_ring().dump(2, op_name, g_shared->start);
  _exit(3);
}

void on_unguarded_fault(int sig, const siginfo_t *info) {
  if (g_shared->failed.exchange(1) != 0)
    _exit(4);
  say(2, "\nxpmem_chaos: FAIL (seed %llu, child %d, pid %d): unguarded %s at %p\n",
      (unsigned long long)g_shared->seed, g_child, getpid(), strsignal(sig), info->si_addr);
  my_ring().dump(2, op_name, g_shared->start);
  _exit(4);
}

// The value of every word of an exporter's buffer: it never changes, so an
// attacher may read it at any time and even write it back.
std::uint64_t pattern(std::int32_t pid, std::uint64_t page, unsigned word) {
  std::uint64_t s = static_cast<std::uint64_t>(pid) << 32 ^ page << 9 ^ word;
  return splitmix64(s) | 1;
}

// Whether v is what a word with value want may read as: the kernel copies
// and writes byte by byte, so next to a remap (zeros, then the refill) a
// word may be part zero, part pattern.
bool fits(std::uint64_t v, std::uint64_t want) {
  for (int k = 0; k < 64; k += 8) {
    std::uint64_t byte = (v >> k) & 0xff;
    if (byte != 0 && byte != ((want >> k) & 0xff))
      return false;
  }
  return true;
}

struct Logged {
  long ret;
  int err;
};

template <typename F>
Logged logged(Op op, Via via, std::initializer_list<std::uint64_t> args, std::uint16_t thread,
              F &&call) {
  std::uint64_t index = my_ring().begin(op, via, thread, args);
  errno = 0;
  long ret = call();
  int err = ret < 0 ? errno : 0;
  my_ring().complete(index, ret, err);
  return {ret, err};
}

// --- exporter ------------------------------------------------------------------

[[noreturn]] void exporter_main(int index, std::uint64_t seed) {
  Rng rng(seed);
  Export &ex = g_shared->round.exports[index];
  const std::int32_t pid = getpid();
  std::size_t pages = rng.between(1, kMaxPages);
  std::size_t len = pages * kPage;
  auto *buf = static_cast<std::uint64_t *>(
      mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (buf == MAP_FAILED)
    fail("mmap: %s", strerror(errno));
  auto fill = [&] {
    for (std::size_t p = 0; p < pages; ++p)
      for (unsigned w = 0; w < kPage / 8; ++w)
        buf[p * (kPage / 8) + w] = pattern(pid, p, w);
  };
  fill();
  int raw = open(XPMEM_DEVICE_PATH, O_RDWR);
  if (raw < 0)
    fail("open %s: %s", XPMEM_DEVICE_PATH, strerror(errno));

  std::int64_t segid = -1;
  Via seg_via = Via::Lib;
  for (;;) {
    if (segid <= 0 || rng.percent(10)) {
      if (segid > 0) {
        ex.segid.store(-1);
        xpmem_cmd_remove cmd{segid};
        if (seg_via == Via::Raw)
          logged(OpRemove, Via::Raw, {static_cast<std::uint64_t>(segid)}, 0,
                 [&] { return static_cast<long>(ioctl(raw, XPMEM_CMD_REMOVE, &cmd)); });
        else
          logged(OpRemove, Via::Lib, {static_cast<std::uint64_t>(segid)}, 0,
                 [&] { return static_cast<long>(xpmem_remove(segid)); });
      }
      bool whole = rng.percent(40);
      std::uint64_t vaddr = whole ? 0 : reinterpret_cast<std::uintptr_t>(buf);
      std::uint64_t size = whole ? kMaxAddr : len;
      seg_via = rng.percent(50) ? Via::Raw : Via::Lib;
      Logged made;
      if (seg_via == Via::Raw) {
        xpmem_cmd_make cmd{vaddr, size, XPMEM_ABI_PERMIT_MODE, 0, 0666, 0};
        made = logged(OpMake, Via::Raw, {vaddr, size}, 0,
                      [&] { return static_cast<long>(ioctl(raw, XPMEM_CMD_MAKE, &cmd)); });
        if (made.ret == 0)
          made.ret = cmd.segid;
      } else {
        made = logged(OpMake, Via::Lib, {vaddr, size}, 0, [&] {
          return static_cast<long>(xpmem_make(reinterpret_cast<void *>(vaddr), size,
                                              XPMEM_PERMIT_MODE, reinterpret_cast<void *>(0666)));
        });
      }
      if (made.ret <= 0)
        fail("make of a valid range failed: %s", OpRing<>::errno_name(made.err));
      g_shared->counters.makes.fetch_add(1, std::memory_order_relaxed);
      segid = made.ret;
      ex.addr.store(reinterpret_cast<std::uintptr_t>(buf));
      ex.pages.store(pages);
      ex.whole_space.store(whole);
      ex.pid.store(pid);
      ex.segid.store(segid);
      g_shared->round.working[g_child].store(1);
    }
    switch (rng.below(4)) {
    case 0: { // new pages at the same address: attachers see zeros, then the pattern
      std::uint64_t i =
          my_ring().begin(OpRemap, Via::None, 0, {reinterpret_cast<std::uintptr_t>(buf), len});
      void *p =
          mmap(buf, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
      if (p != buf)
        fail("MAP_FIXED remap of our buffer: %s", strerror(errno));
      fill();
      my_ring().complete(i, 0, 0);
      break;
    }
    case 1: {
      std::uint64_t i =
          my_ring().begin(OpRewrite, Via::None, 0, {reinterpret_cast<std::uintptr_t>(buf), len});
      fill();
      my_ring().complete(i, 0, 0);
      break;
    }
    default:
      sleep_microseconds(rng.below(300));
      break;
    }
  }
}

// --- attacher ------------------------------------------------------------------

// One guarded touch of an attachment: page p of it is the exporter's page
// first + p.  State lives here, in memory: a fault leaves by siglongjmp.
struct TouchJob {
  std::uint64_t *base = nullptr;
  std::size_t pages = 0;
  std::uint64_t first = 0;
  std::int32_t owner = 0;
  bool write_back = false;
  volatile std::size_t done = 0;
  volatile bool bad = false;
  volatile std::uint64_t bad_value = 0, bad_page = 0, bad_word = 0;
};

void run_touch(void *context) {
  auto *job = static_cast<TouchJob *>(context);
  for (std::size_t p = 0; p < job->pages; ++p) {
    volatile std::uint64_t *words = job->base + p * (kPage / 8);
    for (unsigned w = 0; w < kPage / 8; w += 7) {
      std::uint64_t v = words[w];
      if (!fits(v, pattern(job->owner, job->first + p, w)) && !job->bad) {
        job->bad = true;
        job->bad_value = v;
        job->bad_page = job->first + p;
        job->bad_word = w;
      }
    }
    if (job->write_back) // the value it already has: harmless to the exporter
      words[0] = pattern(job->owner, job->first + p, 0);
    job->done = p + 1;
  }
}

// The kernel copies out of the attachment (write(2) into a pipe) and into
// it (read(2) of the value word 0 already has): a kill must also end a
// task that is faulting on an attachment from inside a system call.
void kernel_copy(int pipe_fd[2], Rng &rng, std::uint16_t thread, const TouchJob &job) {
  std::size_t len = std::min<std::size_t>(job.pages, 8) * kPage;
  std::uint64_t i = my_ring().begin(OpKernelCopy, Via::None, thread,
                                    {reinterpret_cast<std::uintptr_t>(job.base), len, job.first});
  ssize_t n = write(pipe_fd[1], job.base, len);
  my_ring().complete(i, n, n < 0 ? errno : 0);
  if (n < 0 && errno != EFAULT)
    fail("write(2) from an attachment: %s", strerror(errno));
  static thread_local std::uint64_t copy[8 * kPage / 8];
  ssize_t got = read(pipe_fd[0], copy, sizeof copy); // also frees a faulted write's buffer
  for (ssize_t w = 0; w < got / 8; ++w) {
    std::uint64_t page = job.first + static_cast<std::uint64_t>(w) / (kPage / 8);
    unsigned word = static_cast<unsigned>(w % (kPage / 8));
    if (!fits(copy[w], pattern(job.owner, page, word)))
      fail("the kernel read %#llx from an attachment of pid %d's page %llu word %u: neither zero "
           "nor the exporter's pattern",
           (unsigned long long)copy[w], job.owner, (unsigned long long)page, word);
  }
  if (job.write_back && rng.percent(50)) {
    std::uint64_t v = pattern(job.owner, job.first, 0);
    if (write(pipe_fd[1], &v, sizeof v) == sizeof v &&
        read(pipe_fd[0], job.base, sizeof v) != sizeof v) {
      while (read(pipe_fd[0], copy, sizeof copy) > 0) {
      }
    }
  }
}

void attacher_loop(Rng rng, std::uint16_t thread) {
  Round &round = g_shared->round;
  int raw = open(XPMEM_DEVICE_PATH, O_RDWR);
  if (raw < 0)
    fail("open %s: %s", XPMEM_DEVICE_PATH, strerror(errno));
  int pipe_fd[2];
  if (pipe2(pipe_fd, O_NONBLOCK | O_CLOEXEC) != 0)
    fail("pipe2: %s", strerror(errno));
  for (;;) {
    Export &ex = round.exports[rng.below(static_cast<std::uint64_t>(round.exporters))];
    std::int64_t segid = ex.segid.load();
    if (segid <= 0) {
      sleep_microseconds(rng.below(200));
      continue;
    }
    std::int32_t owner = ex.pid.load();
    std::uint64_t addr = ex.addr.load(), pages = ex.pages.load();
    bool whole = ex.whole_space.load();
    if (ex.segid.load() != segid)
      continue; // republished meanwhile
    bool writable = rng.percent(60);
    Via via = rng.percent(50) ? Via::Raw : Via::Lib;
    Logged got;
    if (via == Via::Raw) {
      xpmem_cmd_get cmd{segid, writable ? XPMEM_ABI_RDWR : XPMEM_ABI_RDONLY, XPMEM_ABI_PERMIT_MODE,
                        0, 0};
      got = logged(OpGet, via, {static_cast<std::uint64_t>(segid)}, thread,
                   [&] { return static_cast<long>(ioctl(raw, XPMEM_CMD_GET, &cmd)); });
      if (got.ret == 0)
        got.ret = cmd.apid;
    } else {
      got = logged(OpGet, via, {static_cast<std::uint64_t>(segid)}, thread, [&] {
        return static_cast<long>(
            xpmem_get(segid, writable ? XPMEM_RDWR : XPMEM_RDONLY, XPMEM_PERMIT_MODE, nullptr));
      });
    }
    if (got.ret <= 0)
      continue; // removed, or the exporter died
    std::int64_t apid = got.ret;
    std::uint64_t first = rng.below(pages);
    std::uint64_t count = rng.between(1, pages - first);
    std::uint64_t offset = (whole ? addr : 0) + first * kPage;
    Logged att;
    if (via == Via::Raw) {
      xpmem_cmd_attach cmd{apid, static_cast<std::int64_t>(offset), count * kPage, 0, -1, 0};
      att = logged(OpAttach, via, {static_cast<std::uint64_t>(apid), offset, count * kPage}, thread,
                   [&] { return static_cast<long>(ioctl(raw, XPMEM_CMD_ATTACH, &cmd)); });
      if (att.ret == 0)
        att.ret = static_cast<long>(cmd.vaddr);
    } else {
      att = logged(
          OpAttach, via, {static_cast<std::uint64_t>(apid), offset, count * kPage}, thread, [&] {
            void *p =
                xpmem_attach(xpmem_addr{apid, static_cast<off_t>(offset)}, count * kPage, nullptr);
            return p == reinterpret_cast<void *>(-1)
                       ? -1L
                       : static_cast<long>(reinterpret_cast<std::uintptr_t>(p));
          });
    }
    if (att.ret > 0) {
      g_shared->counters.attaches.fetch_add(1, std::memory_order_relaxed);
      round.working[g_child].store(1);
      TouchJob job;
      job.base = reinterpret_cast<std::uint64_t *>(att.ret);
      job.pages = count;
      job.first = first;
      job.owner = owner;
      job.write_back = writable && rng.percent(50);
      if (rng.percent(40))
        kernel_copy(pipe_fd, rng, thread, job);
      std::uint64_t i = my_ring().begin(OpTouch, Via::None, thread,
                                        {static_cast<std::uint64_t>(att.ret), count, first});
      Fault f = touch(run_touch, &job);
      my_ring().complete(i, f.signal, 0);
      g_shared->counters.touches.fetch_add(1, std::memory_order_relaxed);
      g_shared->counters.pages_verified.fetch_add(job.done, std::memory_order_relaxed);
      if (f.signal)
        g_shared->counters.signals.fetch_add(1, std::memory_order_relaxed);
      if (job.bad)
        fail("read %#llx through an attachment of pid %d's page %llu word %llu: neither zero nor "
             "the exporter's pattern %#llx",
             (unsigned long long)job.bad_value, owner, (unsigned long long)job.bad_page,
             (unsigned long long)job.bad_word,
             (unsigned long long)pattern(owner, job.bad_page, static_cast<unsigned>(job.bad_word)));
      if (rng.percent(75))
        logged(OpDetach, Via::Lib, {static_cast<std::uint64_t>(att.ret)}, thread,
               [&] { return static_cast<long>(xpmem_detach(reinterpret_cast<void *>(att.ret))); });
    }
    if (rng.percent(75)) {
      if (via == Via::Raw) {
        xpmem_cmd_release cmd{apid};
        logged(OpRelease, via, {static_cast<std::uint64_t>(apid)}, thread,
               [&] { return static_cast<long>(ioctl(raw, XPMEM_CMD_RELEASE, &cmd)); });
      } else {
        logged(OpRelease, via, {static_cast<std::uint64_t>(apid)}, thread,
               [&] { return static_cast<long>(xpmem_release(apid)); });
      }
    }
  }
}

[[noreturn]] void attacher_main(std::uint64_t seed) {
  Rng rng(seed);
  // Half the attachers have a second thread: a kill then meets two tasks
  // in the module at once.
  if (rng.percent(50)) {
    Rng other(rng.next());
    std::thread([other] { attacher_loop(other, 1); }).detach();
  }
  attacher_loop(rng, 0);
  _exit(0);
}

// --- the parent ---------------------------------------------------------------------

struct Child {
  pid_t pid = -1;
  std::uint64_t kill_at_us = 0;
  bool exporter = false;
};

// Reaps every child of the round; a child that cannot be reaped after
// SIGKILL is stuck in the kernel.
bool reap_round(std::vector<Child> &children, double timeout) {
  bool ok = true;
  double until = monotonic_seconds() + timeout;
  for (std::size_t i = 0; i < children.size(); ++i) {
    Child &c = children[i];
    if (c.pid <= 0)
      continue;
    int status = 0;
    for (;;) {
      pid_t r = waitpid(c.pid, &status, WNOHANG);
      if (r == c.pid)
        break;
      if (r < 0 && errno != EINTR) {
        say(2, "xpmem_chaos: waitpid %d: %s\n", c.pid, strerror(errno));
        return false;
      }
      if (monotonic_seconds() > until) {
        say(2,
            "\nxpmem_chaos: FAIL (seed %llu, round seed %llu): child %zu (pid %d) cannot be "
            "reaped %.0f s after SIGKILL (stuck in the kernel)\n",
            (unsigned long long)g_shared->seed, (unsigned long long)g_shared->round.seed, i, c.pid,
            timeout);
        show_tasks("xpmem_chaos", c.pid);
        say(2, "xpmem_chaos: its last operations:\n");
        g_shared->round.rings[i].dump(2, op_name, g_shared->start);
        return false;
      }
      sleep_microseconds(1000);
    }
    bool killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!killed && !clean) {
      ok = false;
      if (!(WIFEXITED(status) && (WEXITSTATUS(status) == 3 || WEXITSTATUS(status) == 4))) {
        say(2,
            "\nxpmem_chaos: FAIL (seed %llu, round seed %llu): child %zu (pid %d) ended with %s "
            "%d; its last operations:\n",
            (unsigned long long)g_shared->seed, (unsigned long long)g_shared->round.seed, i, c.pid,
            WIFSIGNALED(status) ? "signal" : "exit status",
            WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        g_shared->round.rings[i].dump(2, op_name, g_shared->start);
      }
    }
    c.pid = -1;
  }
  return ok;
}

// No process of ours is left, and the module holds no object (if we can
// read its counters).  Returns false and says why otherwise.
bool check_clean(const std::vector<pid_t> &groups, std::string *counters) {
  for (pid_t group : groups)
    if (kill(-group, 0) == 0 || errno != ESRCH) {
      say(2, "xpmem_chaos: FAIL (seed %llu): process group %d still has processes\n",
          (unsigned long long)g_shared->seed, group);
      return false;
    }
  if (waitpid(-1, nullptr, WNOHANG) != -1 || errno != ECHILD) {
    say(2, "xpmem_chaos: FAIL (seed %llu): a child process is left\n",
        (unsigned long long)g_shared->seed);
    return false;
  }
  bool idle = false;
  auto stats = wait_for_module_idle(5.0, &idle);
  counters->clear();
  if (!stats) {
    *counters = "not readable (not root): skipped";
    return true;
  }
  for (const char *name : kLiveObjectCounters)
    *counters +=
        std::string(counters->empty() ? "" : " ") + name + "=" + std::to_string((*stats)[name]);
  if (!idle)
    say(2, "xpmem_chaos: FAIL (seed %llu): objects still live 5 s after every process died: %s\n",
        (unsigned long long)g_shared->seed, counters->c_str());
  return idle;
}

} // namespace

int main(int argc, char **argv) {
  Args args(argc, argv);
  std::uint64_t seed = args.number("--seed", seed_from_clock());
  std::uint64_t rounds = args.number("--rounds", 300);
  std::uint64_t max_delay_us = std::max<std::uint64_t>(args.number("--max-delay-us", 100000), 20);
  args.reject_leftovers("xpmem_chaos [--seed S] [--rounds R] [--max-delay-us D]");
  if (sysconf(_SC_PAGESIZE) != static_cast<long>(kPage)) {
    say(2, "xpmem_chaos: needs %zu-byte pages\n", kPage);
    return 2;
  }
  setvbuf(stdout, nullptr, _IOLBF, 0);
  say(1, "xpmem_chaos: seed %llu, %llu rounds, kills up to %llu us after start\n",
      (unsigned long long)seed, (unsigned long long)rounds, (unsigned long long)max_delay_us);
  int probe = open(XPMEM_DEVICE_PATH, O_RDWR);
  if (probe < 0) {
    say(2, "xpmem_chaos: cannot open %s: %s\n", XPMEM_DEVICE_PATH, strerror(errno));
    return 2;
  }
  close(probe);
  // Anything our children leave behind comes back to us.
  prctl(PR_SET_CHILD_SUBREAPER, 1);

  SharedObject<Shared> shared;
  g_shared = &*shared;
  shared->seed = seed;
  shared->start = monotonic_seconds();
  std::uint64_t kills = 0, children_started = 0, group_kills = 0;
  std::vector<pid_t> groups;
  bool ok = true;
  std::uint64_t done = 0;
  std::string counters = "not checked";

  for (std::uint64_t r = 0; r < rounds && ok; ++r) {
    Round &round = shared->round;
    round.~Round();
    new (&round) Round();
    round.seed = derive_seed(seed, r);
    Rng rng(round.seed);
    round.exporters = static_cast<int>(rng.between(1, kMaxExporters));
    round.attachers = static_cast<int>(rng.between(1, kMaxAttachers));
    std::vector<Child> children;
    pid_t group = 0;
    const int total = round.exporters + round.attachers;
    for (int i = 0; i < total; ++i) {
      Child c;
      c.exporter = i < round.exporters;
      c.kill_at_us = rng.log_uniform(10, max_delay_us);
      std::uint64_t child_seed = derive_seed(seed, r, static_cast<std::uint64_t>(i) + 1);
      pid_t pid = fork();
      if (pid == 0) {
        setpgid(0, group);
        g_child = i;
        install_fault_handler(on_unguarded_fault);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (c.exporter)
          exporter_main(i, child_seed);
        attacher_main(child_seed);
      }
      if (pid < 0) {
        say(2, "xpmem_chaos: fork: %s\n", strerror(errno));
        ok = false;
        break;
      }
      if (group == 0)
        group = pid;
      setpgid(pid, group); // also here: whichever runs first
      c.pid = pid;
      children.push_back(c);
      ++children_started;
    }
    groups.push_back(group);
    double started = monotonic_seconds();

    // Kill: one by one at each child's moment, or the whole group at once.
    // A fifth of the delays count from the fork (start-up, registration);
    // the rest from when the child started working (or 2 s, whichever is
    // first), to hit it in the middle of its loop.
    auto clock_start = [&](int i) {
      if (rng.percent(20))
        return started;
      while (!round.working[i].load() && monotonic_seconds() < started + 2.0)
        sleep_microseconds(200);
      return std::max(started, monotonic_seconds());
    };
    if (rng.percent(20)) {
      double from = clock_start(static_cast<int>(rng.below(children.size())));
      double now_us = (monotonic_seconds() - from) * 1e6;
      std::uint64_t at = rng.log_uniform(10, max_delay_us);
      if (static_cast<double>(at) > now_us)
        sleep_microseconds(at - static_cast<std::uint64_t>(now_us));
      kill(-group, SIGKILL);
      ++group_kills;
      kills += children.size();
    } else {
      std::vector<int> order;
      for (int i = 0; i < total; ++i)
        order.push_back(i);
      // Shuffle: exporters and attachers die in any order.
      for (int i = total - 1; i > 0; --i)
        std::swap(order[i], order[rng.below(static_cast<std::uint64_t>(i) + 1)]);
      for (int i : order) {
        double from = clock_start(i);
        double now_us = (monotonic_seconds() - from) * 1e6;
        if (static_cast<double>(children[i].kill_at_us) > now_us)
          sleep_microseconds(children[i].kill_at_us - static_cast<std::uint64_t>(now_us));
        kill(children[i].pid, SIGKILL);
        ++kills;
      }
    }
    if (!reap_round(children, 60.0) || shared->failed.load()) {
      ok = false;
      break;
    }
    done = r + 1;
    if (done % 100 == 0 || done == rounds) {
      if (!check_clean(groups, &counters)) {
        ok = false;
        break;
      }
      groups.clear();
      say(1, "xpmem_chaos: %llu rounds, %llu processes killed; module objects: %s\n",
          (unsigned long long)done, (unsigned long long)kills, counters.c_str());
    }
  }
  const Counters &c = shared->counters;
  say(1,
      "xpmem_chaos: %s: seed %llu, %llu of %llu rounds in %.1f s; %llu processes started, %llu "
      "kills (%llu whole-group); %llu makes, %llu attaches, %llu touches, %llu pages verified, "
      "%llu signals caught; module objects at the end: %s\n",
      ok ? "PASS" : "FAIL", (unsigned long long)seed, (unsigned long long)done,
      (unsigned long long)rounds, monotonic_seconds() - shared->start,
      (unsigned long long)children_started, (unsigned long long)kills,
      (unsigned long long)group_kills, (unsigned long long)c.makes.load(),
      (unsigned long long)c.attaches.load(), (unsigned long long)c.touches.load(),
      (unsigned long long)c.pages_verified.load(), (unsigned long long)c.signals.load(),
      counters.c_str());
  if (!ok)
    say(2,
        "xpmem_chaos: reproduce with: xpmem_chaos --seed %llu --rounds %llu --max-delay-us %llu\n",
        (unsigned long long)seed, (unsigned long long)rounds, (unsigned long long)max_delay_us);
  return ok ? 0 : 1;
}
