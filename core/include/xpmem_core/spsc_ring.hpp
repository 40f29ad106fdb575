// spsc_ring.hpp - a single-producer single-consumer ring of variable-size
// records in shared memory: the mailbox one process writes small and
// control messages into and one other process reads them from.
//
// Records are 64-byte aligned and never wrap: one that would not fit before
// the end is preceded by a padding record.  The consumer reads a record in
// place and releases it afterwards, so a message is copied once into the
// ring and handed to the receiver without another copy.
//
// A record is published by its own header: the producer stores the record's
// position + 1 into the header last, and the consumer polls the header at
// its position.  A small message therefore moves in the cache lines it
// occupies, with no shared tail index to read on every poll (the ping-pong
// latency of a mailbox is those line transfers).  Before publishing, the
// producer zeroes the header slot after the record, so the consumer never
// takes stale bytes of an earlier lap's payload for a header; one spare
// 64-byte slot keeps that store out of unread records.  The producer reads
// the consumer's head only when its cached copy says the ring is full.
//
// The capacity is a power of two, and each handle keeps its own copy of it,
// so that finding a position in the ring is a mask of a local value (a
// 64-bit modulo would be a division on every poll).  The consumer likewise
// keeps its own head and only publishes it on release: an idle poll reads
// nothing shared but the header it waits on.
#ifndef XPMEM_CORE_SPSC_RING_HPP
#define XPMEM_CORE_SPSC_RING_HPP

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>

namespace xpmem_core {

class SpscRing {
  struct Control;

public:
  static constexpr std::size_t kAlign = 64;

  struct Record {
    std::atomic<std::uint64_t> ready; // position + 1 once published, else not
    std::uint32_t size;               // payload bytes
    std::uint16_t tag;
    std::uint16_t flags; // kPadding: skip to the start of the ring
    // the payload follows
  };
  static constexpr std::uint16_t kPadding = 1;

  // Bytes of shared memory a ring with `capacity` data bytes needs.
  static std::size_t footprint(std::size_t capacity) { return sizeof(Control) + capacity; }
  // Whether a ring can have `capacity` data bytes: a power of two, room for
  // two records and the spare slot.
  static bool valid_capacity(std::size_t capacity) {
    return std::has_single_bit(capacity) && capacity >= 4 * kAlign;
  }

  SpscRing() = default;
  // A handle on the ring in `memory`.  With capacity != 0 the ring is laid
  // out anew (empty), which only its creator does; capacity must be
  // valid_capacity().  Each process uses its own handle on the shared
  // memory, made after the creator's.
  explicit SpscRing(void *memory, std::size_t capacity = 0)
      : control_(static_cast<Control *>(memory)),
        data_(static_cast<unsigned char *>(memory) + sizeof(Control)) {
    if (capacity) {
      new (memory) Control;
      control_->capacity = capacity;
      capacity_ = capacity;
      control_->head.store(0, std::memory_order_relaxed);
      record_at(0)->ready.store(0, std::memory_order_relaxed);
      control_->tail.store(0, std::memory_order_release);
    } else {
      capacity_ = control_->capacity;
    }
    head_ = control_->head.load(std::memory_order_acquire);
  }

  explicit operator bool() const { return control_ != nullptr; }
  std::size_t capacity() const { return capacity_; }
  // The shared memory this handle uses, control block included.
  void *memory() const { return control_; }
  std::size_t memory_bytes() const { return footprint(capacity()); }
  // Largest payload one record can carry.
  std::size_t max_payload() const { return capacity() / 2 - sizeof(Record); }

  // Producer: space for a payload of `size` bytes, or nullptr if full.
  // Fill it, then commit(size, tag).
  void *reserve(std::size_t size) {
    if (size > max_payload())
      return nullptr;
    const std::size_t need = record_bytes(size);
    const std::uint64_t tail = control_->tail.load(std::memory_order_relaxed);
    const std::size_t offset = tail & (capacity_ - 1);
    const std::size_t padding = capacity() - offset < need ? capacity() - offset : 0;
    // Room for the record and the spare slot whose header commit() zeroes.
    const std::uint64_t end = tail + padding + need + kAlign;
    if (end - head_cache_ > capacity()) {
      head_cache_ = control_->head.load(std::memory_order_acquire);
      if (end - head_cache_ > capacity())
        return nullptr;
    }
    pending_padding_ = padding;
    return data_ + (padding ? 0 : offset) + sizeof(Record);
  }

  void commit(std::size_t size, std::uint16_t tag) {
    const std::uint64_t start = control_->tail.load(std::memory_order_relaxed);
    const std::uint64_t pos = start + pending_padding_;
    const std::uint64_t next = pos + record_bytes(size);
    Record *rec = record_at(pos);
    rec->size = static_cast<std::uint32_t>(size);
    rec->tag = tag;
    rec->flags = 0;
    record_at(next)->ready.store(0, std::memory_order_relaxed);
    rec->ready.store(pos + 1, std::memory_order_release);
    if (pending_padding_) {
      // Published after the record it skips to, which is complete by then.
      Record *pad = record_at(start);
      pad->size = 0;
      pad->tag = 0;
      pad->flags = kPadding;
      pad->ready.store(start + 1, std::memory_order_release);
      pending_padding_ = 0;
    }
    control_->tail.store(next, std::memory_order_relaxed);
  }

  // Consumer: the oldest record, or nullptr if empty.  Valid until release().
  // One handle per ring consumes.
  const Record *peek() {
    for (;;) {
      const Record *rec = record_at(head_);
      if (rec->ready.load(std::memory_order_acquire) != head_ + 1)
        return nullptr;
      if (!(rec->flags & kPadding))
        return rec;
      head_ += capacity_ - (head_ & (capacity_ - 1));
      control_->head.store(head_, std::memory_order_release);
    }
  }
  static const void *payload(const Record *rec) { return rec + 1; }

  void release(const Record *rec) {
    head_ += record_bytes(rec->size);
    control_->head.store(head_, std::memory_order_release);
  }

private:
  struct Control {
    alignas(kAlign) std::atomic<std::uint64_t> tail; // the producer's, kept for it alone
    alignas(kAlign) std::atomic<std::uint64_t> head; // written by the consumer
    alignas(kAlign) std::size_t capacity;
  };
  static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
                "the ring is shared between processes");

  static std::size_t record_bytes(std::size_t size) {
    return (sizeof(Record) + size + kAlign - 1) & ~(kAlign - 1);
  }
  Record *record_at(std::uint64_t pos) {
    return reinterpret_cast<Record *>(data_ + (pos & (capacity_ - 1)));
  }

  Control *control_ = nullptr;
  unsigned char *data_ = nullptr;
  std::size_t capacity_ = 0; // the shared value, read once
  std::uint64_t head_ = 0;   // consumer: its position, published on release
  // Producer-private: the consumer's head as last read, and the padding
  // between reserve() and commit().
  std::uint64_t head_cache_ = 0;
  std::size_t pending_padding_ = 0;
};

} // namespace xpmem_core

#endif // XPMEM_CORE_SPSC_RING_HPP
