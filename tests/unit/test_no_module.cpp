// Without the module every call fails with a clear errno and the library
// says why in one sentence.  Runs where /dev/xpmem does not exist (the host).
#include <cerrno>
#include <cstring>
#include <string>

#include <sys/stat.h>

#include <gtest/gtest.h>
#include <xpmem.h>
#include <xpmem.hpp>

namespace {

class NoModule : public ::testing::Test {
protected:
  void SetUp() override {
    struct stat st;
    if (stat("/dev/xpmem", &st) == 0)
      GTEST_SKIP() << "/dev/xpmem exists here; this case is for machines without the module";
  }
};

TEST_F(NoModule, EveryCallFailsWithEnoent) {
  errno = 0;
  EXPECT_EQ(xpmem_version(), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(xpmem_init(), -1);
  EXPECT_EQ(errno, ENOENT);
  errno = 0;
  EXPECT_EQ(
      xpmem_make(nullptr, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, reinterpret_cast<void *>(0600)),
      -1);
  EXPECT_EQ(errno, ENOENT);
  errno = 0;
  EXPECT_EQ(xpmem_get(1234, XPMEM_RDWR, XPMEM_PERMIT_MODE, nullptr), -1);
  EXPECT_EQ(errno, ENOENT);
  errno = 0;
  EXPECT_EQ(xpmem_attach(xpmem_addr{1234, 0}, 4096, nullptr), reinterpret_cast<void *>(-1));
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(xpmem_detach(reinterpret_cast<void *>(4096)), -1);
  EXPECT_EQ(xpmem_remove(1234), -1);
  EXPECT_EQ(xpmem_release(1234), -1);
  EXPECT_EQ(errno, ENOENT);
}

TEST_F(NoModule, ReasonIsOneReadableSentence) {
  const char *why = xpmem_unavailable_reason();
  ASSERT_NE(why, nullptr);
  std::string s(why);
  EXPECT_NE(s.find("/dev/xpmem"), std::string::npos) << s;
  EXPECT_NE(s.find("module is not loaded"), std::string::npos) << s;
  EXPECT_EQ(s.back(), '.');
  EXPECT_EQ(s.find('\n'), std::string::npos);
}

TEST_F(NoModule, RaiiHandlesCarryTheError) {
  xpmem::Segment seg = xpmem::Segment::make_whole_address_space(0600);
  EXPECT_FALSE(seg);
  EXPECT_EQ(seg.error(), ENOENT);
  xpmem::Permit permit = xpmem::Permit::get(42);
  EXPECT_FALSE(permit);
  EXPECT_EQ(permit.error(), ENOENT);
  xpmem::Attachment att = xpmem::Attachment::attach(permit, 0, 4096);
  EXPECT_FALSE(att);
  EXPECT_EQ(att.error(), ENOENT);
}

} // namespace
