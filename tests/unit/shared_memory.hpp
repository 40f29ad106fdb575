// Anonymous MAP_SHARED memory that forked children see too, for the
// shared-memory queue tests.
#ifndef XPMEM_TESTS_UNIT_SHARED_MEMORY_HPP
#define XPMEM_TESTS_UNIT_SHARED_MEMORY_HPP

#include <sys/mman.h>

#include <cstddef>

struct SharedMemory {
  explicit SharedMemory(std::size_t n) : size(n) {
    void *p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    addr = p == MAP_FAILED ? nullptr : p;
  }
  ~SharedMemory() {
    if (addr)
      munmap(addr, size);
  }
  SharedMemory(const SharedMemory &) = delete;
  SharedMemory &operator=(const SharedMemory &) = delete;
  std::size_t size;
  void *addr;
};

#endif // XPMEM_TESTS_UNIT_SHARED_MEMORY_HPP
