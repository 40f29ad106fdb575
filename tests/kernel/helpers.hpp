// Helpers for the in-VM suite: child processes, signals, a channel between
// processes, the module's counters.
#pragma once

#include <xpmem.h>
#include <xpmem.hpp>

#include "module_debug.hpp"

#include <csetjmp>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace xt {

inline const std::size_t kPage = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));

// How a child ended: exit code, or the signal that killed it.
struct Outcome {
  int exit_code = -1;
  int signal = 0;
  bool ok() const { return signal == 0 && exit_code == 0; }
};

inline Outcome outcome_of(int status) {
  Outcome o;
  if (WIFEXITED(status))
    o.exit_code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status))
    o.signal = WTERMSIG(status);
  return o;
}

inline Outcome wait_child(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return outcome_of(status);
}

// Waits for a child for at most `seconds`; a child still running then is
// reported as a hang (and killed, which a child stuck in the kernel
// ignores: the VM rig then fails on the module that cannot unload).
inline Outcome wait_child_for(pid_t pid, int seconds, bool *hung) {
  for (int waited_ms = 0;; waited_ms += 20) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid)
      return outcome_of(status);
    if (waited_ms >= seconds * 1000) {
      *hung = true;
      kill(pid, SIGKILL);
      return wait_child(pid);
    }
    usleep(20000);
  }
}

// Runs fn in a forked child; its return value is the exit code.
inline pid_t spawn(const std::function<int()> &fn) {
  pid_t pid = fork();
  if (pid == 0) {
    _exit(fn());
  }
  return pid;
}

inline Outcome run_child(const std::function<int()> &fn) {
  return wait_child(spawn(fn));
}

namespace detail {
inline thread_local sigjmp_buf *touch_jump = nullptr;
inline void on_touch_signal(int sig) {
  if (touch_jump)
    siglongjmp(*touch_jump, sig);
  signal(sig, SIG_DFL);
  raise(sig);
}
} // namespace detail

// The signal (SIGBUS, SIGSEGV) or 0 raised by touching addr in this process
// (attachments are not inherited, so a forked child cannot probe them).
inline int touch_signal(volatile char *addr, bool write) {
  struct sigaction sa {
  }, old_bus{}, old_segv{};
  sa.sa_handler = detail::on_touch_signal;
  sa.sa_flags = SA_NODEFER;
  sigaction(SIGBUS, &sa, &old_bus);
  sigaction(SIGSEGV, &sa, &old_segv);
  sigjmp_buf jump;
  int sig = sigsetjmp(jump, 1);
  if (sig == 0) {
    detail::touch_jump = &jump;
    if (write)
      *addr = *addr;
    else
      (void)*addr;
  }
  detail::touch_jump = nullptr;
  sigaction(SIGBUS, &old_bus, nullptr);
  sigaction(SIGSEGV, &old_segv, nullptr);
  return sig;
}

// A bidirectional pipe of 64-bit values between a parent and a child.
class Channel {
public:
  Channel() { EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds_), 0); }
  ~Channel() {
    close(fds_[0]);
    close(fds_[1]);
  }
  // The parent uses end 0, the child end 1.
  void send(int end, std::int64_t v) {
    EXPECT_EQ(write(fds_[end], &v, sizeof v), (ssize_t)sizeof v);
  }
  std::int64_t recv(int end) {
    std::int64_t v = -1;
    if (read(fds_[end], &v, sizeof v) != (ssize_t)sizeof v)
      return -1;
    return v;
  }

private:
  int fds_[2] = {-1, -1};
};

// Anonymous private mapping, unmapped on destruction.
class Mapping {
public:
  Mapping(std::size_t size, int prot = PROT_READ | PROT_WRITE,
          int flags = MAP_PRIVATE | MAP_ANONYMOUS, int fd = -1, void *at = nullptr)
      : size_(size) {
    void *p = mmap(at, size, prot, flags, fd, 0);
    addr_ = p == MAP_FAILED ? nullptr : static_cast<char *>(p);
  }
  ~Mapping() {
    if (addr_)
      munmap(addr_, size_);
  }
  Mapping(const Mapping &) = delete;
  Mapping &operator=(const Mapping &) = delete;
  char *data() const { return addr_; }
  std::size_t size() const { return size_; }

private:
  char *addr_ = nullptr;
  std::size_t size_;
};

inline void fill(char *p, std::size_t n, std::uint32_t seed) {
  for (std::size_t i = 0; i < n; i += sizeof(std::uint32_t)) {
    std::uint32_t v = seed ^ static_cast<std::uint32_t>(i * 2654435761u);
    std::memcpy(p + i, &v, sizeof v);
  }
}

inline bool check(const char *p, std::size_t n, std::uint32_t seed) {
  for (std::size_t i = 0; i < n; i += sizeof(std::uint32_t)) {
    std::uint32_t v;
    std::memcpy(&v, p + i, sizeof v);
    if (v != (seed ^ static_cast<std::uint32_t>(i * 2654435761u)))
      return false;
  }
  return true;
}

// The module's debugfs counters, if this user can read them (root).
inline std::optional<std::map<std::string, long>> stats() {
  return xpmem_debug::read_counters();
}

using xpmem_debug::ScopedParam;

// A permit and an attachment of the first `size` bytes of a segment.
struct Attached {
  xpmem::Permit permit;
  xpmem::Attachment att;
  char *data() const { return static_cast<char *>(att.data()); }
  explicit operator bool() const { return att.valid(); }
};

inline Attached attach_segment(xpmem_segid_t segid, std::size_t size, bool writable = true) {
  Attached a;
  a.permit = xpmem::Permit::get(segid, writable);
  if (a.permit)
    a.att = xpmem::Attachment::attach(a.permit, 0, size);
  return a;
}

inline xpmem_addr at(xpmem_apid_t apid, off_t offset = 0) {
  return xpmem_addr{apid, offset};
}
inline bool failed(void *p) {
  return p == reinterpret_cast<void *>(-1);
}

} // namespace xt
