// btl_xpmem: an Open MPI 4.1 BTL for processes on one node.
//
// Small and control messages go through per-peer mailboxes (SPSC rings in
// POSIX shared memory: a peer that exits first leaves them valid).  Large
// messages go by ob1's RGET: the receiver copies straight out of the
// sender's buffer through an XPMEM attachment of the sender's address
// space, which every process exports once at init.  Put and CPU atomics on
// attached memory work the same way.
#ifndef BTL_XPMEM_HPP
#define BTL_XPMEM_HPP

#include "ompi_headers.hpp"

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include <xpmem.hpp>

#include "xpmem_core/attach_cache.hpp"
#include "xpmem_core/copy_engine.hpp"
#include "xpmem_core/spsc_ring.hpp"
#include "xpmem_core/xpmem_attacher.hpp"

// What each process publishes through the modex.
struct BtlXpmemModex {
  std::int64_t segid;      // whole-address-space segment
  std::int32_t local_rank; // index of our ring in every peer's mailbox
  std::uint32_t ring_bytes;
  std::uint32_t num_rings;
  char shm_name[64]; // our mailbox: one ring per local sender
};

// A descriptor handed to ob1; `data` holds the message until it is sent.
struct BtlXpmemFrag {
  mca_btl_base_descriptor_t base;
  mca_btl_base_segment_t segment;
  struct mca_btl_base_endpoint_t *endpoint;
  std::size_t capacity;
  mca_btl_base_tag_t tag; // while queued
  unsigned char *data;
};

// Per-peer state.
struct mca_btl_base_endpoint_t {
  opal_proc_t *proc = nullptr;
  int local_rank = -1;
  xpmem::Permit permit;
  std::unique_ptr<xpmem_core::XpmemAttacher> attacher;
  std::unique_ptr<xpmem_core::AttachCache> cache;
  void *mailbox = nullptr; // the peer's mailbox, mapped
  std::size_t mailbox_bytes = 0;
  xpmem_core::SpscRing tx;            // our ring in it
  bool tx_populated = false;          // see populate_ring()
  std::deque<BtlXpmemFrag *> pending; // sends waiting for ring space, in order
};

struct BtlXpmemParams {
  int ring_kib = 256;
  int attach_log_align = 21;
  unsigned long cache_max_mib = 65536;
  int cache_max_entries = 4096;
  bool non_temporal = true;
  unsigned long non_temporal_threshold = 0;
};

struct BtlXpmemState {
  BtlXpmemParams params;
  xpmem::Segment segment;
  int local_rank = -1;
  int num_rings = 0;
  std::size_t ring_bytes = 0;
  char shm_name[64] = {};
  void *mailbox = nullptr; // ours: rings[sender local rank]
  std::size_t mailbox_bytes = 0;
  struct RxRing {
    xpmem_core::SpscRing ring;
    bool populated = false; // see populate_ring()
  };
  std::vector<RxRing> rx;    // the rings of our mailbox that peers write, ours left out
  int endpoints_pending = 0; // endpoints whose pending queue is not empty
  std::vector<mca_btl_base_endpoint_t *> endpoints;
  std::unique_ptr<xpmem_core::CopyEngine> copy;
  std::vector<BtlXpmemFrag *> free_small, free_large;
  bool in_progress = false;
  std::uint64_t bytes_single_copied = 0; // get + put payload
  std::uint64_t atomics = 0;
};

extern "C" {
extern mca_btl_base_component_3_0_0_t mca_btl_xpmem_component;
}
extern mca_btl_base_module_t btl_xpmem_module;
extern BtlXpmemState btl_xpmem;

constexpr std::size_t kSmallFrag = 4096;

// btl_xpmem_pvars.cpp
void btl_xpmem_register_pvars();

// btl_xpmem_module.cpp
void btl_xpmem_module_setup(mca_btl_base_module_t &module);
int btl_xpmem_progress_rings();
void btl_xpmem_release_all();

#endif // BTL_XPMEM_HPP
