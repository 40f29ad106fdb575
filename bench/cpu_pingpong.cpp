// cpu_pingpong: how long one cache line takes to travel between two CPUs,
// measured several times in a row.  Two threads, bound to CPUs A and B,
// hand a counter back and forth; each line printed is the one-way time of
// one measurement of N round trips.
//
//   cpu_pingpong [--cpus A,B] [--rounds N] [--trips N] [--pause-ms N]
//
// Why it is here: on a cloud host this figure can change by several times
// from one second to the next (the hypervisor moves the two virtual CPUs
// between hardware threads of one core and separate cores), and every
// ping-pong latency measured in the test VM changes with it.  Run it on the
// host to see whether a machine is fit for latency comparisons.
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

namespace {

struct Options {
  int cpu_a = 0, cpu_b = 1;
  int rounds = 10;
  long trips = 1000000;
  int pause_ms = 300;
};

alignas(64) std::atomic<long> baton{0};

bool bind_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
}

// Thread A writes odd values and waits for the next even one; B answers.
void answer(long trips) {
  for (long i = 0; i < trips; i++) {
    while (baton.load(std::memory_order_acquire) != 2 * i + 1) {
    }
    baton.store(2 * i + 2, std::memory_order_release);
  }
}

double one_way_ns(const Options &o) {
  baton.store(0);
  std::atomic<bool> bound{true};
  std::thread peer([&] {
    if (!bind_to(o.cpu_b))
      bound = false;
    answer(o.trips);
  });
  if (!bind_to(o.cpu_a))
    bound = false;
  const auto start = std::chrono::steady_clock::now();
  for (long i = 0; i < o.trips; i++) {
    baton.store(2 * i + 1, std::memory_order_release);
    while (baton.load(std::memory_order_acquire) != 2 * i + 2) {
    }
  }
  const auto end = std::chrono::steady_clock::now();
  peer.join();
  if (!bound) {
    std::fprintf(stderr, "cpu_pingpong: cannot bind to CPUs %d and %d\n", o.cpu_a, o.cpu_b);
    std::exit(1);
  }
  return std::chrono::duration<double, std::nano>(end - start).count() / (2.0 * o.trips);
}

Options parse(int argc, char **argv) {
  Options o;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    const char *value = i + 1 < argc ? argv[i + 1] : nullptr;
    if (!value) {
      std::fprintf(stderr, "cpu_pingpong: %s needs a value\n", a.c_str());
      std::exit(2);
    }
    i++;
    if (a == "--cpus" && std::sscanf(value, "%d,%d", &o.cpu_a, &o.cpu_b) == 2)
      continue;
    if (a == "--rounds" && (o.rounds = std::atoi(value)) > 0)
      continue;
    if (a == "--trips" && (o.trips = std::atol(value)) > 0)
      continue;
    if (a == "--pause-ms" && (o.pause_ms = std::atoi(value)) >= 0)
      continue;
    std::fprintf(stderr, "cpu_pingpong: bad option %s %s\n", a.c_str(), value);
    std::exit(2);
  }
  return o;
}

} // namespace

int main(int argc, char **argv) {
  const Options o = parse(argc, argv);
  std::printf("# one-way ns between CPUs %d and %d, %ld round trips per line\n", o.cpu_a, o.cpu_b,
              o.trips);
  for (int r = 0; r < o.rounds; r++) {
    std::printf("%.1f\n", one_way_ns(o));
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::milliseconds(o.pause_ms));
  }
  return 0;
}
