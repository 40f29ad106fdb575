// mpsc_fifo.hpp - a bounded many-producer, one-consumer queue of fixed-size
// cells in shared memory: the UCX transport's receive FIFO, which any number
// of sending processes write into and only its owner reads.
//
// Each cell carries a sequence number.  A producer claims position p by
// compare-and-swap on the shared head when cell p % n has sequence p (free
// for this lap), fills the cell, then publishes it by storing p + 1.  The
// consumer takes position t when its cell shows t + 1 and frees it by storing
// t + n, which is what the producer of the next lap waits for.  No lock, no
// per-sender state, and a full queue is detected without touching the
// consumer's cache lines.  Lives in POSIX shared memory (never in XPMEM-
// exported memory), so a sender that exits leaves the queue valid.
#ifndef XPMEM_CORE_MPSC_FIFO_HPP
#define XPMEM_CORE_MPSC_FIFO_HPP

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>

namespace xpmem_core {

class MpscFifo {
public:
  static constexpr std::uint64_t kMagic = 0x786d70656d666966; // "xmpemfif"
  static constexpr std::size_t kCacheLine = 64;

  struct Cell {
    std::atomic<std::uint64_t> seq;
    std::uint32_t length; // payload bytes
    std::uint8_t tag;     // user's message type (the UCT AM id)
    std::uint8_t pad[3];
    // payload follows, up to cell_bytes - sizeof(Cell)
  };
  static_assert(sizeof(Cell) == 16);
  static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
                "cells are shared between processes");

  // Bytes of shared memory a queue of `cells` cells of `cell_bytes` needs.
  // cells must be a power of two; cell_bytes a multiple of the cache line.
  static std::size_t footprint(std::size_t cells, std::size_t cell_bytes) noexcept {
    return sizeof(Control) + cells * cell_bytes;
  }
  static bool valid_geometry(std::size_t cells, std::size_t cell_bytes) noexcept {
    return cells >= 2 && (cells & (cells - 1)) == 0 && cell_bytes > sizeof(Cell) &&
           cell_bytes % kCacheLine == 0 && cells <= (std::size_t{1} << 20) &&
           cell_bytes <= (std::size_t{1} << 24);
  }

  MpscFifo() = default;

  // Formats `memory` (footprint() bytes, zeroed or not) as an empty queue
  // owned by the caller, the consumer.
  static MpscFifo create(void *memory, std::size_t cells, std::size_t cell_bytes,
                         std::uint64_t nonce) noexcept {
    auto *control = new (memory) Control;
    control->cells = cells;
    control->cell_bytes = cell_bytes;
    control->nonce = nonce;
    control->head.store(0, std::memory_order_relaxed);
    MpscFifo fifo(control);
    for (std::size_t i = 0; i < cells; ++i) {
      Cell *cell = new (fifo.cell_at(i)) Cell;
      cell->seq.store(i, std::memory_order_relaxed);
    }
    control->magic.store(kMagic, std::memory_order_release);
    return fifo;
  }

  // A producer's view of a queue another process created in `memory` of
  // `size` bytes; empty (false) when the memory does not hold a queue with
  // this nonce and a geometry that fits.
  static MpscFifo open(void *memory, std::size_t size, std::uint64_t nonce) noexcept {
    if (size < sizeof(Control))
      return {};
    auto *control = static_cast<Control *>(memory);
    if (control->magic.load(std::memory_order_acquire) != kMagic || control->nonce != nonce ||
        !valid_geometry(control->cells, control->cell_bytes) ||
        footprint(control->cells, control->cell_bytes) > size)
      return {};
    return MpscFifo(control);
  }

  explicit operator bool() const noexcept { return control_ != nullptr; }
  std::size_t cells() const noexcept { return mask_ + 1; }
  std::size_t max_payload() const noexcept { return cell_bytes_ - sizeof(Cell); }

  // Producer: claims a free cell and returns its payload area (max_payload()
  // bytes) with *ticket set, or nullptr when the queue is full.  Every
  // reservation must be committed: the consumer waits for it in order.
  void *reserve(std::uint64_t *ticket) noexcept {
    std::uint64_t pos = control_->head.load(std::memory_order_relaxed);
    for (;;) {
      Cell *cell = cell_at(pos & mask_);
      const std::uint64_t seq = cell->seq.load(std::memory_order_acquire);
      const auto lag = static_cast<std::int64_t>(seq - pos);
      if (lag == 0) {
        if (control_->head.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed))
          break;
      } else if (lag < 0) {
        return nullptr; // the consumer has not freed this cell from the last lap
      } else {
        pos = control_->head.load(std::memory_order_relaxed);
      }
    }
    *ticket = pos;
    return cell_at(pos & mask_) + 1;
  }

  // Producer: publishes a reserved cell.
  void commit(std::uint64_t ticket, std::uint32_t length, std::uint8_t tag) noexcept {
    Cell *cell = cell_at(ticket & mask_);
    cell->length = length;
    cell->tag = tag;
    cell->seq.store(ticket + 1, std::memory_order_release);
  }

  // Producer: true when a reserve() now would find the next cell busy.
  bool looks_full() const noexcept {
    const std::uint64_t pos = control_->head.load(std::memory_order_relaxed);
    const Cell *cell = cell_at(pos & mask_);
    return static_cast<std::int64_t>(cell->seq.load(std::memory_order_acquire) - pos) < 0;
  }

  // Consumer: the next published cell, or nullptr.
  const Cell *peek() noexcept {
    Cell *cell = cell_at(tail_ & mask_);
    return cell->seq.load(std::memory_order_acquire) == tail_ + 1 ? cell : nullptr;
  }
  static const void *payload(const Cell *cell) noexcept { return cell + 1; }
  static void *payload(Cell *cell) noexcept { return cell + 1; }

  // Consumer: frees the cell peek() returned for the producers' next lap.
  void release(const Cell *cell) noexcept {
    const_cast<Cell *>(cell)->seq.store(tail_ + mask_ + 1, std::memory_order_release);
    ++tail_;
  }

private:
  struct alignas(kCacheLine) Control {
    std::atomic<std::uint64_t> magic{0};
    std::uint64_t nonce = 0;
    std::uint64_t cells = 0;
    std::uint64_t cell_bytes = 0;
    alignas(kCacheLine) std::atomic<std::uint64_t> head{0}; // producers' line
  };

  // The geometry is copied into the handle once (validated by open()), so
  // finding a cell reads nothing shared: an idle poll reads only the
  // sequence word of the cell it waits on.
  explicit MpscFifo(Control *control) noexcept
      : control_(control), cells_base_(reinterpret_cast<unsigned char *>(control + 1)),
        mask_(control->cells - 1), cell_bytes_(control->cell_bytes) {}
  Cell *cell_at(std::size_t index) const noexcept {
    return reinterpret_cast<Cell *>(cells_base_ + index * cell_bytes_);
  }

  Control *control_ = nullptr;
  unsigned char *cells_base_ = nullptr;
  std::uint64_t mask_ = 0; // cells - 1
  std::size_t cell_bytes_ = 0;
  std::uint64_t tail_ = 0; // consumer-private
};

} // namespace xpmem_core

#endif // XPMEM_CORE_MPSC_FIFO_HPP
