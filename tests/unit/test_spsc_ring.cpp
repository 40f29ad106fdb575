// The shared-memory mailbox ring: order, wrap-around, full/empty, and a
// producer and consumer in two processes over MAP_SHARED memory.
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "shared_memory.hpp"
#include "xpmem_core/spsc_ring.hpp"

namespace {

using xpmem_core::SpscRing;

bool push(SpscRing &ring, std::uint32_t seq, std::size_t size) {
  void *p = ring.reserve(size);
  if (!p)
    return false;
  for (std::size_t i = 0; i < size; i++)
    static_cast<unsigned char *>(p)[i] = static_cast<unsigned char>(seq + i);
  ring.commit(size, static_cast<std::uint16_t>(seq & 0xffff));
  return true;
}

bool pop(SpscRing &ring, std::uint32_t seq, std::size_t size) {
  const SpscRing::Record *rec = ring.peek();
  if (!rec || rec->size != size || rec->tag != (seq & 0xffff))
    return false;
  auto *p = static_cast<const unsigned char *>(SpscRing::payload(rec));
  for (std::size_t i = 0; i < size; i++)
    if (p[i] != static_cast<unsigned char>(seq + i))
      return false;
  ring.release(rec);
  return true;
}

TEST(SpscRing, FifoOrderFullAndEmpty) {
  SharedMemory mem(SpscRing::footprint(4096));
  SpscRing ring(mem.addr, 4096);
  EXPECT_EQ(ring.peek(), nullptr);
  EXPECT_EQ(ring.reserve(ring.max_payload() + 1), nullptr);
  int pushed = 0;
  while (push(ring, pushed, 100))
    pushed++;
  EXPECT_EQ(pushed, (4096 - 64) / 128)
      << "100-byte payloads take 128-byte records, and one 64-byte slot stays free";
  for (int i = 0; i < pushed; i++)
    ASSERT_TRUE(pop(ring, i, 100)) << i;
  EXPECT_EQ(ring.peek(), nullptr);
}

// The btl maps a ring's pages in by this extent, from either side's handle.
TEST(SpscRing, BothHandlesSpanTheWholeRing) {
  SharedMemory mem(SpscRing::footprint(4096));
  SpscRing ring(mem.addr, 4096);
  SpscRing peer(mem.addr);
  EXPECT_EQ(ring.memory(), mem.addr);
  EXPECT_EQ(peer.memory(), mem.addr);
  EXPECT_EQ(ring.memory_bytes(), SpscRing::footprint(4096));
  EXPECT_EQ(peer.memory_bytes(), SpscRing::footprint(4096));
}

// Positions are masked, so only powers of two with room for two records
// and the spare slot are rings; the btl rounds its mailbox size down to one.
TEST(SpscRing, CapacityIsAPowerOfTwo) {
  EXPECT_TRUE(SpscRing::valid_capacity(256));
  EXPECT_TRUE(SpscRing::valid_capacity(256 * 1024));
  EXPECT_FALSE(SpscRing::valid_capacity(0));
  EXPECT_FALSE(SpscRing::valid_capacity(128));
  EXPECT_FALSE(SpscRing::valid_capacity(3 * 4096));
  EXPECT_FALSE(SpscRing::valid_capacity(4096 + 64));
}

TEST(SpscRing, WrapsWithPaddingAndNeverSplitsARecord) {
  SharedMemory mem(SpscRing::footprint(4096));
  SpscRing ring(mem.addr, 4096);
  std::mt19937 rng(7);
  std::uint32_t produced = 0, consumed = 0;
  std::vector<std::size_t> sizes;
  for (int step = 0; step < 100000; step++) {
    if (rng() % 2) {
      std::size_t size = rng() % (ring.max_payload() + 1);
      if (push(ring, produced, size)) {
        sizes.push_back(size);
        produced++;
      }
    } else if (consumed < produced) {
      ASSERT_TRUE(pop(ring, consumed, sizes[consumed])) << consumed;
      consumed++;
    }
  }
  EXPECT_GT(consumed, 1000u);
}

// Records are published by their headers, so the consumer must never take
// an earlier lap's payload for one.  Every payload word here holds exactly
// what a header at that place would hold one lap later.
TEST(SpscRing, StalePayloadIsNeverTakenForAHeader) {
  const std::size_t capacity = 4096;
  SharedMemory mem(SpscRing::footprint(capacity));
  SpscRing ring(mem.addr, capacity);
  auto *data = static_cast<unsigned char *>(mem.addr) + SpscRing::footprint(capacity) - capacity;
  std::mt19937 rng(11);
  std::uint64_t lap = 0;
  std::uintptr_t last = 0;
  std::size_t in_flight = 0;
  for (int step = 0; step < 20000; step++) {
    if (rng() % 2) {
      const std::size_t size = 8 * (rng() % (ring.max_payload() / 8 + 1));
      auto *p = static_cast<unsigned char *>(ring.reserve(size));
      if (!p)
        continue;
      if (reinterpret_cast<std::uintptr_t>(p) < last)
        lap++;
      last = reinterpret_cast<std::uintptr_t>(p);
      for (std::size_t i = 0; i < size; i += 8) {
        const std::uint64_t offset = static_cast<std::uint64_t>(p + i - data);
        const std::uint64_t next_lap_ready = (lap + 1) * capacity + offset + 1;
        std::memcpy(p + i, &next_lap_ready, 8);
      }
      ring.commit(size, 0);
      in_flight++;
    } else if (in_flight) {
      const SpscRing::Record *rec = ring.peek();
      ASSERT_NE(rec, nullptr);
      ring.release(rec);
      if (--in_flight == 0) {
        ASSERT_EQ(ring.peek(), nullptr) << "step " << step;
      }
    }
  }
}

TEST(SpscRing, TwoProcesses) {
  const std::size_t capacity = 64 * 1024;
  SharedMemory mem(SpscRing::footprint(capacity));
  SpscRing creator(mem.addr, capacity);
  const std::uint32_t count = 200000;
  pid_t pid = fork();
  if (pid == 0) {
    SpscRing producer(mem.addr);
    for (std::uint32_t i = 0; i < count;)
      if (push(producer, i, (i * 37) % 2000))
        i++;
    _exit(0);
  }
  SpscRing consumer(mem.addr);
  bool ok = true;
  for (std::uint32_t i = 0; i < count && ok;) {
    const SpscRing::Record *rec = consumer.peek();
    if (!rec)
      continue;
    ok = pop(consumer, i, (i * 37) % 2000);
    i++;
  }
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(ok);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

} // namespace
