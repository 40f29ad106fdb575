// btl_xpmem module: peers, descriptors, the mailbox send path, and single
// copies (get, put, atomics) through attachments of the peer's memory.
#include "btl_xpmem.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

BtlXpmemState btl_xpmem;
mca_btl_base_module_t btl_xpmem_module;

namespace {

int output() {
  return opal_btl_base_framework.framework_output;
}

// --- descriptors -------------------------------------------------------

BtlXpmemFrag *frag_get(std::size_t size) {
  const bool small = size <= kSmallFrag;
  auto &pool = small ? btl_xpmem.free_small : btl_xpmem.free_large;
  const std::size_t capacity = small ? kSmallFrag : btl_xpmem_module.btl_max_send_size;
  if (size > capacity)
    return nullptr;
  BtlXpmemFrag *frag;
  if (!pool.empty()) {
    frag = pool.back();
    pool.pop_back();
  } else {
    void *mem = std::malloc(sizeof(BtlXpmemFrag) + capacity);
    if (!mem)
      return nullptr;
    frag = new (mem) BtlXpmemFrag{};
    OBJ_CONSTRUCT(&frag->base, mca_btl_base_descriptor_t);
    frag->capacity = capacity;
    frag->data = reinterpret_cast<unsigned char *>(frag + 1);
  }
  frag->base.des_segments = &frag->segment;
  frag->base.des_segment_count = 1;
  frag->base.des_cbfunc = nullptr;
  frag->base.des_cbdata = nullptr;
  frag->base.des_context = nullptr;
  frag->base.order = MCA_BTL_NO_ORDER;
  frag->segment.seg_addr.pval = frag->data;
  frag->segment.seg_len = size;
  return frag;
}

void frag_put(BtlXpmemFrag *frag) {
  (frag->capacity == kSmallFrag ? btl_xpmem.free_small : btl_xpmem.free_large).push_back(frag);
}

void frag_pool_destroy(std::vector<BtlXpmemFrag *> &pool) {
  for (BtlXpmemFrag *frag : pool) {
    OBJ_DESTRUCT(&frag->base);
    frag->~BtlXpmemFrag();
    std::free(frag);
  }
  pool.clear();
}

mca_btl_base_descriptor_t *module_alloc(mca_btl_base_module_t *, mca_btl_base_endpoint_t *ep,
                                        uint8_t order, size_t size, uint32_t flags) {
  BtlXpmemFrag *frag = frag_get(size);
  if (!frag)
    return nullptr;
  frag->endpoint = ep;
  frag->base.order = order;
  // Always call back: ob1's pending queue advances from send callbacks.
  frag->base.des_flags = flags | MCA_BTL_DES_SEND_ALWAYS_CALLBACK;
  return &frag->base;
}

int module_free(mca_btl_base_module_t *, mca_btl_base_descriptor_t *des) {
  frag_put(reinterpret_cast<BtlXpmemFrag *>(des));
  return OPAL_SUCCESS;
}

mca_btl_base_descriptor_t *module_prepare_src(mca_btl_base_module_t *btl,
                                              mca_btl_base_endpoint_t *ep,
                                              opal_convertor_t *convertor, uint8_t order,
                                              size_t reserve, size_t *size, uint32_t flags) {
  const std::size_t room = btl_xpmem_module.btl_max_send_size - reserve;
  std::size_t want = *size < room ? *size : room;
  mca_btl_base_descriptor_t *des = module_alloc(btl, ep, order, reserve + want, flags);
  if (!des)
    return nullptr;
  auto *frag = reinterpret_cast<BtlXpmemFrag *>(des);
  iovec iov{frag->data + reserve, want};
  uint32_t iov_count = 1;
  std::size_t packed = want;
  if (want && opal_convertor_pack(convertor, &iov, &iov_count, &packed) < 0) {
    frag_put(frag);
    return nullptr;
  }
  frag->segment.seg_len = reserve + packed;
  *size = packed;
  return des;
}

// --- the mailbox send path ------------------------------------------------

// Maps all of a ring's pages with one madvise when a peer first uses it.
// Otherwise the first lap through the ring takes a page fault in each process
// every 4 KiB, i.e. every 64 small messages, inside the job's first few
// thousand messages: 256 faults in the first 10 000 round trips of a
// ping-pong.  Only rings of peers that talk get their memory committed.
// Best effort: kernels before 5.14 lack MADV_POPULATE_WRITE, and then the
// pages fault in one by one as before.
void populate_ring(const xpmem_core::SpscRing &ring) {
  const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<std::uintptr_t>(ring.memory());
  const std::uintptr_t first = begin & ~(page - 1);
  const std::uintptr_t last = (begin + ring.memory_bytes() + page - 1) & ~(page - 1);
  if (madvise(reinterpret_cast<void *>(first), last - first, MADV_POPULATE_WRITE) != 0)
    opal_output_verbose(20, output(), "btl xpmem: cannot populate a mailbox ring: %s",
                        std::strerror(errno));
}

void *tx_reserve(mca_btl_base_endpoint_t *ep, std::size_t size) {
  if (!ep->tx_populated) {
    populate_ring(ep->tx);
    ep->tx_populated = true;
  }
  return ep->tx.reserve(size);
}

bool ring_write(mca_btl_base_endpoint_t *ep, const mca_btl_base_segment_t *segs, std::size_t count,
                mca_btl_base_tag_t tag) {
  std::size_t total = 0;
  for (std::size_t i = 0; i < count; i++)
    total += segs[i].seg_len;
  auto *dst = static_cast<unsigned char *>(tx_reserve(ep, total));
  if (!dst)
    return false;
  for (std::size_t i = 0; i < count; i++) {
    std::memcpy(dst, segs[i].seg_addr.pval, segs[i].seg_len);
    dst += segs[i].seg_len;
  }
  ep->tx.commit(total, tag);
  return true;
}

// Every descriptor carries MCA_BTL_DES_SEND_ALWAYS_CALLBACK (module_alloc).
void send_complete(BtlXpmemFrag *frag) {
  mca_btl_base_descriptor_t *des = &frag->base;
  const bool owned = des->des_flags & MCA_BTL_DES_FLAGS_BTL_OWNERSHIP;
  if (des->des_cbfunc)
    des->des_cbfunc(&btl_xpmem_module, frag->endpoint, des, OPAL_SUCCESS);
  if (owned)
    frag_put(frag);
}

int module_send(mca_btl_base_module_t *, mca_btl_base_endpoint_t *ep,
                mca_btl_base_descriptor_t *des, mca_btl_base_tag_t tag) {
  auto *frag = reinterpret_cast<BtlXpmemFrag *>(des);
  frag->endpoint = ep;
  if (ep->pending.empty() && ring_write(ep, des->des_segments, des->des_segment_count, tag)) {
    send_complete(frag);
    return 1; // completed
  }
  // The peer's ring is full: keep order, retry from progress, call back then.
  frag->tag = tag;
  if (ep->pending.empty())
    btl_xpmem.endpoints_pending++;
  ep->pending.push_back(frag);
  return OPAL_SUCCESS;
}

int module_sendi(mca_btl_base_module_t *, mca_btl_base_endpoint_t *ep, opal_convertor_t *convertor,
                 void *header, size_t header_size, size_t payload_size, uint8_t, uint32_t,
                 mca_btl_base_tag_t tag, mca_btl_base_descriptor_t **descriptor) {
  if (descriptor)
    *descriptor = nullptr;
  const std::size_t total = header_size + payload_size;
  if (!ep->pending.empty() || total > btl_xpmem_module.btl_eager_limit)
    return OPAL_ERR_OUT_OF_RESOURCE;
  auto *dst = static_cast<unsigned char *>(tx_reserve(ep, total));
  if (!dst)
    return OPAL_ERR_OUT_OF_RESOURCE;
  std::memcpy(dst, header, header_size);
  if (payload_size && !opal_convertor_need_buffers(convertor)) {
    // Contiguous data: copy it straight from the user's buffer.  The
    // convertor is not advanced; ob1 discards it once sendi succeeds.
    void *data = nullptr;
    opal_convertor_get_current_pointer(convertor, &data);
    std::memcpy(dst + header_size, data, payload_size);
  } else if (payload_size) {
    iovec iov{dst + header_size, payload_size};
    uint32_t iov_count = 1;
    std::size_t packed = payload_size;
    // Nothing is visible to the peer until commit(): a failed pack just
    // leaves the reserved space unused.
    if (opal_convertor_pack(convertor, &iov, &iov_count, &packed) < 0 || packed != payload_size)
      return OPAL_ERROR;
  }
  ep->tx.commit(total, tag);
  return OPAL_SUCCESS;
}

int flush_pending(mca_btl_base_endpoint_t *ep) {
  int sent = 0;
  while (!ep->pending.empty()) {
    BtlXpmemFrag *frag = ep->pending.front();
    if (!ring_write(ep, frag->base.des_segments, frag->base.des_segment_count, frag->tag))
      break;
    ep->pending.pop_front();
    if (ep->pending.empty())
      btl_xpmem.endpoints_pending--;
    send_complete(frag);
    sent++;
  }
  return sent;
}

// --- single copies ----------------------------------------------------------

// get and put: one copy between our buffer and the peer's, through a
// cached attachment of the peer's memory.
int single_copy(mca_btl_base_module_t *btl, mca_btl_base_endpoint_t *ep, void *local_address,
                uint64_t remote_address, mca_btl_base_registration_handle_t *local_handle,
                size_t size, bool to_peer, mca_btl_base_rdma_completion_fn_t cbfunc,
                void *cbcontext, void *cbdata) {
  auto lease = ep->cache->map(remote_address, size);
  if (!lease)
    return OPAL_ERROR;
  if (to_peer)
    btl_xpmem.copy->copy(lease.get(), local_address, size);
  else
    btl_xpmem.copy->copy(local_address, lease.get(), size);
  lease.reset();
  btl_xpmem.bytes_single_copied += size;
  cbfunc(btl, ep, local_address, local_handle, cbcontext, cbdata, OPAL_SUCCESS);
  return OPAL_SUCCESS;
}

int module_get(mca_btl_base_module_t *btl, mca_btl_base_endpoint_t *ep, void *local_address,
               uint64_t remote_address, mca_btl_base_registration_handle_t *local_handle,
               mca_btl_base_registration_handle_t *, size_t size, int, int,
               mca_btl_base_rdma_completion_fn_t cbfunc, void *cbcontext, void *cbdata) {
  return single_copy(btl, ep, local_address, remote_address, local_handle, size, false, cbfunc,
                     cbcontext, cbdata);
}

int module_put(mca_btl_base_module_t *btl, mca_btl_base_endpoint_t *ep, void *local_address,
               uint64_t remote_address, mca_btl_base_registration_handle_t *local_handle,
               mca_btl_base_registration_handle_t *, size_t size, int, int,
               mca_btl_base_rdma_completion_fn_t cbfunc, void *cbcontext, void *cbdata) {
  return single_copy(btl, ep, local_address, remote_address, local_handle, size, true, cbfunc,
                     cbcontext, cbdata);
}

// One read-modify-write on the peer's memory, returning the old value.
template <typename T> bool apply_atomic(T *target, mca_btl_base_atomic_op_t op, T operand, T *old) {
  using S = std::make_signed_t<T>;
  switch (op) {
  case MCA_BTL_ATOMIC_ADD:
    *old = __atomic_fetch_add(target, operand, __ATOMIC_SEQ_CST);
    return true;
  case MCA_BTL_ATOMIC_AND:
    *old = __atomic_fetch_and(target, operand, __ATOMIC_SEQ_CST);
    return true;
  case MCA_BTL_ATOMIC_OR:
    *old = __atomic_fetch_or(target, operand, __ATOMIC_SEQ_CST);
    return true;
  case MCA_BTL_ATOMIC_XOR:
    *old = __atomic_fetch_xor(target, operand, __ATOMIC_SEQ_CST);
    return true;
  case MCA_BTL_ATOMIC_SWAP:
    *old = __atomic_exchange_n(target, operand, __ATOMIC_SEQ_CST);
    return true;
  default:
    break;
  }
  T current = __atomic_load_n(target, __ATOMIC_SEQ_CST);
  for (;;) {
    T next;
    switch (op) {
    case MCA_BTL_ATOMIC_LAND:
      next = (current && operand) ? 1 : 0;
      break;
    case MCA_BTL_ATOMIC_LOR:
      next = (current || operand) ? 1 : 0;
      break;
    case MCA_BTL_ATOMIC_LXOR:
      next = (!current != !operand) ? 1 : 0;
      break;
    case MCA_BTL_ATOMIC_MIN:
      next = static_cast<S>(operand) < static_cast<S>(current) ? operand : current;
      break;
    case MCA_BTL_ATOMIC_MAX:
      next = static_cast<S>(operand) > static_cast<S>(current) ? operand : current;
      break;
    default:
      return false;
    }
    if (__atomic_compare_exchange_n(target, &current, next, false, __ATOMIC_SEQ_CST,
                                    __ATOMIC_SEQ_CST)) {
      *old = current;
      return true;
    }
  }
}

int atomic_common(mca_btl_base_endpoint_t *ep, void *local_address, uint64_t remote_address,
                  mca_btl_base_atomic_op_t op, uint64_t operand, int flags) {
  if (flags & MCA_BTL_ATOMIC_FLAG_FLOAT)
    return OPAL_ERR_NOT_SUPPORTED;
  const bool narrow = flags & MCA_BTL_ATOMIC_FLAG_32BIT;
  auto lease = ep->cache->map(remote_address, narrow ? 4 : 8);
  if (!lease)
    return OPAL_ERROR;
  btl_xpmem.atomics++;
  bool ok;
  if (narrow) {
    std::uint32_t old = 0;
    ok = apply_atomic(static_cast<std::uint32_t *>(lease.get()), op,
                      static_cast<std::uint32_t>(operand), &old);
    if (ok && local_address)
      *static_cast<std::uint32_t *>(local_address) = old;
  } else {
    std::uint64_t old = 0;
    ok = apply_atomic(static_cast<std::uint64_t *>(lease.get()), op, operand, &old);
    if (ok && local_address)
      *static_cast<std::uint64_t *>(local_address) = old;
  }
  return ok ? OPAL_SUCCESS : OPAL_ERR_NOT_SUPPORTED;
}

int module_atomic_op(mca_btl_base_module_t *btl, mca_btl_base_endpoint_t *ep,
                     uint64_t remote_address, mca_btl_base_registration_handle_t *,
                     mca_btl_base_atomic_op_t op, uint64_t operand, int flags, int,
                     mca_btl_base_rdma_completion_fn_t cbfunc, void *cbcontext, void *cbdata) {
  int rc = atomic_common(ep, nullptr, remote_address, op, operand, flags);
  if (rc == OPAL_SUCCESS)
    cbfunc(btl, ep, nullptr, nullptr, cbcontext, cbdata, OPAL_SUCCESS);
  return rc;
}

int module_atomic_fop(mca_btl_base_module_t *btl, mca_btl_base_endpoint_t *ep, void *local_address,
                      uint64_t remote_address, mca_btl_base_registration_handle_t *local_handle,
                      mca_btl_base_registration_handle_t *, mca_btl_base_atomic_op_t op,
                      uint64_t operand, int flags, int, mca_btl_base_rdma_completion_fn_t cbfunc,
                      void *cbcontext, void *cbdata) {
  int rc = atomic_common(ep, local_address, remote_address, op, operand, flags);
  if (rc == OPAL_SUCCESS)
    cbfunc(btl, ep, local_address, local_handle, cbcontext, cbdata, OPAL_SUCCESS);
  return rc;
}

int module_atomic_cswap(mca_btl_base_module_t *btl, mca_btl_base_endpoint_t *ep,
                        void *local_address, uint64_t remote_address,
                        mca_btl_base_registration_handle_t *local_handle,
                        mca_btl_base_registration_handle_t *, uint64_t compare, uint64_t value,
                        int flags, int, mca_btl_base_rdma_completion_fn_t cbfunc, void *cbcontext,
                        void *cbdata) {
  const bool narrow = flags & MCA_BTL_ATOMIC_FLAG_32BIT;
  auto lease = ep->cache->map(remote_address, narrow ? 4 : 8);
  if (!lease)
    return OPAL_ERROR;
  btl_xpmem.atomics++;
  if (narrow) {
    auto expected = static_cast<std::uint32_t>(compare);
    __atomic_compare_exchange_n(static_cast<std::uint32_t *>(lease.get()), &expected,
                                static_cast<std::uint32_t>(value), false, __ATOMIC_SEQ_CST,
                                __ATOMIC_SEQ_CST);
    *static_cast<std::uint32_t *>(local_address) = expected;
  } else {
    std::uint64_t expected = compare;
    __atomic_compare_exchange_n(static_cast<std::uint64_t *>(lease.get()), &expected, value, false,
                                __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    *static_cast<std::uint64_t *>(local_address) = expected;
  }
  lease.reset();
  cbfunc(btl, ep, local_address, local_handle, cbcontext, cbdata, OPAL_SUCCESS);
  return OPAL_SUCCESS;
}

// --- peers -------------------------------------------------------------------

mca_btl_base_endpoint_t *endpoint_create(opal_proc_t *proc) {
  BtlXpmemModex *modex = nullptr;
  std::size_t size = 0;
  int rc = OPAL_SUCCESS;
  OPAL_MODEX_RECV(rc, &mca_btl_xpmem_component.btl_version, &proc->proc_name,
                  reinterpret_cast<void **>(&modex), &size);
  if (rc != OPAL_SUCCESS || size != sizeof(BtlXpmemModex))
    return nullptr; // the peer stepped aside
  BtlXpmemModex info = *modex;
  std::free(modex);
  info.shm_name[sizeof info.shm_name - 1] = '\0';
  if (info.local_rank < 0 || info.local_rank >= btl_xpmem.num_rings ||
      btl_xpmem.local_rank >= static_cast<int>(info.num_rings) ||
      !xpmem_core::SpscRing::valid_capacity(info.ring_bytes))
    return nullptr;

  auto ep = std::make_unique<mca_btl_base_endpoint_t>();
  ep->proc = proc;
  ep->local_rank = info.local_rank;
  ep->permit = xpmem::Permit::get(info.segid);
  if (!ep->permit) {
    opal_output_verbose(1, output(), "btl xpmem: no access to a peer's memory: %s",
                        std::strerror(ep->permit.error()));
    return nullptr;
  }
  int fd = shm_open(info.shm_name, O_RDWR | O_CLOEXEC, 0);
  if (fd < 0)
    return nullptr;
  const std::size_t per_ring = xpmem_core::SpscRing::footprint(info.ring_bytes);
  ep->mailbox_bytes = per_ring * info.num_rings;
  void *p = mmap(nullptr, ep->mailbox_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED)
    return nullptr;
  ep->mailbox = p;
  ep->tx = xpmem_core::SpscRing(static_cast<char *>(p) +
                                per_ring * static_cast<std::size_t>(btl_xpmem.local_rank));

  xpmem_core::AttachCacheConfig config;
  config.alignment = std::size_t{1} << btl_xpmem.params.attach_log_align;
  config.max_bytes = btl_xpmem.params.cache_max_mib << 20;
  config.max_entries = static_cast<std::size_t>(btl_xpmem.params.cache_max_entries);
  ep->attacher = std::make_unique<xpmem_core::XpmemAttacher>(ep->permit.id());
  ep->cache = std::make_unique<xpmem_core::AttachCache>(*ep->attacher, config);
  return ep.release();
}

void endpoint_destroy(mca_btl_base_endpoint_t *ep) {
  if (!ep->pending.empty())
    btl_xpmem.endpoints_pending--;
  for (BtlXpmemFrag *frag : ep->pending)
    frag_put(frag);
  ep->cache.reset(); // detaches before the permit goes
  if (ep->mailbox)
    munmap(ep->mailbox, ep->mailbox_bytes);
  delete ep;
}

int module_add_procs(mca_btl_base_module_t *, size_t nprocs, opal_proc_t **procs,
                     mca_btl_base_endpoint_t **endpoints, opal_bitmap_t *reachable) {
  opal_proc_t *self = opal_proc_local_get();
  for (std::size_t i = 0; i < nprocs; i++) {
    opal_proc_t *proc = procs[i];
    if (proc == self || !OPAL_PROC_ON_LOCAL_NODE(proc->proc_flags) || endpoints[i])
      continue;
    mca_btl_base_endpoint_t *ep = endpoint_create(proc);
    if (!ep)
      continue;
    endpoints[i] = ep;
    btl_xpmem.endpoints.push_back(ep);
    if (reachable)
      opal_bitmap_set_bit(reachable, static_cast<int>(i));
  }
  return OPAL_SUCCESS;
}

int module_del_procs(mca_btl_base_module_t *, size_t nprocs, opal_proc_t **,
                     mca_btl_base_endpoint_t **peers) {
  for (std::size_t i = 0; i < nprocs; i++) {
    mca_btl_base_endpoint_t *ep = peers[i];
    if (!ep)
      continue;
    auto &all = btl_xpmem.endpoints;
    for (auto it = all.begin(); it != all.end(); ++it)
      if (*it == ep) {
        all.erase(it);
        endpoint_destroy(ep);
        break;
      }
  }
  return OPAL_SUCCESS;
}

int module_finalize(mca_btl_base_module_t *) {
  btl_xpmem_release_all();
  return OPAL_SUCCESS;
}

int module_register_error(mca_btl_base_module_t *, mca_btl_base_module_error_cb_fn_t) {
  return OPAL_SUCCESS;
}

} // namespace

namespace {

// Hands every record waiting in `rx` to ob1, the first one `rec`.
__attribute__((noinline)) int deliver(BtlXpmemState::RxRing &rx,
                                      const xpmem_core::SpscRing::Record *rec) {
  if (!rx.populated) {
    populate_ring(rx.ring);
    rx.populated = true;
  }
  int events = 0;
  for (; rec; rec = rx.ring.peek()) {
    mca_btl_base_segment_t segment{};
    segment.seg_addr.pval = const_cast<void *>(xpmem_core::SpscRing::payload(rec));
    segment.seg_len = rec->size;
    mca_btl_base_descriptor_t des{};
    des.des_segments = &segment;
    des.des_segment_count = 1;
    const mca_btl_active_message_callback_t &reg = mca_btl_base_active_message_trigger[rec->tag];
    if (reg.cbfunc)
      reg.cbfunc(&btl_xpmem_module, static_cast<mca_btl_base_tag_t>(rec->tag), &des, reg.cbdata);
    rx.ring.release(rec);
    events++;
  }
  return events;
}

__attribute__((noinline)) int flush_all_pending() {
  int events = 0;
  for (mca_btl_base_endpoint_t *ep : btl_xpmem.endpoints)
    if (!ep->pending.empty())
      events += flush_pending(ep);
  return events;
}

} // namespace

// The component's progress function, called on every turn of Open MPI's
// progress loop: delivers waiting messages to ob1 and retries queued sends.
// Idle, it reads one header per peer and a counter; the work is out of line.
int btl_xpmem_progress_rings() {
  BtlXpmemState &s = btl_xpmem;
  if (s.in_progress) // ob1's callbacks may progress again
    return 0;
  int events = 0;
  for (BtlXpmemState::RxRing &rx : s.rx)
    if (const xpmem_core::SpscRing::Record *rec = rx.ring.peek()) {
      s.in_progress = true;
      events += deliver(rx, rec);
      s.in_progress = false;
    }
  if (s.endpoints_pending) {
    s.in_progress = true;
    events += flush_all_pending();
    s.in_progress = false;
  }
  return events;
}

void btl_xpmem_release_all() {
  BtlXpmemState &s = btl_xpmem;
  for (mca_btl_base_endpoint_t *ep : s.endpoints)
    endpoint_destroy(ep);
  s.endpoints.clear();
  s.rx.clear();
  if (s.mailbox)
    munmap(s.mailbox, s.mailbox_bytes);
  s.mailbox = nullptr;
  if (s.shm_name[0])
    shm_unlink(s.shm_name);
  s.shm_name[0] = '\0';
  frag_pool_destroy(s.free_small);
  frag_pool_destroy(s.free_large);
  s.copy.reset();
  s.segment.reset();
}

void btl_xpmem_module_setup(mca_btl_base_module_t &m) {
  m.btl_component = &mca_btl_xpmem_component;
  m.btl_flags = MCA_BTL_FLAGS_SEND | MCA_BTL_FLAGS_RDMA | MCA_BTL_FLAGS_ATOMIC_OPS |
                MCA_BTL_FLAGS_ATOMIC_FOPS;
  m.btl_atomic_flags =
      MCA_BTL_ATOMIC_SUPPORTS_ADD | MCA_BTL_ATOMIC_SUPPORTS_AND | MCA_BTL_ATOMIC_SUPPORTS_OR |
      MCA_BTL_ATOMIC_SUPPORTS_XOR | MCA_BTL_ATOMIC_SUPPORTS_LAND | MCA_BTL_ATOMIC_SUPPORTS_LOR |
      MCA_BTL_ATOMIC_SUPPORTS_LXOR | MCA_BTL_ATOMIC_SUPPORTS_SWAP | MCA_BTL_ATOMIC_SUPPORTS_MIN |
      MCA_BTL_ATOMIC_SUPPORTS_MAX | MCA_BTL_ATOMIC_SUPPORTS_32BIT | MCA_BTL_ATOMIC_SUPPORTS_CSWAP |
      MCA_BTL_ATOMIC_SUPPORTS_GLOB;
  m.btl_registration_handle_size = 0;
  m.btl_add_procs = module_add_procs;
  m.btl_del_procs = module_del_procs;
  m.btl_finalize = module_finalize;
  m.btl_alloc = module_alloc;
  m.btl_free = module_free;
  m.btl_prepare_src = module_prepare_src;
  m.btl_send = module_send;
  m.btl_sendi = module_sendi;
  m.btl_put = module_put;
  m.btl_get = module_get;
  m.btl_atomic_op = module_atomic_op;
  m.btl_atomic_fop = module_atomic_fop;
  m.btl_atomic_cswap = module_atomic_cswap;
  m.btl_register_error = module_register_error;
}
