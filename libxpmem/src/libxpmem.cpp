// libxpmem: the C API of xpmem.h over the /dev/xpmem ioctl ABI.
//
// One device file per process, opened lazily with O_CLOEXEC.  A forked child
// must not use its parent's file (the module answers XPMEM_ERRNO_NOPROC), so
// the child drops it and opens its own on first use.

#include "xpmem.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "../../kmod/uapi/xpmem_abi.h"

static_assert(XPMEM_RDONLY == XPMEM_ABI_RDONLY && XPMEM_RDWR == XPMEM_ABI_RDWR);
static_assert(XPMEM_PERMIT_MODE == XPMEM_ABI_PERMIT_MODE);
static_assert(XPMEM_ERRNO_NOPROC == XPMEM_ABI_ERRNO_NOPROC);
static_assert(sizeof(off_t) == 8 && sizeof(size_t) == 8, "64-bit callers only");

namespace {

class Device {
public:
  // The process's device fd, opening it if needed; -1 with errno set.
  int fd() noexcept {
    int fd = fd_.load(std::memory_order_acquire);
    return fd >= 0 ? fd : open_slow();
  }

  // The fd just failed with XPMEM_ERRNO_NOPROC: it is not ours.
  void forget(int stale) noexcept {
    pthread_mutex_lock(&lock_);
    if (fd_.load(std::memory_order_relaxed) == stale) {
      fd_.store(-1, std::memory_order_release);
      ::close(stale);
    }
    pthread_mutex_unlock(&lock_);
  }

  const char *reason() noexcept { return fd() >= 0 ? nullptr : reason_; }

private:
  int open_slow() noexcept {
    pthread_mutex_lock(&lock_);
    int fd = fd_.load(std::memory_order_relaxed);
    int err = 0;
    if (fd < 0) {
      static pthread_once_t once = PTHREAD_ONCE_INIT;
      pthread_once(&once, [] { pthread_atfork(nullptr, nullptr, on_fork_child); });
      fd = ::open(XPMEM_DEVICE_PATH, O_RDWR | O_CLOEXEC);
      err = errno;
      if (fd >= 0)
        fd_.store(fd, std::memory_order_release);
      else
        describe(err);
    }
    pthread_mutex_unlock(&lock_);
    if (fd < 0)
      errno = err;
    return fd;
  }

  void describe(int err) noexcept {
    switch (err) {
    case ENOENT:
      std::snprintf(reason_, sizeof(reason_),
                    "%s does not exist: the xpmem kernel module is not loaded "
                    "(load it with 'modprobe xpmem' or 'insmod xpmem.ko').",
                    XPMEM_DEVICE_PATH);
      break;
    case ENODEV:
    case ENXIO:
      std::snprintf(reason_, sizeof(reason_),
                    "%s exists but no driver answers it: the xpmem kernel "
                    "module is not loaded.",
                    XPMEM_DEVICE_PATH);
      break;
    case EACCES:
    case EPERM:
      std::snprintf(reason_, sizeof(reason_),
                    "%s cannot be opened by this user (permission denied); "
                    "the device should be mode 0666.",
                    XPMEM_DEVICE_PATH);
      break;
    default:
      std::snprintf(reason_, sizeof(reason_), "%s cannot be opened: %s.", XPMEM_DEVICE_PATH,
                    std::strerror(err));
      break;
    }
  }

  // In a forked child: close the inherited descriptor at once (close() is
  // async-signal-safe) and forget it, so the child opens its own device on
  // first use; the module refuses calls through a file another process
  // opened, and the parent's segments must not live on in the child.
  static void on_fork_child();

  std::atomic<int> fd_{-1};
  pthread_mutex_t lock_ = PTHREAD_MUTEX_INITIALIZER;
  char reason_[256] = {};
};

Device g_device;

void Device::on_fork_child() {
  int fd = g_device.fd_.exchange(-1, std::memory_order_relaxed);
  g_device.lock_ = PTHREAD_MUTEX_INITIALIZER;
  if (fd >= 0)
    ::close(fd); // close() is async-signal-safe; the parent keeps its copy
}

// One ioctl, re-opening once if the module says this process is not the
// one that opened the device.
long call(unsigned int cmd, void *arg) noexcept {
  for (int attempt = 0; attempt < 2; ++attempt) {
    int fd = g_device.fd();
    if (fd < 0)
      return -1;
    long ret = ::ioctl(fd, cmd, arg);
    if (ret >= 0 || errno != XPMEM_ERRNO_NOPROC)
      return ret;
    g_device.forget(fd);
  }
  errno = XPMEM_ERRNO_NOPROC;
  return -1;
}

} // namespace

extern "C" {

int xpmem_init(void) {
  return g_device.fd() >= 0 ? 0 : -1;
}

int xpmem_ioctl(int cmd, void *arg) {
  return static_cast<int>(call(static_cast<unsigned>(cmd), arg));
}

const char *xpmem_unavailable_reason(void) {
  return g_device.reason();
}

int xpmem_version(void) {
  return static_cast<int>(call(XPMEM_CMD_VERSION, nullptr));
}

xpmem_segid_t xpmem_make(void *vaddr, size_t size, int permit_type, void *permit_value) {
  xpmem_cmd_make cmd{};
  cmd.vaddr = reinterpret_cast<std::uintptr_t>(vaddr);
  cmd.size = size;
  cmd.permit_type = permit_type;
  cmd.permit_value = reinterpret_cast<std::uintptr_t>(permit_value);
  if (call(XPMEM_CMD_MAKE, &cmd) < 0)
    return -1;
  return cmd.segid;
}

int xpmem_remove(xpmem_segid_t segid) {
  xpmem_cmd_remove cmd{segid};
  return call(XPMEM_CMD_REMOVE, &cmd) < 0 ? -1 : 0;
}

xpmem_apid_t xpmem_get(xpmem_segid_t segid, int flags, int permit_type, void * /*permit_value*/) {
  // Callers pass 0666, 0600 or NULL here; the exporter's mode decides.
  xpmem_cmd_get cmd{};
  cmd.segid = segid;
  cmd.flags = flags;
  cmd.permit_type = permit_type;
  if (call(XPMEM_CMD_GET, &cmd) < 0)
    return -1;
  return cmd.apid;
}

int xpmem_release(xpmem_apid_t apid) {
  xpmem_cmd_release cmd{apid};
  return call(XPMEM_CMD_RELEASE, &cmd) < 0 ? -1 : 0;
}

void *xpmem_attach(struct xpmem_addr addr, size_t size, void *vaddr) {
  xpmem_cmd_attach cmd{};
  cmd.apid = addr.apid;
  cmd.offset = addr.offset;
  cmd.size = size;
  cmd.vaddr = reinterpret_cast<std::uintptr_t>(vaddr);
  cmd.fd = -1;
  if (call(XPMEM_CMD_ATTACH, &cmd) < 0)
    return reinterpret_cast<void *>(-1);
  return reinterpret_cast<void *>(static_cast<std::uintptr_t>(cmd.vaddr));
}

int xpmem_detach(void *vaddr) {
  xpmem_cmd_detach cmd{reinterpret_cast<std::uintptr_t>(vaddr)};
  return call(XPMEM_CMD_DETACH, &cmd) < 0 ? -1 : 0;
}

} // extern "C"
