// The ABI that existing libxpmem binaries and modules share with ours:
// command numbers, argument layouts and the public constants.
#include <cstddef>

#include <gtest/gtest.h>
#include <xpmem.h>

#include "uapi/xpmem_abi.h"

namespace {

TEST(Abi, CommandNumbers) {
  EXPECT_EQ(XPMEM_CMD_VERSION, 0x7800u);
  EXPECT_EQ(XPMEM_CMD_MAKE, 0x7801u);
  EXPECT_EQ(XPMEM_CMD_REMOVE, 0x7802u);
  EXPECT_EQ(XPMEM_CMD_GET, 0x7803u);
  EXPECT_EQ(XPMEM_CMD_RELEASE, 0x7804u);
  EXPECT_EQ(XPMEM_CMD_ATTACH, 0x7805u);
  EXPECT_EQ(XPMEM_CMD_DETACH, 0x7806u);
  EXPECT_EQ(XPMEM_CMD_FORK_BEGIN, 0x7807u);
  EXPECT_EQ(XPMEM_CMD_FORK_END, 0x7808u);
}

TEST(Abi, ArgumentLayouts) {
  EXPECT_EQ(sizeof(xpmem_cmd_make), 40u);
  EXPECT_EQ(offsetof(xpmem_cmd_make, size), 8u);
  EXPECT_EQ(offsetof(xpmem_cmd_make, permit_type), 16u);
  EXPECT_EQ(offsetof(xpmem_cmd_make, permit_value), 24u);
  EXPECT_EQ(offsetof(xpmem_cmd_make, segid), 32u);
  EXPECT_EQ(sizeof(xpmem_cmd_remove), 8u);
  EXPECT_EQ(sizeof(xpmem_cmd_get), 32u);
  EXPECT_EQ(offsetof(xpmem_cmd_get, flags), 8u);
  EXPECT_EQ(offsetof(xpmem_cmd_get, permit_type), 12u);
  EXPECT_EQ(offsetof(xpmem_cmd_get, permit_value), 16u);
  EXPECT_EQ(offsetof(xpmem_cmd_get, apid), 24u);
  EXPECT_EQ(sizeof(xpmem_cmd_release), 8u);
  EXPECT_EQ(sizeof(xpmem_cmd_attach), 40u);
  EXPECT_EQ(offsetof(xpmem_cmd_attach, offset), 8u);
  EXPECT_EQ(offsetof(xpmem_cmd_attach, size), 16u);
  EXPECT_EQ(offsetof(xpmem_cmd_attach, vaddr), 24u);
  EXPECT_EQ(offsetof(xpmem_cmd_attach, fd), 32u);
  EXPECT_EQ(offsetof(xpmem_cmd_attach, flags), 36u);
  EXPECT_EQ(sizeof(xpmem_cmd_detach), 8u);
}

TEST(Abi, PublicApi) {
  EXPECT_EQ(sizeof(xpmem_segid_t), 8u);
  EXPECT_EQ(sizeof(xpmem_apid_t), 8u);
  EXPECT_EQ(sizeof(xpmem_addr), 16u);
  EXPECT_EQ(offsetof(xpmem_addr, offset), 8u);
  EXPECT_EQ(XPMEM_RDONLY, 0x1);
  EXPECT_EQ(XPMEM_RDWR, 0x2);
  EXPECT_EQ(XPMEM_PERMIT_MODE, 0x1);
  EXPECT_EQ(XPMEM_MAXADDR_SIZE, static_cast<size_t>(-1));
  EXPECT_EQ(XPMEM_ERRNO_NOPROC, 2004);
  EXPECT_EQ(XPMEM_ABI_VERSION, 0x30000);
}

} // namespace
