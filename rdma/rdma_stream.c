/* SPDX-License-Identifier: MIT */
/*
 * rdma_stream: the byte stream of an rdma connection, and the completion
 * handling every other part of the transport waits through.
 *
 * Stream: send_iov() cuts the caller's bytes into messages of up to
 * RDMA_BUF_SIZE (header included), copied into registered SEND buffers
 * (local access only); recv() copies out of registered receive buffers, in
 * order, and reposts each buffer once it is read to the end.
 *
 * Flow control (credits): on iWARP a SEND that finds no receive posted
 * breaks the queue pair (there is no RNR retry), so a side may SEND only
 * while it knows a receive waits for it. Each side announces its receive
 * depth D in the rdma_cm private data, with the address and rkey of a
 * small registered "feedback word" of its own. The receiver, each time it
 * has read a message and reposted its buffer, RDMA-WRITEs its monotonic
 * count of reposts (and the staging ring position it released, see
 * rdma_place.c) into the sender's feedback word. The sender may post SEND
 * number n (from 0) while n < D + reposts. The word is written by the peer's
 * NIC without a completion on our side, so a sender out of credits polls it
 * with a backoff of 20 us doubling to 1 ms (and still wakes at once for
 * completions, CM events and shutdown). A WRITE needs no receive, so credits
 * flow back on a channel whose stream goes one way only, without deadlock.
 * The word carries a check value: a read racing the NIC's write is retried.
 *
 * Blocking: rdma_wait() arms the completion channel, reaps once more (no
 * lost wakeup), then poll()s the completion channel's fd, the connection's
 * rdma_cm event fd and the shutdown eventfd: no core burnt while idle. CM
 * events DISCONNECTED and TIMEWAIT_EXIT fail the connection with -EPIPE,
 * DEVICE_REMOVAL with -ENODEV. A failed work completion names its status
 * and opcode in conn->detail. Messages already received stay readable
 * after the peer went away, as with TCP.
 *
 * Send completions: SENDs are signaled (their buffer is reused after), the
 * other work requests every RDMA_SIGNAL_EVERY-th only; a signaled
 * completion means every earlier request of the send queue completed.
 */
#include <assert.h>
#include <pthread.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "rdma_priv.h"

#define RDMA_DEFAULT_IO_TIMEOUT_MS 30000
#define RDMA_DUPLEX_NAP_MS 50
/* After a refused post: how long to wait for the completion that says why */
#define RDMA_POST_ERR_WAIT_MS 200

static const char *const wr_names[RDMA_WR_MAX] = {
    [RDMA_WR_SEND] = "SEND",
    [RDMA_WR_WRITE] = "RDMA WRITE",
    [RDMA_WR_FEEDBACK] = "RDMA WRITE (credits)",
    [RDMA_WR_RECV] = "RECV",
};

static __thread int rdma_role; /* the role of this thread's current call */

/* Completions reaped or a failure seen by this call may be what a call of
 * the other role sleeps for: it would not get a completion event of its
 * own for them. */
static void kick_other(struct rdma_conn *c)
{
	int other = !rdma_role;
	uint64_t one = 1;

	if (c->waiting[other] && write(c->kick_fd[other], &one, sizeof(one)) < 0) {
		/* an eventfd's counter does not overflow here */
	}
}

int rdma_fail(struct rdma_conn *c, int code, const char *fmt, ...)
{
	va_list ap;

	kick_other(c);
	if (!c->failed)
		c->failed = code;
	if (!c->base.detail[0]) {
		va_start(ap, fmt);
		vsnprintf(c->base.detail, sizeof(c->base.detail), fmt, ap);
		va_end(ap);
	}
	return code;
}

int rdma_check(struct rdma_conn *c)
{
	if (__atomic_load_n(&c->shut, __ATOMIC_ACQUIRE))
		return -ECANCELED;
	return c->failed;
}

static uint64_t io_deadline(struct rdma_conn *c)
{
	return tern_now_ms() +
	       (uint64_t)(c->io_timeout_ms > 0 ? c->io_timeout_ms : RDMA_DEFAULT_IO_TIMEOUT_MS);
}

static int post_recv(struct rdma_conn *c, uint32_t idx)
{
	struct ibv_sge sge = {.addr = (uintptr_t)(c->rx_mem + (size_t)idx * RDMA_BUF_SIZE),
			      .length = RDMA_BUF_SIZE,
			      .lkey = c->rx_mr->lkey};
	struct ibv_recv_wr wr = {
	    .wr_id = (uint64_t)idx << 8 | RDMA_WR_RECV, .sg_list = &sge, .num_sge = 1};
	struct ibv_recv_wr *bad;
	int ret = ibv_post_recv(c->qp, &wr, &bad);

	if (ret)
		return rdma_fail(c, -EIO, "ibv_post_recv: %s", strerror_r(ret, (char[64]){""}, 64));
	return 0;
}

int rdma_conn_post_recvs(struct rdma_conn *c);
int rdma_conn_post_recvs(struct rdma_conn *c)
{
	for (uint32_t i = 0; i < RDMA_RECV_DEPTH; i++) {
		int ret = post_recv(c, i);

		if (ret)
			return ret;
	}
	return 0;
}

int rdma_reap(struct rdma_conn *c)
{
	struct ibv_wc wc[16];
	uint64_t done = c->sq_done;
	int n, progress = 0;

	while ((n = ibv_poll_cq(c->cq, (int)ARRAY_SIZE(wc), wc)) > 0) {
		for (int i = 0; i < n; i++) {
			uint32_t kind = wc[i].wr_id & 0xff;
			uint64_t v = wc[i].wr_id >> 8;
			const char *what =
			    kind < RDMA_WR_MAX && wr_names[kind] ? wr_names[kind] : "?";

			if (wc[i].status != IBV_WC_SUCCESS) {
				if (wc[i].status == IBV_WC_WR_FLUSH_ERR) {
					if (!c->base.detail[0])
						c->detail_is_flush = true;
					rdma_fail(c, -EPIPE,
						  "%s flushed: the queue pair went to the error "
						  "state (peer gone or link broken)",
						  what);
					continue;
				}
				/* the status that broke the QP says more than the
				 * flushes it caused, whichever was reaped first */
				if (c->detail_is_flush) {
					c->base.detail[0] = '\0';
					c->failed = 0;
					c->detail_is_flush = false;
				}
				rdma_fail(c, -EIO, "work completion status %d (%s) on %s",
					  wc[i].status, ibv_wc_status_str(wc[i].status), what);
				continue;
			}
			progress++;
			if (kind == RDMA_WR_RECV) {
				uint32_t slot = (c->rx_head + c->rx_count) % RDMA_RECV_DEPTH;

				c->rx_ready[slot] = (uint32_t)v;
				c->rx_ready_len[slot] = wc[i].byte_len;
				c->rx_count++;
			} else if (v > c->sq_done) {
				c->sq_done = v;
			}
		}
	}
	if (n < 0)
		return rdma_fail(c, -EIO, "ibv_poll_cq failed");
	if (c->sq_done != done)
		rdma_place_completed(c);
	if (progress)
		kick_other(c);
	return progress;
}

static void handle_cm_events(struct rdma_conn *c)
{
	struct rdma_cm_event *ev;

	while (!rdma_get_cm_event(c->ech, &ev)) {
		enum rdma_cm_event_type type = ev->event;

		rdma_ack_cm_event(ev);
		switch (type) {
		case RDMA_CM_EVENT_DISCONNECTED:
		case RDMA_CM_EVENT_TIMEWAIT_EXIT:
			c->peer_gone = true;
			rdma_fail(c, -EPIPE, "peer %s disconnected (%s)", c->base.peer,
				  rdma_event_str(type));
			break;
		case RDMA_CM_EVENT_DEVICE_REMOVAL:
			rdma_fail(c, -ENODEV, "RDMA device removed (%s)", rdma_event_str(type));
			break;
		default:
			break;
		}
	}
}

int rdma_wait(struct rdma_conn *c, uint64_t deadline_ms, int poll_us)
{
	int role = rdma_role;
	struct pollfd pfd[4] = {{.fd = c->cch->fd, .events = POLLIN},
				{.fd = c->ech->fd, .events = POLLIN},
				{.fd = c->wake_fd, .events = POLLIN},
				{.fd = c->kick_fd[role], .events = POLLIN}};
	struct timespec ts, *tsp = NULL;
	struct ibv_cq *cq;
	uint64_t kicks;
	void *ctx;
	int n;

	if (__atomic_load_n(&c->shut, __ATOMIC_ACQUIRE))
		return -ECANCELED;
	if (ibv_req_notify_cq(c->cq, 0))
		return rdma_fail(c, -EIO, "ibv_req_notify_cq failed");
	n = rdma_reap(c);
	if (n)
		return n < 0 ? n : 0;
	if (deadline_ms) {
		uint64_t now = tern_now_ms();
		uint64_t left = deadline_ms > now ? deadline_ms - now : 0;

		if (!left)
			return -ETIMEDOUT;
		ts.tv_sec = (time_t)(left / 1000);
		ts.tv_nsec = (long)(left % 1000) * 1000000;
		tsp = &ts;
	}
	if (poll_us > 0 && (!tsp || ts.tv_sec || ts.tv_nsec > poll_us * 1000L)) {
		ts.tv_sec = 0;
		ts.tv_nsec = poll_us * 1000L;
		tsp = &ts;
	}
	/* A connection used by two threads (the control channel) sleeps at
	 * most RDMA_DUPLEX_NAP_MS at a time: a backstop should a completion
	 * the other thread reaped not reach us through the kick. */
	if (c->roles_seen == 3 &&
	    (!tsp || ts.tv_sec || ts.tv_nsec > RDMA_DUPLEX_NAP_MS * 1000000L)) {
		ts.tv_sec = 0;
		ts.tv_nsec = RDMA_DUPLEX_NAP_MS * 1000000L;
		tsp = &ts;
	}
	c->waiting[role] = true;
	pthread_mutex_unlock(&c->lock);
	n = ppoll(pfd, 4, tsp, NULL);
	pthread_mutex_lock(&c->lock);
	c->waiting[role] = false;
	rdma_role = role;
	if (n < 0)
		return errno == EINTR ? 0 : rdma_fail(c, -errno, "poll failed");
	if (pfd[2].revents)
		return -ECANCELED;
	if (pfd[3].revents && read(c->kick_fd[role], &kicks, sizeof(kicks)) < 0) {
		/* EAGAIN: drained already */
	}
	if (pfd[0].revents && !ibv_get_cq_event(c->cch, &cq, &ctx))
		ibv_ack_cq_events(cq, 1);
	if (pfd[1].revents)
		handle_cm_events(c);
	return 0;
}

int rdma_post_send(struct rdma_conn *c, struct ibv_send_wr *wr, enum rdma_wr_kind kind,
		   bool signaled, uint64_t *ret_seq)
{
	uint64_t deadline = io_deadline(c), seq;
	struct ibv_send_wr *bad;
	int ret;

	while (c->sq_posted - c->sq_done >= RDMA_SQ_DEPTH - 1) {
		ret = rdma_check(c);
		if (!ret)
			ret = rdma_wait(c, deadline, 0);
		if (ret == -ETIMEDOUT) {
			snprintf(c->base.detail, sizeof(c->base.detail),
				 "send queue full for %d ms: no completion from the device",
				 c->io_timeout_ms);
			return ret;
		}
		if (ret)
			return ret;
	}
	seq = c->sq_posted + 1;
	if (!(seq % RDMA_SIGNAL_EVERY))
		signaled = true;
	wr->wr_id = seq << 8 | kind;
	wr->next = NULL;
	if (signaled)
		wr->send_flags |= IBV_SEND_SIGNALED;
	ret = ibv_post_send(c->qp, wr, &bad);
	if (ret) {
		uint64_t until = tern_now_ms() + RDMA_POST_ERR_WAIT_MS;
		int err = ret < 0 ? -ret : ret;

		/* A queue pair in the error state refuses new work (siw says
		 * EPERM): the completion that broke it says why, and the device
		 * may deliver it just after. Wait a moment for it. */
		while (!c->failed && tern_now_ms() < until)
			if (rdma_wait(c, until, 0))
				break;
		if (c->failed)
			return c->failed;
		return rdma_fail(c, -EIO, "ibv_post_send (%s): %s", wr_names[kind],
				 strerror_r(err, (char[64]){""}, 64));
	}
	c->sq_posted = seq;
	if (signaled)
		c->last_signaled = seq;
	if (ret_seq)
		*ret_seq = seq;
	return 0;
}

void rdma_feedback_read(struct rdma_conn *c)
{
	struct rdma_feedback f;

	if (rdma_feedback_decode(c->fb_mem, &f))
		return;
	if (f.reposted > c->peer_reposted)
		c->peer_reposted = f.reposted;
	if (f.released > c->peer_released)
		c->peer_released = f.released;
}

int rdma_feedback_send(struct rdma_conn *c)
{
	/* One slot per write, reused only RDMA_SQ_DEPTH writes later, when the
	 * send queue bound guarantees the earlier write completed. */
	static_assert(RDMA_FEEDBACK_LEN * RDMA_SQ_DEPTH <= 4096, "feedback slots fit a page");
	uint8_t *slot = c->fb_mem + 4096 + (c->reposted % RDMA_SQ_DEPTH) * RDMA_FEEDBACK_LEN;
	struct rdma_feedback f = {.reposted = c->reposted, .released = c->released};
	struct ibv_sge sge = {
	    .addr = (uintptr_t)slot, .length = RDMA_FEEDBACK_LEN, .lkey = c->fb_out_mr->lkey};
	struct ibv_send_wr wr = {.sg_list = &sge, .num_sge = 1, .opcode = IBV_WR_RDMA_WRITE};

	rdma_feedback_encode(&f, slot);
	wr.wr.rdma.remote_addr = c->peer.fb_addr;
	wr.wr.rdma.rkey = c->peer.fb_rkey;
	return rdma_post_send(c, &wr, RDMA_WR_FEEDBACK, false, NULL);
}

/* Copy @len bytes from @iov, starting @skip bytes in, to @dst. */
static void iov_gather(const struct iovec *iov, int iovcnt, size_t skip, uint8_t *dst, size_t len)
{
	for (int i = 0; i < iovcnt && len; i++) {
		size_t n;

		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		n = MIN(iov[i].iov_len - skip, len);
		memcpy(dst, (const uint8_t *)iov[i].iov_base + skip, n);
		dst += n;
		len -= n;
		skip = 0;
	}
}

static int wait_credit(struct rdma_conn *c, uint64_t deadline)
{
	int backoff_us = 20, ret;

	while (c->sends >= c->peer.recv_depth + c->peer_reposted) {
		rdma_feedback_read(c);
		if (c->sends < c->peer.recv_depth + c->peer_reposted)
			break;
		ret = rdma_check(c);
		if (!ret)
			ret = rdma_wait(c, deadline, backoff_us);
		if (ret == -ETIMEDOUT) {
			snprintf(c->base.detail, sizeof(c->base.detail),
				 "no receive credit from %s for %d ms (it reposted %" PRIu64
				 " receives of %" PRIu64 " messages)",
				 c->base.peer, c->io_timeout_ms, c->peer_reposted, c->sends);
			return ret;
		}
		if (ret)
			return ret;
		backoff_us = MIN(backoff_us * 2, 1000);
	}
	return 0;
}

/* @m->len payload bytes from @iov, @skip bytes in. */
static int send_msg_at(struct rdma_conn *c, struct rdma_msg *m, const struct iovec *iov, int iovcnt,
		       size_t skip)
{
	uint64_t deadline = io_deadline(c);
	uint32_t i = c->tx_next;
	uint8_t *buf = c->tx_mem + (size_t)i * RDMA_BUF_SIZE;
	struct ibv_sge sge = {
	    .addr = (uintptr_t)buf, .length = RDMA_MSG_HDR_LEN + m->len, .lkey = c->tx_mr->lkey};
	struct ibv_send_wr wr = {.sg_list = &sge, .num_sge = 1, .opcode = IBV_WR_SEND};
	int ret;

	if (m->len > RDMA_BUF_SIZE - RDMA_MSG_HDR_LEN ||
	    m->len > c->peer.buf_size - RDMA_MSG_HDR_LEN)
		return -EMSGSIZE;
	ret = wait_credit(c, deadline);
	if (ret)
		return ret;
	while (c->tx_seq[i] > c->sq_done) {
		ret = rdma_check(c);
		if (!ret)
			ret = rdma_wait(c, deadline, 0);
		if (ret == -ETIMEDOUT)
			snprintf(c->base.detail, sizeof(c->base.detail),
				 "SEND not completed within %d ms", c->io_timeout_ms);
		if (ret)
			return ret;
	}
	rdma_msg_encode(m, buf);
	iov_gather(iov, iovcnt, skip, buf + RDMA_MSG_HDR_LEN, m->len);
	ret = rdma_post_send(c, &wr, RDMA_WR_SEND, true, &c->tx_seq[i]);
	if (ret)
		return ret;
	c->tx_next = (i + 1) % RDMA_SEND_BUFS;
	c->sends++;
	return 0;
}

int rdma_send_msg(struct rdma_conn *c, struct rdma_msg *m, const struct iovec *iov, int iovcnt)
{
	return send_msg_at(c, m, iov, iovcnt, 0);
}

/* The largest stream payload of one message. */
static uint32_t msg_room(struct rdma_conn *c)
{
	return MIN(RDMA_BUF_SIZE, c->peer.buf_size) - RDMA_MSG_HDR_LEN;
}

int rdma_stream_send(struct rdma_conn *c, struct iovec *iov, int iovcnt)
{
	size_t total = 0, done = 0;
	int ret = rdma_check(c);

	if (ret)
		return ret;
	if (iovcnt < 0)
		return -EINVAL;
	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	while (done < total) {
		struct rdma_msg m = {.type = RDMA_MSG_DATA};

		m.len = (uint32_t)MIN(total - done, (size_t)msg_room(c));
		ret = send_msg_at(c, &m, iov, iovcnt, done);
		if (ret)
			return ret;
		done += m.len;
	}
	return 0;
}

void rdma_consume(struct rdma_conn *c)
{
	int idx = c->cur;

	c->cur = -1;
	c->cur_left = 0;
	if (idx < 0 || rdma_check(c))
		return;
	if (post_recv(c, (uint32_t)idx))
		return;
	c->reposted++;
	(void)rdma_feedback_send(c);
}

int rdma_next_msg(struct rdma_conn *c, uint64_t deadline_ms, struct rdma_msg *ret_msg,
		  const uint8_t **ret_payload)
{
	struct tern_error err = {0};
	struct rdma_msg m;
	int ret;

	for (;;) {
		if (__atomic_load_n(&c->shut, __ATOMIC_ACQUIRE))
			return -ECANCELED;
		if (!c->rx_count && !c->failed)
			(void)rdma_reap(c);
		if (c->rx_count) {
			uint32_t idx = c->rx_ready[c->rx_head];
			uint32_t len = c->rx_ready_len[c->rx_head];
			const uint8_t *buf = c->rx_mem + (size_t)idx * RDMA_BUF_SIZE;

			c->rx_head = (c->rx_head + 1) % RDMA_RECV_DEPTH;
			c->rx_count--;
			c->cur = (int)idx;
			ret = rdma_msg_decode(buf, len, &m, &err);
			if (ret)
				return rdma_fail(c, ret, "from %s: %s", c->base.peer, err.msg);
			if (m.type == RDMA_MSG_DATA) {
				c->cur_data = buf + RDMA_MSG_HDR_LEN;
				c->cur_left = m.len;
				*ret_msg = m;
				if (ret_payload)
					*ret_payload = c->cur_data;
				return 0;
			}
			ret = rdma_place_handle(c, &m, buf + RDMA_MSG_HDR_LEN);
			rdma_consume(c);
			if (ret)
				return ret;
			if (c->stop_on_ctl)
				return 1;
			continue;
		}
		ret = rdma_check(c);
		if (!ret)
			ret = rdma_wait(c, deadline_ms, 0);
		if (ret)
			return ret;
	}
}

int rdma_stream_recv(struct rdma_conn *c, void *buf, size_t len)
{
	uint8_t *dst = buf;
	int ret;

	if (__atomic_load_n(&c->shut, __ATOMIC_ACQUIRE))
		return -ECANCELED;
	ret = rdma_place_release(c);
	if (ret)
		return ret;
	while (len) {
		size_t n;

		if (c->cur < 0) {
			struct rdma_msg m;
			uint64_t deadline = c->recv_timeout_ms > 0
						? tern_now_ms() + (uint64_t)c->recv_timeout_ms
						: 0;

			ret = rdma_next_msg(c, deadline, &m, NULL);
			if (ret == -ETIMEDOUT)
				return -EAGAIN;
			if (ret)
				return ret;
			ret = rdma_place_data(c, &m);
			if (ret)
				return ret;
		}
		n = MIN(len, (size_t)c->cur_left);
		memcpy(dst, c->cur_data, n);
		dst += n;
		len -= n;
		c->cur_data += n;
		c->cur_left -= (uint32_t)n;
		if (!c->cur_left)
			rdma_consume(c);
	}
	return 0;
}

int rdma_stream_recv_iov(struct rdma_conn *c, struct iovec *iov, int iovcnt)
{
	for (int i = 0; i < iovcnt; i++) {
		int ret = rdma_stream_recv(c, iov[i].iov_base, iov[i].iov_len);

		if (ret)
			return ret;
	}
	return 0;
}

/* Thread-safe and idempotent: every blocked call returns -ECANCELED. */
static void rdma_conn_shutdown(struct tern_conn *tc)
{
	struct rdma_conn *c = (struct rdma_conn *)tc;
	uint64_t one = 1;

	if (__atomic_exchange_n(&c->shut, true, __ATOMIC_ACQ_REL))
		return;
	if (write(c->wake_fd, &one, sizeof(one)) < 0) {
		/* cannot fail on a fresh eventfd; the flag covers later calls */
	}
	rdma_disconnect(c->id);
}

static void rdma_conn_close(struct tern_conn *tc)
{
	rdma_conn_free((struct rdma_conn *)tc);
}

static int rdma_conn_set_io_timeout(struct tern_conn *tc, int timeout_ms)
{
	if (timeout_ms <= 0)
		return -EINVAL;
	((struct rdma_conn *)tc)->io_timeout_ms = timeout_ms;
	return 0;
}

static int rdma_conn_set_recv_timeout(struct tern_conn *tc, int timeout_ms)
{
	if (timeout_ms < 0)
		return -EINVAL;
	((struct rdma_conn *)tc)->recv_timeout_ms = timeout_ms;
	return 0;
}

void rdma_lock(struct rdma_conn *c, int role)
{
	pthread_mutex_lock(&c->lock);
	rdma_role = role;
	c->roles_seen |= 1u << role;
}

void rdma_unlock(struct rdma_conn *c)
{
	pthread_mutex_unlock(&c->lock);
}

#define LOCKED(c, role, call)                                                                      \
	({                                                                                         \
		rdma_lock((c), (role));                                                            \
		__typeof__(call) ret_ = (call);                                                    \
		rdma_unlock(c);                                                                    \
		ret_;                                                                              \
	})

static int rdma_conn_send_iov(struct tern_conn *tc, struct iovec *iov, int iovcnt)
{
	struct rdma_conn *c = (struct rdma_conn *)tc;

	return LOCKED(c, RDMA_ROLE_SEND, rdma_stream_send(c, iov, iovcnt));
}

static int rdma_conn_recv(struct tern_conn *tc, void *buf, size_t len)
{
	struct rdma_conn *c = (struct rdma_conn *)tc;

	return LOCKED(c, RDMA_ROLE_RECV, rdma_stream_recv(c, buf, len));
}

static int rdma_conn_recv_iov(struct tern_conn *tc, struct iovec *iov, int iovcnt)
{
	struct rdma_conn *c = (struct rdma_conn *)tc;

	return LOCKED(c, RDMA_ROLE_RECV, rdma_stream_recv_iov(c, iov, iovcnt));
}

static int rdma_conn_bind_ram(struct tern_conn *tc, const struct tern_ram_region *regions,
			      uint32_t n, const struct tern_bind_opts *opts)
{
	struct rdma_conn *c = (struct rdma_conn *)tc;

	return LOCKED(c, opts ? RDMA_ROLE_SEND : RDMA_ROLE_RECV,
		      rdma_bind_ram_locked(tc, regions, n, opts));
}

static void rdma_conn_unbind_ram(struct tern_conn *tc)
{
	struct rdma_conn *c = (struct rdma_conn *)tc;

	rdma_lock(c, RDMA_ROLE_RECV);
	rdma_unbind_ram_locked(tc);
	rdma_unlock(c);
}

static int rdma_conn_send_packet(struct tern_conn *tc, const struct iovec *iov, int iovcnt,
				 const struct tern_placement *place)
{
	struct rdma_conn *c = (struct rdma_conn *)tc;

	return LOCKED(c, RDMA_ROLE_SEND, rdma_send_packet_locked(tc, iov, iovcnt, place));
}

static int rdma_conn_recv_pages(struct tern_conn *tc, struct iovec *dst, int n)
{
	struct rdma_conn *c = (struct rdma_conn *)tc;

	return LOCKED(c, RDMA_ROLE_RECV, rdma_recv_pages_locked(tc, dst, n));
}

static int rdma_conn_recv_payload(struct tern_conn *tc, void *buf, size_t len,
				  const void **ret_view)
{
	struct rdma_conn *c = (struct rdma_conn *)tc;

	return LOCKED(c, RDMA_ROLE_RECV, rdma_recv_payload_locked(tc, buf, len, ret_view));
}

const struct tern_conn_ops rdma_conn_ops = {
    .send_iov = rdma_conn_send_iov,
    .recv = rdma_conn_recv,
    .recv_iov = rdma_conn_recv_iov,
    .shutdown = rdma_conn_shutdown,
    .close = rdma_conn_close,
    .set_io_timeout = rdma_conn_set_io_timeout,
    .set_recv_timeout = rdma_conn_set_recv_timeout,
    .bind_ram = rdma_conn_bind_ram,
    .unbind_ram = rdma_conn_unbind_ram,
    .send_packet = rdma_conn_send_packet,
    .recv_pages = rdma_conn_recv_pages,
    .recv_payload = rdma_conn_recv_payload,
    .xport_stats = rdma_xport_stats,
};
