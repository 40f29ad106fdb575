// The UCX transport's receive FIFO: order, full/empty, wrap-around, a
// foreign nonce, and several producer processes against one consumer over
// MAP_SHARED memory (every message arrives once, each sender's in order).
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "shared_memory.hpp"
#include "xpmem_core/mpsc_fifo.hpp"

namespace {

using xpmem_core::MpscFifo;

struct Message {
  std::uint32_t sender;
  std::uint32_t seq;
};

bool send(MpscFifo &fifo, std::uint32_t sender, std::uint32_t seq) {
  std::uint64_t ticket = 0;
  void *p = fifo.reserve(&ticket);
  if (!p)
    return false;
  const Message m{sender, seq};
  std::memcpy(p, &m, sizeof m);
  fifo.commit(ticket, sizeof m, static_cast<std::uint8_t>(sender));
  return true;
}

TEST(MpscFifo, GeometryChecks) {
  EXPECT_TRUE(MpscFifo::valid_geometry(64, 8192));
  EXPECT_FALSE(MpscFifo::valid_geometry(48, 8192)); // not a power of two
  EXPECT_FALSE(MpscFifo::valid_geometry(1, 8192));
  EXPECT_FALSE(MpscFifo::valid_geometry(64, 100)); // not whole cache lines
  EXPECT_FALSE(MpscFifo::valid_geometry(64, 0));
}

TEST(MpscFifo, FifoOrderFullAndWrap) {
  constexpr std::size_t kCells = 8, kCellBytes = 128;
  SharedMemory shm(MpscFifo::footprint(kCells, kCellBytes));
  ASSERT_NE(shm.addr, nullptr);
  MpscFifo consumer = MpscFifo::create(shm.addr, kCells, kCellBytes, 42);
  MpscFifo producer = MpscFifo::open(shm.addr, shm.size, 42);
  ASSERT_TRUE(producer);
  EXPECT_EQ(producer.max_payload(), kCellBytes - sizeof(MpscFifo::Cell));
  EXPECT_EQ(consumer.peek(), nullptr);

  std::uint32_t sent = 0, received = 0;
  for (int lap = 0; lap < 5; ++lap) {
    while (send(producer, 7, sent))
      ++sent;
    EXPECT_TRUE(producer.looks_full());
    EXPECT_EQ(sent - received, kCells) << "exactly `cells` messages fit";
    // Drain half, so producers and the consumer wrap at different points.
    for (std::size_t i = 0; i < kCells / 2 + lap % 2; ++i) {
      const MpscFifo::Cell *cell = consumer.peek();
      ASSERT_NE(cell, nullptr);
      Message m;
      ASSERT_EQ(cell->length, sizeof m);
      EXPECT_EQ(cell->tag, 7);
      std::memcpy(&m, MpscFifo::payload(cell), sizeof m);
      EXPECT_EQ(m.seq, received);
      consumer.release(cell);
      ++received;
    }
    EXPECT_FALSE(producer.looks_full());
  }
  while (const MpscFifo::Cell *cell = consumer.peek()) {
    Message m;
    std::memcpy(&m, MpscFifo::payload(cell), sizeof m);
    EXPECT_EQ(m.seq, received++);
    consumer.release(cell);
  }
  EXPECT_EQ(received, sent);
}

TEST(MpscFifo, ReservedButUncommittedCellBlocksOnlyUntilCommitted) {
  SharedMemory shm(MpscFifo::footprint(4, 64));
  MpscFifo consumer = MpscFifo::create(shm.addr, 4, 64, 1);
  MpscFifo a = MpscFifo::open(shm.addr, shm.size, 1);
  MpscFifo b = MpscFifo::open(shm.addr, shm.size, 1);
  std::uint64_t ta = 0;
  ASSERT_NE(a.reserve(&ta), nullptr);
  ASSERT_TRUE(send(b, 2, 0)); // b's message lands behind a's reservation
  EXPECT_EQ(consumer.peek(), nullptr) << "a's cell is first and not yet published";
  a.commit(ta, 0, 1);
  const MpscFifo::Cell *first = consumer.peek();
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->tag, 1);
  consumer.release(first);
  const MpscFifo::Cell *second = consumer.peek();
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(second->tag, 2);
  consumer.release(second);
}

TEST(MpscFifo, OpenRejectsForeignOrShortMemory) {
  SharedMemory shm(MpscFifo::footprint(4, 64));
  EXPECT_FALSE(MpscFifo::open(shm.addr, shm.size, 5)) << "never formatted";
  MpscFifo::create(shm.addr, 4, 64, 5);
  EXPECT_FALSE(MpscFifo::open(shm.addr, shm.size, 6)) << "other nonce";
  EXPECT_FALSE(MpscFifo::open(shm.addr, shm.size - 64, 5)) << "mapping too short";
  EXPECT_FALSE(MpscFifo::open(shm.addr, 8, 5));
  EXPECT_TRUE(MpscFifo::open(shm.addr, shm.size, 5));
}

TEST(MpscFifo, ManyProducerProcessesOneConsumer) {
  constexpr std::uint32_t kSenders = 4, kPerSender = 20000;
  constexpr std::size_t kCells = 16, kCellBytes = 64;
  SharedMemory shm(MpscFifo::footprint(kCells, kCellBytes));
  ASSERT_NE(shm.addr, nullptr);
  MpscFifo consumer = MpscFifo::create(shm.addr, kCells, kCellBytes, 99);

  std::vector<pid_t> children;
  for (std::uint32_t s = 0; s < kSenders; ++s) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      MpscFifo producer = MpscFifo::open(shm.addr, shm.size, 99);
      if (!producer)
        _exit(2);
      for (std::uint32_t i = 0; i < kPerSender;)
        if (send(producer, s, i))
          ++i;
      _exit(0);
    }
    children.push_back(pid);
  }

  std::vector<std::uint32_t> next(kSenders, 0);
  std::uint32_t total = 0, errors = 0;
  while (total < kSenders * kPerSender) {
    const MpscFifo::Cell *cell = consumer.peek();
    if (!cell)
      continue;
    Message m;
    std::memcpy(&m, MpscFifo::payload(cell), sizeof m);
    if (m.sender >= kSenders || m.seq != next[m.sender] || cell->tag != m.sender)
      ++errors;
    else
      ++next[m.sender];
    consumer.release(cell);
    ++total;
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  EXPECT_EQ(errors, 0u);
  EXPECT_EQ(consumer.peek(), nullptr);
  for (std::uint32_t s = 0; s < kSenders; ++s)
    EXPECT_EQ(next[s], kPerSender);
}

} // namespace
