// uct_xpmem.hpp - the UCT "xpmem" component and transport (device "memory").
//
// Memory domain: each process exports its whole address space once; a
// registration is a descriptor {address, length} and a packed rkey is
// {segid, address, length}.  Unpacking an rkey leases an attachment of the
// peer's range from the per-peer cache (core/), and the rkey value is the
// distance from the peer's address to our mapping of it, so rkey_ptr, put,
// get and atomics are plain CPU accesses at remote_addr + rkey.
//
// Interface: active messages through a receive FIFO in POSIX shared memory
// (core/mpsc_fifo.hpp) that every peer's endpoint writes into; put/get in
// short, bcopy and zcopy flavours (zcopy copies with the shared copy engine);
// CPU atomics.  Everything completes at once, so flush only waits for the
// pending queue.
#ifndef UCT_XPMEM_HPP
#define UCT_XPMEM_HPP

#include <cstddef>
#include <cstdint>

#include <xpmem.h>

#include "ucx_headers.hpp"

namespace uct_xpmem {

constexpr const char *kName = "xpmem";

// MD configuration: UCX_XPMEM_CACHE_MAX_SIZE and friends.
struct MdConfig {
  uct_md_config_t super;
  std::size_t cache_max_bytes;
  unsigned long cache_max_entries;
  std::size_t attach_align;
  int rndv_rkey_ptr;
};

struct Md {
  uct_md_t super;
  bool rndv_rkey_ptr; // advertise UCT_MD_FLAG_RKEY_PTR to UCP
};

// The packed rkey: which exported segment, and the registered range in it.
struct PackedRkey {
  std::uint64_t segid;
  std::uint64_t address;
  std::uint64_t length;
} __attribute__((packed));

// The interface address peers connect to: the FIFO's shared-memory object
// (by owner pid and serial), a nonce proving it is the same FIFO, and the
// owner's exported segment (endpoints hold the peer's attachment cache).
struct IfaceAddress {
  std::uint64_t nonce;
  std::uint64_t segid;
  std::uint32_t pid;
  std::uint32_t serial;
} __attribute__((packed));

// The process's export of its whole address space, made on first use;
// -1 with errno set if the module refuses.
xpmem_segid_t exported_segid();

// A peer's exported segment: one permit, one attachment cache.  Counted:
// endpoints and unpacked rkeys hold references.
struct Peer;
Peer *acquire_peer(xpmem_segid_t segid);
void release_peer(Peer *peer);

// Copies of at least this size leave the caches alone (config NT_THRESHOLD).
struct IfaceConfig {
  uct_sm_iface_config_t super;
  unsigned fifo_size;
  std::size_t seg_size;
  std::size_t max_short;
  unsigned max_poll;
  int nontemporal;
  std::size_t nt_threshold;
};

// An ops-table slot the transport does not implement.  UCX's stub is
// declared without a prototype and meant for any slot; going through a
// generic function pointer says the cast is deliberate.
template <typename Fn> Fn unsupported() {
  return reinterpret_cast<Fn>(reinterpret_cast<void (*)()>(ucs_empty_function_return_unsupported));
}

extern uct_component_t component;
extern uct_tl_t tl;
extern ucs_config_field_t iface_config_table[];

} // namespace uct_xpmem

// The interface and endpoint objects, as UCS classes (their C++ state lives
// behind one pointer so the UCX-visible layout stays plain).
namespace uct_xpmem {
class IfaceState;
class EpState;
} // namespace uct_xpmem

struct uct_xpmem_iface_t {
  uct_sm_iface_t super;
  uct_xpmem::IfaceState *state;
};

struct uct_xpmem_ep_t {
  uct_base_ep_t super;
  uct_xpmem::EpState *state;
};

extern "C" {
UCS_CLASS_DECLARE_NEW_FUNC(uct_xpmem_iface_t, uct_iface_t, uct_md_h, uct_worker_h,
                           const uct_iface_params_t *, const uct_iface_config_t *);
}

#endif // UCT_XPMEM_HPP
