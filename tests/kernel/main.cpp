// Test driver for the in-VM suite: a per-test watchdog turns a hang (a
// deadlock in the module, a lost wake-up in a test) into a prompt failure
// instead of a VM timeout.
#include <unistd.h>

#include <gtest/gtest.h>

namespace {

constexpr unsigned kTestTimeoutSeconds = 180;

class Watchdog : public ::testing::EmptyTestEventListener {
  void OnTestStart(const ::testing::TestInfo &info) override {
    (void)info;
    alarm(kTestTimeoutSeconds); // SIGALRM's default action ends the run
  }
  void OnTestEnd(const ::testing::TestInfo &) override { alarm(0); }
};

} // namespace

int main(int argc, char **argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::UnitTest::GetInstance()->listeners().Append(new Watchdog);
  return RUN_ALL_TESTS();
}
