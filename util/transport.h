/* SPDX-License-Identifier: MIT */
/*
 * The transport ops-table types. A transport (tcp/, later rdma/) turns an
 * address into listeners and connections; the layers above move bytes only
 * through these tables, so they never see a socket or a queue pair.
 *
 * Every I/O call is "full length": it returns 0 once all bytes moved, -EPIPE
 * when the peer closed the stream, -ETIMEDOUT when a send made no progress
 * for the connection's io timeout (set_io_timeout()), or another negative
 * errno. shutdown() may be called from any thread to make every blocked call
 * on that object return (cancel); close() frees and must be called once,
 * after the I/O threads are done with the object.
 *
 * Read deadlines (issue 10): set_recv_timeout() bounds how long a recv may go
 * without receiving a byte; it then fails with -EAGAIN. A message read in
 * two steps (conn_recv_msg()) tells a quiet peer between messages, which the
 * caller may wait out, from one that stopped in the middle of a message.
 *
 * Page placement (issue 11). A stream transport (tcp:, unix:) carries a
 * packet's pages in the byte stream after its header; a placement transport
 * (rdma:) writes each page straight to its final address in the peer's
 * guest RAM and then delivers the header, ordered after those writes, so
 * "header received" means "pages in place". The worker channels speak one
 * interface to both: bind_ram() once per channel, send_packet() per packet,
 * and on the receiving side recv_pages() / recv_payload() after the header
 * and offsets. The helpers below fall back to the byte stream where a
 * transport leaves these ops NULL, so multifd/ never asks which transport
 * it has.
 *
 * Zero-copy send (issue 12, zero-copy-send). A stream transport may hand a
 * packet's pages to its peer without copying them (TCP: MSG_ZEROCOPY) once
 * set_zerocopy() turned it on: send_pages() then returns while the kernel
 * may still read those pages, until send_wait() says it let go of all of
 * them. Only guest pages go this way, whose every change the dirty log
 * records (so a page changed in flight is sent again); header, offsets and
 * encoded payloads are copied before the call returns, as with send_iov().
 * Without zero-copy both are plain sends and send_wait() returns at once.
 */
#ifndef TERN_TRANSPORT_H
#define TERN_TRANSPORT_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "tern/tern.h"

struct tern_conn;
struct tern_listener;

/* One RAM block as a transport may register it: the channel's blocks are
 * numbered 0..n-1 in the same order on both sides (the HELLO layout). */
struct tern_ram_region {
	uint8_t *host;
	uint64_t size;
};

/* How a channel registers guest RAM; the sending side chooses, and a
 * placement transport tells its peer. */
struct tern_bind_opts {
	bool pin_all;	    /* every region whole, once, at bind (rdma-pin-all) */
	uint64_t pin_limit; /* pin_all off: most bytes this channel keeps registered
			     * on each side at once (0: the transport's default) */
};

/* Where a packet's pages belong on the peer: iov[1 + i] (page_size bytes,
 * inside region @region of the bound RAM) goes to offset off[i] of the
 * peer's region @region. */
struct tern_placement {
	uint32_t region;
	uint32_t npages;
	uint32_t page_size;
	const uint64_t *off; /* host byte order, page-aligned, validated by the caller */
};

/* A transport's own figures for one connection, added up by the caller. */
struct tern_xport_stats {
	uint64_t pinned_bytes;	    /* registered now (gauge) */
	uint64_t pinned_peak;	    /* most registered at once */
	uint64_t reg_ns;	    /* time spent registering memory */
	uint64_t chunks_registered; /* registrations made (pin-all: one per region) */
	uint64_t placed_bytes;	    /* page bytes written straight into the peer's RAM */
	uint64_t staged_bytes;	    /* encoded payload bytes that went through a staging ring */
	uint64_t zc_sends;	    /* zero-copy page sends made (TCP: sendmsg calls) */
	uint64_t zc_bytes;	    /* ... their bytes */
	uint64_t zc_copied;	    /* ... of them, completed with the kernel copying after all */
	uint64_t zc_fallbacks; /* packets whose pages went by copy: zero-copy refused (ENOBUFS) */
};

struct tern_conn_ops {
	int (*send_iov)(struct tern_conn *c, struct iovec *iov, int iovcnt);
	int (*recv)(struct tern_conn *c, void *buf, size_t len);
	int (*recv_iov)(struct tern_conn *c, struct iovec *iov, int iovcnt);
	void (*shutdown)(struct tern_conn *c);
	void (*close)(struct tern_conn *c);
	/* Optional: bytes/s the path delivered recently as the kernel measured
	 * it (0: unknown); *app_limited when the sender, not the path, set the
	 * pace of that sample. */
	uint64_t (*delivery_rate)(struct tern_conn *c, bool *app_limited);
	/* Optional: from now on a send that makes no progress for @timeout_ms
	 * (> 0) fails with -ETIMEDOUT, and a peer that stops answering at all
	 * is given up on after about as long (TCP: keepalive and
	 * TCP_USER_TIMEOUT). Reads are not bounded by it. Call it before the
	 * I/O threads start. */
	int (*set_io_timeout)(struct tern_conn *c, int timeout_ms);
	/* Optional: a recv that receives no byte for @timeout_ms (0: no limit)
	 * fails with -EAGAIN; a byte received restarts the clock, so a stall is
	 * seen between @timeout_ms and twice that after the last byte. Call it
	 * between reads, not during one. */
	int (*set_recv_timeout)(struct tern_conn *c, int timeout_ms);

	/* ---- zero-copy send: optional, stream transports (see the top) ---- */

	/* From now on send_pages() sends pages without copying them. Call it
	 * before the I/O threads start. -EOPNOTSUPP where the connection
	 * cannot (a Unix socket), -ENOPROTOOPT (a kernel without it). */
	int (*set_zerocopy)(struct tern_conn *c);
	/* One packet: iov[0] the header and offsets (copied), iov[1..] whole
	 * guest pages. With zero-copy on, the pages may be read until
	 * send_wait(): they must stay mapped, and a page written meanwhile
	 * reaches the peer old, new or mixed, so the caller must send it again
	 * (it is dirty). Without, as send_iov(). */
	int (*send_pages)(struct tern_conn *c, struct iovec *iov, int iovcnt);
	/* Wait until no send made so far still reads the caller's memory.
	 * -ETIMEDOUT when the io timeout passes without a send completing,
	 * -ECANCELED after shutdown(). close() does not wait: it abandons
	 * what is still in flight (TCP: reset), never touching the memory. */
	int (*send_wait)(struct tern_conn *c);

	/* ---- page placement: all NULL on a stream transport ---- */

	/* Both sides, once, before the first packet, from the thread that
	 * does the channel's I/O: the RAM packets of this channel refer to.
	 * @opts: the sending side's choice; NULL on the receiving side, which
	 * follows what its peer chose. */
	int (*bind_ram)(struct tern_conn *c, const struct tern_ram_region *regions, uint32_t n,
			const struct tern_bind_opts *opts);
	/* Give up every registration now (the receiving side calls it when its
	 * channel ends, successful or not: no remote key stays valid). */
	void (*unbind_ram)(struct tern_conn *c);
	/* One packet: iov[0] is the header and offsets, iov[1..] the data. With
	 * @place, iov[1..] are pages to put at their final address on the peer;
	 * without, an encoded payload that the peer reads with recv_payload(). */
	int (*send_packet)(struct tern_conn *c, const struct iovec *iov, int iovcnt,
			   const struct tern_placement *place);
	/* The pages of a packet whose header and offsets were read (and
	 * checked): land them at @dst. A placement transport finds them there
	 * already and returns 0. */
	int (*recv_pages)(struct tern_conn *c, struct iovec *dst, int n);
	/* The encoded payload of @len bytes that follows a packet's offsets:
	 * *ret_view points at it (in @buf, or in the transport's own staging
	 * memory), valid until the next call on the connection. */
	int (*recv_payload)(struct tern_conn *c, void *buf, size_t len, const void **ret_view);
	/* Add this connection's figures to @st. Thread-safe. */
	void (*xport_stats)(struct tern_conn *c, struct tern_xport_stats *st);
};

/* Every transport's connection starts with this. */
struct tern_conn {
	const struct tern_conn_ops *ops;
	char peer[64];	     /* for messages: "127.0.0.1:4444", "unix:/path" */
	int recv_timeout_ms; /* for messages: the last set_recv_timeout() (0: none) */
	/* for messages: what the transport knows of its last failure beyond the
	 * errno ("work completion status 12 (transport retry counter exceeded)
	 * on RDMA WRITE"), "" if nothing; written by the failing call's thread */
	char detail[160];
};

struct tern_listener_ops {
	/* Wait up to @timeout_ms (-1 forever) for the next connection. */
	int (*accept)(struct tern_listener *l, int timeout_ms, struct tern_conn **ret_conn,
		      struct tern_error *err);
	/* The URI that reaches this listener (ephemeral port filled in). */
	int (*uri)(struct tern_listener *l, char *buf, size_t len);
	void (*shutdown)(struct tern_listener *l);
	void (*close)(struct tern_listener *l);
};

struct tern_listener {
	const struct tern_listener_ops *ops;
};

struct tern_transport_ops {
	const char *scheme; /* "tcp", "unix", "rdma" */
	/* @addr: the URI without "scheme:" */
	int (*listen)(const char *addr, struct tern_listener **ret_listener,
		      struct tern_error *err);
	/* @cancel_fd: a file descriptor (an eventfd) that turns readable when
	 * the caller gives up, ending the wait with -ECANCELED; -1: none. */
	int (*connect)(const char *addr, int timeout_ms, int cancel_fd, struct tern_conn **ret_conn,
		       struct tern_error *err);
};

static inline int conn_send_iov(struct tern_conn *c, struct iovec *iov, int iovcnt)
{
	return c->ops->send_iov(c, iov, iovcnt);
}

static inline int conn_send(struct tern_conn *c, const void *buf, size_t len)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};

	return c->ops->send_iov(c, &iov, 1);
}

static inline int conn_recv(struct tern_conn *c, void *buf, size_t len)
{
	return c->ops->recv(c, buf, len);
}

static inline int conn_recv_iov(struct tern_conn *c, struct iovec *iov, int iovcnt)
{
	return c->ops->recv_iov(c, iov, iovcnt);
}

/* 0 where the transport has no such bound (nothing to set). */
static inline int conn_set_io_timeout(struct tern_conn *c, int timeout_ms)
{
	return c->ops->set_io_timeout ? c->ops->set_io_timeout(c, timeout_ms) : 0;
}

/* 0, or -EOPNOTSUPP when the transport has no read deadline. */
static inline int conn_set_recv_timeout(struct tern_conn *c, int timeout_ms)
{
	int ret = c->ops->set_recv_timeout ? c->ops->set_recv_timeout(c, timeout_ms) : -EOPNOTSUPP;

	if (!ret)
		c->recv_timeout_ms = timeout_ms;
	return ret;
}

/*
 * conn_recv_msg() - read a message's first @len bytes (a frame or packet
 * header). Between messages a peer may rightly say nothing for a long time
 * (its guest paused for an operator, its other channels busy), so the wait
 * for the first byte ignores the read deadline and ends only with a byte,
 * EOF, an error or shutdown(); the rest of the header is bound by it like any
 * read inside a message (-EAGAIN: the peer stopped mid-message).
 */
static inline int conn_recv_msg(struct tern_conn *c, void *buf, size_t len)
{
	int ret;

	if (!len)
		return 0;
	do
		ret = c->ops->recv(c, buf, 1);
	while (ret == -EAGAIN);
	if (ret || len == 1)
		return ret;
	return c->ops->recv(c, (uint8_t *)buf + 1, len - 1);
}

/*
 * conn_recv_msg_bounded() - as conn_recv_msg(), for a peer that promises to
 * say something (a keepalive at least) well within the read deadline: the
 * wait for the first byte is bounded by it too, and fails with -ETIME (the
 * peer said nothing at all), told apart from -EAGAIN (it stopped in the
 * middle of a message).
 */
static inline int conn_recv_msg_bounded(struct tern_conn *c, void *buf, size_t len)
{
	int ret;

	if (!len)
		return 0;
	ret = c->ops->recv(c, buf, 1);
	if (ret == -EAGAIN)
		return -ETIME;
	if (ret || len == 1)
		return ret;
	return c->ops->recv(c, (uint8_t *)buf + 1, len - 1);
}

/* ---- page placement (see the top of this file) ---- */

static inline int conn_bind_ram(struct tern_conn *c, const struct tern_ram_region *regions,
				uint32_t n, const struct tern_bind_opts *opts)
{
	return c->ops->bind_ram ? c->ops->bind_ram(c, regions, n, opts) : 0;
}

static inline void conn_unbind_ram(struct tern_conn *c)
{
	if (c && c->ops->unbind_ram)
		c->ops->unbind_ram(c);
}

/* Whether pages reach the peer's RAM the moment they are sent (placement),
 * rather than when the peer reads them from the stream. */
static inline bool conn_places_pages(const struct tern_conn *c)
{
	return c->ops->send_packet != NULL;
}

/* With @place, iov[1..] are guest pages: a stream may send them zero-copy
 * (conn_send_wait() before anything relies on their being sent). */
static inline int conn_send_packet(struct tern_conn *c, struct iovec *iov, int iovcnt,
				   const struct tern_placement *place)
{
	if (c->ops->send_packet)
		return c->ops->send_packet(c, iov, iovcnt, place);
	if (place && c->ops->send_pages)
		return c->ops->send_pages(c, iov, iovcnt);
	return c->ops->send_iov(c, iov, iovcnt);
}

/* -EOPNOTSUPP where the transport has no zero-copy send (rdma: places pages
 * by RDMA WRITE from registered RAM, without a copy already). */
static inline int conn_set_zerocopy(struct tern_conn *c)
{
	return c->ops->set_zerocopy ? c->ops->set_zerocopy(c) : -EOPNOTSUPP;
}

/* 0 at once where nothing is sent zero-copy. */
static inline int conn_send_wait(struct tern_conn *c)
{
	return c->ops->send_wait ? c->ops->send_wait(c) : 0;
}

static inline int conn_recv_pages(struct tern_conn *c, struct iovec *dst, int n)
{
	if (c->ops->recv_pages)
		return c->ops->recv_pages(c, dst, n);
	return c->ops->recv_iov(c, dst, n);
}

static inline int conn_recv_payload(struct tern_conn *c, void *buf, size_t len,
				    const void **ret_view)
{
	int ret;

	if (c->ops->recv_payload)
		return c->ops->recv_payload(c, buf, len, ret_view);
	ret = c->ops->recv(c, buf, len);
	*ret_view = ret ? NULL : buf;
	return ret;
}

static inline void conn_xport_stats(struct tern_conn *c, struct tern_xport_stats *st)
{
	if (c && c->ops->xport_stats)
		c->ops->xport_stats(c, st);
}

static inline void conn_shutdown(struct tern_conn *c)
{
	if (c)
		c->ops->shutdown(c);
}

static inline void conn_close(struct tern_conn *c)
{
	if (c)
		c->ops->close(c);
}

#endif /* TERN_TRANSPORT_H */
