/* SPDX-License-Identifier: MIT */
/*
 * The rdma transport of a build without rdma-core: an rdma: URI is refused
 * with what to install, not with "unknown scheme".
 */
#include "util/util.h"
#include "rdma.h"

#define RDMA_NOT_BUILT                                                                             \
	"this build of tern has no RDMA support: rdma-core's headers were missing when it was "    \
	"configured (install libibverbs-dev and librdmacm-dev, then meson setup "                  \
	"-Drdma=enabled)"

static int stub_listen(const char *addr, struct tern_listener **ret_listener,
		       struct tern_error *err)
{
	return tern_error_set(err, -EPROTONOSUPPORT, "rdma:%s: " RDMA_NOT_BUILT, addr);
}

static int stub_connect(const char *addr, int timeout_ms, int cancel_fd,
			struct tern_conn **ret_conn, struct tern_error *err)
{
	return tern_error_set(err, -EPROTONOSUPPORT, "rdma:%s: " RDMA_NOT_BUILT, addr);
}

bool rdma_available(void)
{
	return false;
}

const struct tern_transport_ops rdma_transport_ops = {
    .scheme = "rdma",
    .listen = stub_listen,
    .connect = stub_connect,
};
