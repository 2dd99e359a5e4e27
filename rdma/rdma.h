/* SPDX-License-Identifier: MIT */
/*
 * rdma: "rdma:HOST:PORT" channels over rdma-core (librdmacm + libibverbs).
 *
 * Every connection is an RC queue pair set up with rdma_cm. It carries a
 * byte stream (control frames, packet headers and offsets) in SEND messages,
 * and is a placement transport (util/transport.h): a packet's pages go by
 * RDMA WRITE from the source's registered guest RAM straight to their final
 * address in the destination's, before the SEND that carries the header;
 * an encoded payload goes by RDMA WRITE into the destination's registered
 * staging ring and is decoded from there.
 *
 * A build without rdma-core (meson feature "rdma") links rdma_stub.c
 * instead: the same ops, whose listen() and connect() say that this build
 * has no RDMA.
 */
#ifndef TERN_RDMA_H
#define TERN_RDMA_H

#include <stdbool.h>

#include "util/transport.h"

extern const struct tern_transport_ops rdma_transport_ops; /* "rdma" */

/* Whether this build can do RDMA at all (rdma-core was found). */
bool rdma_available(void);

#endif /* TERN_RDMA_H */
