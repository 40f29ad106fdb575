// xpmem.hpp - RAII handles over xpmem.h for C++ users and our plugins.
//
// Each handle owns one kernel object (a segment, an access permit, an
// attachment) and gives it back when destroyed.  No exceptions: a failed
// creation yields an empty handle whose error() is the errno.
#ifndef XPMEM_HPP
#define XPMEM_HPP

#include <xpmem.h>

#include <cerrno>
#include <cstddef>
#include <utility>

namespace xpmem {

// A move-only owner of one id; Release is the call that gives it back.
template <typename Id, int (*Release)(Id)> class Handle {
public:
  Handle() = default;
  Handle(Handle &&other) noexcept : id_(std::exchange(other.id_, -1)), error_(other.error_) {}
  Handle &operator=(Handle &&other) noexcept {
    if (this != &other) {
      reset();
      id_ = std::exchange(other.id_, -1);
      error_ = other.error_;
    }
    return *this;
  }
  Handle(const Handle &) = delete;
  Handle &operator=(const Handle &) = delete;
  ~Handle() { reset(); }

  [[nodiscard]] bool valid() const noexcept { return id_ > 0; }
  explicit operator bool() const noexcept { return valid(); }
  [[nodiscard]] Id id() const noexcept { return id_; }
  // errno of the failed creation, 0 if valid.
  [[nodiscard]] int error() const noexcept { return error_; }
  // Gives up ownership without releasing.
  Id release_ownership() noexcept { return std::exchange(id_, -1); }

  void reset() noexcept {
    if (id_ > 0)
      Release(id_);
    id_ = -1;
  }

protected:
  explicit Handle(Id id) noexcept : id_(id), error_(id > 0 ? 0 : errno) {}

private:
  Id id_ = -1;
  int error_ = 0;
};

// Memory this process exports.
class Segment : public Handle<xpmem_segid_t, xpmem_remove> {
public:
  Segment() = default;
  // Exports [addr, addr + size); mode is who may get it (e.g. 0600).
  static Segment make(void *addr, std::size_t size, int mode) noexcept {
    return Segment(xpmem_make(addr, size, XPMEM_PERMIT_MODE,
                              reinterpret_cast<void *>(static_cast<long>(mode))));
  }
  // Exports the whole address space, as MPI libraries do.
  static Segment make_whole_address_space(int mode) noexcept {
    return make(nullptr, XPMEM_MAXADDR_SIZE, mode);
  }

private:
  using Handle::Handle;
};

// Access to another process's segment.
class Permit : public Handle<xpmem_apid_t, xpmem_release> {
public:
  Permit() = default;
  static Permit get(xpmem_segid_t segid, bool writable = true) noexcept {
    return Permit(
        xpmem_get(segid, writable ? XPMEM_RDWR : XPMEM_RDONLY, XPMEM_PERMIT_MODE, nullptr));
  }

private:
  using Handle::Handle;
};

// A mapping of part of a segment into this process.
class Attachment {
public:
  Attachment() = default;
  static Attachment attach(const Permit &permit, off_t offset, std::size_t size,
                           void *at = nullptr) noexcept {
    void *p = xpmem_attach(xpmem_addr{permit.id(), offset}, size, at);
    if (p == reinterpret_cast<void *>(-1))
      return Attachment(nullptr, 0, errno);
    return Attachment(p, size, 0);
  }
  Attachment(Attachment &&other) noexcept
      : addr_(std::exchange(other.addr_, nullptr)), size_(other.size_), error_(other.error_) {}
  Attachment &operator=(Attachment &&other) noexcept {
    if (this != &other) {
      reset();
      addr_ = std::exchange(other.addr_, nullptr);
      size_ = other.size_;
      error_ = other.error_;
    }
    return *this;
  }
  Attachment(const Attachment &) = delete;
  Attachment &operator=(const Attachment &) = delete;
  ~Attachment() { reset(); }

  [[nodiscard]] bool valid() const noexcept { return addr_ != nullptr; }
  explicit operator bool() const noexcept { return valid(); }
  [[nodiscard]] void *data() const noexcept { return addr_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] int error() const noexcept { return error_; }

  void reset() noexcept {
    if (addr_)
      xpmem_detach(addr_);
    addr_ = nullptr;
  }

private:
  Attachment(void *addr, std::size_t size, int error) noexcept
      : addr_(addr), size_(size), error_(error) {}

  void *addr_ = nullptr;
  std::size_t size_ = 0;
  int error_ = 0;
};

} // namespace xpmem

#endif // XPMEM_HPP
