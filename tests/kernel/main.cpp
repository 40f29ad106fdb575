// Test driver for the in-VM suite: a per-test watchdog turns a hang (a
// deadlock in the module, a lost wake-up in a test) into a prompt failure
// instead of a VM timeout.
#include <cstdlib>

#include <unistd.h>

#include <gtest/gtest.h>

namespace {

// Per test; XPMEM_TEST_TIMEOUT_S raises it for slow kernels (KASAN under TCG).
unsigned test_timeout_seconds() {
  const char *env = std::getenv("XPMEM_TEST_TIMEOUT_S");
  unsigned long v = env ? std::strtoul(env, nullptr, 10) : 0;
  return v > 0 ? static_cast<unsigned>(v) : 180;
}

class Watchdog : public ::testing::EmptyTestEventListener {
  void OnTestStart(const ::testing::TestInfo &) override {
    alarm(test_timeout_seconds()); // SIGALRM's default action ends the run
  }
  void OnTestEnd(const ::testing::TestInfo &) override { alarm(0); }
};

} // namespace

int main(int argc, char **argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::UnitTest::GetInstance()->listeners().Append(new Watchdog);
  return RUN_ALL_TESTS();
}
