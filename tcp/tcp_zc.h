/* SPDX-License-Identifier: MIT */
/*
 * tcp/ internals: MSG_ZEROCOPY on one TCP socket (tcp_zc.c). tcp_conn.c owns
 * the socket and its send loop; this owns the completions: reaping the error
 * queue, bounding the sends in flight and waiting for them to end.
 */
#ifndef TERN_TCP_ZC_H
#define TERN_TCP_ZC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/transport.h"
#include "zc_track.h"

/* Reap completions once this many sends are between the oldest incomplete
 * one and the next (a batch: one recvmsg() often returns a merged range). */
#define TCP_ZC_REAP_AT 8

struct tcp_zc {
	/* the sending thread only */
	struct zc_track track;
	/* written by the sending thread, read by anyone (atomics) */
	uint64_t sends;	    /* sendmsg(MSG_ZEROCOPY) calls that moved bytes */
	uint64_t bytes;	    /* ... and their bytes */
	uint64_t copied;    /* completed sends the kernel copied after all */
	uint64_t fallbacks; /* packets sent by copy after ENOBUFS */
};

/*
 * tcp_zc_new() - SO_ZEROCOPY on @fd and the bookkeeping for it. -EOPNOTSUPP
 * (not TCP: a Unix socket), -ENOPROTOOPT (a kernel without SO_ZEROCOPY), or
 * another negative errno of setsockopt(); -ENOMEM.
 */
int tcp_zc_new(int fd, struct tcp_zc **ret_zc);
void tcp_zc_free(struct tcp_zc *z);

/* Before a zero-copy sendmsg(): reap a batch once TCP_ZC_REAP_AT sends are
 * in flight, and wait while ZC_TRACK_MAX are. */
int tcp_zc_make_room(struct tcp_zc *z, int fd, const bool *shut, int timeout_ms);
/* A zero-copy sendmsg() moved @bytes. */
void tcp_zc_sent(struct tcp_zc *z, size_t bytes);
/* A zero-copy sendmsg() failed with ENOBUFS (optmem or RLIMIT_MEMLOCK): the
 * caller copies the rest of the packet; reap what is there for the next. */
void tcp_zc_nobufs(struct tcp_zc *z, int fd);

/*
 * tcp_zc_wait_all() - wait until the kernel completed every zero-copy send
 * on @fd. -ETIMEDOUT when @timeout_ms passed without one completing,
 * -ECANCELED once *@shut, the socket's error when it broke (-EPIPE when it
 * hung up), -EPROTO when the kernel reported a send that was never made.
 */
int tcp_zc_wait_all(struct tcp_zc *z, int fd, const bool *shut, int timeout_ms);

/* Whether a send may still be in the kernel's hands (after a last reap). */
bool tcp_zc_busy(struct tcp_zc *z, int fd);

/* Add the figures to @st (thread-safe). */
void tcp_zc_stats(const struct tcp_zc *z, struct tern_xport_stats *st);

#endif /* TERN_TCP_ZC_H */
