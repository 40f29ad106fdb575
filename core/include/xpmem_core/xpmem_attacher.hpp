// xpmem_attacher.hpp - the production Attacher: attachments through one
// access permit of a peer's exported segment (offset == peer address when
// the peer exported its whole address space, as the plugins do).
#ifndef XPMEM_CORE_XPMEM_ATTACHER_HPP
#define XPMEM_CORE_XPMEM_ATTACHER_HPP

#include <xpmem.h>

#include "xpmem_core/attach_cache.hpp"

namespace xpmem_core {

class XpmemAttacher final : public Attacher {
public:
  explicit XpmemAttacher(xpmem_apid_t apid) noexcept : apid_(apid) {}

  void *attach(std::uintptr_t remote, std::size_t len) noexcept override {
    void *p = xpmem_attach(xpmem_addr{apid_, static_cast<off_t>(remote)}, len, nullptr);
    return p == reinterpret_cast<void *>(-1) ? nullptr : p;
  }
  void detach(void *local, std::size_t) noexcept override { xpmem_detach(local); }

private:
  xpmem_apid_t apid_;
};

} // namespace xpmem_core

#endif // XPMEM_CORE_XPMEM_ATTACHER_HPP
