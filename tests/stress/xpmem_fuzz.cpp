// xpmem_fuzz: a structure-aware fuzzer of /dev/xpmem.
//
//   xpmem_fuzz [--seed S] [--seconds T] [--procs P] [--threads N] [--no-self-window]
//
// A supervisor forks P worker processes with N threads each.  Every thread
// issues random sequences of all commands, straight through ioctl() on the
// worker's own /dev/xpmem descriptor and through libxpmem, with valid,
// stale, foreign and random ids, boundary sizes and addresses and bad user
// pointers; in between it touches its attachments, moves and protects them,
// rewrites, remaps, unmaps and protects the buffers it exports, forks,
// replaces its device descriptor and now and then exits.  The supervisor
// kills workers with SIGKILL at random moments and respawns them.
//
// What counts as a failure (the run stops, prints the seed and the failing
// process's last 64 operations, and exits 1):
//   - a call that succeeds where failure is certain, or fails with an errno
//     outside the expected classes;
//   - data read through an attachment that belongs to another page, buffer
//     or process, or to a generation its owner had certainly replaced (the
//     rule is at BufferPublic below);
//   - a SIGBUS or SIGSEGV on a fresh attachment whose exporter, segment and
//     permit are all alive and whose pages are mapped and readable (see
//     Fuzzer::fresh_touch), or a signal outside any guarded access;
//   - a worker that dies of anything but our SIGKILL, or hangs at the end.
// Kernel crashes, warnings and leaked objects are the VM rig's to catch.
//
// Reproducibility: every process slot, incarnation and thread draws from its
// own generator seeded from --seed, so the same seed replays the same
// decisions per thread; how they interleave still depends on scheduling.
#include "stress_common.hpp"

#include <xpmem.h>

#include <algorithm>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <vector>

#include <sched.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>

using namespace stress;

namespace {

// --- Address-space layout shared by all workers ----------------------------
//
// Every worker keeps its exported buffers at the same fixed addresses, so
// that an exporter's address alone says which buffer and page it holds:
// buffer b lives at kArenaBase + b * kSlotBytes.  The supervisor reserves the
// arena (PROT_NONE) before forking; workers map buffers over it.  Behind the
// slots lies a scratch area of the same size where mremap moves a buffer to
// and back.  Nothing else is ever mapped in the arena.

constexpr std::uintptr_t kArenaBase = 0x200000000000ULL;
constexpr unsigned kBuffers = 8;
// 2 MiB slots, aligned: buffer 0 is sometimes one transparent huge page.
constexpr std::size_t kSlotBytes = std::size_t{2} << 20;
constexpr std::size_t kSlotPages = kSlotBytes / kPage;
constexpr std::size_t kMaxBufferPages = 48;
constexpr unsigned kHugeBuffer = 0;
constexpr std::size_t kArenaBytes = 2 * kBuffers * kSlotBytes;
// Self-covering windows are attached here: far from anything the kernel or
// libc places, so an address picked at random is almost always free.
constexpr std::uintptr_t kCycleZone = 0x500000000000ULL;
constexpr std::uint64_t kCycleZoneBytes = std::uint64_t{1} << 36;
// Never mapped by anyone: the "unmapped user pointer".
constexpr std::uintptr_t kNeverMapped = 0x680000000000ULL;
// No x86_64 user address reaches this, even with 5-level paging.
constexpr std::uint64_t kBeyondUser = std::uint64_t{1} << 57;
// TASK_SIZE with 4-level paging; with 5-level paging (QEMU's -cpu max) it
// is 2^56 - 4096.  main() finds out which (g_task_size).
constexpr std::uint64_t kTaskSize47 = 0x7ffffffff000ULL;
std::uint64_t g_task_size = kTaskSize47;
constexpr std::uint64_t kMaxAddr = ~std::uint64_t{0}; // XPMEM_MAXADDR_SIZE
constexpr std::uint64_t kHuge = std::uint64_t{1}
                                << 30; // attachments at least this big are rationed
constexpr std::uint64_t kKernelAddresses[] = {0xffff888000000000ULL, 0xffffffff81000000ULL,
                                              0xffffffffff600000ULL};

constexpr std::uintptr_t slot_address(unsigned b) {
  return kArenaBase + b * kSlotBytes;
}
constexpr std::uintptr_t scratch_address(unsigned b) {
  return kArenaBase + (kBuffers + b) * kSlotBytes;
}
// The buffer and page an exporter address belongs to, if it is in a slot.
inline bool in_slots(std::uint64_t addr, unsigned *buffer, unsigned *page) {
  if (addr < kArenaBase || addr >= kArenaBase + kBuffers * kSlotBytes)
    return false;
  *buffer = static_cast<unsigned>((addr - kArenaBase) / kSlotBytes);
  *page = static_cast<unsigned>((addr - kArenaBase) % kSlotBytes / kPage);
  return true;
}

// --- Page magic ------------------------------------------------------------
//
// Every 64-bit word of page p of buffer b of the worker with pid P holds
// pack(P, b, p mod 256, generation mod 2^16, word mod 16).  Attachers may overwrite word 0 of
// a page with a "scribble" that carries the same (P, b, p) but no
// generation.  The top byte is a hash of the rest, so a value is recognised
// as magic (of which page) or as garbage.

namespace magic {
struct Fields {
  std::uint32_t pid = 0, buffer = 0, page = 0, gen = 0, word = 0;
  bool scribble = false;
};
// One hash per page: the word index only permutes the check byte, so that
// filling a page costs one hash, not 512.
inline std::uint64_t page_hash(std::uint64_t low) {
  std::uint64_t s = low & ~0xfULL;
  return splitmix64(s) >> 56;
}
inline std::uint64_t check_byte(std::uint64_t low, std::uint64_t hash) {
  return (hash ^ ((low & 0xf) * 0x3b)) & 0xff;
}
inline std::uint64_t pack_low(const Fields &f) {
  return (f.word & 0xfULL) | (std::uint64_t{f.gen} & 0xffff) << 4 |
         (std::uint64_t{f.page} & 0xff) << 20 | (std::uint64_t{f.buffer} & 0x1f) << 28 |
         (std::uint64_t{f.pid} & 0x3fffff) << 33 | std::uint64_t{f.scribble} << 55;
}
inline std::uint64_t pack(const Fields &f) {
  std::uint64_t low = pack_low(f);
  return low | check_byte(low, page_hash(low)) << 56;
}
inline bool unpack(std::uint64_t v, Fields *f) {
  std::uint64_t low = v & ((std::uint64_t{1} << 56) - 1);
  if (v >> 56 != check_byte(low, page_hash(low)))
    return false;
  f->word = low & 0xf;
  f->gen = (low >> 4) & 0xffff;
  f->page = (low >> 20) & 0xff;
  f->buffer = (low >> 28) & 0x1f;
  f->pid = (low >> 33) & 0x3fffff;
  f->scribble = (low >> 55) & 1;
  return true;
}
inline std::uint64_t word(std::uint32_t pid, unsigned b, unsigned p, std::uint64_t gen,
                          unsigned w) {
  return pack({pid, b, p, static_cast<std::uint32_t>(gen), w, false});
}
inline std::uint64_t scribble(std::uint32_t pid, unsigned b, unsigned p, std::uint32_t writer) {
  return pack({pid, b, p, writer, 0, true});
}
// The bits that are the same in every generation of a word, scribble or not.
constexpr std::uint64_t kIdentityMask = ~((0xffffULL << 4) | (1ULL << 55) | (0xffULL << 56));
// Whether v may be a torn mix (see run_touch_job) of values of the word
// whose identity bits are those of identity_low, and of zero: every byte is
// zero or agrees with the identity.
inline bool maybe_torn(std::uint64_t v, std::uint64_t identity_low) {
  for (int k = 0; k < 64; k += 8) {
    std::uint64_t mask = (kIdentityMask >> k) & 0xff, byte = (v >> k) & 0xff;
    if (byte != 0 && (byte & mask) != ((identity_low >> k) & mask))
      return false;
  }
  return true;
}
// Generations are compared modulo 2^16, the width stored in the magic.
inline bool older(std::uint32_t gen, std::uint64_t floor) {
  return static_cast<std::int16_t>(static_cast<std::uint16_t>(gen - floor)) < 0;
}
} // namespace magic

// --- Operations --------------------------------------------------------------

enum Op : std::uint16_t {
  // The ioctls, counted in the summary; keep in step with kIoctlNames.
  OpVersion,
  OpMake,
  OpRemove,
  OpGet,
  OpRelease,
  OpAttach,
  OpDetach,
  OpForkBegin,
  OpForkEnd,
  OpUnknown,
  kIoctlOps,
  // Everything else the fuzzer does, logged in the ring.
  OpTouch = kIoctlOps,
  OpFreshTouch,
  OpMunmapAtt,
  OpMremapAtt,
  OpMprotectAtt,
  OpKernelCopy,
  OpRewrite,
  OpRemapBuf,
  OpUnmapBuf,
  OpMoveBuf,
  OpResizeBuf,
  OpProtectBuf,
  OpDiscardBuf,
  OpSelfCheck,
  OpFork,
  OpReopen,
  OpExit,
  OpAdvertise,
  OpAnswer,
  OpSignal,
  OpFailure,
  kOps
};

const char *const kIoctlNames[kIoctlOps] = {"version",  "make",   "remove", "get",
                                            "release",  "attach", "detach", "fork_begin",
                                            "fork_end", "unknown"};

const char *op_name(std::uint16_t op) {
  static const char *const others[] = {
      "touch",       "fresh_touch", "munmap_att", "mremap_att", "mprotect_att", "kernel_copy",
      "rewrite",     "remap_buf",   "unmap_buf",  "move_buf",   "resize_buf",   "protect_buf",
      "discard_buf", "self_check",  "fork",       "reopen_fd",  "exit",         "advertise",
      "answer",      "SIGNAL",      "FAILURE"};
  static_assert(sizeof others / sizeof others[0] == kOps - kIoctlOps);
  if (op < kIoctlOps)
    return kIoctlNames[op];
  if (op < kOps)
    return others[op - kIoctlOps];
  return "?";
}

// --- State shared by all processes -------------------------------------------

constexpr int kMaxProcs = 16;
constexpr int kMaxThreads = 16;
constexpr int kSegRecords = 48;
constexpr int kPermitRecords = 48;
constexpr int kAdverts = 32;

// A record several processes read while one writes it: a sequence lock over
// atomic words.  Writers claim it by making the sequence odd; a writer
// killed meanwhile leaves it odd, and readers then skip it.
template <int W> struct Record {
  std::atomic<std::uint64_t> seq;
  std::atomic<std::uint64_t> word[W];

  bool read(std::uint64_t (&out)[W]) const {
    for (int attempt = 0; attempt < 4; ++attempt) {
      std::uint64_t s1 = seq.load(std::memory_order_acquire);
      if (s1 == 0 || (s1 & 1))
        return false; // never written, or being written
      for (int i = 0; i < W; ++i)
        out[i] = word[i].load(std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (seq.load(std::memory_order_relaxed) == s1)
        return true;
    }
    return false;
  }
  template <typename F> bool write(F &&update) {
    std::uint64_t s = seq.load(std::memory_order_relaxed);
    if ((s & 1) || !seq.compare_exchange_strong(s, s + 1, std::memory_order_acq_rel))
      return false;
    std::atomic_thread_fence(std::memory_order_release);
    std::uint64_t w[W];
    for (int i = 0; i < W; ++i)
      w[i] = word[i].load(std::memory_order_relaxed);
    update(w);
    for (int i = 0; i < W; ++i)
      word[i].store(w[i], std::memory_order_relaxed);
    seq.store(s + 2, std::memory_order_release);
    return true;
  }
};

enum class SegKind : std::uint8_t { WholeSpace, Buffer, Arena, Other };
enum class Life : std::uint8_t { Live, DeadCertain, DeadProbable };

// What a process knows about a segment.
struct SegInfo {
  std::int64_t segid = -1;
  std::int32_t owner_pid = 0;
  std::int32_t owner_slot = -1;
  std::uint64_t vaddr = 0, size = 0;
  SegKind kind = SegKind::Other;
  Life life = Life::Live;
  bool verify = false; // the owner is a worker that keeps its buffers' magic
  Via via = Via::Lib;
  bool known() const { return owner_slot >= 0; }
  // The exporter address at `offset` into the segment.
  std::uint64_t source(std::uint64_t offset) const { return vaddr + offset; }
  // Its size as the module sees it (the whole space is clamped to the task).
  std::uint64_t extent() const {
    return size != kMaxAddr ? size : vaddr < g_task_size ? g_task_size - vaddr : 0;
  }
};

using SegRecord = Record<5>;    // segid, pid|slot, vaddr, size, kind|life|verify|via
using PermitRecord = Record<4>; // apid, pid|slot, segid, life|via
using Advert = Record<6>;       // pid|slot, anchor segid, exporter pid, V, W, pages|answered

inline SegInfo decode_seg(const std::uint64_t (&w)[5]) {
  SegInfo s;
  s.segid = static_cast<std::int64_t>(w[0]);
  s.owner_pid = static_cast<std::int32_t>(w[1] & 0xffffffff);
  s.owner_slot = static_cast<std::int32_t>(w[1] >> 32);
  s.vaddr = w[2];
  s.size = w[3];
  s.kind = static_cast<SegKind>(w[4] & 0xff);
  s.life = static_cast<Life>((w[4] >> 8) & 0xff);
  s.verify = (w[4] >> 16) & 1;
  s.via = static_cast<Via>((w[4] >> 24) & 0xff);
  return s;
}
inline void encode_seg(const SegInfo &s, std::uint64_t (&w)[5]) {
  w[0] = static_cast<std::uint64_t>(s.segid);
  w[1] = static_cast<std::uint32_t>(s.owner_pid) |
         static_cast<std::uint64_t>(static_cast<std::uint32_t>(s.owner_slot)) << 32;
  w[2] = s.vaddr;
  w[3] = s.size;
  w[4] = static_cast<std::uint64_t>(s.kind) | static_cast<std::uint64_t>(s.life) << 8 |
         std::uint64_t{s.verify} << 16 | static_cast<std::uint64_t>(s.via) << 24;
}

// One exported buffer, as its owner publishes it.
//
// The staleness rule.  `floor` is a generation G such that no word of the
// buffer that is still mapped in the owner carries a generation older than
// G.  The owner stores it (release) only after every step that could leave
// older data reachable has completed:
//   - a rewrite in place: all words now hold G;
//   - a remap, MAP_FIXED mapping, unmap or resize: the system call that
//     dropped the old pages has returned (so, by the module's guarantee, no
//     attachment still maps them) and the new pages have been filled with G.
// Generations only grow, and a move out to the scratch area and back keeps
// the data (and its generations) in place.  So a reader that loads floor
// (acquire) and then reads a word through any attachment must see 0 (a page
// not yet filled), a scribble, or a generation >= floor; an older one means
// the attachment reached a page its owner had already dropped or
// overwritten.  A concurrent rewrite only makes words newer, so it cannot
// raise a false alarm; the check is skipped when the slot belongs to
// another incarnation than the segment's owner.
struct BufferPublic {
  std::atomic<std::uint64_t> floor;
  std::atomic<std::uint64_t> layout; // Layout::pack()
};

struct Layout {
  bool mapped = false;
  int prot = PROT_NONE;
  std::size_t pages = 0;
  std::uint64_t pack() const {
    return std::uint64_t{mapped} | static_cast<std::uint64_t>(prot & 3) << 1 |
           static_cast<std::uint64_t>(pages) << 8;
  }
  static Layout unpack(std::uint64_t v) {
    Layout l;
    l.mapped = v & 1;
    l.prot = static_cast<int>((v >> 1) & 3);
    l.pages = static_cast<std::size_t>(v >> 8);
    return l;
  }
  bool readable(std::size_t page) const { return mapped && (prot & PROT_READ) && page < pages; }
  bool writable(std::size_t page) const { return readable(page) && (prot & PROT_WRITE); }
};

// Disturbances.  Anything that may legitimately make an attachment fault
// increments a counter `begun` before it starts and `ended` after it has
// completed (a kill or an exit never ends).  A reader that finds
// begun == ended, attaches and touches, and then finds begun unchanged,
// knows nothing of the kind happened meanwhile.  There are two sides:
//   exporter: removing a segment, unmapping, moving, resizing or
//             protecting a buffer (the exporter's memory or segment goes);
//   attacher: releasing a permit that may be another thread's (its
//             attachments die).
// Replacing the device file, exiting and being killed count on both sides.
struct DisturbCount {
  std::atomic<std::uint64_t> begun, ended;
};
enum class Side { Exporter, Attacher };

// One worker slot.
struct OwnerSlot {
  std::atomic<std::int32_t> pid;
  std::atomic<std::uint32_t> incarnation;
  std::atomic<std::uint32_t> doomed; // the supervisor is about to kill it
  DisturbCount exporter, attacher;
  DisturbCount &side(Side s) { return s == Side::Exporter ? exporter : attacher; }
  const DisturbCount &side(Side s) const { return s == Side::Exporter ? exporter : attacher; }
  // Kills and exits: both sides, never ended.
  void disturb_forever() {
    exporter.begun.fetch_add(1);
    attacher.begun.fetch_add(1);
  }
  BufferPublic buffers[kBuffers];
  std::atomic<std::uint64_t> next_seg, next_permit;
  SegRecord segs[kSegRecords];
  PermitRecord permits[kPermitRecords];
  OpRing<64> ring;
  // Each thread's clock reading at its last operation (0: not running);
  // the supervisor reports a thread that stops beating.
  std::atomic<double> beat[kMaxThreads];
};

struct Counters {
  std::atomic<std::uint64_t> calls[kIoctlOps];
  std::atomic<std::uint64_t> signals, touches, pages_verified, fresh_checks, self_windows, cycles,
      forks, reopens, kills, exits, respawns;
};

struct Options {
  std::uint64_t seed = 0;
  std::uint64_t seconds = 60;
  int procs = 4;
  int threads = 3;
  bool self_windows = true;
};

struct Shared {
  Options options;
  double start = 0, deadline = 0;
  std::atomic<int> stop;
  std::atomic<int> failed;
  Counters counters;
  OwnerSlot owners[kMaxProcs];
  std::atomic<std::uint64_t> next_advert;
  Advert adverts[kAdverts];
};

Shared *g_shared = nullptr;
int g_slot = -1;                      // this process's worker slot
std::atomic<bool> g_reporting{false}; // one failure report per process

OwnerSlot &my_slot() {
  return g_shared->owners[g_slot];
}

// Prints the failure with the seed and this process's last operations, and
// ends the process; the supervisor sees exit status 3 and stops the run.
[[noreturn]] __attribute__((format(printf, 1, 2))) void fail(const char *fmt, ...) {
  if (g_reporting.exchange(true)) {
    for (;;)
      pause(); // another thread is reporting and will end the process
  }
  char message[900];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  // The first failure of the run gets the full report; others (often the
  // same cause seen by another process) one line.
  if (g_shared->failed.exchange(1) != 0) {
    say(2, "xpmem_fuzz: also failed (worker slot %d, pid %d): %s\n", g_slot, getpid(), message);
    _exit(3);
  }
  my_slot().ring.begin(OpFailure, Via::None, 0, {});
  say(2,
      "\nxpmem_fuzz: FAIL (seed %llu, worker slot %d, pid %d): %s\n"
      "xpmem_fuzz: last operations of this process, oldest first (args are hex):\n",
      (unsigned long long)g_shared->options.seed, g_slot, getpid(), message);
  my_slot().ring.dump(2, op_name, g_shared->start);
  say(2, "xpmem_fuzz: reproduce with --seed %llu\n", (unsigned long long)g_shared->options.seed);
  _exit(3);
}

// A fault outside any guarded access is a crash of the fuzzer itself (or a
// kernel that delivered a signal where none can be).
void on_unguarded_fault(int sig, const siginfo_t *info) {
  if (g_reporting.exchange(true) || g_shared->failed.exchange(1) != 0)
    _exit(4);
  say(2, "\nxpmem_fuzz: FAIL (seed %llu, worker slot %d, pid %d): unguarded %s at %p\n",
      (unsigned long long)g_shared->options.seed, g_slot, getpid(), strsignal(sig), info->si_addr);
  my_slot().ring.dump(2, op_name, g_shared->start);
  _exit(4);
}

// --- Calm: did anything disturb an owner during an access? ----------------

struct Calm {
  std::int32_t pid = 0;
  std::uint64_t begun = 0;
  bool calm = false;
};

Calm calm_now(const OwnerSlot &o, Side side) {
  Calm c;
  c.pid = o.pid.load();
  std::uint64_t ended = o.side(side).ended.load();
  c.begun = o.side(side).begun.load();
  c.calm = c.begun == ended && !o.doomed.load();
  return c;
}

bool still_calm(const OwnerSlot &o, Side side, const Calm &before) {
  return before.calm && o.pid.load() == before.pid && !o.doomed.load() &&
         o.side(side).begun.load() == before.begun;
}

// Marks one side of an owner disturbed for the lifetime of the object.
class Disturbance {
public:
  Disturbance(OwnerSlot &owner, Side side) : count_(owner.side(side)) { count_.begun.fetch_add(1); }
  ~Disturbance() { count_.ended.fetch_add(1); }
  Disturbance(const Disturbance &) = delete;
  Disturbance &operator=(const Disturbance &) = delete;

private:
  DisturbCount &count_;
};

// --- Publishing segments and permits ----------------------------------------

int publish_seg(OwnerSlot &slot, const SegInfo &info) {
  for (int attempt = 0; attempt < kSegRecords; ++attempt) {
    int index = static_cast<int>(slot.next_seg.fetch_add(1) % kSegRecords);
    if (slot.segs[index].write([&](std::uint64_t(&w)[5]) { encode_seg(info, w); }))
      return index;
  }
  return -1;
}

void mark_seg(OwnerSlot &slot, int index, std::int64_t segid, Life life) {
  if (index < 0)
    return;
  slot.segs[index].write([&](std::uint64_t(&w)[5]) {
    if (static_cast<std::int64_t>(w[0]) == segid)
      w[4] = (w[4] & ~0xff00ULL) | static_cast<std::uint64_t>(life) << 8;
  });
}

struct PermitInfo {
  std::int64_t apid = -1;
  std::int32_t owner_pid = 0;
  std::int32_t owner_slot = -1;
  std::int64_t segid = -1;
  Life life = Life::Live;
  Via via = Via::Lib;
};

int publish_permit(OwnerSlot &slot, const PermitInfo &p) {
  for (int attempt = 0; attempt < kPermitRecords; ++attempt) {
    int index = static_cast<int>(slot.next_permit.fetch_add(1) % kPermitRecords);
    if (slot.permits[index].write([&](std::uint64_t(&w)[4]) {
          w[0] = static_cast<std::uint64_t>(p.apid);
          w[1] = static_cast<std::uint32_t>(p.owner_pid) |
                 static_cast<std::uint64_t>(static_cast<std::uint32_t>(p.owner_slot)) << 32;
          w[2] = static_cast<std::uint64_t>(p.segid);
          w[3] = static_cast<std::uint64_t>(p.life) | static_cast<std::uint64_t>(p.via) << 8;
        }))
      return index;
  }
  return -1;
}

void mark_permit(OwnerSlot &slot, int index, std::int64_t apid, Life life) {
  if (index < 0)
    return;
  slot.permits[index].write([&](std::uint64_t(&w)[4]) {
    if (static_cast<std::int64_t>(w[0]) == apid)
      w[3] = (w[3] & ~0xffULL) | static_cast<std::uint64_t>(life);
  });
}

bool read_seg(int slot, int index, SegInfo *out) {
  std::uint64_t w[5];
  if (!g_shared->owners[slot].segs[index].read(w))
    return false;
  *out = decode_seg(w);
  return out->segid != 0;
}

bool read_permit(int slot, int index, PermitInfo *out) {
  std::uint64_t w[4];
  if (!g_shared->owners[slot].permits[index].read(w))
    return false;
  out->apid = static_cast<std::int64_t>(w[0]);
  out->owner_pid = static_cast<std::int32_t>(w[1] & 0xffffffff);
  out->owner_slot = static_cast<std::int32_t>(w[1] >> 32);
  out->segid = static_cast<std::int64_t>(w[2]);
  out->life = static_cast<Life>(w[3] & 0xff);
  out->via = static_cast<Via>((w[3] >> 8) & 0xff);
  return out->apid != 0;
}

// --- Errno classes -----------------------------------------------------------

bool errno_expected(int err) {
  switch (err) {
  case EINVAL:
  case ENOENT:
  case EACCES:
  case EFAULT:
  case ENOMEM:
  case EINTR:
  case ENOTTY:
  case EEXIST:
  case ENOSPC:
  case EPERM:
  case EAGAIN:
  case EOVERFLOW:
  case XPMEM_ABI_ERRNO_NOPROC:
    return true;
  default:
    return false;
  }
}

// --- The worker process --------------------------------------------------------

// A buffer this worker exports; only the thread holding `lock` changes it.
struct OwnedBuffer {
  std::mutex lock;
  std::uint64_t gen = 0;
  Layout layout;
  bool shared_mapping = false;
  // Leading pages of the slot that are a plain hole (after an unmap); the
  // rest of the slot is always our PROT_NONE reservation.
  std::size_t hole_pages = 0;
  bool scratch_reserved = true; // the scratch slot still holds our reservation
};

class Worker {
public:
  Worker(int slot, std::uint32_t incarnation) : slot_(slot), incarnation_(incarnation) {}
  [[noreturn]] void run();

  // The raw descriptor: ioctls hold the lock shared, replacing the file
  // holds it exclusively, so a replaced file is released (and its objects
  // torn down) before the replacement's disturbance ends.
  std::shared_mutex raw_lock;
  int raw_fd = -1;
  std::atomic<std::uint32_t> raw_epoch{0};
  OwnedBuffer buffers[kBuffers];
  std::int64_t anchor_segid = -1; // our whole address space, for cycle adverts

  // Maps buffer b with `pages` pages over its slot and fills generation gen.
  bool map_buffer(unsigned b, std::size_t pages, bool shared, std::uint64_t gen);
  void fill_buffer(unsigned b);
  void publish_buffer(unsigned b);

private:
  int slot_;
  std::uint32_t incarnation_;
};

void Worker::fill_buffer(unsigned b) {
  OwnedBuffer &buf = buffers[b];
  auto *words = reinterpret_cast<volatile std::uint64_t *>(slot_address(b));
  const std::uint32_t pid = static_cast<std::uint32_t>(getpid());
  for (std::size_t p = 0; p < buf.layout.pages; ++p) {
    std::uint64_t low = magic::pack_low(
        {pid, b, static_cast<std::uint32_t>(p), static_cast<std::uint32_t>(buf.gen), 0, false});
    std::uint64_t hash = magic::page_hash(low);
    for (unsigned w = 0; w < kPage / 8; ++w) {
      std::uint64_t word_low = low | (w & 0xf);
      words[p * (kPage / 8) + w] = word_low | magic::check_byte(word_low, hash) << 56;
    }
  }
}

void Worker::publish_buffer(unsigned b) {
  BufferPublic &pub = my_slot().buffers[b];
  pub.layout.store(buffers[b].layout.pack());
  pub.floor.store(buffers[b].gen, std::memory_order_release);
}

bool Worker::map_buffer(unsigned b, std::size_t pages, bool shared, std::uint64_t gen) {
  OwnedBuffer &buf = buffers[b];
  void *want = reinterpret_cast<void *>(slot_address(b));
  if (buf.hole_pages) {
    // Take the hole back without replacing anything the kernel may have
    // put there meanwhile.
    std::size_t len = buf.hole_pages * kPage;
    void *r = mmap(want, len, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    if (r != want) {
      if (r != MAP_FAILED)
        munmap(r, len);
      return false;
    }
    buf.hole_pages = 0;
  }
  void *p = mmap(want, pages * kPage, PROT_READ | PROT_WRITE,
                 (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  if (p != want)
    fail("mapping buffer %u over its slot: %s", b, strerror(errno));
  if (buf.layout.mapped && buf.layout.pages > pages) {
    // Give the rest of a larger old buffer back to the reservation.
    void *tail = reinterpret_cast<char *>(want) + pages * kPage;
    mmap(tail, (buf.layout.pages - pages) * kPage, PROT_NONE,
         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
  }
  // A whole aligned 2 MiB private buffer may become one huge page (with
  // THP "madvise" or "always"); resizing or discarding part of it splits it.
  if (pages == kSlotPages && !shared)
    madvise(want, pages * kPage, MADV_HUGEPAGE);
  buf.layout = Layout{true, PROT_READ | PROT_WRITE, pages};
  buf.shared_mapping = shared;
  buf.gen = gen;
  fill_buffer(b);
  publish_buffer(b);
  return true;
}

// --- One fuzzing thread ------------------------------------------------------

struct MySeg {
  SegInfo info;
  int record = -1;
  std::uint32_t epoch = 0; // raw registration it was made on
};

struct MyPermit {
  std::int64_t apid = -1;
  Via via = Via::Lib;
  std::uint32_t epoch = 0;
  int record = -1;
  SegInfo seg; // what the permit maps; unknown (owner_slot -1) if picked by id
  bool writable = false;
};

struct MyAtt {
  std::uintptr_t addr = 0;
  std::uint64_t size = 0; // page aligned
  std::int64_t apid = -1;
  SegInfo seg;
  std::uint64_t offset = 0;
  bool writable = false; // permit allows writes
  int prot = PROT_READ;  // -1: unknown (a permit picked by id: writable or not)
  bool cycle = false;    // a self-covering window: never verified, never written
};

// What one guarded touch reads and writes.  The accessor runs under
// touch(): it keeps all state here, in memory, and reports the first
// mismatch instead of acting on it.
struct TouchJob {
  static constexpr int kMaxPages = 8;
  std::uintptr_t page_addr[kMaxPages];
  std::uint64_t source[kMaxPages]; // exporter address of that page
  bool verify[kMaxPages];
  bool scribble[kMaxPages];
  int npages = 0;
  std::int32_t owner_pid = 0;
  int owner_slot = -1;
  std::uint32_t writer = 0;
  unsigned words = kPage / 8; // words to check per page
  // A copy the kernel made: the floor was loaded before the copy started,
  // and a word may be torn.
  bool fixed_floor = false, fixed_floor_check = false, tolerate_torn_words = false;
  std::uint64_t fixed_floor_value = 0;
  // Progress and findings.
  volatile int current = -1;
  volatile int verified = 0;
  volatile bool bad = false;
  volatile std::uint64_t bad_value = 0, bad_addr = 0, bad_floor = 0;
  volatile int bad_kind = 0; // 1 garbage, 2 wrong identity, 3 stale generation
};

void run_touch_job(void *context) {
  auto *job = static_cast<TouchJob *>(context);
  for (int i = 0; i < job->npages; ++i) {
    job->current = i;
    auto *words = reinterpret_cast<volatile std::uint64_t *>(job->page_addr[i]);
    unsigned b = 0, p = 0;
    bool check = job->verify[i] && in_slots(job->source[i], &b, &p);
    std::uint64_t floor = job->fixed_floor_value;
    bool check_gen = job->fixed_floor && job->fixed_floor_check;
    if (check && job->owner_slot >= 0 && !job->fixed_floor) {
      const OwnerSlot &o = g_shared->owners[job->owner_slot];
      // Only the incarnation that owns the segment has a meaningful floor.
      if (o.pid.load() == job->owner_pid) {
        floor = o.buffers[b].floor.load(std::memory_order_acquire);
        check_gen = o.pid.load() == job->owner_pid;
      }
    }
    int torn = 0;
    for (unsigned w = 0; w < job->words; ++w) {
      std::uint64_t v = words[w];
      if (!check || v == 0)
        continue;
      magic::Fields f;
      int kind = 0;
      if (!magic::unpack(v, &f))
        kind = 1;
      else if (f.pid != (static_cast<std::uint32_t>(job->owner_pid) & 0x3fffff) || f.buffer != b ||
               f.page != (p & 0xff) || f.word != (w & 0xf) || (f.scribble && w != 0))
        kind = 2;
      else if (!f.scribble && check_gen && magic::older(f.gen, floor))
        kind = 3;
      // The kernel copies byte by byte (rep movsb): a word it copies out
      // while the owner rewrites it, or a page replaced in the middle of
      // the copy, can come out torn (bytes of the old value, of the new,
      // or zero), and so can word 0 while the kernel writes a scribble
      // into it (op_kernel_copy).  Only the generation, the scribble bit
      // and the check byte differ between values of one word; a page that
      // was really stale has every word old, not one or two.
      if (kind && (w == 0 || job->tolerate_torn_words) &&
          magic::maybe_torn(v, magic::pack_low({static_cast<std::uint32_t>(job->owner_pid), b, p, 0,
                                                w, false})) &&
          (w == 0 || ++torn <= 2))
        kind = 0;
      if (kind && !job->bad) {
        job->bad = true;
        job->bad_kind = kind;
        job->bad_value = v;
        job->bad_addr = job->source[i] + w * 8;
        job->bad_floor = floor;
      }
    }
    if (check)
      job->verified = job->verified + 1;
    if (job->scribble[i] && check)
      words[0] = magic::scribble(static_cast<std::uint32_t>(job->owner_pid), b, p, job->writer);
  }
  job->current = -1;
}

class Fuzzer {
public:
  Fuzzer(Worker &worker, int thread, std::uint64_t seed)
      : w_(worker), thread_(static_cast<std::uint16_t>(thread)), rng_(seed) {}
  ~Fuzzer();
  void run();

private:
  // Plumbing.
  OwnerSlot &me() { return my_slot(); }
  Counters &counters() { return g_shared->counters; }
  struct Outcome {
    long ret;
    int err;
  };
  std::uint64_t log_begin(Op op, Via via, std::initializer_list<std::uint64_t> args) {
    return me().ring.begin(op, via, thread_, args);
  }
  void log_end(std::uint64_t index, long ret, int err) { me().ring.complete(index, ret, err); }
  Outcome raw_ioctl(Op op, unsigned cmd, void *arg, std::initializer_list<std::uint64_t> args);
  template <typename F>
  Outcome lib_call(Op op, std::initializer_list<std::uint64_t> args, F &&call);
  void judge(Op op, const Outcome &o, bool must_fail, const char *why);
  Via pick_via() { return rng_.percent(50) ? Via::Raw : Via::Lib; }
  bool raw_current(std::uint32_t epoch) const { return epoch == w_.raw_epoch.load(); }

  // Bad user pointers for the ioctl argument.
  enum class Ptr { Valid, Misaligned, Null, Kernel, Unmapped, ReadOnly, Straddle };
  Ptr pick_ptr();
  template <typename S> S *place(Ptr kind, S &local);
  static bool ptr_must_fail(Ptr kind, bool has_out_param) {
    return kind == Ptr::Null || kind == Ptr::Kernel || kind == Ptr::Unmapped ||
           kind == Ptr::Straddle || (kind == Ptr::ReadOnly && has_out_param);
  }

  // Picking ids.
  bool pick_table_seg(bool foreign, bool live_only, SegInfo *out);
  bool pick_table_permit(bool foreign, PermitInfo *out);
  std::int64_t random_id();

  // The operations.
  void op_version();
  void op_make();
  void op_remove();
  void op_get();
  void op_release();
  void op_attach();
  void op_detach();
  void op_fork_cmd(Op op);
  void op_unknown();
  void op_touch();
  void op_munmap_att();
  void op_mremap_att();
  void op_mprotect_att();
  void op_kernel_copy();
  void op_buffer(Op op);
  void op_fork();
  void op_reopen();
  void op_advertise();
  void op_answer();
  [[noreturn]] void op_exit();

  // Helpers.
  void attach_geometry(const MyPermit &permit, std::uint64_t *offset, std::uint64_t *size,
                       std::uint64_t *hint, bool *self_window);
  void fresh_touch(const MyAtt &att, const Calm &owner_before, const Calm &self_before);
  Fault touch_att(const MyAtt &att, int max_pages, bool allow_writes, TouchJob *job);
  void report_touch(const TouchJob &job, const MyAtt &att);
  void forget_att(std::size_t index) {
    atts_[index] = atts_.back();
    atts_.pop_back();
  }
  std::size_t huge_atts() const {
    return static_cast<std::size_t>(
        std::count_if(atts_.begin(), atts_.end(), [](const MyAtt &a) { return a.size > kHuge; }));
  }
  bool is_own_att(std::uint64_t addr) const {
    for (const MyAtt &a : atts_)
      if (addr >= a.addr && addr < a.addr + a.size)
        return true;
    return false;
  }
  std::uintptr_t free_cycle_address(std::uint64_t pages);
  [[noreturn]] void child_main(std::uint64_t seed);

  Worker &w_;
  std::uint16_t thread_;
  Rng rng_;
  std::vector<MySeg> segs_;
  std::vector<MyPermit> permits_;
  std::vector<MyAtt> atts_;
  std::vector<std::int64_t> dead_segids_, dead_apids_; // removed / released by us
  char *arg_pages_ = nullptr;                          // [read-write][PROT_NONE][read-only]
  int pipe_[2] = {-1, -1}; // for copies the kernel makes to and from attachments
  std::uint64_t copy_[kPage / 8];
};

Fuzzer::~Fuzzer() {
  if (arg_pages_)
    munmap(arg_pages_, 3 * kPage);
  for (int fd : pipe_)
    if (fd >= 0)
      close(fd);
}

Fuzzer::Outcome Fuzzer::raw_ioctl(Op op, unsigned cmd, void *arg,
                                  std::initializer_list<std::uint64_t> args) {
  std::uint64_t index = log_begin(op, Via::Raw, args);
  long ret;
  int err = 0;
  {
    std::shared_lock lock(w_.raw_lock);
    ret = ioctl(w_.raw_fd, cmd, arg);
    if (ret < 0)
      err = errno;
  }
  log_end(index, ret, err);
  counters().calls[op < kIoctlOps ? op : OpUnknown].fetch_add(1, std::memory_order_relaxed);
  return {ret, err};
}

template <typename F>
Fuzzer::Outcome Fuzzer::lib_call(Op op, std::initializer_list<std::uint64_t> args, F &&call) {
  std::uint64_t index = log_begin(op, Via::Lib, args);
  errno = 0;
  long ret = call();
  int err = ret < 0 ? errno : 0;
  log_end(index, ret, err);
  counters().calls[op].fetch_add(1, std::memory_order_relaxed);
  return {ret, err};
}

void Fuzzer::judge(Op op, const Outcome &o, bool must_fail, const char *why) {
  if (o.ret >= 0 && must_fail)
    fail("%s succeeded (returned %ld) although it must fail: %s", op_name(op), o.ret, why);
  if (o.ret < 0 && !errno_expected(o.err))
    fail("%s failed with errno %d (%s), which is not an expected class", op_name(op), o.err,
         OpRing<>::errno_name(o.err));
}

Fuzzer::Ptr Fuzzer::pick_ptr() {
  if (rng_.percent(85))
    return Ptr::Valid;
  static const Ptr bad[] = {Ptr::Misaligned, Ptr::Null,     Ptr::Kernel,
                            Ptr::Unmapped,   Ptr::ReadOnly, Ptr::Straddle};
  return rng_.pick(bad);
}

// Where the ioctl argument goes.  Valid and Misaligned pointers are readable
// and writable, so the caller reads results back from the returned pointer.
template <typename S> S *Fuzzer::place(Ptr kind, S &local) {
  if (!arg_pages_) {
    void *p = mmap(nullptr, 3 * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
      fail("mmap of the argument pages: %s", strerror(errno));
    arg_pages_ = static_cast<char *>(p);
    mprotect(arg_pages_ + kPage, kPage, PROT_NONE);
    mprotect(arg_pages_ + 2 * kPage, kPage, PROT_READ);
  }
  switch (kind) {
  case Ptr::Valid:
    return &local;
  case Ptr::Misaligned: {
    char *at = arg_pages_ + 1 + 8 * rng_.below(4);
    std::memcpy(at, &local, sizeof(S));
    return reinterpret_cast<S *>(at);
  }
  case Ptr::Null:
    return nullptr;
  case Ptr::Kernel:
    return reinterpret_cast<S *>(rng_.pick(kKernelAddresses));
  case Ptr::Unmapped:
    return reinterpret_cast<S *>(kNeverMapped + kPage * rng_.below(1024));
  case Ptr::ReadOnly: {
    char *ro = arg_pages_ + 2 * kPage;
    mprotect(ro, kPage, PROT_READ | PROT_WRITE);
    std::memcpy(ro, &local, sizeof(S));
    mprotect(ro, kPage, PROT_READ);
    return reinterpret_cast<S *>(ro);
  }
  case Ptr::Straddle: {
    // Its first half is readable, the rest lies on the PROT_NONE page.
    constexpr std::size_t readable = sizeof(S) / 2;
    char *at = arg_pages_ + kPage - readable;
    std::memcpy(at, &local, readable);
    return reinterpret_cast<S *>(at);
  }
  }
  return &local;
}

std::int64_t Fuzzer::random_id() {
  switch (rng_.below(6)) {
  case 0:
    return 0;
  case 1:
    return -1;
  case 2:
    return INT64_MIN;
  case 3:
    return static_cast<std::int64_t>(rng_.between(1, 1000)); // small, pid-like
  default:
    return static_cast<std::int64_t>(rng_.next() & ((std::uint64_t{1} << 62) - 1)) | 1;
  }
}

bool Fuzzer::pick_table_seg(bool foreign, bool live_only, SegInfo *out) {
  const int procs = g_shared->options.procs;
  for (int attempt = 0; attempt < 16; ++attempt) {
    int slot = static_cast<int>(rng_.below(procs));
    if (slot == g_slot && foreign)
      continue;
    if (!read_seg(slot, static_cast<int>(rng_.below(kSegRecords)), out))
      continue;
    if (foreign && out->owner_pid == getpid())
      continue;
    if (!foreign && out->owner_pid != getpid())
      continue;
    if (live_only && out->life != Life::Live)
      continue;
    return true;
  }
  return false;
}

bool Fuzzer::pick_table_permit(bool foreign, PermitInfo *out) {
  const int procs = g_shared->options.procs;
  for (int attempt = 0; attempt < 16; ++attempt) {
    int slot = foreign ? static_cast<int>(rng_.below(procs)) : g_slot;
    if (!read_permit(slot, static_cast<int>(rng_.below(kPermitRecords)), out))
      continue;
    if (foreign != (out->owner_pid != getpid()))
      continue;
    return true;
  }
  return false;
}

// --- version, make, remove ---------------------------------------------------

void Fuzzer::op_version() {
  Outcome o;
  if (rng_.percent(50))
    o = raw_ioctl(OpVersion, XPMEM_CMD_VERSION, nullptr, {});
  else
    o = lib_call(OpVersion, {}, [] { return xpmem_version(); });
  if (o.ret != XPMEM_ABI_VERSION)
    fail("version returned %ld (errno %d), expected %#x", o.ret, o.err, XPMEM_ABI_VERSION);
}

void Fuzzer::op_make() {
  if (segs_.size() >= 10) {
    op_remove();
    return;
  }
  std::uint64_t vaddr = 0, size = 0;
  SegKind kind = SegKind::Other;
  bool must_fail = false;
  const char *why = "";
  std::uint64_t r = rng_.below(100);
  if (r < 25) {
    kind = SegKind::WholeSpace;
    size = kMaxAddr;
  } else if (r < 55) {
    kind = SegKind::Buffer;
    unsigned b = static_cast<unsigned>(rng_.below(kBuffers));
    vaddr = slot_address(b);
    // Sometimes beyond the buffer: the rest of the slot is a reserved hole.
    size = kPage * (rng_.percent(70) ? rng_.between(1, kMaxBufferPages) : kSlotPages);
  } else if (r < 65) {
    kind = SegKind::Arena;
    vaddr = kArenaBase;
    size = kBuffers * kSlotBytes;
  } else {
    static const std::uint64_t vaddrs[] = {0,
                                           1,
                                           kPage - 1,
                                           kPage,
                                           kArenaBase + 8,
                                           kTaskSize47 - kPage,
                                           kTaskSize47,
                                           kTaskSize47 + kPage,
                                           0x7fffffffffffULL,
                                           std::uint64_t{1} << 47,
                                           std::uint64_t{1} << 56,
                                           kBeyondUser,
                                           0xffff888000000000ULL,
                                           kMaxAddr - kPage + 1,
                                           kMaxAddr};
    vaddr = rng_.percent(80) ? rng_.pick(vaddrs) : (rng_.next() & 0x7ffffffff000ULL);
    static const std::uint64_t sizes[] = {0,
                                          1,
                                          kPage - 1,
                                          kPage,
                                          kPage + 1,
                                          2 * kPage,
                                          std::uint64_t{1} << 30,
                                          std::uint64_t{1} << 40,
                                          kTaskSize47,
                                          kTaskSize47 + kPage,
                                          std::uint64_t{1} << 47,
                                          std::uint64_t{1} << 60,
                                          kMaxAddr,
                                          kMaxAddr - kPage + 1};
    size = rng_.percent(85) ? rng_.pick(sizes) : (0 - vaddr) + kPage * rng_.below(3);
    if (vaddr % kPage)
      must_fail = true, why = "unaligned address";
    else if (size == 0)
      must_fail = true, why = "zero size";
    else if (size != kMaxAddr && size % kPage)
      must_fail = true, why = "unaligned size";
    else if (vaddr >= g_task_size)
      must_fail = true, why = "address beyond the task size";
    else if (size != kMaxAddr && (vaddr + size < vaddr || vaddr + size > g_task_size))
      must_fail = true, why = "range wraps or ends beyond the task size";
    if (vaddr == 0 && size == kMaxAddr)
      kind = SegKind::WholeSpace;
  }
  static const std::uint64_t modes[] = {0600, 0666, 0644, 0640, 0400, 0604, 0, 0777};
  std::uint64_t mode = rng_.pick(modes);
  std::int32_t type = XPMEM_ABI_PERMIT_MODE;
  if (rng_.percent(4)) {
    static const std::uint64_t bad_modes[] = {01000, 04777, 0x10000, ~std::uint64_t{0}};
    mode = rng_.pick(bad_modes);
    must_fail = true, why = "mode bits beyond 0777";
  }
  if (rng_.percent(4)) {
    static const std::int32_t bad_types[] = {0, 2, -1, 0x100};
    type = rng_.pick(bad_types);
    must_fail = true, why = "bad permit type";
  }

  Via via = pick_via();
  Outcome o;
  std::int64_t segid = -1;
  if (via == Via::Raw) {
    xpmem_cmd_make cmd{};
    cmd.vaddr = vaddr;
    cmd.size = size;
    cmd.permit_type = type;
    cmd.permit_value = mode;
    if (rng_.percent(3))
      cmd.__pad = static_cast<std::uint32_t>(rng_.next()); // ignored padding
    Ptr kind_ptr = pick_ptr();
    xpmem_cmd_make *arg = place(kind_ptr, cmd);
    if (ptr_must_fail(kind_ptr, true))
      must_fail = true, why = "bad argument pointer";
    o = raw_ioctl(OpMake, XPMEM_CMD_MAKE, arg,
                  {vaddr, size, mode, static_cast<std::uint64_t>(type)});
    if (o.ret >= 0 && (kind_ptr == Ptr::Valid || kind_ptr == Ptr::Misaligned))
      segid = arg->segid;
  } else {
    o = lib_call(OpMake, {vaddr, size, mode, static_cast<std::uint64_t>(type)}, [&] {
      return xpmem_make(reinterpret_cast<void *>(vaddr), size, type,
                        reinterpret_cast<void *>(mode));
    });
    if (o.ret >= 0)
      segid = o.ret;
  }
  judge(OpMake, o, must_fail, why);
  if (o.ret < 0)
    return;
  if (segid <= 0)
    fail("make succeeded with segid %lld, not a positive id", (long long)segid);
  MySeg seg;
  seg.info.segid = segid;
  seg.info.owner_pid = getpid();
  seg.info.owner_slot = g_slot;
  seg.info.vaddr = vaddr;
  seg.info.size = size;
  seg.info.kind = kind;
  seg.info.verify = true;
  seg.info.via = via;
  seg.epoch = w_.raw_epoch.load();
  seg.record = publish_seg(me(), seg.info);
  segs_.push_back(seg);
}

void Fuzzer::op_remove() {
  std::int64_t segid;
  bool must_fail = false;
  const char *why = "";
  bool own = false, ours_maybe = false;
  std::size_t own_index = 0;
  std::uint64_t r = rng_.below(100);
  SegInfo info;
  if (r < 45 && !segs_.empty()) {
    own = true;
    own_index = rng_.below(segs_.size());
    segid = segs_[own_index].info.segid;
  } else if (r < 55 && !dead_segids_.empty()) {
    segid = dead_segids_[rng_.below(dead_segids_.size())];
    must_fail = true, why = "segment already removed";
  } else if (r < 70 && pick_table_seg(true, false, &info)) {
    segid = info.segid;
    must_fail = true, why = "another process's segment";
  } else if (r < 80 && pick_table_seg(false, false, &info)) {
    segid = info.segid; // perhaps another thread's
    ours_maybe = true;
  } else {
    segid = random_id();
    must_fail = true, why = segid <= 0 ? "id <= 0" : "random id";
  }
  Via via = own ? (rng_.percent(85) ? segs_[own_index].info.via : pick_via()) : pick_via();
  Outcome o;
  {
    // Removing one of ours kills other processes' attachments of it.
    std::optional<Disturbance> disturb;
    if (own || ours_maybe)
      disturb.emplace(me(), Side::Exporter);
    if (via == Via::Raw) {
      xpmem_cmd_remove cmd{segid};
      Ptr kind = pick_ptr();
      if (ptr_must_fail(kind, false))
        must_fail = true, why = "bad argument pointer";
      o = raw_ioctl(OpRemove, XPMEM_CMD_REMOVE, place(kind, cmd),
                    {static_cast<std::uint64_t>(segid)});
    } else {
      o = lib_call(OpRemove, {static_cast<std::uint64_t>(segid)},
                   [&] { return xpmem_remove(segid); });
    }
  }
  judge(OpRemove, o, must_fail, why);
  if (own) {
    MySeg seg = segs_[own_index];
    // A failed remove of our own segment leaves it to the next try, unless
    // it is gone already (another thread, a replaced descriptor).
    if (o.ret == 0 || o.err == ENOENT || rng_.percent(30)) {
      segs_[own_index] = segs_.back();
      segs_.pop_back();
    }
    if (o.ret == 0) {
      mark_seg(me(), seg.record, segid, Life::DeadCertain);
      dead_segids_.push_back(segid);
      if (dead_segids_.size() > 16)
        dead_segids_.erase(dead_segids_.begin());
    }
  }
}

// --- get, release ------------------------------------------------------------

void Fuzzer::op_get() {
  if (permits_.size() >= 12) {
    op_release();
    return;
  }
  SegInfo target;
  bool must_fail = false;
  const char *why = "";
  std::uint64_t r = rng_.below(100);
  if (r < 30 && !segs_.empty()) {
    target = segs_[rng_.below(segs_.size())].info;
  } else if (r < 75 && pick_table_seg(true, true, &target)) {
  } else if (r < 82 && !dead_segids_.empty()) {
    target.segid = dead_segids_[rng_.below(dead_segids_.size())];
    must_fail = true, why = "segment removed";
  } else if (r < 88 && pick_table_seg(true, false, &target)) {
    if (target.life == Life::DeadCertain)
      must_fail = true, why = "segment removed by its owner";
  } else {
    target = SegInfo{};
    target.segid = random_id();
    must_fail = true, why = target.segid <= 0 ? "segid <= 0" : "random segid";
  }
  std::int32_t flags = rng_.percent(65) ? XPMEM_ABI_RDWR : XPMEM_ABI_RDONLY;
  if (rng_.percent(6)) {
    static const std::int32_t odd_flags[] = {0, 3, 4, 0x80, -1, INT32_MIN};
    flags = rng_.pick(odd_flags);
    if (flags != 3)
      must_fail = true, why = "bad flags";
  }
  std::int32_t type = XPMEM_ABI_PERMIT_MODE;
  if (rng_.percent(4)) {
    type = rng_.percent(50) ? 0 : 2;
    must_fail = true, why = "bad permit type";
  }
  Via via = pick_via();
  Outcome o;
  std::int64_t apid = -1;
  if (via == Via::Raw) {
    xpmem_cmd_get cmd{};
    cmd.segid = target.segid;
    cmd.flags = flags;
    cmd.permit_type = type;
    cmd.permit_value =
        rng_.percent(90) ? 0 : rng_.pick({std::uint64_t{0600}, std::uint64_t{0666}, rng_.next()});
    Ptr kind = pick_ptr();
    xpmem_cmd_get *arg = place(kind, cmd);
    if (ptr_must_fail(kind, true))
      must_fail = true, why = "bad argument pointer";
    o = raw_ioctl(OpGet, XPMEM_CMD_GET, arg,
                  {static_cast<std::uint64_t>(target.segid), static_cast<std::uint64_t>(flags),
                   static_cast<std::uint64_t>(type), cmd.permit_value});
    if (o.ret >= 0 && (kind == Ptr::Valid || kind == Ptr::Misaligned))
      apid = arg->apid;
  } else {
    o = lib_call(OpGet,
                 {static_cast<std::uint64_t>(target.segid), static_cast<std::uint64_t>(flags),
                  static_cast<std::uint64_t>(type)},
                 [&] { return xpmem_get(target.segid, flags, type, nullptr); });
    if (o.ret >= 0)
      apid = o.ret;
  }
  judge(OpGet, o, must_fail, why);
  if (o.ret < 0)
    return;
  if (apid <= 0)
    fail("get succeeded with apid %lld, not a positive id", (long long)apid);
  MyPermit permit;
  permit.apid = apid;
  permit.via = via;
  permit.epoch = w_.raw_epoch.load();
  permit.seg = target;
  permit.writable = flags == XPMEM_ABI_RDWR;
  permit.record = publish_permit(me(), {apid, getpid(), g_slot, target.segid, Life::Live, via});
  permits_.push_back(permit);
}

void Fuzzer::op_release() {
  std::int64_t apid;
  bool must_fail = false, own = false, ours_maybe = false;
  const char *why = "";
  std::size_t own_index = 0;
  PermitInfo info;
  std::uint64_t r = rng_.below(100);
  if (r < 50 && !permits_.empty()) {
    own = true;
    own_index = rng_.below(permits_.size());
    apid = permits_[own_index].apid;
  } else if (r < 60 && !dead_apids_.empty()) {
    apid = dead_apids_[rng_.below(dead_apids_.size())];
    must_fail = true, why = "permit already released";
  } else if (r < 75 && pick_table_permit(true, &info)) {
    apid = info.apid;
    must_fail = true, why = "another process's permit";
  } else if (r < 82 && pick_table_permit(false, &info)) {
    apid = info.apid;
    ours_maybe = true;
  } else {
    apid = random_id();
    must_fail = true, why = apid <= 0 ? "apid <= 0" : "random apid";
  }
  Via via = own ? (rng_.percent(85) ? permits_[own_index].via : pick_via()) : pick_via();
  Outcome o;
  {
    // Another thread's permit: its attachments die under it.
    std::optional<Disturbance> disturb;
    if (ours_maybe)
      disturb.emplace(me(), Side::Attacher);
    if (via == Via::Raw) {
      xpmem_cmd_release cmd{apid};
      Ptr kind = pick_ptr();
      if (ptr_must_fail(kind, false))
        must_fail = true, why = "bad argument pointer";
      o = raw_ioctl(OpRelease, XPMEM_CMD_RELEASE, place(kind, cmd),
                    {static_cast<std::uint64_t>(apid)});
    } else {
      o = lib_call(OpRelease, {static_cast<std::uint64_t>(apid)},
                   [&] { return xpmem_release(apid); });
    }
  }
  judge(OpRelease, o, must_fail, why);
  if (own) {
    MyPermit permit = permits_[own_index];
    if (o.ret == 0 || o.err == ENOENT || rng_.percent(30)) {
      permits_[own_index] = permits_.back();
      permits_.pop_back();
    }
    if (o.ret == 0) {
      mark_permit(me(), permit.record, apid, Life::DeadCertain);
      dead_apids_.push_back(apid);
      if (dead_apids_.size() > 16)
        dead_apids_.erase(dead_apids_.begin());
    }
  }
}

// --- attach, detach ------------------------------------------------------------

std::uintptr_t Fuzzer::free_cycle_address(std::uint64_t pages) {
  // Random pages of a 64 GiB zone nobody maps: free unless we hit one of
  // the few windows placed there before (then attach fails with EEXIST).
  std::uint64_t span = kCycleZoneBytes / kPage - pages - 1;
  return kCycleZone + kPage * rng_.below(span);
}

// Offset, size and address for an attachment of one of our permits.
void Fuzzer::attach_geometry(const MyPermit &permit, std::uint64_t *offset, std::uint64_t *size,
                             std::uint64_t *hint, bool *self_window) {
  const SegInfo &seg = permit.seg;
  *hint = 0;
  *self_window = false;
  std::uint64_t pages = rng_.percent(70) ? rng_.between(1, 8) : rng_.between(1, kMaxBufferPages);
  unsigned b = static_cast<unsigned>(rng_.below(kBuffers));
  std::uint64_t p = rng_.below(kMaxBufferPages);
  // Mostly pages the owner has mapped now, so that touches reach data.
  if (seg.owner_slot >= 0 && rng_.percent(80)) {
    Layout lay = Layout::unpack(g_shared->owners[seg.owner_slot].buffers[b].layout.load());
    if (lay.mapped && lay.pages > 0) {
      p = rng_.below(lay.pages);
      pages = std::min<std::uint64_t>(pages, lay.pages - p);
    }
  }
  // Now and then the huge buffer's whole slot: one 2 MiB window, placed by
  // the kernel congruent with its source, which the module maps with a PMD
  // (Linux 6.12+) while the owner's slot is one transparent huge page.
  const bool whole_slot = b == kHugeBuffer && rng_.percent(25);
  if (whole_slot) {
    p = 0;
    pages = kSlotPages;
  }
  switch (seg.kind) {
  case SegKind::WholeSpace:
    if (!whole_slot && g_shared->options.self_windows && seg.owner_pid == getpid() &&
        rng_.percent(8)) {
      // A window that covers the attachment itself: map our own address V
      // at V, or a window starting up to 3 pages below it.
      std::uint64_t below = rng_.below(4);
      pages = below + rng_.between(1, 4);
      *hint = free_cycle_address(pages + 4) + 4 * kPage;
      *offset = *hint - below * kPage;
      *size = pages * kPage;
      *self_window = true;
      return;
    }
    if (whole_slot || rng_.percent(75)) {
      *offset = slot_address(b) + p * kPage;
    } else if (rng_.percent(50)) {
      *offset = scratch_address(b) + p * kPage;
    } else {
      *offset = (rng_.next() % kTaskSize47) & ~(kPage - 1);
      pages = rng_.between(1, 4);
    }
    if (!whole_slot && rng_.percent(3) && huge_atts() < 2)
      pages = rng_.between(kHuge / kPage + 1, (std::uint64_t{64} << 30) / kPage);
    *size = pages * kPage;
    return;
  case SegKind::Arena:
    *offset = b * kSlotBytes + p * kPage;
    *size = std::min<std::uint64_t>(pages, kSlotPages - p) * kPage;
    break;
  case SegKind::Buffer:
  case SegKind::Other: {
    std::uint64_t seg_pages = seg.extent() / kPage;
    if (seg_pages == 0 || seg.extent() >= kHuge) {
      *offset = 0;
      *size = kPage;
      break;
    }
    std::uint64_t first = rng_.below(seg_pages);
    *offset = first * kPage;
    *size = std::min<std::uint64_t>(pages, seg_pages - first) * kPage;
    if (rng_.percent(20)) {
      *offset = 0;
      *size = seg_pages * kPage;
    }
    break;
  }
  }
  if (rng_.percent(10))
    *size -= rng_.between(1, kPage - 1); // the module rounds the size up
}

void Fuzzer::op_attach() {
  if (atts_.size() >= 24) {
    op_detach();
    return;
  }
  MyPermit permit;
  bool must_fail = false, own = false;
  const char *why = "";
  PermitInfo info;
  std::uint64_t r = rng_.below(100);
  if (r < 72 && !permits_.empty()) {
    own = true;
    permit = permits_[rng_.below(permits_.size())];
  } else if (r < 80 && pick_table_permit(true, &info)) {
    permit.apid = info.apid;
    must_fail = true, why = "another process's permit";
  } else if (r < 86 && !dead_apids_.empty()) {
    permit.apid = dead_apids_[rng_.below(dead_apids_.size())];
    must_fail = true, why = "permit released";
  } else if (r < 92 && pick_table_permit(false, &info)) {
    permit.apid = info.apid; // ours, perhaps another thread's; segment unknown
    permit.via = info.via;
  } else {
    permit.apid = random_id();
    must_fail = true, why = permit.apid <= 0 ? "apid <= 0" : "random apid";
  }

  volatile int stack_marker = 0;
  const std::uintptr_t stack_page = reinterpret_cast<std::uintptr_t>(&stack_marker) & ~(kPage - 1);
  std::uint64_t offset = 0, size = kPage, hint = 0;
  bool self_window = false;
  if (own && permit.seg.known())
    attach_geometry(permit, &offset, &size, &hint, &self_window);
  else
    offset = kPage * rng_.below(16), size = kPage * rng_.between(1, 4);

  // Boundary mutations.
  if (!self_window && rng_.percent(18)) {
    switch (rng_.below(3)) {
    case 0: {
      static const std::int64_t offsets[] = {-1,
                                             -static_cast<std::int64_t>(kPage),
                                             1,
                                             static_cast<std::int64_t>(kPage) - 1,
                                             INT64_MAX,
                                             INT64_MIN,
                                             static_cast<std::int64_t>(kTaskSize47),
                                             static_cast<std::int64_t>(kBeyondUser)};
      offset = static_cast<std::uint64_t>(rng_.pick(offsets));
      break;
    }
    case 1: {
      static const std::uint64_t sizes[] = {0,           1,
                                            kPage - 1,   kPage + 1,
                                            kMaxAddr,    kMaxAddr - kPage + 2,
                                            kTaskSize47, std::uint64_t{1} << 47,
                                            kBeyondUser, std::uint64_t{1} << 60};
      size = rng_.pick(sizes);
      break;
    }
    default: {
      int k = static_cast<int>(rng_.below(7));
      if (k == 0)
        hint = rng_.between(1, kPage - 1);
      else if (k == 1)
        hint = kTaskSize47 - (rng_.percent(50) ? 0 : kPage);
      else if (k == 2)
        hint = rng_.percent(50) ? kBeyondUser : rng_.pick(kKernelAddresses);
      else if (k == 3)
        hint = stack_page; // occupied
      else if (k == 4 && !atts_.empty())
        hint = atts_[rng_.below(atts_.size())].addr; // occupied by our attachment
      else if (k == 5)
        hint = free_cycle_address(16) + rng_.below(kPage);
      else
        hint = free_cycle_address(size < kHuge ? size / kPage + 1 : 1);
      break;
    }
    }
  }
  // Successful huge attachments are rationed: they eat address space.
  if (size > kHuge && size <= g_task_size && huge_atts() >= 2)
    size = kPage;

  std::uint64_t aligned_size = (size + kPage - 1) & ~(kPage - 1);
  if (static_cast<std::int64_t>(offset) < 0)
    must_fail = true, why = "negative offset";
  else if (offset % kPage)
    must_fail = true, why = "unaligned offset";
  else if (size == 0)
    must_fail = true, why = "zero size";
  else if (size > g_task_size || aligned_size < size)
    must_fail = true, why = "size beyond the task size";
  else if (hint % kPage)
    must_fail = true, why = "unaligned address";
  else if (hint >= g_task_size)
    must_fail = true, why = "address beyond the task size";
  else if (offset >= g_task_size)
    must_fail = true, why = "offset beyond any segment";
  else if (hint && (is_own_att(hint) || hint == stack_page))
    must_fail = true, why = "address already mapped";
  else if (own && permit.seg.known() && offset + aligned_size > permit.seg.extent())
    must_fail = true, why = "window beyond the segment";

  // The calm snapshots for a fresh touch are taken before the attach.
  const SegInfo &seg = permit.seg;
  Calm owner_before, self_before;
  if (own && seg.verify && seg.owner_slot >= 0) {
    owner_before = calm_now(g_shared->owners[seg.owner_slot], Side::Exporter);
    self_before = calm_now(me(), Side::Attacher);
  }

  Via via = own ? (rng_.percent(90) ? permit.via : pick_via()) : pick_via();
  Outcome o;
  std::uint64_t addr = 0;
  if (via == Via::Raw) {
    xpmem_cmd_attach cmd{};
    cmd.apid = permit.apid;
    cmd.offset = static_cast<std::int64_t>(offset);
    cmd.size = size;
    cmd.vaddr = hint;
    cmd.fd = rng_.percent(90) ? -1 : static_cast<std::int32_t>(rng_.next());
    cmd.flags = rng_.percent(90) ? 0 : static_cast<std::int32_t>(rng_.next());
    Ptr kind = pick_ptr();
    xpmem_cmd_attach *arg = place(kind, cmd);
    if (ptr_must_fail(kind, true))
      must_fail = true, why = "bad argument pointer";
    o = raw_ioctl(OpAttach, XPMEM_CMD_ATTACH, arg,
                  {static_cast<std::uint64_t>(permit.apid), offset, size, hint});
    if (o.ret >= 0 && (kind == Ptr::Valid || kind == Ptr::Misaligned))
      addr = arg->vaddr;
  } else {
    o = lib_call(OpAttach, {static_cast<std::uint64_t>(permit.apid), offset, size, hint}, [&] {
      void *p = xpmem_attach(xpmem_addr{permit.apid, static_cast<off_t>(offset)}, size,
                             reinterpret_cast<void *>(hint));
      return p == reinterpret_cast<void *>(-1)
                 ? -1L
                 : static_cast<long>(reinterpret_cast<std::uintptr_t>(p));
    });
    if (o.ret >= 0)
      addr = static_cast<std::uint64_t>(o.ret);
  }
  judge(OpAttach, o, must_fail, why);
  if (o.ret < 0)
    return;
  if (addr == 0 || addr % kPage || addr >= g_task_size || (hint && addr != hint))
    fail("attach returned address %#llx for requested address %#llx", (unsigned long long)addr,
         (unsigned long long)hint);
  MyAtt att;
  att.addr = addr;
  att.size = aligned_size;
  att.apid = permit.apid;
  att.offset = offset;
  att.cycle = self_window;
  if (own) {
    att.seg = permit.seg;
    att.writable = permit.writable;
  }
  att.prot = own ? PROT_READ | (att.writable ? PROT_WRITE : 0) : -1;
  atts_.push_back(att);

  if (self_window) {
    counters().self_windows.fetch_add(1, std::memory_order_relaxed);
    TouchJob job;
    Fault f = touch_att(att, 2, false, &job);
    if (f.signal)
      counters().signals.fetch_add(1, std::memory_order_relaxed);
    if (rng_.percent(50)) {
      // Tearing it down invalidates the very window it covers.
      Outcome d = lib_call(OpDetach, {addr}, [&] {
        return static_cast<long>(xpmem_detach(reinterpret_cast<void *>(addr)));
      });
      if (d.ret != 0)
        fail("detach of a self-covering window at %#llx failed: %s", (unsigned long long)addr,
             OpRing<>::errno_name(d.err));
      forget_att(atts_.size() - 1);
    }
    return;
  }
  if (own && seg.verify && owner_before.calm && self_before.calm &&
      owner_before.pid == seg.owner_pid)
    fresh_touch(att, owner_before, self_before);
}

// A touch right after a successful attach, judged strictly: if neither the
// exporter nor this process was disturbed (see OwnerSlot) from before the
// attach until after the touch, and the exporter's layout says the page is
// mapped and readable (writable, for a write), any signal is a bug.  This is
// where a SIGBUS on a live attachment (a known lead) is caught.
void Fuzzer::fresh_touch(const MyAtt &att, const Calm &owner_before, const Calm &self_before) {
  const OwnerSlot &owner = g_shared->owners[att.seg.owner_slot];
  TouchJob job;
  job.owner_pid = att.seg.owner_pid;
  job.owner_slot = att.seg.owner_slot;
  job.writer = static_cast<std::uint32_t>(getpid());
  std::uint64_t att_pages = att.size / kPage;
  Layout layouts[kBuffers];
  for (unsigned b = 0; b < kBuffers; ++b)
    layouts[b] = Layout::unpack(owner.buffers[b].layout.load());
  for (std::uint64_t i = 0; i < att_pages && i < 256 && job.npages < TouchJob::kMaxPages; ++i) {
    std::uint64_t idx =
        att_pages <= TouchJob::kMaxPages ? i : rng_.below(std::min<std::uint64_t>(att_pages, 256));
    std::uint64_t source = att.seg.source(att.offset + idx * kPage);
    unsigned b, p;
    if (!in_slots(source, &b, &p) || !layouts[b].readable(p))
      continue;
    if (att.seg.kind != SegKind::WholeSpace && att.offset + (idx + 1) * kPage > att.seg.extent())
      continue;
    int n = job.npages++;
    job.page_addr[n] = att.addr + idx * kPage;
    job.source[n] = source;
    job.verify[n] = true;
    job.scribble[n] = att.writable && layouts[b].writable(p) && rng_.percent(50);
  }
  if (job.npages == 0)
    return;
  counters().fresh_checks.fetch_add(1, std::memory_order_relaxed);
  std::uint64_t index = log_begin(OpFreshTouch, Via::None,
                                  {att.addr, att.offset, static_cast<std::uint64_t>(att.seg.segid),
                                   static_cast<std::uint64_t>(job.npages)});
  Fault f = touch(run_touch_job, &job);
  log_end(index, f.signal, 0);
  counters().pages_verified.fetch_add(static_cast<std::uint64_t>(job.verified),
                                      std::memory_order_relaxed);
  if (job.bad)
    report_touch(job, att);
  if (!f.signal)
    return;
  counters().signals.fetch_add(1, std::memory_order_relaxed);
  if (still_calm(owner, Side::Exporter, owner_before) &&
      still_calm(me(), Side::Attacher, self_before)) {
    int i = job.current;
    unsigned b = 0, p = 0;
    if (i >= 0)
      in_slots(job.source[i], &b, &p);
    fail("LEAD: %s (si_code %d) at %#llx on a fresh attachment at %#llx (%llu bytes, offset "
         "%#llx, apid %lld, segid %lld of pid %d) while exporter, segment and permit were alive "
         "and undisturbed; exporter page: buffer %u page %u, layout mapped=%d prot=%d pages=%zu; "
         "access was a %s",
         strsignal(f.signal), f.code, (unsigned long long)f.addr, (unsigned long long)att.addr,
         (unsigned long long)att.size, (unsigned long long)att.offset, (long long)att.apid,
         (long long)att.seg.segid, att.seg.owner_pid, b, p, layouts[b].mapped, layouts[b].prot,
         layouts[b].pages, i >= 0 && job.scribble[i] ? "read, then a write of word 0" : "read");
  }
  me().ring.begin(OpSignal, Via::None, thread_, {static_cast<std::uint64_t>(f.signal), f.addr});
}

Fault Fuzzer::touch_att(const MyAtt &att, int max_pages, bool allow_writes, TouchJob *job) {
  job->owner_pid = att.seg.owner_pid;
  job->owner_slot = att.seg.known() ? att.seg.owner_slot : -1;
  job->writer = static_cast<std::uint32_t>(getpid());
  std::uint64_t att_pages = att.size / kPage;
  std::uint64_t span = std::min<std::uint64_t>(att_pages, 256);
  int n = static_cast<int>(std::min<std::uint64_t>(static_cast<std::uint64_t>(max_pages), span));
  bool verify = att.seg.known() && att.seg.verify && !att.cycle;
  for (int i = 0; i < n; ++i) {
    std::uint64_t idx =
        n == static_cast<int>(span) ? static_cast<std::uint64_t>(i) : rng_.below(span);
    job->page_addr[i] = att.addr + idx * kPage;
    job->source[i] = att.seg.known() ? att.seg.source(att.offset + idx * kPage) : 0;
    job->verify[i] = verify;
    job->scribble[i] =
        verify && allow_writes && att.writable && att.prot >= 0 && (att.prot & PROT_WRITE);
  }
  job->npages = n;
  std::uint64_t index = log_begin(OpTouch, Via::None,
                                  {att.addr, att.size, att.offset, static_cast<std::uint64_t>(n)});
  Fault f = touch(run_touch_job, job);
  log_end(index, f.signal, 0);
  counters().touches.fetch_add(1, std::memory_order_relaxed);
  counters().pages_verified.fetch_add(static_cast<std::uint64_t>(job->verified),
                                      std::memory_order_relaxed);
  if (job->bad)
    report_touch(*job, att);
  return f;
}

void Fuzzer::report_touch(const TouchJob &job, const MyAtt &att) {
  magic::Fields f;
  bool is_magic = magic::unpack(job.bad_value, &f);
  unsigned b = 0, p = 0;
  in_slots(job.bad_addr, &b, &p);
  static const char *const kinds[] = {"?", "garbage (not any page's magic)",
                                      "magic of another page, buffer or process",
                                      "a generation its owner had already replaced"};
  char found[200] = "not magic";
  if (is_magic)
    std::snprintf(found, sizeof found, "%s of pid %u buffer %u page %u word%%16 %u generation %u",
                  f.scribble ? "scribble" : "magic", f.pid, f.buffer, f.page, f.word, f.gen);
  fail("read %#llx through the attachment at %#llx (offset %#llx, segid %lld of pid %d, apid "
       "%lld): %s; expected pid %d buffer %u page %u word%%16 %u with a generation >= %llu "
       "(mod 2^16); found %s",
       (unsigned long long)job.bad_value, (unsigned long long)att.addr,
       (unsigned long long)att.offset, (long long)att.seg.segid, att.seg.owner_pid,
       (long long)att.apid, kinds[job.bad_kind], att.seg.owner_pid, b, p,
       static_cast<unsigned>((job.bad_addr % kPage) / 8 % 16), (unsigned long long)job.bad_floor,
       found);
}

void Fuzzer::op_detach() {
  std::uint64_t vaddr;
  int own = -1; // index of our attachment it names
  std::uint64_t r = rng_.below(100);
  volatile int on_stack = 0;
  if (r < 70 && !atts_.empty()) {
    own = static_cast<int>(rng_.below(atts_.size()));
    const MyAtt &a = atts_[static_cast<std::size_t>(own)];
    vaddr = a.addr;
    if (rng_.percent(20)) // anywhere inside names the whole attachment
      vaddr += rng_.below(std::min<std::uint64_t>(a.size, 64 * kPage));
  } else if (r < 80) {
    vaddr = reinterpret_cast<std::uintptr_t>(&on_stack); // not an attachment
  } else if (r < 90) {
    vaddr = kNeverMapped + kPage * rng_.below(1024);
  } else {
    // Not the 4-level TASK_SIZE edge: with 5-level paging another thread's
    // attachment may live there.
    static const std::uint64_t odd[] = {0,       1, kPage - 1, kBeyondUser, 0xffffffff81000000ULL,
                                        kMaxAddr};
    vaddr = rng_.pick(odd);
  }
  (void)on_stack;
  bool must_fail = false;
  const char *why = "";
  Via via = pick_via();
  Calm self_before = calm_now(me(), Side::Attacher);
  Outcome o;
  if (via == Via::Raw) {
    xpmem_cmd_detach cmd{vaddr};
    Ptr kind = pick_ptr();
    if (ptr_must_fail(kind, false))
      must_fail = true, why = "bad argument pointer";
    o = raw_ioctl(OpDetach, XPMEM_CMD_DETACH, place(kind, cmd), {vaddr});
  } else {
    o = lib_call(OpDetach, {vaddr},
                 [&] { return static_cast<long>(xpmem_detach(reinterpret_cast<void *>(vaddr))); });
  }
  judge(OpDetach, o, must_fail, why);
  if (own < 0)
    return;
  if (o.ret == 0) {
    forget_att(static_cast<std::size_t>(own));
  } else if (!must_fail && still_calm(me(), Side::Attacher, self_before)) {
    fail("detach of our own attachment at %#llx (address %#llx) failed: %s",
         (unsigned long long)atts_[static_cast<std::size_t>(own)].addr, (unsigned long long)vaddr,
         OpRing<>::errno_name(o.err));
  }
}

void Fuzzer::op_fork_cmd(Op op) {
  unsigned cmd = op == OpForkBegin ? XPMEM_CMD_FORK_BEGIN : XPMEM_CMD_FORK_END;
  Outcome o;
  if (rng_.percent(60)) {
    o = raw_ioctl(op, cmd, rng_.percent(80) ? nullptr : reinterpret_cast<void *>(rng_.next()), {});
  } else {
    o = lib_call(op, {},
                 [&] { return static_cast<long>(xpmem_ioctl(static_cast<int>(cmd), nullptr)); });
  }
  judge(op, o, false, "");
}

void Fuzzer::op_unknown() {
  unsigned cmd = 0;
  const unsigned known[] = {XPMEM_CMD_VERSION, XPMEM_CMD_MAKE,       XPMEM_CMD_REMOVE,
                            XPMEM_CMD_GET,     XPMEM_CMD_RELEASE,    XPMEM_CMD_ATTACH,
                            XPMEM_CMD_DETACH,  XPMEM_CMD_FORK_BEGIN, XPMEM_CMD_FORK_END};
  for (;;) {
    switch (rng_.below(5)) {
    case 0:
      cmd = _IO('x', rng_.between(9, 255));
      break;
    case 1: // a known number with direction or size bits: a different command
      cmd = _IOC(rng_.between(1, 3), 'x', rng_.below(9), rng_.between(1, 0x3fff));
      break;
    case 2: {
      // Other drivers' types, but none the VFS answers itself for every
      // file (FIGETBSZ is type 0, FIFREEZE 'X', FIOCLEX 'T', FICLONE 0x94,
      // FS_IOC_* 'f' and 0x15): those would not reach the module.
      unsigned type;
      do
        type = static_cast<unsigned>(rng_.below(256));
      while (type == 0 || type == 'X' || type == 'T' || type == 'f' || type == 0x94 ||
             type == 0x15 || type == 'x');
      cmd = _IOC(rng_.below(4), type, rng_.below(256), rng_.below(0x4000));
      break;
    }
    case 3:
      cmd = rng_.percent(50) ? 0xffffffffU : static_cast<unsigned>(rng_.next());
      break;
    default:
      cmd = _IO('x', rng_.between(9, 16));
      break;
    }
    if (std::find(std::begin(known), std::end(known), cmd) == std::end(known) &&
        ((cmd >> 8) & 0xff) != 'X' && ((cmd >> 8) & 0xff) != 'T' && ((cmd >> 8) & 0xff) != 0 &&
        ((cmd >> 8) & 0xff) != 'f' && ((cmd >> 8) & 0xff) != 0x94 && ((cmd >> 8) & 0xff) != 0x15)
      break;
  }
  void *arg = nullptr;
  switch (rng_.below(4)) {
  case 0:
    break;
  case 1: {
    static std::uint64_t scratch[64];
    arg = scratch; // writable: harmless whatever the command would do
    break;
  }
  case 2:
    arg = reinterpret_cast<void *>(rng_.pick(kKernelAddresses));
    break;
  default:
    arg = reinterpret_cast<void *>(kNeverMapped + rng_.below(1 << 20));
    break;
  }
  Outcome o;
  if (rng_.percent(60))
    o = raw_ioctl(OpUnknown, cmd, arg, {cmd, reinterpret_cast<std::uintptr_t>(arg)});
  else
    o = lib_call(OpUnknown, {cmd, reinterpret_cast<std::uintptr_t>(arg)},
                 [&] { return static_cast<long>(xpmem_ioctl(static_cast<int>(cmd), arg)); });
  judge(OpUnknown, o, true, "unknown command");
}

// --- memory operations on attachments ----------------------------------------

void Fuzzer::op_touch() {
  if (atts_.empty()) {
    op_attach();
    return;
  }
  const MyAtt &att = atts_[rng_.below(atts_.size())];
  TouchJob job;
  Fault f = touch_att(att, static_cast<int>(rng_.between(1, TouchJob::kMaxPages)), rng_.percent(50),
                      &job);
  if (f.signal) {
    counters().signals.fetch_add(1, std::memory_order_relaxed);
    me().ring.begin(OpSignal, Via::None, thread_, {static_cast<std::uint64_t>(f.signal), f.addr});
  }
}

void Fuzzer::op_munmap_att() {
  if (atts_.empty())
    return;
  std::size_t i = rng_.below(atts_.size());
  const MyAtt att = atts_[i];
  bool partial = att.size > kPage && rng_.percent(30);
  std::uint64_t at = att.addr, len = att.size;
  if (partial) {
    std::uint64_t pages = std::min<std::uint64_t>(att.size / kPage, 64);
    at = att.addr + kPage * rng_.below(pages);
    len = kPage * rng_.between(1, pages - (at - att.addr) / kPage);
    if (at == att.addr && len == att.size)
      len -= kPage;
  }
  std::uint64_t index = log_begin(OpMunmapAtt, Via::None, {at, len, att.addr, att.size});
  int ret = munmap(reinterpret_cast<void *>(at), len);
  int err = ret < 0 ? errno : 0;
  log_end(index, ret, err);
  if (partial) {
    if (ret == 0)
      fail("a partial munmap (%#llx, %llu bytes) of the attachment at %#llx (%llu bytes) "
           "succeeded: attachments must not be split",
           (unsigned long long)at, (unsigned long long)len, (unsigned long long)att.addr,
           (unsigned long long)att.size);
    return;
  }
  if (ret != 0)
    fail("munmap of our whole attachment at %#llx (%llu bytes) failed: %s",
         (unsigned long long)att.addr, (unsigned long long)att.size, strerror(err));
  forget_att(i);
}

void Fuzzer::op_mremap_att() {
  if (atts_.empty())
    return;
  std::size_t i = rng_.below(atts_.size());
  MyAtt &att = atts_[i];
  if (att.size > kHuge) // a 2 MiB window moves (its PMD split or moved), larger ones stay
    return;
  std::uint64_t kind = rng_.below(10);
  if (kind < 6) {
    // Move it to a place we reserved (MREMAP_FIXED replaces the target).
    void *target =
        mmap(nullptr, att.size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (target == MAP_FAILED)
      return;
    std::uint64_t index = log_begin(OpMremapAtt, Via::None,
                                    {att.addr, att.size, reinterpret_cast<std::uintptr_t>(target)});
    void *moved = mremap(reinterpret_cast<void *>(att.addr), att.size, att.size,
                         MREMAP_MAYMOVE | MREMAP_FIXED, target);
    int err = moved == MAP_FAILED ? errno : 0;
    log_end(index, moved == MAP_FAILED ? -1 : 0, err);
    if (moved == MAP_FAILED) {
      munmap(target, att.size);
      fail("mremap moving our attachment at %#llx (%llu bytes) failed: %s",
           (unsigned long long)att.addr, (unsigned long long)att.size, strerror(err));
    }
    att.addr = reinterpret_cast<std::uintptr_t>(moved);
    return;
  }
  bool grow = kind < 8 || att.size == kPage;
  std::uint64_t new_size = grow ? att.size + kPage : att.size - kPage;
  std::uint64_t index = log_begin(OpMremapAtt, Via::None, {att.addr, att.size, new_size});
  void *p = mremap(reinterpret_cast<void *>(att.addr), att.size, new_size, 0);
  int err = p == MAP_FAILED ? errno : 0;
  log_end(index, p == MAP_FAILED ? -1 : 0, err);
  if (p != MAP_FAILED)
    fail("mremap %s the attachment at %#llx from %llu to %llu bytes succeeded: attachments "
         "must neither grow nor be split",
         grow ? "growing" : "shrinking", (unsigned long long)att.addr, (unsigned long long)att.size,
         (unsigned long long)new_size);
}

void Fuzzer::op_mprotect_att() {
  if (atts_.empty())
    return;
  MyAtt &att = atts_[rng_.below(atts_.size())];
  static const int prots[] = {PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE};
  int prot = rng_.pick(prots);
  bool partial = att.size > kPage && rng_.percent(30);
  if (partial && prot == att.prot)
    prot = att.prot == PROT_READ ? PROT_NONE : PROT_READ;
  std::uint64_t len =
      partial ? kPage * rng_.between(1, std::min<std::uint64_t>(att.size / kPage - 1, 64))
              : att.size;
  std::uint64_t index = log_begin(OpMprotectAtt, Via::None,
                                  {att.addr, len, static_cast<std::uint64_t>(prot), att.size});
  int ret = mprotect(reinterpret_cast<void *>(att.addr), len, prot);
  int err = ret < 0 ? errno : 0;
  log_end(index, ret, err);
  if (partial) {
    // With the current protection unknown the call may change nothing,
    // and then it needs no split.
    if (ret == 0 && att.prot >= 0)
      fail("a partial mprotect (%llu of %llu bytes) of the attachment at %#llx succeeded: "
           "attachments must not be split",
           (unsigned long long)len, (unsigned long long)att.size, (unsigned long long)att.addr);
    return;
  }
  bool known = att.seg.known();
  if (ret == 0) {
    if (known && !att.writable && (prot & PROT_WRITE))
      fail("mprotect added write access to the read-only attachment at %#llx",
           (unsigned long long)att.addr);
    att.prot = prot;
  } else if (known && (att.writable || !(prot & PROT_WRITE))) {
    fail("mprotect(%#llx, %llu, %d) of our whole attachment failed: %s",
         (unsigned long long)att.addr, (unsigned long long)att.size, prot, strerror(err));
  }
}

// The kernel itself reads and writes attachments: write(2) from one into a
// pipe (the data must pass the same checks as a touch), read(2) of a
// scribble into word 0, and ioctls whose argument lies in an attachment.
// A fault there is an errno (EFAULT), not a signal.
void Fuzzer::op_kernel_copy() {
  if (atts_.empty())
    return;
  if (pipe_[0] < 0) {
    // Not while op_reopen has the raw descriptor's number closed.
    std::shared_lock raw(w_.raw_lock);
    if (pipe2(pipe_, O_NONBLOCK | O_CLOEXEC) != 0)
      return;
  }
  const MyAtt &att = atts_[rng_.below(atts_.size())];
  std::uint64_t page = rng_.below(std::min<std::uint64_t>(att.size / kPage, 256));
  std::uintptr_t at = att.addr + page * kPage;
  std::uint64_t source = att.seg.known() ? att.seg.source(att.offset + page * kPage) : 0;
  unsigned b = 0, p = 0;
  bool in_slot = att.seg.known() && att.seg.verify && !att.cycle && in_slots(source, &b, &p);
  switch (rng_.below(3)) {
  case 0: {
    TouchJob job;
    job.page_addr[0] = reinterpret_cast<std::uintptr_t>(copy_);
    job.source[0] = source;
    job.verify[0] = in_slot;
    job.scribble[0] = false;
    job.npages = 1;
    job.owner_pid = att.seg.owner_pid;
    job.owner_slot = att.seg.known() ? att.seg.owner_slot : -1;
    job.fixed_floor = true;
    job.tolerate_torn_words = true;
    if (in_slot) {
      const OwnerSlot &o = g_shared->owners[att.seg.owner_slot];
      if (o.pid.load() == att.seg.owner_pid) {
        job.fixed_floor_value = o.buffers[b].floor.load(std::memory_order_acquire);
        job.fixed_floor_check = o.pid.load() == att.seg.owner_pid;
      }
    }
    std::uint64_t index = log_begin(OpKernelCopy, Via::None, {at, kPage, 0, source});
    ssize_t n = write(pipe_[1], reinterpret_cast<void *>(at), kPage);
    int err = n < 0 ? errno : 0;
    log_end(index, n, err);
    if (n < 0 && err != EFAULT)
      fail("write(2) from the attachment at %#llx: %s", (unsigned long long)at, strerror(err));
    if (n <= 0) {
      // A write that faulted leaves an empty buffer in the pipe; a read
      // releases it (otherwise 16 of them fill the pipe: EAGAIN).
      std::uint64_t drain;
      while (read(pipe_[0], &drain, sizeof drain) > 0) {
      }
      return;
    }
    if (read(pipe_[0], copy_, static_cast<std::size_t>(n)) != n)
      fail("reading back %zd bytes from our pipe: %s", n, strerror(errno));
    job.words = static_cast<unsigned>(n / 8);
    run_touch_job(&job); // a local copy: cannot fault
    counters().pages_verified.fetch_add(static_cast<std::uint64_t>(job.verified),
                                        std::memory_order_relaxed);
    if (job.bad)
      report_touch(job, att);
    return;
  }
  case 1: {
    if (!in_slot || !att.writable || att.prot < 0 || !(att.prot & PROT_WRITE))
      return;
    std::uint64_t v = magic::scribble(static_cast<std::uint32_t>(att.seg.owner_pid), b, p,
                                      static_cast<std::uint32_t>(getpid()));
    if (write(pipe_[1], &v, sizeof v) != sizeof v)
      fail("write(2) to our pipe: %s", strerror(errno));
    std::uint64_t index = log_begin(OpKernelCopy, Via::None, {at, 8, 1, source});
    ssize_t n = read(pipe_[0], reinterpret_cast<void *>(at), sizeof v);
    int err = n < 0 ? errno : 0;
    log_end(index, n, err);
    if (n < 0 && err != EFAULT)
      fail("read(2) into the attachment at %#llx: %s", (unsigned long long)at, strerror(err));
    if (n != static_cast<ssize_t>(sizeof v)) {
      std::uint64_t drain;
      while (read(pipe_[0], &drain, sizeof drain) > 0) {
      }
    }
    return;
  }
  default: {
    // The argument is whatever the exporter's page holds: only buffer
    // pages, whose magic never names a live id or one of our addresses
    // (the exporter's heap might).  Commands with an out-parameter only
    // where the kernel cannot write (else it would overwrite the data).
    if (!in_slot)
      return;
    static const unsigned read_only[] = {XPMEM_CMD_REMOVE, XPMEM_CMD_RELEASE, XPMEM_CMD_DETACH};
    static const unsigned with_out[] = {XPMEM_CMD_MAKE, XPMEM_CMD_GET, XPMEM_CMD_ATTACH};
    bool cannot_write = att.prot >= 0 && !(att.prot & PROT_WRITE);
    unsigned cmd = cannot_write && rng_.percent(50) ? rng_.pick(with_out) : rng_.pick(read_only);
    Op op = cmd == XPMEM_CMD_REMOVE    ? OpRemove
            : cmd == XPMEM_CMD_RELEASE ? OpRelease
            : cmd == XPMEM_CMD_DETACH  ? OpDetach
            : cmd == XPMEM_CMD_MAKE    ? OpMake
            : cmd == XPMEM_CMD_GET     ? OpGet
                                       : OpAttach;
    void *arg = reinterpret_cast<void *>(at + 8 * rng_.below(kPage / 8 - 8));
    Outcome o = raw_ioctl(op, cmd, arg, {reinterpret_cast<std::uintptr_t>(arg), 0xa77});
    judge(op, o, false, "");
    return;
  }
  }
}

// --- the buffers we export -----------------------------------------------------

void Fuzzer::op_buffer(Op op) {
  unsigned b = static_cast<unsigned>(rng_.below(kBuffers));
  OwnedBuffer &buf = w_.buffers[b];
  std::unique_lock lock(buf.lock, std::try_to_lock);
  if (!lock.owns_lock())
    return;
  const std::uintptr_t slot = slot_address(b);
  void *slot_ptr = reinterpret_cast<void *>(slot);
  Layout &lay = buf.layout;
  std::uint64_t index = log_begin(
      op, Via::None, {b, lay.pack(), buf.gen, static_cast<std::uint64_t>(buf.shared_mapping)});
  long result = 0;
  switch (op) {
  case OpRewrite:
    if (!lay.mapped || lay.prot != (PROT_READ | PROT_WRITE))
      break;
    ++buf.gen;
    w_.fill_buffer(b);
    w_.publish_buffer(b);
    result = static_cast<long>(buf.gen);
    break;
  case OpRemapBuf: {
    // MAP_FIXED over the exported buffer: new pages, new generation.
    Disturbance d(me(), Side::Exporter);
    std::size_t pages = rng_.between(1, kMaxBufferPages);
    if (b == kHugeBuffer && rng_.percent(40))
      pages = kSlotPages;
    if (!w_.map_buffer(b, pages, pages != kSlotPages && rng_.percent(30), buf.gen + 1))
      result = -1;
    break;
  }
  case OpUnmapBuf: {
    if (!lay.mapped)
      break;
    Disturbance d(me(), Side::Exporter);
    if (munmap(slot_ptr, lay.pages * kPage) != 0)
      fail("munmap of our buffer %u: %s", b, strerror(errno));
    std::size_t hole = lay.pages;
    lay = Layout{};
    w_.publish_buffer(b);
    // Half the time the hole stays (until the next remap), half the time
    // it is reserved again at once; to attachers both are holes.
    if (rng_.percent(50)) {
      void *r = mmap(slot_ptr, hole * kPage, PROT_NONE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
      if (r != slot_ptr && r != MAP_FAILED)
        munmap(r, hole * kPage);
      buf.hole_pages = r == slot_ptr ? 0 : hole;
    } else {
      buf.hole_pages = hole;
    }
    break;
  }
  case OpMoveBuf: {
    if (!lay.mapped || !buf.scratch_reserved)
      break;
    Disturbance d(me(), Side::Exporter);
    std::size_t len = lay.pages * kPage;
    void *scratch = reinterpret_cast<void *>(scratch_address(b));
    void *out = mremap(slot_ptr, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, scratch);
    if (out != scratch)
      fail("mremap of our buffer %u to the scratch area: %s", b, strerror(errno));
    Layout saved = lay;
    lay.mapped = false;
    w_.publish_buffer(b);
    sleep_microseconds(rng_.below(2000)); // attachers meet the hole meanwhile
    void *back = mremap(scratch, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, slot_ptr);
    if (back != slot_ptr)
      fail("mremap of our buffer %u back from the scratch area: %s", b, strerror(errno));
    lay = saved;
    w_.publish_buffer(b);
    void *r = mmap(scratch, len, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    if (r != scratch) {
      if (r != MAP_FAILED)
        munmap(r, len);
      buf.scratch_reserved = false; // something else is there now: no more moves
    }
    break;
  }
  case OpResizeBuf: {
    if (!lay.mapped)
      break;
    std::size_t pages = rng_.between(1, kMaxBufferPages);
    // A shared anonymous mapping cannot grow: its shmem object keeps the
    // size it was created with, and pages past it raise SIGBUS.
    if (pages == lay.pages || (pages > lay.pages && buf.shared_mapping))
      break;
    Disturbance d(me(), Side::Exporter);
    if (pages < lay.pages) {
      if (mremap(slot_ptr, lay.pages * kPage, pages * kPage, 0) != slot_ptr)
        fail("shrinking our buffer %u in place: %s", b, strerror(errno));
      void *tail = reinterpret_cast<char *>(slot_ptr) + pages * kPage;
      void *r = mmap(tail, (lay.pages - pages) * kPage, PROT_NONE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
      if (r != tail)
        fail("reserving the tail of slot %u again: %s", b, strerror(errno));
      lay.pages = pages;
      w_.publish_buffer(b);
    } else {
      // Give up the reservation behind the buffer, then grow into it.
      void *tail = reinterpret_cast<char *>(slot_ptr) + lay.pages * kPage;
      munmap(tail, (pages - lay.pages) * kPage);
      if (mremap(slot_ptr, lay.pages * kPage, pages * kPage, 0) != slot_ptr)
        fail("growing our buffer %u in place: %s", b, strerror(errno));
      if (lay.prot != (PROT_READ | PROT_WRITE) &&
          mprotect(slot_ptr, pages * kPage, PROT_READ | PROT_WRITE) != 0)
        fail("mprotect of our buffer %u: %s", b, strerror(errno));
      lay = Layout{true, PROT_READ | PROT_WRITE, pages};
      ++buf.gen;
      w_.fill_buffer(b);
      w_.publish_buffer(b);
    }
    result = static_cast<long>(pages);
    break;
  }
  case OpProtectBuf: {
    if (!lay.mapped)
      break;
    static const int prots[] = {PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE,
                                PROT_READ | PROT_WRITE};
    int prot = rng_.pick(prots);
    Disturbance d(me(), Side::Exporter);
    if (mprotect(slot_ptr, lay.pages * kPage, prot) != 0)
      fail("mprotect of our buffer %u: %s", b, strerror(errno));
    lay.prot = prot;
    w_.publish_buffer(b);
    result = prot;
    break;
  }
  case OpDiscardBuf: {
    // MADV_DONTNEED drops pages (attachers must lose them too, and then
    // read zeros, or the refill); then a new generation everywhere.
    if (!lay.mapped || lay.prot != (PROT_READ | PROT_WRITE))
      break;
    std::size_t first = rng_.below(lay.pages);
    std::size_t count = rng_.between(1, lay.pages - first);
    if (madvise(reinterpret_cast<char *>(slot_ptr) + first * kPage, count * kPage, MADV_DONTNEED) !=
        0)
      fail("madvise(MADV_DONTNEED) of our buffer %u: %s", b, strerror(errno));
    ++buf.gen;
    w_.fill_buffer(b);
    w_.publish_buffer(b);
    result = static_cast<long>(count);
    break;
  }
  case OpSelfCheck: {
    if (!lay.mapped || !(lay.prot & PROT_READ))
      break;
    // Only this thread writes the magic now (we hold the lock); attachers
    // may only have scribbled word 0 with this very page's identity.
    const std::uint32_t pid = static_cast<std::uint32_t>(getpid());
    auto *words = reinterpret_cast<const volatile std::uint64_t *>(slot);
    for (std::size_t p = 0; p < lay.pages; ++p)
      for (unsigned w = 0; w < kPage / 8; ++w) {
        std::uint64_t v = words[p * (kPage / 8) + w];
        std::uint64_t want = magic::word(pid, b, static_cast<unsigned>(p), buf.gen, w);
        if (v == want)
          continue;
        magic::Fields f;
        if (w == 0 && magic::unpack(v, &f) && f.scribble && f.pid == (pid & 0x3fffff) &&
            f.buffer == b && f.page == (p & 0xff))
          continue;
        // A scribble the kernel is writing byte by byte (op_kernel_copy).
        if (w == 0 && v != 0 &&
            magic::maybe_torn(
                v, magic::pack_low({pid, b, static_cast<std::uint32_t>(p), 0, 0, false})))
          continue;
        fail("our own buffer %u page %zu word %u holds %#llx, expected %#llx (generation %llu) "
             "or a scribble of this page: something wrote through a stale or misplaced mapping",
             b, p, w, (unsigned long long)v, (unsigned long long)want, (unsigned long long)buf.gen);
      }
    result = static_cast<long>(lay.pages);
    break;
  }
  default:
    break;
  }
  log_end(index, result, 0);
}

// --- fork, descriptor replacement, exit -----------------------------------------

void Fuzzer::op_fork() {
  // Held while the child lives: it shares the raw descriptor's file, whose
  // release (and teardown) must not slip past a replacement's disturbance.
  std::shared_lock raw(w_.raw_lock);
  std::uint64_t child_seed = rng_.next();
  counters().forks.fetch_add(1, std::memory_order_relaxed);
  std::uint64_t index = log_begin(OpFork, Via::None, {child_seed});
  pid_t pid = fork();
  if (pid == 0)
    child_main(child_seed);
  log_end(index, pid, pid < 0 ? errno : 0);
  if (pid < 0)
    return;
  double until = monotonic_seconds() + 120;
  int status = 0;
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid)
      break;
    if (r < 0 && errno != EINTR)
      fail("waitpid for our fork child %d: %s", pid, strerror(errno));
    double now = monotonic_seconds();
    me().beat[thread_].store(now, std::memory_order_relaxed); // waiting is not hanging
    if (now > until) {
      kill(pid, SIGKILL);
      fail("our fork child %d did not finish within 120 s", pid);
    }
    sleep_microseconds(2000);
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 3)
    fail("our fork child %d failed (its report is above)", pid);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fail("our fork child %d ended with status %#x", pid, status);
}

// The child of op_fork: a few operations, then exit, sometimes without
// cleaning up.  It may only use what needs no lock another thread of the
// parent could have held at fork time.
void Fuzzer::child_main(std::uint64_t seed) {
  Rng rng(seed);
  const std::uint16_t tid = 99;
  OwnerSlot &slot = me();
  auto logged = [&](Op op, Via via, std::initializer_list<std::uint64_t> args, auto &&call) {
    std::uint64_t index = slot.ring.begin(op, via, tid, args);
    errno = 0;
    long ret = call();
    int err = ret < 0 ? errno : 0;
    slot.ring.complete(index, ret, err);
    g_shared->counters.calls[op].fetch_add(1, std::memory_order_relaxed);
    return Outcome{ret, err};
  };
  const int inherited = w_.raw_fd;

  // The parent's descriptor is not ours: every command but version must
  // answer XPMEM_ERRNO_NOPROC, which libxpmem relies on to reopen.
  for (int i = 0; i < 2; ++i) {
    Outcome o;
    Op op;
    if (rng.percent(50)) {
      xpmem_cmd_make cmd{0, kMaxAddr, XPMEM_ABI_PERMIT_MODE, 0, 0600, 0};
      op = OpMake;
      o = logged(op, Via::Raw, {0, kMaxAddr},
                 [&] { return static_cast<long>(ioctl(inherited, XPMEM_CMD_MAKE, &cmd)); });
    } else if (!permits_.empty()) {
      xpmem_cmd_release cmd{permits_[rng.below(permits_.size())].apid};
      op = OpRelease;
      o = logged(op, Via::Raw, {static_cast<std::uint64_t>(cmd.apid)},
                 [&] { return static_cast<long>(ioctl(inherited, XPMEM_CMD_RELEASE, &cmd)); });
    } else {
      xpmem_cmd_detach cmd{kNeverMapped};
      op = OpDetach;
      o = logged(op, Via::Raw, {kNeverMapped},
                 [&] { return static_cast<long>(ioctl(inherited, XPMEM_CMD_DETACH, &cmd)); });
    }
    if (o.ret >= 0 || o.err != XPMEM_ABI_ERRNO_NOPROC)
      fail("%s on the descriptor inherited from the parent returned %ld (%s); a forked child "
           "must get XPMEM_ERRNO_NOPROC",
           op_name(op), o.ret, o.ret < 0 ? OpRing<>::errno_name(o.err) : "success");
  }

  Outcome v = logged(OpVersion, Via::Lib, {}, [] { return static_cast<long>(xpmem_version()); });
  if (v.ret != XPMEM_ABI_VERSION)
    fail("version in a forked child returned %ld (%s)", v.ret, OpRing<>::errno_name(v.err));

  // The parent's permits belong to the parent's registrations.
  if (!permits_.empty()) {
    const MyPermit &p = permits_[rng.below(permits_.size())];
    Outcome o = logged(OpAttach, Via::Lib, {static_cast<std::uint64_t>(p.apid), 0, kPage}, [&] {
      void *a = xpmem_attach(xpmem_addr{p.apid, 0}, kPage, nullptr);
      return a == reinterpret_cast<void *>(-1)
                 ? -1L
                 : static_cast<long>(reinterpret_cast<std::uintptr_t>(a));
    });
    if (o.ret >= 0)
      fail("a forked child attached through its parent's permit %lld", (long long)p.apid);
  }

  // Export our copy of a buffer (its magic is the parent's: not verifiable).
  unsigned b = static_cast<unsigned>(rng.below(kBuffers));
  Outcome made = logged(OpMake, Via::Lib, {slot_address(b), kMaxBufferPages * kPage}, [&] {
    return static_cast<long>(xpmem_make(reinterpret_cast<void *>(slot_address(b)),
                                        kMaxBufferPages * kPage, XPMEM_PERMIT_MODE,
                                        reinterpret_cast<void *>(0666)));
  });
  if (made.ret > 0) {
    SegInfo info;
    info.segid = made.ret;
    info.owner_pid = getpid();
    info.owner_slot = g_slot;
    info.vaddr = slot_address(b);
    info.size = kMaxBufferPages * kPage;
    info.kind = SegKind::Buffer;
    info.verify = false;
    publish_seg(slot, info);
  }

  // Read someone else's buffer through a fresh permit and attachment.
  SegInfo target;
  bool found = false;
  for (int attempt = 0; attempt < 8 && !found; ++attempt) {
    int s = static_cast<int>(rng.below(g_shared->options.procs));
    found = read_seg(s, static_cast<int>(rng.below(kSegRecords)), &target) &&
            target.life == Life::Live && target.owner_pid != getpid();
  }
  if (found) {
    Outcome got = logged(OpGet, Via::Lib, {static_cast<std::uint64_t>(target.segid)}, [&] {
      return static_cast<long>(xpmem_get(target.segid, XPMEM_RDONLY, XPMEM_PERMIT_MODE, nullptr));
    });
    if (got.ret > 0) {
      std::uint64_t offset = target.kind == SegKind::WholeSpace
                                 ? slot_address(static_cast<unsigned>(rng.below(kBuffers)))
                                 : 0;
      std::uint64_t size = kPage * (target.kind == SegKind::WholeSpace ? 4 : 1);
      Outcome att =
          logged(OpAttach, Via::Lib, {static_cast<std::uint64_t>(got.ret), offset, size}, [&] {
            void *a = xpmem_attach(xpmem_addr{got.ret, static_cast<off_t>(offset)}, size, nullptr);
            return a == reinterpret_cast<void *>(-1)
                       ? -1L
                       : static_cast<long>(reinterpret_cast<std::uintptr_t>(a));
          });
      if (att.ret > 0) {
        MyAtt a;
        a.addr = static_cast<std::uintptr_t>(att.ret);
        a.size = size;
        a.apid = got.ret;
        a.seg = target;
        a.offset = offset;
        TouchJob job;
        Fault f = touch_att(a, 4, false, &job);
        if (f.signal)
          g_shared->counters.signals.fetch_add(1, std::memory_order_relaxed);
        if (rng.percent(50))
          logged(OpDetach, Via::Lib, {a.addr},
                 [&] { return static_cast<long>(xpmem_detach(reinterpret_cast<void *>(a.addr))); });
      }
    }
  }
  if (rng.percent(50))
    close(inherited);
  _exit(0); // the rest goes with the process
}

void Fuzzer::op_reopen() {
  std::unique_lock raw(w_.raw_lock); // no ioctl in flight on the old file
  Disturbance exporter(me(), Side::Exporter), attacher(me(), Side::Attacher);
  counters().reopens.fetch_add(1, std::memory_order_relaxed);
  bool close_first = rng_.percent(30);
  std::uint64_t index =
      log_begin(OpReopen, Via::None, {static_cast<std::uint64_t>(w_.raw_fd), close_first});
  if (close_first) {
    close(w_.raw_fd);
    // Nothing else in this process opens files, so the number is free.
    if (ioctl(w_.raw_fd, XPMEM_CMD_VERSION, nullptr) >= 0 || errno != EBADF)
      fail("an ioctl on the closed descriptor %d did not fail with EBADF", w_.raw_fd);
    w_.raw_fd = open(XPMEM_DEVICE_PATH, O_RDWR);
    if (w_.raw_fd < 0)
      fail("reopening %s: %s", XPMEM_DEVICE_PATH, strerror(errno));
  } else {
    // Replace the file under the same number: the old one is released now.
    int fresh = open(XPMEM_DEVICE_PATH, O_RDWR);
    if (fresh < 0)
      fail("opening %s: %s", XPMEM_DEVICE_PATH, strerror(errno));
    if (dup2(fresh, w_.raw_fd) < 0)
      fail("dup2: %s", strerror(errno));
    close(fresh);
  }
  w_.raw_epoch.fetch_add(1);
  log_end(index, w_.raw_fd, 0);
  // Everything made through the old file is gone (or going, if a fork
  // child of ours still holds it).
  for (int i = 0; i < kSegRecords; ++i) {
    SegInfo info;
    if (read_seg(g_slot, i, &info) && info.owner_pid == getpid() && info.via == Via::Raw &&
        info.life == Life::Live)
      mark_seg(me(), i, info.segid, Life::DeadProbable);
  }
  for (int i = 0; i < kPermitRecords; ++i) {
    PermitInfo info;
    if (read_permit(g_slot, i, &info) && info.owner_pid == getpid() && info.via == Via::Raw &&
        info.life == Life::Live)
      mark_permit(me(), i, info.apid, Life::DeadProbable);
  }
}

void Fuzzer::op_exit() {
  me().disturb_forever(); // the exporter is gone
  counters().exits.fetch_add(1, std::memory_order_relaxed);
  log_begin(OpExit, Via::None, {});
  _exit(0);
}

// --- self-covering windows across two processes -----------------------------------
//
// P attaches X's whole address space at V with offset W; X then attaches
// P's whole space at W with offset V.  Each window now shows the other,
// which shows the first: a fault or an invalidation on either side leads
// back to itself.

void Fuzzer::op_advertise() {
  if (w_.anchor_segid <= 0)
    return;
  SegInfo target;
  bool found = false;
  for (int i = 0; i < 4 && !found; ++i)
    found =
        pick_table_seg(true, true, &target) && target.kind == SegKind::WholeSpace && target.verify;
  if (!found)
    return;
  Outcome got = lib_call(OpGet, {static_cast<std::uint64_t>(target.segid)}, [&] {
    return static_cast<long>(xpmem_get(target.segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, nullptr));
  });
  judge(OpGet, got, false, "");
  if (got.ret <= 0)
    return;
  MyPermit permit;
  permit.apid = got.ret;
  permit.seg = target;
  permit.writable = true;
  permit.record =
      publish_permit(me(), {got.ret, getpid(), g_slot, target.segid, Life::Live, Via::Lib});
  permits_.push_back(permit);

  std::uint64_t pages = rng_.between(1, 4);
  std::uint64_t v = free_cycle_address(pages), w = free_cycle_address(pages);
  Outcome o = lib_call(OpAttach, {static_cast<std::uint64_t>(got.ret), w, pages * kPage, v}, [&] {
    void *a = xpmem_attach(xpmem_addr{got.ret, static_cast<off_t>(w)}, pages * kPage,
                           reinterpret_cast<void *>(v));
    return a == reinterpret_cast<void *>(-1)
               ? -1L
               : static_cast<long>(reinterpret_cast<std::uintptr_t>(a));
  });
  judge(OpAttach, o, false, "");
  if (o.ret < 0)
    return;
  MyAtt att;
  att.addr = v;
  att.size = pages * kPage;
  att.apid = got.ret;
  att.seg = target;
  att.offset = w;
  att.writable = true;
  att.prot = PROT_READ | PROT_WRITE;
  att.cycle = true;
  atts_.push_back(att);
  std::uint64_t n = g_shared->next_advert.fetch_add(1) % kAdverts;
  g_shared->adverts[n].write([&](std::uint64_t(&a)[6]) {
    a[0] = static_cast<std::uint32_t>(getpid()) | static_cast<std::uint64_t>(g_slot) << 32;
    a[1] = static_cast<std::uint64_t>(w_.anchor_segid);
    a[2] = static_cast<std::uint64_t>(target.owner_pid);
    a[3] = v;
    a[4] = w;
    a[5] = pages;
  });
  counters().cycles.fetch_add(1, std::memory_order_relaxed);
  TouchJob job;
  if (touch_att(att, 1, false, &job).signal)
    counters().signals.fetch_add(1, std::memory_order_relaxed);
}

void Fuzzer::op_answer() {
  std::uint64_t start = rng_.below(kAdverts);
  for (int k = 0; k < kAdverts; ++k) {
    Advert &advert = g_shared->adverts[(start + k) % kAdverts];
    std::uint64_t a[6];
    if (!advert.read(a) || a[2] != static_cast<std::uint64_t>(getpid()) || (a[5] >> 32))
      continue;
    bool claimed = false;
    advert.write([&](std::uint64_t(&x)[6]) {
      if (x[2] == static_cast<std::uint64_t>(getpid()) && !(x[5] >> 32)) {
        x[5] |= std::uint64_t{1} << 32;
        claimed = true;
      }
    });
    if (!claimed)
      return;
    std::int64_t anchor = static_cast<std::int64_t>(a[1]);
    std::uint64_t v = a[3], w = a[4], pages = a[5] & 0xffffffff;
    Outcome got = lib_call(OpGet, {static_cast<std::uint64_t>(anchor)}, [&] {
      return static_cast<long>(xpmem_get(anchor, XPMEM_RDWR, XPMEM_PERMIT_MODE, nullptr));
    });
    judge(OpGet, got, false, "");
    if (got.ret <= 0)
      return;
    MyPermit permit;
    permit.apid = got.ret;
    permit.seg.segid = anchor;
    permit.seg.owner_pid = static_cast<std::int32_t>(a[0] & 0xffffffff);
    permit.seg.owner_slot = static_cast<std::int32_t>(a[0] >> 32);
    permit.seg.vaddr = 0;
    permit.seg.size = kMaxAddr;
    permit.seg.kind = SegKind::WholeSpace;
    permit.seg.verify = true;
    permit.writable = true;
    permit.record = publish_permit(me(), {got.ret, getpid(), g_slot, anchor, Life::Live, Via::Lib});
    permits_.push_back(permit);
    Outcome o = lib_call(OpAttach, {static_cast<std::uint64_t>(got.ret), v, pages * kPage, w}, [&] {
      void *p = xpmem_attach(xpmem_addr{got.ret, static_cast<off_t>(v)}, pages * kPage,
                             reinterpret_cast<void *>(w));
      return p == reinterpret_cast<void *>(-1)
                 ? -1L
                 : static_cast<long>(reinterpret_cast<std::uintptr_t>(p));
    });
    judge(OpAttach, o, false, "");
    if (o.ret < 0)
      return;
    MyAtt att;
    att.addr = w;
    att.size = pages * kPage;
    att.apid = got.ret;
    att.seg = permit.seg;
    att.offset = v;
    att.writable = true;
    att.prot = PROT_READ | PROT_WRITE;
    att.cycle = true;
    atts_.push_back(att);
    counters().cycles.fetch_add(1, std::memory_order_relaxed);
    TouchJob job;
    if (touch_att(att, 1, false, &job).signal)
      counters().signals.fetch_add(1, std::memory_order_relaxed);
    return;
  }
}

// --- the thread's loop -------------------------------------------------------------

void Fuzzer::run() {
  struct Weighted {
    Op op;
    unsigned weight;
  };
  static const Weighted table[] = {
      {OpVersion, 3},    {OpMake, 8},       {OpRemove, 5},    {OpGet, 10},        {OpRelease, 5},
      {OpAttach, 14},    {OpDetach, 6},     {OpForkBegin, 1}, {OpForkEnd, 1},     {OpUnknown, 3},
      {OpTouch, 16},     {OpMunmapAtt, 2},  {OpMremapAtt, 2}, {OpMprotectAtt, 2}, {OpKernelCopy, 4},
      {OpRewrite, 5},    {OpRemapBuf, 2},   {OpUnmapBuf, 1},  {OpMoveBuf, 1},     {OpResizeBuf, 1},
      {OpProtectBuf, 2}, {OpDiscardBuf, 2}, {OpSelfCheck, 2}, {OpFork, 1},        {OpReopen, 1},
      {OpAdvertise, 1},  {OpAnswer, 2},
  };
  unsigned total = 0;
  for (const Weighted &w : table)
    total += w.weight;
  const bool self_windows = g_shared->options.self_windows;
  for (unsigned n = 0;; ++n) {
    if ((n & 15) == 0) {
      double now = monotonic_seconds();
      me().beat[thread_].store(now, std::memory_order_relaxed);
      if (g_shared->stop.load() || g_shared->failed.load() || now > g_shared->deadline)
        break;
    }
    // Rarely, the whole worker exits (the supervisor starts a new one).
    if (rng_.one_in(20000))
      op_exit();
    unsigned pick = static_cast<unsigned>(rng_.below(total));
    Op op = OpVersion;
    for (const Weighted &w : table) {
      if (pick < w.weight) {
        op = w.op;
        break;
      }
      pick -= w.weight;
    }
    switch (op) {
    case OpVersion:
      op_version();
      break;
    case OpMake:
      op_make();
      break;
    case OpRemove:
      op_remove();
      break;
    case OpGet:
      op_get();
      break;
    case OpRelease:
      op_release();
      break;
    case OpAttach:
      op_attach();
      break;
    case OpDetach:
      op_detach();
      break;
    case OpForkBegin:
    case OpForkEnd:
      op_fork_cmd(op);
      break;
    case OpUnknown:
      op_unknown();
      break;
    case OpTouch:
      op_touch();
      break;
    case OpMunmapAtt:
      op_munmap_att();
      break;
    case OpMremapAtt:
      op_mremap_att();
      break;
    case OpMprotectAtt:
      op_mprotect_att();
      break;
    case OpKernelCopy:
      op_kernel_copy();
      break;
    case OpRewrite:
    case OpRemapBuf:
    case OpUnmapBuf:
    case OpMoveBuf:
    case OpResizeBuf:
    case OpProtectBuf:
    case OpDiscardBuf:
    case OpSelfCheck:
      op_buffer(op);
      break;
    case OpFork:
      op_fork();
      break;
    case OpReopen:
      op_reopen();
      break;
    case OpAdvertise:
      if (self_windows)
        op_advertise();
      break;
    case OpAnswer:
      if (self_windows)
        op_answer();
      break;
    default:
      break;
    }
  }
  me().beat[thread_].store(0);
  // Half the threads clean up; the others leave it all to process exit.
  if (rng_.percent(50)) {
    while (!atts_.empty()) {
      xpmem_detach(reinterpret_cast<void *>(atts_.back().addr));
      atts_.pop_back();
    }
    for (const MyPermit &p : permits_)
      xpmem_release(p.apid);
    for (const MySeg &s : segs_)
      xpmem_remove(s.info.segid);
  }
}

// --- the worker process --------------------------------------------------------------

void Worker::run() {
  install_fault_handler(on_unguarded_fault);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  OwnerSlot &slot = my_slot();
  slot.pid.store(getpid());
  if (xpmem_init() != 0)
    fail("libxpmem cannot open the device: %s", xpmem_unavailable_reason());
  raw_fd = open(XPMEM_DEVICE_PATH, O_RDWR);
  if (raw_fd < 0)
    fail("open %s: %s", XPMEM_DEVICE_PATH, strerror(errno));
  Rng rng(derive_seed(g_shared->options.seed, static_cast<std::uint64_t>(slot_), incarnation_));
  for (unsigned b = 0; b < kBuffers; ++b) {
    std::lock_guard lock(buffers[b].lock);
    bool huge = b == kHugeBuffer && rng.percent(50);
    if (!map_buffer(b, huge ? kSlotPages : rng.between(1, kMaxBufferPages),
                    !huge && rng.percent(25), 1))
      fail("mapping buffer %u at start", b);
  }
  anchor_segid =
      xpmem_make(nullptr, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, reinterpret_cast<void *>(0666));
  if (anchor_segid <= 0)
    fail("exporting our whole address space: %s", strerror(errno));
  SegInfo anchor;
  anchor.segid = anchor_segid;
  anchor.owner_pid = getpid();
  anchor.owner_slot = slot_;
  anchor.size = kMaxAddr;
  anchor.kind = SegKind::WholeSpace;
  anchor.verify = true;
  anchor.via = Via::Lib;
  publish_seg(slot, anchor);

  std::vector<std::thread> threads;
  for (int t = 0; t < g_shared->options.threads; ++t)
    threads.emplace_back([this, t] {
      Fuzzer fuzzer(*this, t,
                    derive_seed(g_shared->options.seed, static_cast<std::uint64_t>(slot_),
                                incarnation_, static_cast<std::uint64_t>(t) + 1));
      fuzzer.run();
    });
  for (std::thread &t : threads)
    t.join();
  slot.disturb_forever(); // exiting
  _exit(0);
}

// --- the supervisor ----------------------------------------------------------------

struct WorkerProcess {
  pid_t pid = -1;
  std::uint32_t incarnation = 0;
  double killed_at = 0; // when we sent SIGKILL, 0 if we did not
};

pid_t spawn_worker(Shared &shared, int slot, std::uint32_t incarnation) {
  OwnerSlot &o = shared.owners[slot];
  o.pid.store(0);
  o.doomed.store(0);
  o.incarnation.store(incarnation);
  o.exporter.ended.store(o.exporter.begun.load());
  o.attacher.ended.store(o.attacher.begun.load());
  for (BufferPublic &b : o.buffers) {
    b.layout.store(0);
    b.floor.store(0);
  }
  for (std::atomic<double> &beat : o.beat)
    beat.store(0);
  pid_t pid = fork();
  if (pid == 0) {
    g_slot = slot;
    Worker *worker = new Worker(slot, incarnation); // lives until _exit
    worker->run();
  }
  if (pid > 0)
    o.pid.store(pid);
  return pid;
}

void print_summary(const Shared &shared, double elapsed, bool failed) {
  const Counters &c = shared.counters;
  std::uint64_t total = 0;
  std::string per_command;
  for (int i = 0; i < kIoctlOps; ++i) {
    std::uint64_t n = c.calls[i].load();
    total += n;
    per_command += std::string(i ? " " : "") + kIoctlNames[i] + "=" + std::to_string(n);
  }
  say(1,
      "xpmem_fuzz: %s: seed %llu, %.1f s, %d processes x %d threads; ioctls %llu (%.0f/s): %s; "
      "signals caught %llu; touches %llu, pages verified %llu, fresh-attachment checks %llu; "
      "self-covering windows %llu, cross-process cycles %llu; forks %llu, descriptor "
      "replacements %llu; kills %llu, voluntary exits %llu, respawns %llu\n",
      failed ? "FAIL" : "PASS", (unsigned long long)shared.options.seed, elapsed,
      shared.options.procs, shared.options.threads, (unsigned long long)total,
      elapsed > 0 ? static_cast<double>(total) / elapsed : 0.0, per_command.c_str(),
      (unsigned long long)c.signals.load(), (unsigned long long)c.touches.load(),
      (unsigned long long)c.pages_verified.load(), (unsigned long long)c.fresh_checks.load(),
      (unsigned long long)c.self_windows.load(), (unsigned long long)c.cycles.load(),
      (unsigned long long)c.forks.load(), (unsigned long long)c.reopens.load(),
      (unsigned long long)c.kills.load(), (unsigned long long)c.exits.load(),
      (unsigned long long)c.respawns.load());
}

// Everything we can learn about a worker that stopped making progress: its
// operations, and each thread's state, wait channel, system call and (for
// root) kernel stack; as root also the kernel's view of all blocked tasks
// and CPUs (sysrq w and l, in the kernel log).
void show_stuck(const Shared &shared, int slot, pid_t pid, const char *why) {
  say(2, "\nxpmem_fuzz: FAIL (seed %llu): worker slot %d (pid %d) %s; its last operations:\n",
      (unsigned long long)shared.options.seed, slot, pid, why);
  shared.owners[slot].ring.dump(2, op_name, shared.start);
  double now = monotonic_seconds();
  for (int t = 0; t < shared.options.threads; ++t) {
    double beat = shared.owners[slot].beat[t].load();
    if (beat > 0)
      say(2, "xpmem_fuzz: thread t%d last began an operation %.1f s ago\n", t, now - beat);
  }
  show_tasks("xpmem_fuzz", pid);
}

// SIGKILL and reap, but not forever: a task stuck in the kernel never dies.
bool kill_and_reap(pid_t pid, double seconds) {
  kill(pid, SIGKILL);
  double until = monotonic_seconds() + seconds;
  while (monotonic_seconds() < until) {
    if (waitpid(pid, nullptr, WNOHANG) == pid)
      return true;
    sleep_microseconds(20000);
  }
  return false;
}

} // namespace

int main(int argc, char **argv) {
  Args args(argc, argv);
  Options opt;
  opt.seed = args.number("--seed", seed_from_clock());
  opt.seconds = args.number("--seconds", 60);
  opt.procs = static_cast<int>(args.number("--procs", 4));
  opt.threads = static_cast<int>(args.number("--threads", 3));
  opt.self_windows = !args.flag("--no-self-window");
  args.reject_leftovers(
      "xpmem_fuzz [--seed S] [--seconds T] [--procs P] [--threads N] [--no-self-window]");
  if (opt.procs < 1 || opt.procs > kMaxProcs || opt.threads < 1 || opt.threads > kMaxThreads) {
    say(2, "xpmem_fuzz: --procs must be 1..%d and --threads 1..%d\n", kMaxProcs, kMaxThreads);
    return 2;
  }
  if (sysconf(_SC_PAGESIZE) != static_cast<long>(kPage)) {
    say(2, "xpmem_fuzz: needs %zu-byte pages\n", kPage);
    return 2;
  }
  setvbuf(stdout, nullptr, _IOLBF, 0);
  say(1, "xpmem_fuzz: seed %llu, %llu s, %d processes x %d threads, self-covering windows %s\n",
      (unsigned long long)opt.seed, (unsigned long long)opt.seconds, opt.procs, opt.threads,
      opt.self_windows ? "on" : "off");
  // 5-level paging: an address above 2^47 can be mapped.
  void *high = mmap(reinterpret_cast<void *>(std::uint64_t{1} << 52), kPage, PROT_NONE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (high == reinterpret_cast<void *>(std::uint64_t{1} << 52))
    g_task_size = (std::uint64_t{1} << 56) - kPage;
  if (high != MAP_FAILED)
    munmap(high, kPage);
  say(1, "xpmem_fuzz: task size %#llx\n", (unsigned long long)g_task_size);
  int probe = open(XPMEM_DEVICE_PATH, O_RDWR);
  if (probe < 0) {
    say(2, "xpmem_fuzz: cannot open %s: %s\n", XPMEM_DEVICE_PATH, strerror(errno));
    return 2;
  }
  close(probe);
  // Orphaned fork children of killed workers come back to us to be reaped.
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  void *arena = mmap(reinterpret_cast<void *>(kArenaBase), kArenaBytes, PROT_NONE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
  if (arena != reinterpret_cast<void *>(kArenaBase)) {
    say(2, "xpmem_fuzz: cannot reserve the buffer arena at %#llx\n",
        (unsigned long long)kArenaBase);
    return 2;
  }

  SharedObject<Shared> shared;
  g_shared = &*shared;
  shared->options = opt;
  shared->start = monotonic_seconds();
  shared->deadline = shared->start + static_cast<double>(opt.seconds);
  Rng rng(derive_seed(opt.seed, 0xc0ffee));

  std::vector<WorkerProcess> workers(static_cast<std::size_t>(opt.procs));
  for (int s = 0; s < opt.procs; ++s) {
    workers[s].pid = spawn_worker(*shared, s, 0);
    if (workers[s].pid < 0) {
      say(2, "xpmem_fuzz: fork: %s\n", strerror(errno));
      return 2;
    }
  }

  bool failed = false;
  // Judges one reaped child: a worker that died of anything but our
  // SIGKILL, or any child that reported a failure, fails the run.
  auto reaped = [&](pid_t pid, int status) {
    for (int s = 0; s < opt.procs; ++s) {
      if (workers[s].pid != pid)
        continue;
      workers[s].pid = -1;
      OwnerSlot &o = shared->owners[s];
      bool killed_by_us = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && o.doomed.load();
      bool clean_exit = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (killed_by_us || clean_exit)
        return;
      failed = true;
      if (WIFEXITED(status) && (WEXITSTATUS(status) == 3 || WEXITSTATUS(status) == 4))
        return; // it printed its own report
      say(2,
          "\nxpmem_fuzz: FAIL (seed %llu): worker slot %d (pid %d) ended with %s %d; its last "
          "operations:\n",
          (unsigned long long)opt.seed, s, pid, WIFSIGNALED(status) ? "signal" : "exit status",
          WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
      o.ring.dump(2, op_name, shared->start);
      return;
    }
    // An orphaned fork child of a killed worker.
    if (WIFEXITED(status) && WEXITSTATUS(status) == 3)
      failed = true;
    else if (WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL) {
      failed = true;
      say(2, "\nxpmem_fuzz: FAIL (seed %llu): an orphaned fork child (pid %d) died of signal %d\n",
          (unsigned long long)opt.seed, pid, WTERMSIG(status));
    }
  };
  auto reap_some = [&] {
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
      reaped(pid, status);
  };

  while (monotonic_seconds() < shared->deadline && !failed && !shared->failed.load()) {
    std::uint64_t pause_us = rng.between(20000, 300000);
    for (std::uint64_t slept = 0; slept < pause_us && !shared->failed.load(); slept += 10000) {
      sleep_microseconds(10000);
      reap_some();
    }
    // A thread that has not begun an operation for this long is stuck
    // (the slowest legitimate wait, for a fork child, is bounded at 120 s);
    // a process SIGKILL has not ended in this long is stuck in the kernel.
    constexpr double kStuckSeconds = 150;
    constexpr double kUnkillableSeconds = 60;
    for (int s = 0; s < opt.procs && !failed; ++s) {
      if (workers[s].pid > 0 && workers[s].killed_at > 0 &&
          monotonic_seconds() - workers[s].killed_at > kUnkillableSeconds) {
        show_stuck(*shared, s, workers[s].pid, "survived SIGKILL for 60 s (stuck in the kernel)");
        failed = true;
        workers[s].pid = -1; // given up on
        break;
      }
      if (workers[s].pid <= 0 || shared->owners[s].doomed.load())
        continue;
      double now = monotonic_seconds();
      for (int t = 0; t < opt.threads; ++t) {
        double beat = shared->owners[s].beat[t].load();
        if (beat > 0 && now - beat > kStuckSeconds) {
          char why[96];
          std::snprintf(why, sizeof why, "has a thread (t%d) stuck for %.0f s", t, now - beat);
          show_stuck(*shared, s, workers[s].pid, why);
          failed = true;
          shared->owners[s].doomed.store(1);
          if (!kill_and_reap(workers[s].pid, 30))
            say(2, "xpmem_fuzz: worker pid %d survived SIGKILL for 30 s: stuck in the kernel\n",
                workers[s].pid);
          workers[s].pid = -1;
          break;
        }
      }
    }
    if (failed)
      break;
    if (rng.percent(35)) {
      int s = static_cast<int>(rng.below(opt.procs));
      if (workers[s].pid > 0 && workers[s].killed_at == 0) {
        OwnerSlot &o = shared->owners[s];
        o.doomed.store(1);
        o.disturb_forever();
        kill(workers[s].pid, SIGKILL);
        workers[s].killed_at = monotonic_seconds();
        shared->counters.kills.fetch_add(1);
      }
    }
    reap_some();
    for (int s = 0; s < opt.procs; ++s) {
      if (workers[s].pid > 0 || monotonic_seconds() >= shared->deadline)
        continue;
      workers[s].incarnation++;
      workers[s].killed_at = 0;
      workers[s].pid = spawn_worker(*shared, s, workers[s].incarnation);
      shared->counters.respawns.fetch_add(1);
    }
  }
  shared->stop.store(1);
  if (shared->failed.load())
    failed = true;

  // Workers finish their current operation and exit.
  double give_up = monotonic_seconds() + 180;
  for (;;) {
    reap_some();
    bool alive = false;
    for (const WorkerProcess &w : workers)
      alive = alive || w.pid > 0;
    if (!alive)
      break;
    if (monotonic_seconds() > give_up) {
      failed = true;
      for (int s = 0; s < opt.procs; ++s)
        if (workers[s].pid > 0) {
          show_stuck(*shared, s, workers[s].pid, "did not exit at the end of the run");
          if (!kill_and_reap(workers[s].pid, 30))
            say(2, "xpmem_fuzz: worker pid %d survived SIGKILL for 30 s: stuck in the kernel\n",
                workers[s].pid);
          workers[s].pid = -1;
        }
      break;
    }
    sleep_microseconds(20000);
  }
  // Orphaned fork children, if any, are short-lived.
  give_up = monotonic_seconds() + 60;
  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      reaped(pid, status);
      continue;
    }
    if (pid < 0 && errno == ECHILD)
      break;
    if (monotonic_seconds() > give_up) {
      say(2, "xpmem_fuzz: FAIL (seed %llu): a fork child outlived the run by a minute\n",
          (unsigned long long)opt.seed);
      failed = true;
      break;
    }
    sleep_microseconds(20000);
  }
  if (shared->failed.load())
    failed = true;

  double elapsed = monotonic_seconds() - shared->start;
  if (auto stats = read_module_stats()) {
    std::string text;
    for (const auto &[name, value] : *stats)
      text += " " + name + "=" + std::to_string(value);
    say(1, "xpmem_fuzz: module counters:%s\n", text.c_str());
  }
  print_summary(*shared, elapsed, failed);
  if (failed)
    say(2,
        "xpmem_fuzz: reproduce with: xpmem_fuzz --seed %llu --seconds %llu --procs %d "
        "--threads %d%s\n",
        (unsigned long long)opt.seed, (unsigned long long)opt.seconds, opt.procs, opt.threads,
        opt.self_windows ? "" : " --no-self-window");
  return failed ? 1 : 0;
}
