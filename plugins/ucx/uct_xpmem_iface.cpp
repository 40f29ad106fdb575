// The UCT xpmem interface and endpoint: active messages through a receive
// FIFO in POSIX shared memory, RMA and atomics straight through attachments.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdio>
#include <cstring>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "uct_xpmem.hpp"
#include "xpmem_core/copy_engine.hpp"
#include "xpmem_core/mpsc_fifo.hpp"

namespace uct_xpmem {
namespace {

using xpmem_core::MpscFifo;

constexpr std::size_t kAmHeader = sizeof(std::uint64_t); // am_short's 64-bit header
// Pending requests a progress call runs at most, so one endpoint whose peer
// is slow cannot hold the worker.
constexpr unsigned kPendingBudget = 64;

std::string fifo_name(std::uint32_t pid, std::uint32_t serial) {
  char name[64];
  std::snprintf(name, sizeof name, "/ucx-xpmem.%u.%u", pid, serial);
  return name;
}

// A MAP_SHARED mapping of a shared-memory object, unmapped on destruction.
class Mapping {
public:
  Mapping() = default;
  Mapping(void *addr, std::size_t len) : addr_(addr), len_(len) {}
  Mapping(Mapping &&other) noexcept : addr_(other.addr_), len_(other.len_) {
    other.addr_ = nullptr;
  }
  Mapping &operator=(Mapping &&other) noexcept {
    std::swap(addr_, other.addr_);
    std::swap(len_, other.len_);
    return *this;
  }
  ~Mapping() {
    if (addr_)
      munmap(addr_, len_);
  }
  void *get() const { return addr_; }
  std::size_t size() const { return len_; }

private:
  void *addr_ = nullptr;
  std::size_t len_ = 0;
};

// Maps an existing object read-write; empty on failure (errno set).
Mapping map_shared_object(const std::string &name) {
  const int fd = shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0)
    return {};
  struct stat st;
  Mapping mapping;
  if (fstat(fd, &st) == 0 && st.st_size > 0) {
    void *p = mmap(nullptr, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p != MAP_FAILED)
      mapping = Mapping(p, st.st_size);
  }
  close(fd);
  return mapping;
}

// The pending queue is intrusive: a request's priv area holds its successor.
uct_pending_req_t *&next_of(uct_pending_req_t *req) {
  static_assert(UCT_PENDING_REQ_PRIV_LEN >= sizeof(uct_pending_req_t *));
  return *reinterpret_cast<uct_pending_req_t **>(req->priv);
}

// Calls fn(piece, bytes) for each contiguous piece of an iov list, in
// order: `count` pieces of `length` bytes, `stride` apart (UCX's meaning,
// under which uct_iov_total_length() counts the bytes).
template <typename Fn> void for_each_piece(const uct_iov_t *iov, std::size_t iovcnt, Fn fn) {
  for (std::size_t i = 0; i < iovcnt; ++i) {
    auto *base = static_cast<unsigned char *>(iov[i].buffer);
    for (unsigned c = 0; c < iov[i].count; ++c)
      fn(base + c * iov[i].stride, iov[i].length);
  }
}

} // namespace

class EpState {
public:
  Mapping mapping; // the peer's receive FIFO
  MpscFifo fifo;
  Peer *peer = nullptr;
  uct_pending_req_t *pending_head = nullptr;
  uct_pending_req_t *pending_tail = nullptr;
  bool dispatching = false; // sends from the pending queue may go ahead of it
  bool listed = false;      // in the interface's list of endpoints with pending work

  ~EpState() {
    if (peer)
      release_peer(peer);
  }
  bool has_pending() const { return pending_head != nullptr; }
  // New sends wait behind queued ones, so messages stay in order.
  bool blocked() const { return pending_head != nullptr && !dispatching; }
};

class IfaceState {
public:
  std::uint32_t serial = 0;
  std::string name;
  Mapping mapping;
  MpscFifo fifo;
  std::uint64_t nonce = 0;
  unsigned max_poll = 16;
  std::size_t max_short = 0; // am_short limit, at most a cell's payload
  xpmem_core::CopyEngine copier;
  std::vector<uct_xpmem_ep_t *> pending_eps;

  explicit IfaceState(xpmem_core::CopyConfig copy) : copier(copy) {}
  ~IfaceState() {
    if (!name.empty())
      shm_unlink(name.c_str());
  }
};

namespace {

uct_xpmem_iface_t *iface_of(uct_iface_h tl_iface) {
  return ucs_derived_of(tl_iface, uct_xpmem_iface_t);
}
uct_xpmem_ep_t *ep_of(uct_ep_h tl_ep) {
  return ucs_derived_of(tl_ep, uct_xpmem_ep_t);
}
IfaceState &state_of(uct_ep_h tl_ep) {
  return *iface_of(tl_ep->iface)->state;
}

// ---------------------------------------------------------------- active messages

ucs_status_t am_short(uct_ep_h tl_ep, std::uint8_t id, std::uint64_t header, const void *payload,
                      unsigned length) {
  EpState &ep = *ep_of(tl_ep)->state;
  UCT_CHECK_AM_ID(id);
  UCT_CHECK_LENGTH(kAmHeader + length, 0, state_of(tl_ep).max_short, "am_short");
  if (ep.blocked())
    return UCS_ERR_NO_RESOURCE;
  std::uint64_t ticket;
  auto *cell = static_cast<unsigned char *>(ep.fifo.reserve(&ticket));
  if (!cell)
    return UCS_ERR_NO_RESOURCE;
  std::memcpy(cell, &header, kAmHeader);
  std::memcpy(cell + kAmHeader, payload, length);
  ep.fifo.commit(ticket, static_cast<std::uint32_t>(kAmHeader + length), id);
  return UCS_OK;
}

ucs_status_t am_short_iov(uct_ep_h tl_ep, std::uint8_t id, const uct_iov_t *iov, size_t iovcnt) {
  EpState &ep = *ep_of(tl_ep)->state;
  UCT_CHECK_AM_ID(id);
  UCT_CHECK_LENGTH(uct_iov_total_length(iov, iovcnt), 0, state_of(tl_ep).max_short, "am_short_iov");
  if (ep.blocked())
    return UCS_ERR_NO_RESOURCE;
  std::uint64_t ticket;
  auto *cell = static_cast<unsigned char *>(ep.fifo.reserve(&ticket));
  if (!cell)
    return UCS_ERR_NO_RESOURCE;
  std::size_t offset = 0;
  for_each_piece(iov, iovcnt, [&](const unsigned char *piece, std::size_t bytes) {
    std::memcpy(cell + offset, piece, bytes);
    offset += bytes;
  });
  ep.fifo.commit(ticket, static_cast<std::uint32_t>(offset), id);
  return UCS_OK;
}

ssize_t am_bcopy(uct_ep_h tl_ep, std::uint8_t id, uct_pack_callback_t pack_cb, void *arg,
                 unsigned) {
  EpState &ep = *ep_of(tl_ep)->state;
  UCT_CHECK_AM_ID(id);
  if (ep.blocked())
    return UCS_ERR_NO_RESOURCE;
  std::uint64_t ticket;
  void *cell = ep.fifo.reserve(&ticket);
  if (!cell)
    return UCS_ERR_NO_RESOURCE;
  const std::size_t length = pack_cb(cell, arg);
  // The caller packs at most max_bcopy; a larger result has already
  // overrun the cell, so stop here rather than deliver it.
  ucs_assertv_always(length <= ep.fifo.max_payload(), "xpmem: am_bcopy packed %zu bytes", length);
  ep.fifo.commit(ticket, static_cast<std::uint32_t>(length), id);
  return static_cast<ssize_t>(length);
}

// ---------------------------------------------------------------- RMA (zcopy)

template <bool ToRemote>
ucs_status_t copy_iov(uct_ep_h tl_ep, const uct_iov_t *iov, size_t iovcnt,
                      std::uint64_t remote_addr, uct_rkey_t rkey) {
  const xpmem_core::CopyEngine &copier = state_of(tl_ep).copier;
  auto *remote = reinterpret_cast<unsigned char *>(remote_addr + rkey);
  for_each_piece(iov, iovcnt, [&](unsigned char *local, std::size_t bytes) {
    if (ToRemote)
      copier.copy(remote, local, bytes);
    else
      copier.copy(local, remote, bytes);
    remote += bytes;
  });
  return UCS_OK;
}

ucs_status_t put_zcopy(uct_ep_h tl_ep, const uct_iov_t *iov, size_t iovcnt,
                       std::uint64_t remote_addr, uct_rkey_t rkey, uct_completion_t *) {
  return copy_iov<true>(tl_ep, iov, iovcnt, remote_addr, rkey);
}

ucs_status_t get_zcopy(uct_ep_h tl_ep, const uct_iov_t *iov, size_t iovcnt,
                       std::uint64_t remote_addr, uct_rkey_t rkey, uct_completion_t *) {
  return copy_iov<false>(tl_ep, iov, iovcnt, remote_addr, rkey);
}

// ---------------------------------------------------------------- pending, flush

ucs_status_t pending_add(uct_ep_h tl_ep, uct_pending_req_t *req, unsigned) {
  uct_xpmem_ep_t *xep = ep_of(tl_ep);
  EpState &ep = *xep->state;
  if (!ep.has_pending() && !ep.fifo.looks_full())
    return UCS_ERR_BUSY; // room now: the caller should just send
  next_of(req) = nullptr;
  if (ep.pending_tail)
    next_of(ep.pending_tail) = req;
  else
    ep.pending_head = req;
  ep.pending_tail = req;
  if (!ep.listed) {
    state_of(tl_ep).pending_eps.push_back(xep);
    ep.listed = true;
  }
  return UCS_OK;
}

void pending_purge(uct_ep_h tl_ep, uct_pending_purge_callback_t cb, void *arg) {
  EpState &ep = *ep_of(tl_ep)->state;
  while (uct_pending_req_t *req = ep.pending_head) {
    ep.pending_head = next_of(req);
    if (cb)
      cb(req, arg);
  }
  ep.pending_tail = nullptr;
}

// Runs an endpoint's queued requests in order until one cannot proceed.
void dispatch_pending(EpState &ep, unsigned &budget) {
  while (ep.pending_head && budget > 0) {
    uct_pending_req_t *req = ep.pending_head;
    --budget;
    ep.dispatching = true;
    const ucs_status_t status = req->func(req);
    ep.dispatching = false;
    if (status == UCS_INPROGRESS)
      continue;
    if (status != UCS_OK)
      break;
    // The callback may have purged or re-queued; only pop what is still first.
    if (ep.pending_head == req) {
      ep.pending_head = next_of(req);
      if (!ep.pending_head)
        ep.pending_tail = nullptr;
    }
  }
}

void progress_pending(IfaceState &iface) {
  unsigned budget = kPendingBudget;
  auto &eps = iface.pending_eps;
  for (std::size_t i = 0; i < eps.size();) {
    EpState &ep = *eps[i]->state;
    dispatch_pending(ep, budget);
    if (ep.has_pending()) {
      ++i;
    } else {
      ep.listed = false;
      eps[i] = eps.back();
      eps.pop_back();
    }
  }
}

ucs_status_t ep_flush(uct_ep_h tl_ep, unsigned, uct_completion_t *) {
  // Every operation completes before it returns; only queued ones remain.
  return ep_of(tl_ep)->state->has_pending() ? UCS_ERR_NO_RESOURCE : UCS_OK;
}

ucs_status_t iface_flush(uct_iface_h tl_iface, unsigned, uct_completion_t *) {
  return iface_of(tl_iface)->state->pending_eps.empty() ? UCS_OK : UCS_ERR_NO_RESOURCE;
}

// ---------------------------------------------------------------- progress

// Delivers up to max_poll messages, then runs queued sends.
__attribute__((noinline)) unsigned progress_work(uct_xpmem_iface_t *iface) {
  IfaceState &state = *iface->state;
  unsigned count = 0;
  while (count < state.max_poll) {
    const MpscFifo::Cell *cell = state.fifo.peek();
    if (!cell)
      break;
    // Handlers copy what they keep: no descriptor flag, so the cell is ours
    // again (and the sender's) as soon as the handler returns.
    uct_iface_invoke_am(&iface->super.super, cell->tag, const_cast<void *>(MpscFifo::payload(cell)),
                        cell->length, 0);
    state.fifo.release(cell);
    ++count;
  }
  if (!state.pending_eps.empty())
    progress_pending(state);
  return count;
}

// Called on every turn of UCX's progress loop; idle, it reads one cell's
// sequence word and the pending list, and the work is out of line.
unsigned iface_progress(uct_iface_h tl_iface) {
  uct_xpmem_iface_t *iface = iface_of(tl_iface);
  IfaceState &state = *iface->state;
  if (!state.fifo.peek() && state.pending_eps.empty())
    return 0;
  return progress_work(iface);
}

// ---------------------------------------------------------------- addresses, query

ucs_status_t iface_get_address(uct_iface_h tl_iface, uct_iface_addr_t *addr) {
  const IfaceState &state = *iface_of(tl_iface)->state;
  const xpmem_segid_t segid = exported_segid();
  if (segid == -1)
    return UCS_ERR_IO_ERROR;
  const IfaceAddress address{state.nonce, static_cast<std::uint64_t>(segid),
                             static_cast<std::uint32_t>(getpid()), state.serial};
  std::memcpy(addr, &address, sizeof address);
  return UCS_OK;
}

int iface_is_reachable(const uct_iface_h tl_iface, const uct_device_addr_t *dev_addr,
                       const uct_iface_addr_t *iface_addr) {
  return iface_addr != nullptr && uct_sm_iface_is_reachable(tl_iface, dev_addr, iface_addr);
}

ucs_status_t iface_query(uct_iface_h tl_iface, uct_iface_attr_t *attr) {
  uct_xpmem_iface_t *iface = iface_of(tl_iface);
  uct_base_iface_query(&iface->super.super, attr);
  const std::size_t max_payload = iface->state->fifo.max_payload();

  attr->iface_addr_len = sizeof(IfaceAddress);
  attr->device_addr_len = uct_sm_iface_get_device_addr_len();
  attr->ep_addr_len = 0;
  attr->max_conn_priv = 0;
  attr->cap.flags = UCT_IFACE_FLAG_CONNECT_TO_IFACE | UCT_IFACE_FLAG_AM_SHORT |
                    UCT_IFACE_FLAG_AM_BCOPY | UCT_IFACE_FLAG_PUT_SHORT | UCT_IFACE_FLAG_PUT_BCOPY |
                    UCT_IFACE_FLAG_PUT_ZCOPY | UCT_IFACE_FLAG_GET_BCOPY | UCT_IFACE_FLAG_GET_ZCOPY |
                    UCT_IFACE_FLAG_ATOMIC_CPU | UCT_IFACE_FLAG_PENDING | UCT_IFACE_FLAG_CB_SYNC;
  attr->cap.event_flags = 0;

  const std::uint64_t ops = UCS_BIT(UCT_ATOMIC_OP_ADD) | UCS_BIT(UCT_ATOMIC_OP_AND) |
                            UCS_BIT(UCT_ATOMIC_OP_OR) | UCS_BIT(UCT_ATOMIC_OP_XOR);
  attr->cap.atomic32.op_flags = attr->cap.atomic64.op_flags = ops;
  attr->cap.atomic32.fop_flags = attr->cap.atomic64.fop_flags =
      ops | UCS_BIT(UCT_ATOMIC_OP_SWAP) | UCS_BIT(UCT_ATOMIC_OP_CSWAP);

  attr->cap.put.max_short = UINT_MAX;
  attr->cap.put.max_bcopy = SIZE_MAX;
  attr->cap.put.min_zcopy = 0;
  attr->cap.put.max_zcopy = SIZE_MAX;
  attr->cap.put.opt_zcopy_align = 1;
  attr->cap.put.align_mtu = 1;
  attr->cap.put.max_iov = UCT_SM_MAX_IOV;

  attr->cap.get.max_short = 0;
  attr->cap.get.max_bcopy = SIZE_MAX;
  attr->cap.get.min_zcopy = 0;
  attr->cap.get.max_zcopy = SIZE_MAX;
  attr->cap.get.opt_zcopy_align = 1;
  attr->cap.get.align_mtu = 1;
  attr->cap.get.max_iov = UCT_SM_MAX_IOV;

  attr->cap.am.max_short = iface->state->max_short;
  attr->cap.am.max_bcopy = max_payload;
  attr->cap.am.min_zcopy = 0;
  attr->cap.am.max_zcopy = 0;
  attr->cap.am.opt_zcopy_align = 1;
  attr->cap.am.align_mtu = 1;
  attr->cap.am.max_hdr = 0;
  attr->cap.am.max_iov = UCT_SM_MAX_IOV;

  attr->latency = ucs_linear_func_make(80e-9, 0);
  attr->bandwidth.dedicated = iface->super.config.bandwidth;
  attr->bandwidth.shared = 0;
  attr->overhead = 10e-9;
  attr->priority = 0;
  return UCS_OK;
}

// The transport's atomics are UCX's CPU atomics at remote_addr + rkey; the
// ops table spells the opcode as a plain integer.
ucs_status_t atomic32_fetch(uct_ep_h ep, unsigned op, std::uint32_t value, std::uint32_t *result,
                            std::uint64_t remote_addr, uct_rkey_t rkey, uct_completion_t *comp) {
  return uct_sm_ep_atomic32_fetch(ep, static_cast<uct_atomic_op_t>(op), value, result, remote_addr,
                                  rkey, comp);
}

ucs_status_t atomic64_fetch(uct_ep_h ep, unsigned op, std::uint64_t value, std::uint64_t *result,
                            std::uint64_t remote_addr, uct_rkey_t rkey, uct_completion_t *comp) {
  return uct_sm_ep_atomic64_fetch(ep, static_cast<uct_atomic_op_t>(op), value, result, remote_addr,
                                  rkey, comp);
}

} // namespace
} // namespace uct_xpmem

extern "C" {

// ---------------------------------------------------------------- endpoint class

static UCS_CLASS_INIT_FUNC(uct_xpmem_ep_t, const uct_ep_params_t *params) {
  using namespace uct_xpmem;
  uct_xpmem_iface_t *iface = ucs_derived_of(params->iface, uct_xpmem_iface_t);
  UCS_CLASS_CALL_SUPER_INIT(uct_base_ep_t, &iface->super.super);

  self->state = nullptr;
  UCT_EP_PARAMS_CHECK_DEV_IFACE_ADDRS(params);
  IfaceAddress address;
  std::memcpy(&address, params->iface_addr, sizeof address);

  auto *state = new (std::nothrow) EpState;
  if (!state)
    return UCS_ERR_NO_MEMORY;
  const std::string name = fifo_name(address.pid, address.serial);
  state->mapping = map_shared_object(name);
  if (state->mapping.get())
    state->fifo = MpscFifo::open(state->mapping.get(), state->mapping.size(), address.nonce);
  if (!state->fifo) {
    ucs_error("xpmem: cannot open the receive FIFO %s of process %u: %s", name.c_str(), address.pid,
              state->mapping.get() ? "stale address" : strerror(errno));
    delete state;
    return UCS_ERR_UNREACHABLE;
  }
  // We advertise our own cell size to UCP but write into the peer's cells.
  if (state->fifo.max_payload() < iface->state->fifo.max_payload()) {
    ucs_error("xpmem: process %u uses smaller FIFO cells than we do (UCX_XPMEM_SEG_SIZE "
              "must be the same in all processes)",
              address.pid);
    delete state;
    return UCS_ERR_UNREACHABLE;
  }
  state->peer = acquire_peer(static_cast<xpmem_segid_t>(address.segid));
  if (!state->peer) {
    delete state;
    return UCS_ERR_UNREACHABLE;
  }
  self->state = state;
  return UCS_OK;
}

static UCS_CLASS_CLEANUP_FUNC(uct_xpmem_ep_t) {
  using namespace uct_xpmem;
  if (!self->state)
    return;
  // Drop it from the interface's list before it goes away.
  auto &eps = iface_of(self->super.super.iface)->state->pending_eps;
  for (auto &entry : eps)
    if (entry == self) {
      entry = eps.back();
      eps.pop_back();
      break;
    }
  if (self->state->has_pending())
    ucs_warn("xpmem: endpoint %p destroyed with pending requests", static_cast<void *>(self));
  delete self->state;
}

UCS_CLASS_DEFINE(uct_xpmem_ep_t, uct_base_ep_t);
static UCS_CLASS_DEFINE_NEW_FUNC(uct_xpmem_ep_t, uct_ep_t, const uct_ep_params_t *);
static UCS_CLASS_DEFINE_DELETE_FUNC(uct_xpmem_ep_t, uct_ep_t);

// ---------------------------------------------------------------- interface class

extern ucs_class_t uct_xpmem_iface_t_class;
static UCS_CLASS_DEFINE_DELETE_FUNC(uct_xpmem_iface_t, uct_iface_t);

} // extern "C"

namespace uct_xpmem {
namespace {

uct_iface_ops_t iface_ops = {
    .ep_put_short = uct_sm_ep_put_short,
    .ep_put_bcopy = uct_sm_ep_put_bcopy,
    .ep_put_zcopy = put_zcopy,
    .ep_get_short = unsupported<uct_ep_get_short_func_t>(),
    .ep_get_bcopy = uct_sm_ep_get_bcopy,
    .ep_get_zcopy = get_zcopy,
    .ep_am_short = am_short,
    .ep_am_short_iov = am_short_iov,
    .ep_am_bcopy = am_bcopy,
    .ep_am_zcopy = unsupported<uct_ep_am_zcopy_func_t>(),
    .ep_atomic_cswap64 = uct_sm_ep_atomic_cswap64,
    .ep_atomic_cswap32 = uct_sm_ep_atomic_cswap32,
    .ep_atomic32_post = uct_sm_ep_atomic32_post,
    .ep_atomic64_post = uct_sm_ep_atomic64_post,
    .ep_atomic32_fetch = atomic32_fetch,
    .ep_atomic64_fetch = atomic64_fetch,
    .ep_tag_eager_short = unsupported<uct_ep_tag_eager_short_func_t>(),
    .ep_tag_eager_bcopy = unsupported<uct_ep_tag_eager_bcopy_func_t>(),
    .ep_tag_eager_zcopy = unsupported<uct_ep_tag_eager_zcopy_func_t>(),
    .ep_tag_rndv_zcopy = unsupported<uct_ep_tag_rndv_zcopy_func_t>(),
    .ep_tag_rndv_cancel = unsupported<uct_ep_tag_rndv_cancel_func_t>(),
    .ep_tag_rndv_request = unsupported<uct_ep_tag_rndv_request_func_t>(),
    .iface_tag_recv_zcopy = unsupported<uct_iface_tag_recv_zcopy_func_t>(),
    .iface_tag_recv_cancel = unsupported<uct_iface_tag_recv_cancel_func_t>(),
    .ep_pending_add = pending_add,
    .ep_pending_purge = pending_purge,
    .ep_flush = ep_flush,
    .ep_fence = uct_sm_ep_fence,
    .ep_check = unsupported<uct_ep_check_func_t>(),
    .ep_create = UCS_CLASS_NEW_FUNC_NAME(uct_xpmem_ep_t),
    .ep_connect = unsupported<uct_ep_connect_func_t>(),
    .ep_disconnect = unsupported<uct_ep_disconnect_func_t>(),
    .cm_ep_conn_notify = unsupported<uct_cm_ep_conn_notify_func_t>(),
    .ep_destroy = UCS_CLASS_DELETE_FUNC_NAME(uct_xpmem_ep_t),
    .ep_get_address = unsupported<uct_ep_get_address_func_t>(),
    .ep_connect_to_ep = unsupported<uct_ep_connect_to_ep_func_t>(),
    .iface_accept = unsupported<uct_iface_accept_func_t>(),
    .iface_reject = unsupported<uct_iface_reject_func_t>(),
    .iface_flush = iface_flush,
    .iface_fence = uct_sm_iface_fence,
    .iface_progress_enable = uct_base_iface_progress_enable,
    .iface_progress_disable = uct_base_iface_progress_disable,
    .iface_progress = iface_progress,
    .iface_event_fd_get = unsupported<uct_iface_event_fd_get_func_t>(),
    .iface_event_arm = unsupported<uct_iface_event_arm_func_t>(),
    .iface_close = UCS_CLASS_DELETE_FUNC_NAME(uct_xpmem_iface_t),
    .iface_query = iface_query,
    .iface_get_device_address = uct_sm_iface_get_device_address,
    .iface_get_address = iface_get_address,
    .iface_is_reachable = iface_is_reachable,
};

std::atomic<std::uint32_t> next_serial{0};

// Creates this interface's receive FIFO as a fresh shared-memory object.
ucs_status_t create_fifo(IfaceState &state, unsigned cells, std::size_t cell_bytes) {
  state.serial = next_serial.fetch_add(1);
  state.name = fifo_name(static_cast<std::uint32_t>(getpid()), state.serial);
  const std::size_t size = MpscFifo::footprint(cells, cell_bytes);
  // A leftover object of a dead process with our pid is replaced.
  shm_unlink(state.name.c_str());
  const int fd = shm_open(state.name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    ucs_error("xpmem: cannot create shared memory %s: %m", state.name.c_str());
    state.name.clear();
    return UCS_ERR_IO_ERROR;
  }
  void *p = MAP_FAILED;
  if (ftruncate(fd, static_cast<off_t>(size)) == 0)
    p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED) {
    ucs_error("xpmem: cannot map %zu bytes of shared memory %s: %m", size, state.name.c_str());
    return UCS_ERR_NO_MEMORY;
  }
  state.mapping = Mapping(p, size);
  std::random_device entropy;
  state.nonce = (std::uint64_t{entropy()} << 32) ^ entropy();
  state.fifo = MpscFifo::create(p, cells, cell_bytes, state.nonce);
  return UCS_OK;
}

} // namespace
} // namespace uct_xpmem

extern "C" {

static UCS_CLASS_INIT_FUNC(uct_xpmem_iface_t, uct_md_h md, uct_worker_h worker,
                           const uct_iface_params_t *params, const uct_iface_config_t *tl_config) {
  using namespace uct_xpmem;
  const auto *config = ucs_derived_of(tl_config, IfaceConfig);
  UCS_CLASS_CALL_SUPER_INIT(uct_sm_iface_t, &iface_ops, &uct_base_iface_internal_ops, md, worker,
                            params, tl_config);
  self->state = nullptr;

  if (ucs_derived_of(worker, uct_priv_worker_t)->thread_mode == UCS_THREAD_MODE_MULTI) {
    ucs_error("xpmem: multi-threaded workers are not supported");
    return UCS_ERR_INVALID_PARAM;
  }
  // Whole cache lines per cell, header included.
  const std::size_t cell_bytes = (config->seg_size + 63) & ~std::size_t{63};
  if (!MpscFifo::valid_geometry(config->fifo_size, cell_bytes) ||
      cell_bytes - sizeof(MpscFifo::Cell) < 64 + kAmHeader) {
    ucs_error("xpmem: UCX_XPMEM_FIFO_SIZE must be a power of two >= 2 and "
              "UCX_XPMEM_SEG_SIZE at least 128 bytes (got %u, %zu)",
              config->fifo_size, config->seg_size);
    return UCS_ERR_INVALID_PARAM;
  }
  if (config->max_poll == 0) {
    ucs_error("xpmem: UCX_XPMEM_MAX_POLL must be at least 1");
    return UCS_ERR_INVALID_PARAM;
  }

  xpmem_core::CopyConfig copy;
  copy.non_temporal = config->nontemporal != 0;
  copy.non_temporal_threshold = config->nt_threshold;
  auto *state = new (std::nothrow) IfaceState(copy);
  if (!state)
    return UCS_ERR_NO_MEMORY;
  state->max_poll = config->max_poll;
  state->max_short = std::min(config->max_short, cell_bytes - sizeof(MpscFifo::Cell));
  const ucs_status_t status = create_fifo(*state, config->fifo_size, cell_bytes);
  if (status != UCS_OK) {
    delete state;
    return status;
  }
  self->state = state;
  ucs_debug("xpmem: iface %p FIFO %s: %u cells of %zu bytes", static_cast<void *>(self),
            state->name.c_str(), config->fifo_size, cell_bytes);
  return UCS_OK;
}

static UCS_CLASS_CLEANUP_FUNC(uct_xpmem_iface_t) {
  uct_base_iface_progress_disable(&self->super.super.super, UCT_PROGRESS_SEND | UCT_PROGRESS_RECV);
  delete self->state;
}

UCS_CLASS_DEFINE(uct_xpmem_iface_t, uct_sm_iface_t);
UCS_CLASS_DEFINE_NEW_FUNC(uct_xpmem_iface_t, uct_iface_t, uct_md_h, uct_worker_h,
                          const uct_iface_params_t *, const uct_iface_config_t *);

} // extern "C"

namespace uct_xpmem {

ucs_config_field_t iface_config_table[] = {
    {"SM_", "", nullptr, ucs_offsetof(IfaceConfig, super),
     UCS_CONFIG_TYPE_TABLE(uct_sm_iface_config_table)},
    {"FIFO_SIZE", "64",
     "Cells in each process's receive FIFO (a power of two); a full FIFO makes\n"
     "senders queue their messages.",
     ucs_offsetof(IfaceConfig, fifo_size), UCS_CONFIG_TYPE_UINT},
    // UCP starts rendezvous just above the largest active message, so the
    // cell size is also the single-copy threshold: below 64 KiB copying a
    // fresh buffer in and out of the FIFO beats mapping it into the receiver
    // (a fault there, and a TLB shootdown when the sender unmaps it).  Pages
    // of a cell are only committed once a message that large uses them.
    {"SEG_SIZE", "65664",
     "Bytes per FIFO cell, 16-byte header included: the largest active message\n"
     "(the default carries a 64 KiB message with UCP's headers in one cell).\n"
     "UCP sends larger messages by rendezvous, a single copy from the sender's\n"
     "buffer. Must be the same in all processes.",
     ucs_offsetof(IfaceConfig, seg_size), UCS_CONFIG_TYPE_MEMUNITS},
    {"MAX_AM_SHORT", "2k",
     "Largest inline (am_short) message; UCP packs larger ones into the cell (bcopy).",
     ucs_offsetof(IfaceConfig, max_short), UCS_CONFIG_TYPE_MEMUNITS},
    {"MAX_POLL", "16", "Messages received per progress call at most.",
     ucs_offsetof(IfaceConfig, max_poll), UCS_CONFIG_TYPE_UINT},
    {"NONTEMPORAL", "y", "Copy large zero-copy puts and gets with non-temporal stores.",
     ucs_offsetof(IfaceConfig, nontemporal), UCS_CONFIG_TYPE_BOOL},
    {"NT_THRESHOLD", "0",
     "Smallest copy that uses non-temporal stores; 0 means the last-level cache size.",
     ucs_offsetof(IfaceConfig, nt_threshold), UCS_CONFIG_TYPE_MEMUNITS},
    {nullptr, nullptr, nullptr, 0, {}},
};

uct_tl_t tl = {
    .name = "xpmem",
    .query_devices = uct_sm_base_query_tl_devices,
    .iface_open = UCS_CLASS_NEW_FUNC_NAME(uct_xpmem_iface_t),
    .config = {.name = "xpmem transport",
               .prefix = "XPMEM_",
               .table = iface_config_table,
               .size = sizeof(IfaceConfig),
               .list = {}},
    .list = {},
};

} // namespace uct_xpmem
