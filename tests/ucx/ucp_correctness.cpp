// UCP correctness over whatever UCX_TLS selects (the suite runs it with
// UCX_TLS=xpmem and xpmem,cma).  Three processes: rank 0 talks to ranks 1
// and 2 (worker addresses travel over socketpairs made before fork).
//   - tag send/recv, 0 B .. 16 MiB, both directions, blocking and 64 deep;
//   - the stale-cache trap: munmap+mmap at the same address, free+malloc,
//     realloc, each time with new contents;
//   - RMA put/get and 32/64-bit atomics on a peer's mapped memory, and
//     loads and stores through ucp_rkey_ptr() (required to work with
//     --expect-rkey-ptr, checked whenever it does);
//   - rank 1 exits; rank 0 releases what it held of it and goes on with rank 2.
// Prints "ucp_correctness: N failures" and exits non-zero on any failure.
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <ucp/api/ucp.h>

namespace {

int failures = 0;
int my_rank = 0;
bool expect_rkey_ptr = false; // --expect-rkey-ptr: the peer's memory must be directly mappable

#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      ++failures;                                                                                  \
      std::fprintf(stderr, "rank %d: FAIL %s:%d: ", my_rank, __FILE__, __LINE__);                  \
      std::fprintf(stderr, __VA_ARGS__);                                                           \
      std::fprintf(stderr, "\n");                                                                  \
    }                                                                                              \
  } while (0)

void die(const char *what) {
  std::fprintf(stderr, "rank %d: %s\n", my_rank, what);
  std::exit(2);
}

// ------------------------------------------------------------ control channel

void write_all(int fd, const void *buf, std::size_t n) {
  const auto *p = static_cast<const char *>(buf);
  while (n) {
    const ssize_t k = write(fd, p, n);
    if (k <= 0)
      die("control write failed");
    p += k, n -= static_cast<std::size_t>(k);
  }
}
void read_all(int fd, void *buf, std::size_t n) {
  auto *p = static_cast<char *>(buf);
  while (n) {
    const ssize_t k = read(fd, p, n);
    if (k <= 0)
      die("control read failed");
    p += k, n -= static_cast<std::size_t>(k);
  }
}
void send_blob(int fd, const void *buf, std::size_t n) {
  write_all(fd, &n, sizeof n);
  write_all(fd, buf, n);
}
std::vector<char> recv_blob(int fd) {
  std::size_t n;
  read_all(fd, &n, sizeof n);
  std::vector<char> v(n);
  read_all(fd, v.data(), n);
  return v;
}
void sync_with(int fd) { // both sides call it: a barrier of two
  char c = 's';
  write_all(fd, &c, 1);
  read_all(fd, &c, 1);
}

// ------------------------------------------------------------ UCP plumbing

struct Ucp {
  ucp_context_h context = nullptr;
  ucp_worker_h worker = nullptr;

  Ucp() {
    ucp_params_t params{};
    params.field_mask = UCP_PARAM_FIELD_FEATURES;
    params.features = UCP_FEATURE_TAG | UCP_FEATURE_RMA | UCP_FEATURE_AMO32 | UCP_FEATURE_AMO64;
    ucp_config_t *config;
    if (ucp_config_read(nullptr, nullptr, &config) != UCS_OK)
      die("ucp_config_read");
    const ucs_status_t st = ucp_init(&params, config, &context);
    ucp_config_release(config);
    if (st != UCS_OK)
      die("ucp_init failed");
    ucp_worker_params_t wparams{};
    wparams.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
    wparams.thread_mode = UCS_THREAD_MODE_SINGLE;
    if (ucp_worker_create(context, &wparams, &worker) != UCS_OK)
      die("ucp_worker_create failed");
  }
  ~Ucp() {
    ucp_worker_destroy(worker);
    ucp_cleanup(context);
  }

  std::vector<char> address() const {
    ucp_address_t *addr;
    std::size_t len;
    if (ucp_worker_get_address(worker, &addr, &len) != UCS_OK)
      die("ucp_worker_get_address");
    std::vector<char> v(reinterpret_cast<char *>(addr), reinterpret_cast<char *>(addr) + len);
    ucp_worker_release_address(worker, addr);
    return v;
  }

  ucs_status_t wait(ucs_status_ptr_t request) const {
    if (request == nullptr)
      return UCS_OK;
    if (UCS_PTR_IS_ERR(request))
      return UCS_PTR_STATUS(request);
    ucs_status_t st;
    while ((st = ucp_request_check_status(request)) == UCS_INPROGRESS)
      ucp_worker_progress(worker);
    ucp_request_free(request);
    return st;
  }
};

// Exchanges worker addresses over the control socket and connects.
ucp_ep_h connect(const Ucp &ucp, int fd) {
  const std::vector<char> mine = ucp.address();
  send_blob(fd, mine.data(), mine.size());
  const std::vector<char> theirs = recv_blob(fd);
  ucp_ep_params_t params{};
  params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS;
  params.address = reinterpret_cast<const ucp_address_t *>(theirs.data());
  ucp_ep_h ep;
  if (ucp_ep_create(ucp.worker, &params, &ep) != UCS_OK)
    die("ucp_ep_create failed");
  return ep;
}

void close_ep(const Ucp &ucp, ucp_ep_h ep, bool peer_gone) {
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
  param.flags = peer_gone ? UCP_EP_CLOSE_FLAG_FORCE : 0;
  const ucs_status_t st = ucp.wait(ucp_ep_close_nbx(ep, &param));
  if (!peer_gone)
    CHECK(st == UCS_OK, "ep close: %s", ucs_status_string(st));
}

void fill(void *buf, std::size_t n, std::uint32_t seed) {
  auto *p = static_cast<unsigned char *>(buf);
  std::uint32_t x = seed * 2654435761u + 1;
  for (std::size_t i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    p[i] = static_cast<unsigned char>(x >> 16);
  }
}
bool matches(const void *buf, std::size_t n, std::uint32_t seed) {
  std::vector<unsigned char> want(n);
  fill(want.data(), n, seed);
  return n == 0 || std::memcmp(buf, want.data(), n) == 0;
}

void tag_send(const Ucp &ucp, ucp_ep_h ep, const void *buf, std::size_t n, ucp_tag_t tag) {
  ucp_request_param_t param{};
  const ucs_status_t st = ucp.wait(ucp_tag_send_nbx(ep, buf, n, tag, &param));
  CHECK(st == UCS_OK, "tag send %zu: %s", n, ucs_status_string(st));
}

void tag_recv(const Ucp &ucp, void *buf, std::size_t n, ucp_tag_t tag) {
  ucp_request_param_t param{};
  const ucs_status_t st =
      ucp.wait(ucp_tag_recv_nbx(ucp.worker, buf, n, tag, ~ucp_tag_t{0}, &param));
  CHECK(st == UCS_OK, "tag recv %zu: %s", n, ucs_status_string(st));
}

// Sizes on both sides of each protocol switch: inline (up to 2 KiB), one
// FIFO cell (64 KiB by default; 8 KiB with UCX_XPMEM_SEG_SIZE=8320) and
// rendezvous past it.
const std::vector<std::size_t> kSizes = {0,       1,
                                         7,       8,
                                         63,      64,
                                         100,     1000,
                                         4095,    4096,
                                         8191,    8192,
                                         8193,    16384,
                                         65536,   65640,
                                         65648,   65649,
                                         100000,  262144,
                                         1 << 20, (1 << 20) + 13,
                                         4 << 20, (4 << 20) - 1,
                                         16 << 20};

// ------------------------------------------------------------ tests

// The sender sends each size, the receiver checks and answers with its own.
void tag_sizes(const Ucp &ucp, ucp_ep_h ep, bool first_sender, std::uint32_t salt) {
  for (std::size_t i = 0; i < kSizes.size(); ++i) {
    const std::size_t n = kSizes[i];
    std::vector<char> out(n), in(n);
    fill(out.data(), n, salt + static_cast<std::uint32_t>(i) * 2 + (first_sender ? 0 : 1));
    const std::uint32_t expect = salt + static_cast<std::uint32_t>(i) * 2 + (first_sender ? 1 : 0);
    if (first_sender) {
      tag_send(ucp, ep, out.data(), n, 100 + i);
      tag_recv(ucp, in.data(), n, 200 + i);
    } else {
      tag_recv(ucp, in.data(), n, 100 + i);
      tag_send(ucp, ep, out.data(), n, 200 + i);
    }
    CHECK(matches(in.data(), n, expect), "tag message of %zu bytes corrupt", n);
  }
}

// 64 sends in flight before any receive is posted (unexpected path), mixed sizes.
void tag_window(const Ucp &ucp, ucp_ep_h ep, bool sender, int fd) {
  constexpr int kWindow = 64;
  std::vector<std::vector<char>> bufs(kWindow);
  for (int i = 0; i < kWindow; ++i)
    bufs[i].resize(static_cast<std::size_t>(i % 4 == 0 ? 300000 + i : 1000 + 97 * i));
  if (sender) {
    std::vector<ucs_status_ptr_t> reqs;
    ucp_request_param_t param{};
    for (int i = 0; i < kWindow; ++i) {
      fill(bufs[i].data(), bufs[i].size(), 5000 + i);
      reqs.push_back(ucp_tag_send_nbx(ep, bufs[i].data(), bufs[i].size(), 7000 + i, &param));
    }
    sync_with(fd); // the receiver posts only now
    for (auto r : reqs)
      CHECK(ucp.wait(r) == UCS_OK, "windowed send failed");
  } else {
    sync_with(fd);
    std::vector<ucs_status_ptr_t> reqs;
    ucp_request_param_t param{};
    for (int i = kWindow - 1; i >= 0; --i) // posted in reverse: matching is by tag
      reqs.push_back(ucp_tag_recv_nbx(ucp.worker, bufs[i].data(), bufs[i].size(), 7000 + i,
                                      ~ucp_tag_t{0}, &param));
    for (auto r : reqs)
      CHECK(ucp.wait(r) == UCS_OK, "windowed recv failed");
    for (int i = 0; i < kWindow; ++i)
      CHECK(matches(bufs[i].data(), bufs[i].size(), 5000 + i), "windowed message %d corrupt", i);
  }
}

// The sender reuses addresses with new contents; the receiver must see them.
void stale_cache(const Ucp &ucp, ucp_ep_h ep, bool sender) {
  constexpr std::size_t kLen = 4 << 20;
  std::uint32_t seed = 9000;
  if (!sender) {
    std::vector<char> in(8 << 20);
    for (int round = 0; round < 10; ++round, ++seed) {
      std::size_t n;
      tag_recv(ucp, &n, sizeof n, 300 + round * 2);
      tag_recv(ucp, in.data(), n, 301 + round * 2);
      CHECK(matches(in.data(), n, seed), "stale-cache round %d (%zu bytes) shows old data", round,
            n);
    }
    return;
  }
  auto send_buf = [&](const void *buf, std::size_t n, int round) {
    tag_send(ucp, ep, &n, sizeof n, 300 + round * 2);
    tag_send(ucp, ep, buf, n, 301 + round * 2);
  };
  int round = 0;
  // munmap + mmap at the same address, four times.
  void *addr = mmap(nullptr, kLen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  for (; round < 4; ++round, ++seed) {
    fill(addr, kLen, seed);
    send_buf(addr, kLen, round);
    munmap(addr, kLen);
    void *again = mmap(addr, kLen, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    CHECK(again == addr, "could not map again at %p", addr);
    addr = again;
  }
  munmap(addr, kLen);
  // free + malloc (glibc hands the same large block back), three times.
  for (; round < 7; ++round, ++seed) {
    char *p = static_cast<char *>(std::malloc(kLen));
    fill(p, kLen, seed);
    send_buf(p, kLen, round);
    std::free(p);
  }
  // realloc: grow, shrink, grow again, contents rewritten each time.
  char *p = static_cast<char *>(std::malloc(kLen));
  const std::size_t lens[] = {8 << 20, 1 << 20, 6 << 20};
  for (std::size_t len : lens) {
    p = static_cast<char *>(std::realloc(p, len));
    fill(p, len, seed);
    send_buf(p, len, round);
    ++round, ++seed;
  }
  std::free(p);
}

// The target maps memory and publishes its address and rkey; the initiator
// puts, gets and does atomics on it; the target checks what landed.
struct Window {
  ucp_mem_h memh = nullptr;
  void *base = nullptr;
  std::size_t len = 0;
};

void rma_target(const Ucp &ucp, int fd, Window &win) {
  win.len = 8 << 20;
  ucp_mem_map_params_t mp{};
  mp.field_mask = UCP_MEM_MAP_PARAM_FIELD_LENGTH | UCP_MEM_MAP_PARAM_FIELD_FLAGS;
  mp.length = win.len;
  mp.flags = UCP_MEM_MAP_ALLOCATE;
  if (ucp_mem_map(ucp.context, &mp, &win.memh) != UCS_OK)
    die("ucp_mem_map");
  ucp_mem_attr_t attr{};
  attr.field_mask = UCP_MEM_ATTR_FIELD_ADDRESS;
  ucp_mem_query(win.memh, &attr);
  win.base = attr.address;
  std::memset(win.base, 0, win.len);
  void *rkey;
  std::size_t rkey_len;
  if (ucp_rkey_pack(ucp.context, win.memh, &rkey, &rkey_len) != UCS_OK)
    die("ucp_rkey_pack");
  const std::uint64_t base = reinterpret_cast<std::uintptr_t>(win.base);
  write_all(fd, &base, sizeof base);
  send_blob(fd, rkey, rkey_len);
  ucp_rkey_buffer_release(rkey);

  sync_with(fd); // initiator has put 2 MiB + 13 at offset 4096
  CHECK(matches(static_cast<char *>(win.base) + 4096, (2 << 20) + 13, 77), "put data wrong");
  fill(static_cast<char *>(win.base) + (4 << 20), 3 << 20, 78);
  sync_with(fd); // initiator gets it now
  sync_with(fd); // atomics and stores through rkey_ptr done
  bool stored_through_ptr = false;
  read_all(fd, &stored_through_ptr, sizeof stored_through_ptr);
  if (stored_through_ptr)
    CHECK(matches(static_cast<char *>(win.base) + (6 << 20), 4099, 80),
          "store through ucp_rkey_ptr not seen");
  auto *words = static_cast<std::uint64_t *>(win.base);
  CHECK(words[0] == 1000 * 3, "atomic add64 total %llu", static_cast<unsigned long long>(words[0]));
  CHECK(words[1] == 0xfeedULL, "cswap64 result %llx", static_cast<unsigned long long>(words[1]));
  const auto *w32 = reinterpret_cast<std::uint32_t *>(words + 2);
  CHECK(w32[0] == 500u * 7, "atomic add32 total %u", w32[0]);
  sync_with(fd);
}

void rma_initiator(const Ucp &ucp, ucp_ep_h ep, int fd, ucp_rkey_h *rkey_out) {
  std::uint64_t base;
  read_all(fd, &base, sizeof base);
  const std::vector<char> packed = recv_blob(fd);
  ucp_rkey_h rkey;
  if (ucp_ep_rkey_unpack(ep, packed.data(), &rkey) != UCS_OK)
    die("ucp_ep_rkey_unpack");
  ucp_request_param_t param{};
  auto flush = [&] { CHECK(ucp.wait(ucp_ep_flush_nbx(ep, &param)) == UCS_OK, "flush failed"); };

  std::vector<char> out((2 << 20) + 13);
  fill(out.data(), out.size(), 77);
  CHECK(ucp.wait(ucp_put_nbx(ep, out.data(), out.size(), base + 4096, rkey, &param)) == UCS_OK,
        "put failed");
  // Small puts too (the short path), at an unaligned offset.
  char small[37];
  fill(small, sizeof small, 79);
  CHECK(ucp.wait(ucp_put_nbx(ep, small, sizeof small, base + (7 << 20) + 3, rkey, &param)) ==
            UCS_OK,
        "small put failed");
  flush();
  sync_with(fd);

  sync_with(fd);
  std::vector<char> in(3 << 20);
  CHECK(ucp.wait(ucp_get_nbx(ep, in.data(), in.size(), base + (4 << 20), rkey, &param)) == UCS_OK,
        "get failed");
  CHECK(matches(in.data(), in.size(), 78), "get data wrong");
  char small_back[37];
  CHECK(ucp.wait(ucp_get_nbx(ep, small_back, sizeof small_back, base + (7 << 20) + 3, rkey,
                             &param)) == UCS_OK,
        "small get failed");
  CHECK(std::memcmp(small, small_back, sizeof small) == 0, "small put/get round trip wrong");

  // Direct access: what ucp_rkey_ptr() maps is the peer's memory itself.
  void *mapped = nullptr;
  const ucs_status_t ptr_status = ucp_rkey_ptr(rkey, base + (4 << 20), &mapped);
  CHECK(ptr_status == UCS_OK || !expect_rkey_ptr, "ucp_rkey_ptr: %s",
        ucs_status_string(ptr_status));
  const bool stored_through_ptr = ptr_status == UCS_OK;
  if (stored_through_ptr) {
    CHECK(matches(mapped, 3 << 20, 78), "load through ucp_rkey_ptr wrong");
    fill(static_cast<char *>(mapped) + (2 << 20), 4099, 80); // the target's offset 6 MiB
  }

  // Atomics: 3 x 1000 adds of 1, a fetch-add, compare-and-swap, 32-bit adds.
  ucp_request_param_t ap{};
  ap.op_attr_mask = UCP_OP_ATTR_FIELD_DATATYPE;
  ap.datatype = ucp_dt_make_contig(8);
  std::uint64_t one = 1;
  for (int i = 0; i < 1000; ++i) {
    ucp.wait(ucp_atomic_op_nbx(ep, UCP_ATOMIC_OP_ADD, &one, 1, base, rkey, &ap));
    ucp.wait(ucp_atomic_op_nbx(ep, UCP_ATOMIC_OP_ADD, &one, 1, base, rkey, &ap));
  }
  std::uint64_t fetched = 0;
  ucp_request_param_t fp = ap;
  fp.op_attr_mask |= UCP_OP_ATTR_FIELD_REPLY_BUFFER;
  fp.reply_buffer = &fetched;
  std::uint64_t thousand = 1000;
  CHECK(ucp.wait(ucp_atomic_op_nbx(ep, UCP_ATOMIC_OP_ADD, &thousand, 1, base, rkey, &fp)) == UCS_OK,
        "fetch-add failed");
  CHECK(fetched == 2000, "fetch-add returned %llu", static_cast<unsigned long long>(fetched));
  // Compare-and-swap: buffer holds the compare value, reply_buffer the new
  // value on the way in and the old one on the way out.  Word 1 is 0.
  std::uint64_t compare = 0, swap_value = 0xfeed;
  fp.reply_buffer = &swap_value;
  CHECK(ucp.wait(ucp_atomic_op_nbx(ep, UCP_ATOMIC_OP_CSWAP, &compare, 1, base + 8, rkey, &fp)) ==
            UCS_OK,
        "cswap failed");
  CHECK(swap_value == 0, "cswap returned %llu", static_cast<unsigned long long>(swap_value));
  ucp_request_param_t ap32{};
  ap32.op_attr_mask = UCP_OP_ATTR_FIELD_DATATYPE;
  ap32.datatype = ucp_dt_make_contig(4);
  std::uint32_t seven = 7;
  for (int i = 0; i < 500; ++i)
    ucp.wait(ucp_atomic_op_nbx(ep, UCP_ATOMIC_OP_ADD, &seven, 1, base + 16, rkey, &ap32));
  flush();
  sync_with(fd);
  write_all(fd, &stored_through_ptr, sizeof stored_through_ptr);
  sync_with(fd);
  *rkey_out = rkey;
}

// ------------------------------------------------------------ ranks

int child(int rank, int fd) {
  my_rank = rank;
  {
    Ucp ucp;
    ucp_ep_h ep = connect(ucp, fd);
    tag_sizes(ucp, ep, true, 1000 * rank);
    tag_window(ucp, ep, true, fd);
    stale_cache(ucp, ep, true);
    Window win;
    rma_target(ucp, fd, win);
    sync_with(fd);
    close_ep(ucp, ep, false);
    ucp_mem_unmap(ucp.context, win.memh);
  }
  // Rank 1 leaves while rank 0 still holds its rkey and attachments.
  write_all(fd, &failures, sizeof failures);
  return failures ? 1 : 0;
}

// Rank 0's side of every test against one peer; returns the peer's failure
// count, leaving the peer's rkey in *rkey for the caller to release.
int exercise_peer(const Ucp &ucp, ucp_ep_h ep, int fd, std::uint32_t salt, ucp_rkey_h *rkey) {
  tag_sizes(ucp, ep, false, salt);
  tag_window(ucp, ep, false, fd);
  stale_cache(ucp, ep, false);
  rma_initiator(ucp, ep, fd, rkey);
  sync_with(fd);
  int peer_failures = 0;
  read_all(fd, &peer_failures, sizeof peer_failures);
  return peer_failures;
}

int rank0(int fd1, int fd2, pid_t pid1) {
  Ucp ucp;
  ucp_ep_h ep1 = connect(ucp, fd1);
  ucp_rkey_h rkey1;
  const int failures1 = exercise_peer(ucp, ep1, fd1, 1000, &rkey1);
  int status = 0;
  waitpid(pid1, &status, 0);
  CHECK(WIFEXITED(status), "rank 1 died (status %#x)", status);
  // Rank 1 is gone: release what referred to it, then carry on with rank 2.
  ucp_rkey_destroy(rkey1);
  close_ep(ucp, ep1, true);
  std::printf("rank 1 exited (%d failures); continuing with rank 2\n", failures1);

  ucp_ep_h ep2 = connect(ucp, fd2);
  ucp_rkey_h rkey2;
  const int failures2 = exercise_peer(ucp, ep2, fd2, 2000, &rkey2);
  ucp_rkey_destroy(rkey2);
  close_ep(ucp, ep2, true);
  return failures1 + failures2;
}

} // namespace

int main(int argc, char **argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--expect-rkey-ptr") == 0) {
      expect_rkey_ptr = true;
    } else {
      std::fprintf(stderr, "usage: ucp_correctness [--expect-rkey-ptr]\n");
      return 2;
    }
  }
  int s1[2], s2[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, s1) || socketpair(AF_UNIX, SOCK_STREAM, 0, s2))
    die("socketpair");
  std::fflush(nullptr);
  const pid_t pid1 = fork();
  if (pid1 == 0) {
    close(s1[0]), close(s2[0]), close(s2[1]);
    _exit(child(1, s1[1]));
  }
  const pid_t pid2 = fork();
  if (pid2 == 0) {
    close(s1[0]), close(s1[1]), close(s2[0]);
    _exit(child(2, s2[1]));
  }
  close(s1[1]), close(s2[1]);
  const int child_failures = rank0(s1[0], s2[0], pid1);
  int status = 0;
  waitpid(pid2, &status, 0);
  if (!WIFEXITED(status))
    ++failures, std::fprintf(stderr, "rank 2 died (status %#x)\n", status);
  const int total = failures + child_failures;
  std::printf("ucp_correctness: %d failures\n", total);
  return total ? 1 : 0;
}
