// An OSU-style micro-benchmark: latency (ping-pong), bandwidth (a window of
// non-blocking sends per iteration, then an ack) and multiple-pair
// bandwidth, with buffers reused (as OSU does: one send and one receive
// buffer per rank, used by every message of the window) or fresh ones (new
// memory for every message, as real applications often have).
//
//   mpi_bench --mode latency|bw|mbw [--min B] [--max B] [--iters N]
//             [--warmup N] [--window N] [--volume-mib N] [--fresh] [--ceiling]
//             [--blocks N]
//
// Output, one line per size: "size value unit cpu_s_per_gib", where
// cpu_s_per_gib is user+system CPU time of all ranks per GiB moved.
//
// --ceiling (bandwidth with reused buffers): right after each size's
// measurement the receivers memcpy as many bytes, message by message, from a
// local buffer of that size into the receive buffer the transport just
// filled, and a "memcpy size value MB/s cpu_s_per_gib" line follows: a plain
// single-thread memcpy, the one copy a single-copy transport makes, measured
// in the same processes moments apart (under emulation, the host's speed
// drifts by several times within minutes).
//
// --blocks N (latency): times the iterations in N equal blocks and reports
// the median block's latency instead of the mean over all of them.  Under
// emulation the host preempts a vCPU now and then for milliseconds, which
// inflates whichever short measurement it lands in; the median block
// leaves those out.
#include <mpi.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Options {
  std::string mode = "bw";
  std::size_t min = 4096, max = 16u << 20;
  int iters = 0, warmup = 0, window = 64, blocks = 1;
  std::size_t volume = 1ull << 30; // bytes per bandwidth measurement
  bool fresh = false;
  bool ceiling = false;
};

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

// The window's buffers: one buffer for all of them when reused (as OSU), or
// new memory for every message when fresh (mapped, written by the
// application, used once, unmapped).
class Buffers {
public:
  Buffers(std::size_t size, int count, bool fresh)
      : size_(size), fresh_(fresh), bufs_(static_cast<std::size_t>(fresh ? count : 1)) {
    if (!fresh)
      bufs_[0] = map();
  }
  Buffers(const Buffers &) = delete;
  Buffers &operator=(const Buffers &) = delete;
  ~Buffers() {
    for (char *b : bufs_)
      if (b)
        munmap(b, std::max<std::size_t>(size_, 1));
  }
  char *get(int i) {
    if (!fresh_)
      return bufs_[0];
    char *&b = bufs_[static_cast<std::size_t>(i)];
    if (b)
      munmap(b, std::max<std::size_t>(size_, 1));
    b = map();
    return b;
  }

private:
  char *map() const {
    void *p = mmap(nullptr, std::max<std::size_t>(size_, 1), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
      MPI_Abort(MPI_COMM_WORLD, 2);
    std::memset(p, 'a', size_); // the application wrote its data
    return static_cast<char *>(p);
  }
  std::size_t size_;
  bool fresh_;
  std::vector<char *> bufs_;
};

// Latency as osu_latency counts it: 100 warm-up and 10 000 timed round trips
// up to 8 KiB, 10 and 1000 above.
int iterations(const Options &o, std::size_t size, bool warm) {
  const bool small = size <= 8192;
  if (warm) {
    if (o.warmup)
      return o.warmup;
    if (o.mode == "latency")
      return small ? 100 : 10;
    return size >= (1u << 20) ? (o.fresh ? 1 : 2) : 10;
  }
  if (o.iters)
    return o.iters;
  if (o.mode == "latency")
    return small ? 10000 : 1000;
  // About --volume bytes per measurement, at least 3 iterations (1 with
  // fresh buffers, where each iteration maps and fills window new buffers).
  const std::size_t per_iter = size * static_cast<std::size_t>(o.window);
  return static_cast<int>(std::clamp<std::size_t>(o.volume / std::max<std::size_t>(per_iter, 1),
                                                  o.fresh ? 1 : 3, 1000));
}

// Returns seconds for `iters` iterations; pairs are (r, r + half).
double run_bw(const Options &o, std::size_t size, int iters, int rank, int half, Buffers &bufs) {
  const bool sender = rank < half;
  const int peer = sender ? rank + half : rank - half;
  std::vector<MPI_Request> reqs(static_cast<std::size_t>(o.window));
  char ack = 0;
  MPI_Barrier(MPI_COMM_WORLD);
  const double t0 = MPI_Wtime();
  for (int it = 0; it < iters; it++) {
    for (int w = 0; w < o.window; w++) {
      char *b = bufs.get(w);
      if (sender)
        MPI_Isend(b, static_cast<int>(size), MPI_BYTE, peer, 100, MPI_COMM_WORLD, &reqs[w]);
      else
        MPI_Irecv(b, static_cast<int>(size), MPI_BYTE, peer, 100, MPI_COMM_WORLD, &reqs[w]);
    }
    MPI_Waitall(o.window, reqs.data(), MPI_STATUSES_IGNORE);
    if (sender)
      MPI_Recv(&ack, 1, MPI_BYTE, peer, 101, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    else
      MPI_Send(&ack, 1, MPI_BYTE, peer, 101, MPI_COMM_WORLD);
  }
  return MPI_Wtime() - t0;
}

double run_latency(std::size_t size, int iters, int rank, Buffers &bufs) {
  MPI_Barrier(MPI_COMM_WORLD);
  const double t0 = MPI_Wtime();
  for (int it = 0; it < iters; it++) {
    char *b = bufs.get(0);
    if (rank == 0) {
      MPI_Send(b, static_cast<int>(size), MPI_BYTE, 1, 1, MPI_COMM_WORLD);
      MPI_Recv(b, static_cast<int>(size), MPI_BYTE, 1, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    } else if (rank == 1) {
      MPI_Recv(b, static_cast<int>(size), MPI_BYTE, 0, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      MPI_Send(b, static_cast<int>(size), MPI_BYTE, 0, 1, MPI_COMM_WORLD);
    }
  }
  return MPI_Wtime() - t0;
}

// Runs `iters` iterations as `blocks` equal blocks (the last takes the
// remainder) and returns the median block's seconds per iteration, times
// `iters`: the duration of `iters` iterations at the median block's pace.
template <typename Run> double median_of_blocks(int blocks, int iters, Run run) {
  blocks = std::min(blocks, iters);
  if (blocks <= 1)
    return run(iters);
  std::vector<double> per_iter;
  for (int b = 0; b < blocks; b++) {
    const int n = b + 1 < blocks ? iters / blocks : iters - (blocks - 1) * (iters / blocks);
    per_iter.push_back(run(n) / n);
  }
  std::nth_element(per_iter.begin(), per_iter.begin() + blocks / 2, per_iter.end());
  return per_iter[static_cast<std::size_t>(blocks / 2)] * iters;
}

// The --ceiling measurement: receivers copy window x size bytes per
// iteration from a local buffer into `bufs`; senders wait.  Returns seconds.
double run_receiver_memcpy(const Options &o, std::size_t size, int iters, bool receiver,
                           Buffers &bufs) {
  Buffers src(receiver ? size : 0, 1, false);
  MPI_Barrier(MPI_COMM_WORLD);
  const double t0 = MPI_Wtime();
  if (receiver)
    for (int it = 0; it < iters; it++)
      for (int w = 0; w < o.window; w++)
        std::memcpy(bufs.get(w), src.get(0), size);
  const double seconds = MPI_Wtime() - t0;
  MPI_Barrier(MPI_COMM_WORLD);
  return seconds;
}

// Collective: rank 0 prints "<prefix>size value unit cpu_s_per_gib" from the
// slowest rank's seconds and all ranks' CPU time.
void report(bool latency, const char *prefix, const Options &o, std::size_t size, int iters,
            int nprocs, double seconds, double cpu) {
  double cpu_total = 0, slowest = 0;
  MPI_Reduce(&cpu, &cpu_total, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
  MPI_Reduce(&seconds, &slowest, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0)
    return;
  if (latency) {
    const double gib = 2.0 * static_cast<double>(size) * iters / (1 << 30);
    std::printf("%zu %.2f us %.3f\n", size, slowest / iters / 2 * 1e6,
                gib > 0 ? cpu_total / gib : 0.0);
  } else {
    const double bytes = static_cast<double>(size) * o.window * iters * (nprocs / 2);
    std::printf("%s%zu %.1f MB/s %.3f\n", prefix, size, bytes / slowest / 1e6,
                cpu_total / (bytes / (1 << 30)));
  }
  std::fflush(stdout);
}

Options parse(int argc, char **argv) {
  Options o;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string("0"); };
    if (a == "--mode")
      o.mode = next();
    else if (a == "--min")
      o.min = std::stoull(next());
    else if (a == "--max")
      o.max = std::stoull(next());
    else if (a == "--iters")
      o.iters = std::stoi(next());
    else if (a == "--warmup")
      o.warmup = std::stoi(next());
    else if (a == "--window")
      o.window = std::stoi(next());
    else if (a == "--volume-mib")
      o.volume = std::stoull(next()) << 20;
    else if (a == "--fresh")
      o.fresh = true;
    else if (a == "--ceiling")
      o.ceiling = true;
    else if (a == "--blocks")
      o.blocks = std::max(1, std::stoi(next()));
    else {
      std::fprintf(stderr, "mpi_bench: unknown option %s\n", a.c_str());
      std::exit(2);
    }
  }
  return o;
}

} // namespace

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, nprocs = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nprocs);
  const Options o = parse(argc, argv);
  if (o.mode != "bw" && o.mode != "mbw" && o.mode != "latency") {
    if (rank == 0)
      std::fprintf(stderr, "mpi_bench: unknown mode %s\n", o.mode.c_str());
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  if (nprocs < 2 || nprocs % 2 || (o.mode != "mbw" && nprocs != 2)) {
    if (rank == 0)
      std::fprintf(stderr, "mpi_bench: %s needs 2 ranks (mbw: an even number)\n", o.mode.c_str());
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  if (rank == 0)
    std::printf("# mode %s, %s buffers, window %d, %d ranks\n", o.mode.c_str(),
                o.fresh ? "fresh" : "reused", o.window, nprocs);
  for (std::size_t size = o.min; size <= o.max; size *= 2) {
    Buffers bufs(size, o.mode == "latency" ? 1 : o.window, o.fresh);
    double seconds;
    const int iters = iterations(o, size, false);
    if (o.mode == "latency")
      run_latency(size, iterations(o, size, true), rank, bufs);
    else
      run_bw(o, size, iterations(o, size, true), rank, nprocs / 2, bufs);
    const double cpu0 = cpu_seconds();
    if (o.mode == "latency")
      seconds = median_of_blocks(o.blocks, iters,
                                 [&](int n) { return run_latency(size, n, rank, bufs); });
    else
      seconds = run_bw(o, size, iters, rank, nprocs / 2, bufs);
    report(o.mode == "latency", "", o, size, iters, nprocs, seconds, cpu_seconds() - cpu0);
    if (o.ceiling && o.mode != "latency" && !o.fresh) {
      const bool receiver = rank >= nprocs / 2;
      run_receiver_memcpy(o, size, 1, receiver, bufs);
      const double mcpu0 = cpu_seconds();
      const double mseconds = run_receiver_memcpy(o, size, iters, receiver, bufs);
      report(false, "memcpy ", o, size, iters, nprocs, mseconds, cpu_seconds() - mcpu0);
    }
  }
  MPI_Finalize();
  return 0;
}
