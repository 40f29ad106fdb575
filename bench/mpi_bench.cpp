// An OSU-style micro-benchmark: latency (ping-pong), bandwidth (a window of
// non-blocking sends per iteration, then an ack) and multiple-pair
// bandwidth, with buffers reused every iteration (as OSU does) or fresh
// ones (new memory every iteration, as real applications often have).
// Also a plain single-thread memcpy of the same sizes: the ceiling for a
// single-copy transport on this machine.
//
//   mpi_bench --mode latency|bw|mbw|memcpy [--min B] [--max B] [--iters N]
//             [--warmup N] [--window N] [--volume-mib N] [--fresh]
//
// Output, one line per size: "size value unit cpu_s_per_gib", where
// cpu_s_per_gib is user+system CPU time of all ranks per GiB moved.
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
  int iters = 0, warmup = 0, window = 64;
  std::size_t volume = 1ull << 30; // bytes per bandwidth measurement
  bool fresh = false;
};

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

// A buffer that is new memory every time when --fresh: mapped, touched,
// used once, unmapped.
class Buffers {
public:
  Buffers(std::size_t size, int count, bool fresh) : size_(size), fresh_(fresh) {
    for (int i = 0; i < count; i++)
      bufs_.push_back(fresh ? nullptr : map());
  }
  ~Buffers() {
    for (char *b : bufs_)
      if (b)
        munmap(b, std::max<std::size_t>(size_, 1));
  }
  char *get(int i) {
    if (fresh_) {
      if (bufs_[i])
        munmap(bufs_[i], std::max<std::size_t>(size_, 1));
      bufs_[i] = map();
    }
    return bufs_[i];
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

int iterations(const Options &o, std::size_t size, bool warm) {
  if (warm)
    return o.warmup ? o.warmup : (size >= (1u << 20) ? (o.fresh ? 1 : 2) : 10);
  if (o.iters)
    return o.iters;
  // About --volume bytes per measurement, at least 3 iterations (1 with
  // fresh buffers, where each iteration maps and fills window new buffers).
  const std::size_t per_iter = size * static_cast<std::size_t>(o.mode == "latency" ? 2 : o.window);
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

// The same footprint as the bandwidth test: `window` buffers, each copied
// once per iteration.
double run_memcpy(std::size_t size, int iters, int window, bool fresh) {
  Buffers src(size, window, fresh), dst(size, window, fresh);
  const double t0 = MPI_Wtime();
  for (int it = 0; it < iters; it++)
    for (int w = 0; w < window; w++)
      std::memcpy(dst.get(w), src.get(w), size);
  return MPI_Wtime() - t0;
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
  const bool needs_pairs = o.mode == "bw" || o.mode == "mbw" || o.mode == "latency";
  if (needs_pairs && (nprocs < 2 || nprocs % 2 || (o.mode != "mbw" && nprocs != 2))) {
    if (rank == 0)
      std::fprintf(stderr, "mpi_bench: %s needs 2 ranks (mbw: an even number)\n", o.mode.c_str());
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  if (rank == 0)
    std::printf("# mode %s, %s buffers, window %d, %d ranks\n", o.mode.c_str(),
                o.fresh ? "fresh" : "reused", o.window, nprocs);
  for (std::size_t size = o.min; size <= o.max; size *= 2) {
    const int count = o.mode == "latency" || o.mode == "memcpy" ? 1 : o.window;
    Buffers bufs(o.mode == "memcpy" ? 0 : size, count, o.fresh);
    double seconds;
    const int iters = iterations(o, size, false);
    if (o.mode == "memcpy") {
      run_memcpy(size, iterations(o, size, true), o.window, o.fresh);
      const double t = run_memcpy(size, iters, o.window, o.fresh);
      const double bytes = static_cast<double>(size) * iters * o.window;
      if (rank == 0)
        std::printf("%zu %.1f MB/s %.3f\n", size, bytes / t / 1e6, t / (bytes / (1 << 30)));
      continue;
    }
    if (o.mode == "latency")
      run_latency(size, iterations(o, size, true), rank, bufs);
    else
      run_bw(o, size, iterations(o, size, true), rank, nprocs / 2, bufs);
    const double cpu0 = cpu_seconds();
    if (o.mode == "latency")
      seconds = run_latency(size, iters, rank, bufs);
    else
      seconds = run_bw(o, size, iters, rank, nprocs / 2, bufs);
    double cpu = cpu_seconds() - cpu0, cpu_total = 0, slowest = 0;
    MPI_Reduce(&cpu, &cpu_total, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    MPI_Reduce(&seconds, &slowest, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    if (rank != 0)
      continue;
    if (o.mode == "latency") {
      const double gib = 2.0 * static_cast<double>(size) * iters / (1 << 30);
      std::printf("%zu %.2f us %.3f\n", size, slowest / iters / 2 * 1e6,
                  gib > 0 ? cpu_total / gib : 0.0);
    } else {
      const double bytes = static_cast<double>(size) * o.window * iters * (nprocs / 2);
      std::printf("%zu %.1f MB/s %.3f\n", size, bytes / slowest / 1e6,
                  cpu_total / (bytes / (1 << 30)));
    }
    std::fflush(stdout);
  }
  MPI_Finalize();
  return 0;
}
