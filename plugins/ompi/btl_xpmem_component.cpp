// btl_xpmem component: parameters, initialisation (or stepping aside), and
// progress.
#include "btl_xpmem.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bit>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

int output() {
  return opal_btl_base_framework.framework_output;
}

void register_int(const char *name, const char *help, int *storage) {
  mca_base_component_var_register(&mca_btl_xpmem_component.btl_version, name, help,
                                  MCA_BASE_VAR_TYPE_INT, nullptr, 0, mca_base_var_flag_t(0),
                                  OPAL_INFO_LVL_5, MCA_BASE_VAR_SCOPE_LOCAL, storage);
}

void register_ulong(const char *name, const char *help, unsigned long *storage) {
  mca_base_component_var_register(
      &mca_btl_xpmem_component.btl_version, name, help, MCA_BASE_VAR_TYPE_UNSIGNED_LONG, nullptr, 0,
      mca_base_var_flag_t(0), OPAL_INFO_LVL_5, MCA_BASE_VAR_SCOPE_LOCAL, storage);
}

int component_register() {
  BtlXpmemParams &p = btl_xpmem.params;
  register_int("mailbox_kib",
               "Size in KiB of the mailbox ring each local peer writes small and control "
               "messages into, rounded down to a power of two (default 256)",
               &p.ring_kib);
  register_int("attach_log_align",
               "Attachments of a peer's memory are rounded out to 2^this bytes so neighbouring "
               "buffers share one (12..30, default 21 = 2 MiB)",
               &p.attach_log_align);
  register_ulong("cache_max_mib",
                 "Bound on the MiB of one peer's memory kept attached; least recently used "
                 "attachments are detached past it (default 65536)",
                 &p.cache_max_mib);
  register_int("cache_max_entries",
               "Bound on the number of attachments kept per peer (default 4096; each is a VMA "
               "counted against vm.max_map_count)",
               &p.cache_max_entries);
  mca_base_component_var_register(
      &mca_btl_xpmem_component.btl_version, "use_nontemporal",
      "Copy with non-temporal stores when a single copy is at least nontemporal_threshold "
      "bytes (default true)",
      MCA_BASE_VAR_TYPE_BOOL, nullptr, 0, mca_base_var_flag_t(0), OPAL_INFO_LVL_5,
      MCA_BASE_VAR_SCOPE_LOCAL, &p.non_temporal);
  register_ulong("nontemporal_threshold",
                 "Single copies of at least this many bytes use non-temporal stores (0 = the "
                 "last-level cache size, the default)",
                 &p.non_temporal_threshold);

  // Ranking and limits, registered as btl_xpmem_{exclusivity,eager_limit,...}.
  mca_btl_base_module_t &m = btl_xpmem_module;
  m.btl_exclusivity = MCA_BTL_EXCLUSIVITY_HIGH + 1; // above vader: used when it can be
  // Messages above the eager limit go by single copy (RGET).  Below 32 KiB
  // the mailbox's two copies beat a single copy that must fault in a
  // fresh buffer's pages, so that is where single copy starts.
  m.btl_eager_limit = 32 * 1024;
  m.btl_rndv_eager_limit = 32 * 1024;
  m.btl_max_send_size = 32 * 1024;
  m.btl_rdma_pipeline_send_length = 32 * 1024;
  m.btl_rdma_pipeline_frag_size = 32 * 1024;
  m.btl_min_rdma_pipeline_size = INT32_MAX;
  m.btl_latency = 1;
  m.btl_bandwidth = 40000;
  m.btl_get_limit = SIZE_MAX;
  m.btl_put_limit = SIZE_MAX;
  btl_xpmem_module_setup(m);
  btl_xpmem_register_pvars();
  int rc = mca_btl_base_param_register(&mca_btl_xpmem_component.btl_version, &m);
  if (rc != OPAL_SUCCESS)
    return rc;
  // The name users look for: the size from which messages are single-copied.
  int eager = mca_base_var_find("opal", "btl", "xpmem", "eager_limit");
  if (eager >= 0)
    mca_base_var_register_synonym(eager, "opal", "btl", "xpmem", "single_copy_threshold",
                                  mca_base_var_syn_flag_t(0));
  return OPAL_SUCCESS;
}

int component_open() {
  return OPAL_SUCCESS;
}
int component_close() {
  return OPAL_SUCCESS;
}

// The user made xpmem the only shared-memory transport ("--mca btl
// self,xpmem"), so stepping aside deserves a warning rather than a verbose
// line.  Listed beside vader (the normal launch line) it does not.
bool explicitly_requested() {
  int index = mca_base_var_find("opal", "btl", nullptr, nullptr);
  if (index < 0)
    return false;
  char **value = nullptr;
  if (mca_base_var_get_value(index, &value, nullptr, nullptr) != OPAL_SUCCESS || !value || !*value)
    return false;
  const std::string list = std::string(",") + *value + ",";
  auto listed = [&](const char *name) {
    return list.find(std::string(",") + name + ",") != std::string::npos;
  };
  return (*value)[0] != '^' && listed("xpmem") && !listed("vader") && !listed("sm");
}

mca_btl_base_module_t **step_aside(const std::string &why) {
  if (explicitly_requested())
    opal_output(0,
                "WARNING: btl xpmem was requested but cannot be used: %s Open MPI continues "
                "with the other transports.",
                why.c_str());
  else
    opal_output_verbose(1, output(), "btl xpmem: not used: %s", why.c_str());
  btl_xpmem_release_all();
  return nullptr;
}

bool create_mailbox() {
  BtlXpmemState &s = btl_xpmem;
  const opal_process_name_t me = OPAL_PROC_MY_NAME;
  std::snprintf(s.shm_name, sizeof s.shm_name, "/ompi-btl-xpmem.%u.%u.%d",
                static_cast<unsigned>(me.jobid), static_cast<unsigned>(me.vpid),
                static_cast<int>(getpid()));
  const std::size_t per_ring = xpmem_core::SpscRing::footprint(s.ring_bytes);
  s.mailbox_bytes = per_ring * static_cast<std::size_t>(s.num_rings);
  int fd = shm_open(s.shm_name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    return false;
  void *p = MAP_FAILED;
  if (ftruncate(fd, static_cast<off_t>(s.mailbox_bytes)) == 0)
    p = mmap(nullptr, s.mailbox_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED) {
    shm_unlink(s.shm_name);
    s.shm_name[0] = '\0';
    return false;
  }
  s.mailbox = p;
  // Ring i is for the peer of local rank i; nobody writes ours.
  for (int i = 0; i < s.num_rings; i++)
    if (i != s.local_rank)
      s.rx.push_back({xpmem_core::SpscRing(
          static_cast<char *>(p) + per_ring * static_cast<std::size_t>(i), s.ring_bytes)});
  return true;
}

// The last-level cache size from Open MPI's hwloc topology, 0 if unknown.
std::size_t hwloc_llc_bytes() {
  if (opal_hwloc_base_get_topology() != OPAL_SUCCESS || !opal_hwloc_topology)
    return 0;
  for (hwloc_obj_type_t type : {HWLOC_OBJ_L3CACHE, HWLOC_OBJ_L2CACHE}) {
    hwloc_obj_t cache = hwloc_get_obj_by_type(opal_hwloc_topology, type, 0);
    if (cache && cache->attr && cache->attr->cache.size)
      return cache->attr->cache.size;
  }
  return 0;
}

mca_btl_base_module_t **component_init(int *num_btls, bool, bool mpi_threads) {
  BtlXpmemState &s = btl_xpmem;
  *num_btls = 0;
  // The mailboxes and descriptor pools are single-threaded for now.
  if (mpi_threads)
    return step_aside("MPI_THREAD_MULTIPLE is not supported yet.");
  if (opal_process_info.num_local_peers == 0) {
    opal_output_verbose(10, output(), "btl xpmem: no other process on this node");
    return nullptr;
  }
  if (xpmem_version() < 0)
    return step_aside(xpmem_unavailable_reason());
  s.segment = xpmem::Segment::make_whole_address_space(0600);
  if (!s.segment)
    return step_aside(std::string("xpmem_make failed: ") + std::strerror(s.segment.error()) + ".");
  const int align = s.params.attach_log_align;
  s.ring_bytes = s.params.ring_kib > 0
                     ? std::bit_floor(static_cast<std::size_t>(s.params.ring_kib)) * 1024
                     : 0;
  if (align < 12 || align > 30 || s.ring_bytes < 64 * 1024 ||
      s.ring_bytes / 2 < btl_xpmem_module.btl_max_send_size + 64)
    return step_aside("btl_xpmem_attach_log_align must be 12..30 and btl_xpmem_mailbox_kib at "
                      "least twice btl_xpmem_max_send_size.");
  s.local_rank = opal_process_info.my_local_rank;
  s.num_rings = opal_process_info.num_local_peers + 1;
  if (!create_mailbox())
    return step_aside(std::string("cannot create the shared-memory mailbox: ") +
                      std::strerror(errno) + ".");

  BtlXpmemModex modex{};
  modex.segid = s.segment.id();
  modex.local_rank = s.local_rank;
  modex.ring_bytes = static_cast<std::uint32_t>(s.ring_bytes);
  modex.num_rings = static_cast<std::uint32_t>(s.num_rings);
  std::memcpy(modex.shm_name, s.shm_name, sizeof modex.shm_name);
  int rc = OPAL_SUCCESS;
  OPAL_MODEX_SEND(rc, OPAL_PMIX_LOCAL, &mca_btl_xpmem_component.btl_version, &modex, sizeof modex);
  if (rc != OPAL_SUCCESS)
    return step_aside("the modex refused our address.");

  xpmem_core::CopyConfig copy;
  copy.non_temporal = s.params.non_temporal;
  copy.non_temporal_threshold =
      s.params.non_temporal_threshold ? s.params.non_temporal_threshold : hwloc_llc_bytes();
  s.copy = std::make_unique<xpmem_core::CopyEngine>(copy);

  auto **modules = static_cast<mca_btl_base_module_t **>(std::malloc(sizeof(void *)));
  if (!modules)
    return step_aside("out of memory.");
  modules[0] = &btl_xpmem_module;
  *num_btls = 1;
  opal_output_verbose(
      10, output(),
      "btl xpmem: ready (segment %lld, %d local peers, non-temporal copies from %zu "
      "bytes)",
      static_cast<long long>(s.segment.id()), s.num_rings - 1, s.copy->non_temporal_threshold());
  return modules;
}

} // namespace

extern "C" {

__attribute__((visibility("default"))) mca_btl_base_component_3_0_0_t mca_btl_xpmem_component = {
    {
        MCA_BTL_DEFAULT_VERSION("xpmem"),
        .mca_open_component = component_open,
        .mca_close_component = component_close,
        .mca_query_component = nullptr,
        .mca_register_component_params = component_register,
        .mca_component_flags = 0,
        .reserved = {},
    },
    {MCA_BASE_METADATA_PARAM_CHECKPOINT, {}},
    component_init,
    btl_xpmem_progress_rings,
};

} // extern "C"
