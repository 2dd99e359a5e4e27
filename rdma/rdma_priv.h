/* SPDX-License-Identifier: MIT */
/*
 * The rdma transport's internals, shared by its files: the connection
 * object, the device/PD registry and object accounting (rdma_dev.c), the
 * connection setup (rdma_cm.c), the byte stream and completion handling
 * (rdma_stream.c) and the placement of guest pages (rdma_place.c).
 */
#ifndef TERN_RDMA_PRIV_H
#define TERN_RDMA_PRIV_H

#include <infiniband/verbs.h>
#include <pthread.h>
#include <rdma/rdma_cma.h>

#include "util/util.h"
#include "rdma.h"
#include "rdma_wire.h"

#define RDMA_BUF_SIZE (64u << 10) /* one SEND message, header included */
#define RDMA_RECV_DEPTH 16u	  /* receives kept posted per connection */
#define RDMA_SEND_BUFS 8u	  /* SEND message buffers per connection */
#define RDMA_SQ_DEPTH 128u	  /* send queue: WRITEs, SENDs, feedback writes */
#define RDMA_MAX_SGE 4u
#define RDMA_SIGNAL_EVERY 16u /* an unsignaled WR gets a signaled one this close */

/* Kinds of work request, in the low byte of wr_id (seq or index above). */
enum rdma_wr_kind {
	RDMA_WR_INVALID = 0,
	RDMA_WR_SEND,
	RDMA_WR_WRITE,
	RDMA_WR_FEEDBACK,
	RDMA_WR_RECV,
	RDMA_WR_MAX,
};

/* Object accounting for leak checks (rdma_test.h). */
enum rdma_obj {
	RDMA_OBJ_PD,
	RDMA_OBJ_CQ,
	RDMA_OBJ_QP,
	RDMA_OBJ_MR,
	RDMA_OBJ_CM_ID,
	RDMA_OBJ_CHANNEL, /* rdma_cm event channels and completion channels */
	RDMA_OBJ_MAX,
};

struct rdma_place;

struct rdma_conn {
	struct tern_conn base; /* first */
	/* immutable after setup */
	struct rdma_cm_id *id;
	struct rdma_event_channel *ech;
	struct ibv_pd *pd;
	struct ibv_comp_channel *cch;
	struct ibv_cq *cq;
	struct ibv_qp *qp;
	int wake_fd;	/* eventfd, readable once shutdown() ran */
	int kick_fd[2]; /* eventfds: completions reaped for a waiting role */
	uint8_t *rx_mem, *tx_mem, *fb_mem;
	struct ibv_mr *rx_mr, *tx_mr, *fb_in_mr, *fb_out_mr;
	struct rdma_priv peer;
	uint32_t max_sge;
	/* any thread: set once, by shutdown() */
	bool shut;

	pthread_mutex_t lock;	 /* everything below; dropped while waiting */
	bool waiting[2];	 /* a call of that role sleeps in rdma_wait() */
	unsigned int roles_seen; /* 1 << role of every call so far */
	int failed;		 /* negative errno once the connection broke, 0 while fine */
	bool peer_gone;
	bool detail_is_flush; /* conn->detail tells of a flush, not its cause */
	int recv_timeout_ms, io_timeout_ms;
	uint64_t sq_posted, sq_done;	 /* work requests posted / known complete */
	uint64_t last_signaled;		 /* the last signaled WR: all before it are done with it */
	uint64_t sends;			 /* SENDs posted: credits used */
	uint64_t peer_reposted;		 /* the peer's feedback: credits returned */
	uint64_t peer_released;		 /* the peer's feedback: ring bytes released */
	uint64_t tx_seq[RDMA_SEND_BUFS]; /* the WR that last used each SEND buffer */
	uint32_t tx_next;
	/* receive side: completed receives in order, not yet consumed */
	uint32_t rx_ready[RDMA_RECV_DEPTH], rx_ready_len[RDMA_RECV_DEPTH];
	uint32_t rx_head, rx_count;
	int cur; /* receive buffer being read, -1 none */
	const uint8_t *cur_data;
	uint32_t cur_left;
	uint64_t reposted; /* receives we reposted after consuming them */
	uint64_t released; /* the ring position we released (placement) */
	struct rdma_place *place;
	bool stop_on_ctl;  /* rdma_next_msg() returns 1 after a control message */
	uint32_t rkey_xor; /* tests: corrupt the remote keys used */
	/* figures for xport_stats(): written by the I/O thread, read by any */
	struct {
		uint64_t pinned, peak, reg_ns, chunks, placed, staged;
	} st;
};

/* Copy @src into @dst, truncated to fit: messages only. */
static inline void rdma_str_copy(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

static inline void rdma_stat_add(uint64_t *v, uint64_t n)
{
	__atomic_add_fetch(v, n, __ATOMIC_RELAXED);
}

/* rdma_dev.c */
void rdma_obj_add(enum rdma_obj kind, int delta);
struct ibv_pd *rdma_pd_get(struct ibv_context *verbs);
void rdma_pd_put(struct ibv_pd *pd);
struct ibv_mr *rdma_reg(struct ibv_pd *pd, void *addr, size_t len, int access);
int rdma_dereg(struct ibv_mr *mr);
/* A whole region's MR, shared by every channel of the process (refcounted). */
struct ibv_mr *rdma_shared_mr_get(struct ibv_pd *pd, void *addr, size_t len, int access,
				  bool *ret_created);
/* true when this put released the registration */
bool rdma_shared_mr_put(struct ibv_mr *mr);
/* "registering N MiB of @what failed: <errno>; RLIMIT_MEMLOCK is ... raise it
 * to at least ...[ or @alt]" */
int rdma_reg_error(char *buf, size_t size, int code, const char *what, uint64_t len,
		   const char *alt);
/* "rxe0, siw0" or "none" */
void rdma_device_names(char *buf, size_t size);

/* rdma_stream.c */
extern const struct tern_conn_ops rdma_conn_ops;
int __attribute__((format(printf, 3, 4)))
rdma_fail(struct rdma_conn *c, int code, const char *fmt, ...);
int rdma_check(struct rdma_conn *c);
/* Post @wr (one WR, wr_id's kind set by the caller; seq added here). */
int rdma_post_send(struct rdma_conn *c, struct ibv_send_wr *wr, enum rdma_wr_kind kind,
		   bool signaled, uint64_t *ret_seq);
/* Send one message: header @m, then @len payload bytes from @iov. */
int rdma_send_msg(struct rdma_conn *c, struct rdma_msg *m, const struct iovec *iov, int iovcnt);
/* Wait until the CQ, the CM channel or shutdown has news (or @deadline_ms
 * passes: -ETIMEDOUT; 0 = no deadline). @poll_ms > 0: wake after that long
 * anyway (to look at the feedback word). */
int rdma_wait(struct rdma_conn *c, uint64_t deadline_ms, int poll_ms);
int rdma_reap(struct rdma_conn *c);
/* Receive path: the next message at the head, control messages handled. */
int rdma_next_msg(struct rdma_conn *c, uint64_t deadline_ms, struct rdma_msg *ret_msg,
		  const uint8_t **ret_payload);
void rdma_consume(struct rdma_conn *c);
int rdma_feedback_send(struct rdma_conn *c);
/* The stream with the lock held (the ops table's calls take it). */
int rdma_stream_send(struct rdma_conn *c, struct iovec *iov, int iovcnt);
int rdma_stream_recv(struct rdma_conn *c, void *buf, size_t len);
int rdma_stream_recv_iov(struct rdma_conn *c, struct iovec *iov, int iovcnt);
/* Every op holds c->lock but while it sleeps in rdma_wait(); @role says
 * which side of a connection used by two threads at once (a control
 * channel: one sends, one receives) this call is, so that completions one
 * reaps wake the other. */
enum { RDMA_ROLE_SEND, RDMA_ROLE_RECV };
void rdma_lock(struct rdma_conn *c, int role);
void rdma_unlock(struct rdma_conn *c);
void rdma_feedback_read(struct rdma_conn *c);

/* rdma_place.c */
/* A control message at the head of the receive path (not DATA). */
int rdma_place_handle(struct rdma_conn *c, const struct rdma_msg *m, const uint8_t *payload);
/* A DATA message is starting to be read: its span, if any. */
int rdma_place_data(struct rdma_conn *c, const struct rdma_msg *m);
/* Before any receiving call: release what the last recv_payload() lent. */
int rdma_place_release(struct rdma_conn *c);
void rdma_place_completed(struct rdma_conn *c);
void rdma_place_free(struct rdma_conn *c);
/* the ops of rdma_conn_ops, called with the connection's lock held */
int rdma_bind_ram_locked(struct tern_conn *tc, const struct tern_ram_region *regions, uint32_t n,
			 const struct tern_bind_opts *opts);
void rdma_unbind_ram_locked(struct tern_conn *tc);
int rdma_send_packet_locked(struct tern_conn *tc, const struct iovec *iov, int iovcnt,
			    const struct tern_placement *place);
int rdma_recv_pages_locked(struct tern_conn *tc, struct iovec *dst, int n);
int rdma_recv_payload_locked(struct tern_conn *tc, void *buf, size_t len, const void **ret_view);
void rdma_xport_stats(struct tern_conn *tc, struct tern_xport_stats *st);

/* rdma_cm.c */
void rdma_conn_free(struct rdma_conn *c);

#endif /* TERN_RDMA_PRIV_H */
