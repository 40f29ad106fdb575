// The UCX internal headers the transport is built against, with C linkage.
// They come from the installed UCX's own source tree (see CMakeLists.txt):
// UCT's component, memory-domain and interface layouts are private to each
// UCX minor version.
#ifndef UCT_XPMEM_UCX_HEADERS_HPP
#define UCT_XPMEM_UCX_HEADERS_HPP

#pragma GCC system_header

extern "C" {
#include <ucs/sys/compiler_def.h>
#include <ucs/type/class.h>
#include <uct/api/version.h>
#include <uct/base/uct_iface.h>
#include <uct/base/uct_iov.inl>
#include <uct/base/uct_md.h>
#include <uct/sm/base/sm_ep.h>
#include <uct/sm/base/sm_iface.h>
}

#endif // UCT_XPMEM_UCX_HEADERS_HPP
