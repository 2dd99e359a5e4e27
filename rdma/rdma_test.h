/* SPDX-License-Identifier: MIT */
/*
 * Hooks for the rdma tests (tests/rdma/): leak accounting and fault
 * injection. Not used by tern itself.
 */
#ifndef TERN_RDMA_TEST_H
#define TERN_RDMA_TEST_H

#include <stddef.h>
#include <stdint.h>

#include "util/transport.h"

struct rdma_msg;

/* Live PDs, CQs, QPs, MRs, CM ids and event/completion channels of the
 * process; @buf (may be NULL) gets "2 MR, 1 QP" or "". */
long rdma_live_objects(char *buf, size_t size);
/* Move the connection's QP to the error state, as a failing device would. */
int rdma_test_qp_error(struct tern_conn *c);
/* XOR every remote key this sender uses from now on with @mask. */
void rdma_test_corrupt_rkey(struct tern_conn *c, uint32_t mask);
/* Send one raw transport message (header and payload), credits respected. */
int rdma_test_send_raw(struct tern_conn *c, const struct rdma_msg *m, const void *payload);
/* Staging ring size for channels bound from now on (0: the default). */
void rdma_test_set_ring_size(uint64_t size);

#endif /* TERN_RDMA_TEST_H */
