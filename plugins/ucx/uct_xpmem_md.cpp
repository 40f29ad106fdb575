// The component, the memory domain, remote keys and the per-peer attachment
// caches of the UCT xpmem transport, and its registration with UCX.
#include <dlfcn.h>
#include <pthread.h>

#include <climits>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <new>

#include "uct_xpmem.hpp"
#include "xpmem_core/attach_cache.hpp"
#include "xpmem_core/xpmem_attacher.hpp"

namespace uct_xpmem {
namespace {

// ---------------------------------------------------------------- export

std::mutex export_lock;
xpmem_segid_t export_segid = -1;

void forget_export_in_child() {
  export_segid = -1;
} // the parent's, not ours

// ---------------------------------------------------------------- peers

xpmem_core::AttachCacheConfig cache_config; // from the last MD opened

} // namespace

xpmem_segid_t exported_segid() {
  std::lock_guard<std::mutex> guard(export_lock);
  if (export_segid == -1) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, [] { pthread_atfork(nullptr, nullptr, forget_export_in_child); });
    // The whole address space, readable and writable by our own uid only;
    // kept for the life of the process, like every registration on it.
    export_segid =
        xpmem_make(nullptr, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, reinterpret_cast<void *>(0600));
  }
  return export_segid;
}

struct Peer {
  Peer(xpmem_segid_t id, xpmem_apid_t permit, const xpmem_core::AttachCacheConfig &config)
      : segid(id), apid(permit), attacher(permit), cache(attacher, config) {}
  ~Peer() {
    cache.clear();
    xpmem_release(apid);
  }
  const xpmem_segid_t segid;
  const xpmem_apid_t apid;
  xpmem_core::XpmemAttacher attacher;
  xpmem_core::AttachCache cache;
  unsigned refs = 0; // under peers_lock
};

namespace {
std::mutex peers_lock;
std::map<xpmem_segid_t, std::unique_ptr<Peer>> peers;
} // namespace

Peer *acquire_peer(xpmem_segid_t segid) {
  std::lock_guard<std::mutex> guard(peers_lock);
  auto it = peers.find(segid);
  if (it == peers.end()) {
    const xpmem_apid_t apid = xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, nullptr);
    if (apid == -1) {
      ucs_error("xpmem: cannot get access to peer segment 0x%llx: %m",
                static_cast<unsigned long long>(segid));
      return nullptr;
    }
    auto *peer = new (std::nothrow) Peer(segid, apid, cache_config);
    if (!peer) {
      xpmem_release(apid);
      return nullptr;
    }
    it = peers.emplace(segid, peer).first;
  }
  ++it->second->refs;
  return it->second.get();
}

void release_peer(Peer *peer) {
  std::lock_guard<std::mutex> guard(peers_lock);
  if (--peer->refs == 0)
    peers.erase(peer->segid); // detaches what the cache still holds
}

namespace {

// ---------------------------------------------------------------- rkeys

// What rkey_unpack hands back as the handle: the lease keeps the attachment
// mapped until rkey_release, the peer reference keeps the cache alive.
struct RkeyHandle {
  Peer *peer;
  xpmem_core::AttachCache::Lease lease;
  std::uintptr_t address;
  std::size_t length;
};

ucs_status_t rkey_unpack(uct_component_t *, const void *rkey_buffer, uct_rkey_t *rkey_p,
                         void **handle_p) {
  PackedRkey packed;
  std::memcpy(&packed, rkey_buffer, sizeof packed);
  auto *handle = new (std::nothrow) RkeyHandle{nullptr, {}, packed.address, packed.length};
  if (!handle)
    return UCS_ERR_NO_MEMORY;
  handle->peer = acquire_peer(static_cast<xpmem_segid_t>(packed.segid));
  if (!handle->peer) {
    delete handle;
    return UCS_ERR_UNREACHABLE;
  }
  std::uintptr_t local_base = packed.address; // a zero-length range needs no mapping
  if (packed.length != 0) {
    handle->lease = handle->peer->cache.map(packed.address, packed.length);
    if (!handle->lease) {
      ucs_error("xpmem: cannot attach peer range 0x%llx+%llu: %m",
                static_cast<unsigned long long>(packed.address),
                static_cast<unsigned long long>(packed.length));
      release_peer(handle->peer);
      delete handle;
      return UCS_ERR_IO_ERROR;
    }
    local_base = reinterpret_cast<std::uintptr_t>(handle->lease.get());
  }
  *rkey_p = local_base - packed.address; // remote + rkey == local
  *handle_p = handle;
  return UCS_OK;
}

ucs_status_t rkey_ptr(uct_component_t *, uct_rkey_t rkey, void *handle_arg,
                      std::uint64_t remote_addr, void **local_addr_p) {
  const auto *handle = static_cast<const RkeyHandle *>(handle_arg);
  if (remote_addr < handle->address || remote_addr - handle->address >= handle->length)
    return UCS_ERR_INVALID_ADDR;
  *local_addr_p = reinterpret_cast<void *>(remote_addr + rkey);
  return UCS_OK;
}

ucs_status_t rkey_release(uct_component_t *, uct_rkey_t, void *handle_arg) {
  auto *handle = static_cast<RkeyHandle *>(handle_arg);
  Peer *peer = handle->peer;
  handle->lease.reset();
  delete handle;
  release_peer(peer);
  return UCS_OK;
}

// ---------------------------------------------------------------- memory domain

// A registration: the range, nothing in the kernel (the export covers it).
struct Registration {
  std::uintptr_t address;
  std::size_t length;
};

void md_close(uct_md_h md) {
  delete ucs_derived_of(md, Md);
}

ucs_status_t md_query(uct_md_h tl_md, uct_md_attr_t *attr) {
  // uct_rkey_ptr() (and so ucp_rkey_ptr()) works whatever the flag says; the
  // flag only decides whether UCP's rendezvous copies through it.
  attr->cap.flags = UCT_MD_FLAG_REG | UCT_MD_FLAG_NEED_RKEY;
  if (ucs_derived_of(tl_md, Md)->rndv_rkey_ptr)
    attr->cap.flags |= UCT_MD_FLAG_RKEY_PTR;
  attr->cap.reg_mem_types = UCS_BIT(UCS_MEMORY_TYPE_HOST);
  attr->cap.access_mem_types = UCS_BIT(UCS_MEMORY_TYPE_HOST);
  attr->cap.alloc_mem_types = 0;
  attr->cap.detect_mem_types = 0;
  attr->cap.max_alloc = 0;
  attr->cap.max_reg = ULONG_MAX;
  attr->rkey_packed_size = sizeof(PackedRkey);
  attr->reg_cost = ucs_linear_func_make(20e-9, 0); // one small allocation
  std::memset(&attr->local_cpus, 0xff, sizeof attr->local_cpus);
  return UCS_OK;
}

ucs_status_t mem_reg(uct_md_h, void *address, size_t length, unsigned, uct_mem_h *memh_p) {
  auto *reg = new (std::nothrow) Registration{reinterpret_cast<std::uintptr_t>(address), length};
  if (!reg)
    return UCS_ERR_NO_MEMORY;
  *memh_p = reg;
  return UCS_OK;
}

ucs_status_t mem_dereg(uct_md_h, const uct_md_mem_dereg_params_t *params) {
  UCT_MD_MEM_DEREG_CHECK_PARAMS(params, 0);
  delete static_cast<Registration *>(params->memh);
  return UCS_OK;
}

ucs_status_t mkey_pack(uct_md_h, uct_mem_h memh, const uct_md_mkey_pack_params_t *,
                       void *rkey_buffer) {
  const auto *reg = static_cast<const Registration *>(memh);
  const xpmem_segid_t segid = exported_segid();
  if (segid == -1)
    return UCS_ERR_IO_ERROR;
  const PackedRkey packed{static_cast<std::uint64_t>(segid), reg->address, reg->length};
  std::memcpy(rkey_buffer, &packed, sizeof packed);
  return UCS_OK;
}

int is_sockaddr_accessible(uct_md_h, const ucs_sock_addr_t *, uct_sockaddr_accessibility_t) {
  return 0; // not a network device
}

uct_md_ops_t md_ops = {
    .close = md_close,
    .query = md_query,
    .mem_alloc = unsupported<uct_md_mem_alloc_func_t>(),
    .mem_free = unsupported<uct_md_mem_free_func_t>(),
    .mem_advise = unsupported<uct_md_mem_advise_func_t>(),
    .mem_reg = mem_reg,
    .mem_dereg = mem_dereg,
    .mem_query = unsupported<uct_md_mem_query_func_t>(),
    .mkey_pack = mkey_pack,
    .is_sockaddr_accessible = is_sockaddr_accessible,
    .detect_memory_type = unsupported<uct_md_detect_memory_type_func_t>(),
};

ucs_status_t md_open(uct_component_t *, const char *, const uct_md_config_t *uct_config,
                     uct_md_h *md_p) {
  if (exported_segid() == -1) {
    ucs_diag("xpmem: cannot export the address space: %m");
    return UCS_ERR_UNSUPPORTED;
  }
  const auto *config = ucs_derived_of(uct_config, MdConfig);
  xpmem_core::AttachCacheConfig cache;
  cache.max_bytes = config->cache_max_bytes;
  cache.max_entries = config->cache_max_entries;
  cache.alignment = config->attach_align;
  if (cache.alignment < 4096 || (cache.alignment & (cache.alignment - 1)) != 0) {
    ucs_error("xpmem: UCX_XPMEM_ATTACH_ALIGN must be a power of two of at least 4k");
    return UCS_ERR_INVALID_PARAM;
  }
  {
    std::lock_guard<std::mutex> guard(peers_lock);
    cache_config = cache;
  }
  auto *md = new (std::nothrow) Md;
  if (!md)
    return UCS_ERR_NO_MEMORY;
  md->rndv_rkey_ptr = config->rndv_rkey_ptr != 0;
  md->super.ops = &md_ops;
  md->super.component = &component;
  *md_p = &md->super;
  return UCS_OK;
}

ucs_status_t query_md_resources(uct_component_t *self, uct_md_resource_desc_t **resources_p,
                                unsigned *num_resources_p) {
  if (xpmem_version() < 0) {
    // Once per process: UCX asks for resources at every context creation.
    static std::once_flag said;
    std::call_once(
        said, [] { ucs_info("xpmem: transport unavailable: %s", xpmem_unavailable_reason()); });
    return uct_md_query_empty_md_resource(resources_p, num_resources_p);
  }
  return uct_md_query_single_md_resource(self, resources_p, num_resources_p);
}

ucs_config_field_t md_config_table[] = {
    {"", "", nullptr, ucs_offsetof(MdConfig, super), UCS_CONFIG_TYPE_TABLE(uct_md_config_table)},
    {"CACHE_MAX_SIZE", "64g",
     "Bound on the bytes of peer memory kept attached per peer; past it the least\n"
     "recently used idle attachments are detached.",
     ucs_offsetof(MdConfig, cache_max_bytes), UCS_CONFIG_TYPE_MEMUNITS},
    {"CACHE_MAX_ENTRIES", "4096", "Bound on the number of attachments kept per peer.",
     ucs_offsetof(MdConfig, cache_max_entries), UCS_CONFIG_TYPE_ULUNITS},
    {"ATTACH_ALIGN", "2m",
     "Attachments cover the requested range rounded out to this power of two, so\n"
     "neighbouring buffers share one attachment.",
     ucs_offsetof(MdConfig, attach_align), UCS_CONFIG_TYPE_MEMUNITS},
    {"RNDV_RKEY_PTR", "n",
     "Advertise rkey_ptr to UCP, so that its rendezvous copies large messages\n"
     "itself (memcpy in its progress loop) from the mapped peer buffer.  By default\n"
     "the rendezvous asks this transport's get_zcopy, which makes the same single\n"
     "copy with the copy engine shared with the Open MPI plugin (non-temporal\n"
     "stores past the last-level cache).  ucp_rkey_ptr() works either way.",
     ucs_offsetof(MdConfig, rndv_rkey_ptr), UCS_CONFIG_TYPE_BOOL},
    {nullptr, nullptr, nullptr, 0, {}},
};

void md_vfs_init(uct_md_h) {}

} // namespace

uct_component_t component = {
    .name = "xpmem",
    .query_md_resources = query_md_resources,
    .md_open = md_open,
    .cm_open = unsupported<uct_component_cm_open_func_t>(),
    .rkey_unpack = rkey_unpack,
    .rkey_ptr = rkey_ptr,
    .rkey_release = rkey_release,
    .md_config = {.name = "XPMEM memory domain",
                  .prefix = "XPMEM_",
                  .table = md_config_table,
                  .size = sizeof(MdConfig),
                  .list = {}},
    .cm_config = {.name = "", .prefix = "", .table = nullptr, .size = 0, .list = {}},
    .tl_list = {&component.tl_list, &component.tl_list},
    .list = {},
    .flags = 0,
    .md_vfs_init = md_vfs_init,
};

} // namespace uct_xpmem

// ---------------------------------------------------------------- loading

namespace {

// The UCX this binary was compiled against must be the one running: UCT's
// internal layouts differ between minor versions and the sonames do not say.
bool running_ucx_matches() {
  using get_version_fn = void (*)(unsigned *, unsigned *, unsigned *);
  auto get_version = reinterpret_cast<get_version_fn>(dlsym(RTLD_DEFAULT, "ucp_get_version"));
  unsigned major = 0, minor = 0, release = 0;
  if (get_version) {
    get_version(&major, &minor, &release);
  } else if (dlsym(RTLD_DEFAULT, "uct_base_rkey_compare")) {
    major = 1, minor = 14; // UCT without UCP: that symbol appeared in 1.14
  } else {
    return UCT_VERNO_MAJOR == 1 && UCT_VERNO_MINOR <= 13;
  }
  if (major == UCT_VERNO_MAJOR && minor == UCT_VERNO_MINOR)
    return true;
  ucs_warn("xpmem: transport built for UCX %d.%d, running UCX is %u.%u; not registered",
           UCT_VERNO_MAJOR, UCT_VERNO_MINOR, major, minor);
  return false;
}

bool registered = false;

__attribute__((constructor)) void register_transport() {
  if (!running_ucx_matches())
    return;
  uct_component_register(&uct_xpmem::component);
  uct_tl_register(&uct_xpmem::component, &uct_xpmem::tl);
  registered = true;
}

__attribute__((destructor)) void unregister_transport() {
  if (!registered)
    return;
  uct_tl_unregister(&uct_xpmem::tl);
  uct_component_unregister(&uct_xpmem::component);
}

} // namespace
