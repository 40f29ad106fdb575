// MPI_T performance variables: what went through single copies and how
// the per-peer attachment caches behave.
#include "btl_xpmem.hpp"

namespace {

enum class Pvar {
  BytesSingleCopied,
  Atomics,
  CacheHits,
  CacheMisses,
  CacheEvictions,
  Attachments,
  AttachedBytes
};

std::uint64_t read(Pvar which) {
  if (which == Pvar::BytesSingleCopied)
    return btl_xpmem.bytes_single_copied;
  if (which == Pvar::Atomics)
    return btl_xpmem.atomics;
  std::uint64_t sum = 0;
  for (const mca_btl_base_endpoint_t *ep : btl_xpmem.endpoints) {
    const xpmem_core::AttachCacheStats s = ep->cache->stats();
    switch (which) {
    case Pvar::CacheHits:
      sum += s.hits;
      break;
    case Pvar::CacheMisses:
      sum += s.misses;
      break;
    case Pvar::CacheEvictions:
      sum += s.evictions;
      break;
    case Pvar::Attachments:
      sum += s.entries;
      break;
    case Pvar::AttachedBytes:
      sum += s.bytes;
      break;
    default:
      break;
    }
  }
  return sum;
}

int get_value(const mca_base_pvar_t *pvar, void *value, void *) {
  *static_cast<unsigned long long *>(value) =
      read(static_cast<Pvar>(reinterpret_cast<std::uintptr_t>(pvar->ctx)));
  return OPAL_SUCCESS;
}

void add(Pvar which, const char *name, const char *help, int var_class) {
  mca_base_component_pvar_register(
      &mca_btl_xpmem_component.btl_version, name, help, OPAL_INFO_LVL_4, var_class,
      MCA_BASE_VAR_TYPE_UNSIGNED_LONG_LONG, nullptr, MCA_BASE_VAR_BIND_NO_OBJECT,
      mca_base_pvar_flag_t(MCA_BASE_PVAR_FLAG_READONLY | MCA_BASE_PVAR_FLAG_CONTINUOUS), get_value,
      nullptr, nullptr, reinterpret_cast<void *>(static_cast<std::uintptr_t>(which)));
}

} // namespace

void btl_xpmem_register_pvars() {
  add(Pvar::BytesSingleCopied, "bytes_single_copied",
      "Bytes moved by one copy through XPMEM attachments (get and put)",
      MCA_BASE_PVAR_CLASS_COUNTER);
  add(Pvar::Atomics, "atomics", "Atomic operations done on attached peer memory",
      MCA_BASE_PVAR_CLASS_COUNTER);
  add(Pvar::CacheHits, "cache_hits", "Attachment cache lookups served by an existing attachment",
      MCA_BASE_PVAR_CLASS_COUNTER);
  add(Pvar::CacheMisses, "cache_misses", "Attachment cache lookups that made a new attachment",
      MCA_BASE_PVAR_CLASS_COUNTER);
  add(Pvar::CacheEvictions, "cache_evictions",
      "Attachments detached to stay within btl_xpmem_cache_max_mib/_entries",
      MCA_BASE_PVAR_CLASS_COUNTER);
  add(Pvar::Attachments, "attachments", "Attachments of peer memory currently mapped",
      MCA_BASE_PVAR_CLASS_LEVEL);
  add(Pvar::AttachedBytes, "attached_bytes", "Bytes of peer memory currently attached",
      MCA_BASE_PVAR_CLASS_LEVEL);
}
