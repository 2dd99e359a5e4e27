/* SPDX-License-Identifier: MIT */
/*
 * rdma_wire: the rdma transport's own messages. Every SEND on a queue pair
 * starts with a 40-byte header (big-endian) naming what it carries: bytes of
 * the caller's stream (DATA, optionally with a span of the staging ring that
 * holds the packet's encoded payload), or one of the transport's control
 * messages for registration (BIND/BIND_ACK, REG/REG_ACK, UNREG). The rdma_cm
 * private data of connect/accept carries each side's receive depth and where
 * its peer may RDMA-WRITE the flow-control feedback (credits, ring release).
 *
 * Pure: no verbs call. rdma_msg_decode() checks everything that does not
 * need the connection's state (known type, flags, reserved bits, lengths);
 * ranges against regions and the ring are checked by their users.
 */
#ifndef TERN_RDMA_WIRE_H
#define TERN_RDMA_WIRE_H

#include <stdint.h>

#include "util/util.h"

#define RDMA_MSG_HDR_LEN 40u
#define RDMA_PRIV_LEN 32u
#define RDMA_PRIV_MAGIC 0x7465726eu /* "tern" */
#define RDMA_PRIV_VERSION 1u
#define RDMA_FEEDBACK_LEN 24u
/* Most regions one BIND may name: its sizes fit one 64 KiB message. */
#define RDMA_MAX_REGIONS 2048u

enum rdma_msg_type {
	RDMA_MSG_INVALID = 0,
	RDMA_MSG_DATA,	   /* stream bytes; flag SPAN: a=off b=len c=end in the ring */
	RDMA_MSG_BIND,	   /* src->dst: flag PIN_ALL; a=pin limit b=nregions; sizes follow */
	RDMA_MSG_BIND_ACK, /* dst->src: a=ring addr b=ring size c=ring rkey d=errno;
			    * pin-all: nregions x (addr u64, rkey u32, 0 u32) follow */
	RDMA_MSG_REG,	   /* src->dst: a=region b=chunk */
	RDMA_MSG_REG_ACK,  /* dst->src: a=region b=chunk c=chunk addr d=rkey | errno << 32 */
	RDMA_MSG_UNREG,	   /* src->dst: a=region b=chunk */
	RDMA_MSG_MAX,
};

#define RDMA_MSG_F_SPAN 0x01u	 /* DATA */
#define RDMA_MSG_F_PIN_ALL 0x02u /* BIND */

struct rdma_msg {
	uint8_t type;
	uint8_t flags;
	uint32_t len; /* payload bytes after the header */
	uint64_t a, b, c, d;
};

/* What each side tells the other in the rdma_cm private data. */
struct rdma_priv {
	uint32_t recv_depth; /* receives it keeps posted: the peer's first credits */
	uint32_t buf_size;   /* bytes per receive buffer, header included */
	uint64_t fb_addr;    /* where the peer writes struct rdma_feedback */
	uint32_t fb_rkey;
};

/* Written by the peer into our feedback word: how many of our messages it
 * has consumed and reposted a receive for, and how far it released its
 * staging ring. @check guards against reading a word half-written. */
struct rdma_feedback {
	uint64_t reposted;
	uint64_t released;
};

const char *rdma_msg_type_name(uint32_t type);
void rdma_msg_encode(const struct rdma_msg *m, uint8_t *buf);
/* @avail: bytes the receive delivered. 0, or -EPROTO with a message. */
int rdma_msg_decode(const uint8_t *buf, uint32_t avail, struct rdma_msg *m, struct tern_error *err);

void rdma_priv_encode(const struct rdma_priv *p, uint8_t *buf);
int rdma_priv_decode(const uint8_t *buf, uint32_t len, struct rdma_priv *p, struct tern_error *err);

void rdma_feedback_encode(const struct rdma_feedback *f, uint8_t *buf);
/* -EAGAIN: torn or never written (check mismatch); read again. */
int rdma_feedback_decode(const uint8_t *buf, struct rdma_feedback *f);

#endif /* TERN_RDMA_WIRE_H */
