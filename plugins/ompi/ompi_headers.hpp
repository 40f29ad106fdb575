// The Open MPI 4.1 headers we use, included with C linkage: several of them
// declare OPAL functions without extern "C" of their own.
#ifndef BTL_XPMEM_OMPI_HEADERS_HPP
#define BTL_XPMEM_OMPI_HEADERS_HPP

#pragma GCC system_header

extern "C" {
#include "opal_config.h"

#include "opal/datatype/opal_convertor.h"
#include "opal/mca/base/mca_base_pvar.h"
#include "opal/mca/base/mca_base_var.h"
#include "opal/mca/btl/base/base.h"
#include "opal/mca/btl/btl.h"
#include "opal/mca/hwloc/base/base.h"
#include "opal/mca/pmix/pmix.h"
#include "opal/util/output.h"
#include "opal/util/proc.h"
}

#endif // BTL_XPMEM_OMPI_HEADERS_HPP
