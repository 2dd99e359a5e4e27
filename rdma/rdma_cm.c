/* SPDX-License-Identifier: MIT */
/*
 * rdma_cm: listeners and connections. Every connection is an RC queue pair
 * set up with rdma_cm (resolve address, resolve route, connect / accept),
 * with an event channel of its own (so that a disconnect or a device
 * removal wakes exactly the calls on that connection), one completion queue
 * behind a completion channel, and its registered message buffers. The
 * rdma_cm private data of connect and accept carries each side's receive
 * depth and feedback word (rdma_stream.c explains the credits).
 *
 * A listener's accept() polls its event channel's fd and a shutdown
 * eventfd; a connect is bounded by its timeout through every step.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util/hostport.h"
#include "rdma_priv.h"

#define RDMA_LISTEN_BACKLOG 128
#define RDMA_ACCEPT_ESTABLISH_MS 10000
#define RDMA_CONNECT_DEFAULT_MS 30000

struct rdma_listener {
	struct tern_listener base; /* first */
	/* immutable after listen() */
	struct rdma_event_channel *ech;
	struct rdma_cm_id *id;
	int wake_fd;
	char name[300];
	/* any thread: set once, by shutdown() */
	bool shut;
};

static const struct tern_listener_ops rdma_listener_ops;
int rdma_conn_post_recvs(struct rdma_conn *c);

static const char *errstr(int code)
{
	static __thread char buf[64];

	return strerror_r(code < 0 ? -code : code, buf, sizeof(buf));
}

static int set_nonblock(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	return flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) ? -errno : 0;
}

/* "rdma:10.77.1.1:4444", "rdma:[fe80::1]:4444" */
static void sockaddr_uri(const struct sockaddr *sa, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN] = "?";
	uint16_t port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		snprintf(buf, size, "rdma:%s:%u", host, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		snprintf(buf, size, "rdma:[%s]:%u", host, port);
	} else {
		snprintf(buf, size, "rdma:?");
	}
}

static struct rdma_event_channel *channel_new(void)
{
	struct rdma_event_channel *ech = rdma_create_event_channel();

	if (!ech)
		return NULL;
	if (set_nonblock(ech->fd)) {
		rdma_destroy_event_channel(ech);
		return NULL;
	}
	rdma_obj_add(RDMA_OBJ_CHANNEL, 1);
	return ech;
}

static void channel_free(struct rdma_event_channel *ech)
{
	if (!ech)
		return;
	rdma_destroy_event_channel(ech);
	rdma_obj_add(RDMA_OBJ_CHANNEL, -1);
}

static void id_free(struct rdma_cm_id *id)
{
	if (id && !rdma_destroy_id(id))
		rdma_obj_add(RDMA_OBJ_CM_ID, -1);
}

/*
 * Wait for event @want on @ech by @deadline; any other event that means
 * failure ends the wait with a message. @ret_priv: the peer's private data.
 */
static int cm_wait(struct rdma_event_channel *ech, int wake_fd, uint64_t deadline,
		   enum rdma_cm_event_type want, struct rdma_priv *ret_priv, const char *who,
		   struct tern_error *err)
{
	struct pollfd pfd[2] = {{.fd = ech->fd, .events = POLLIN},
				{.fd = wake_fd, .events = POLLIN}};
	struct rdma_cm_event *ev;
	int ret;

	for (;;) {
		uint64_t now = tern_now_ms();
		enum rdma_cm_event_type type;
		int status;

		if (!rdma_get_cm_event(ech, &ev)) {
			type = ev->event;
			status = ev->status;
			if (type == want) {
				ret = 0;
				if (ret_priv)
					ret = rdma_priv_decode(ev->param.conn.private_data,
							       ev->param.conn.private_data_len,
							       ret_priv, err);
				rdma_ack_cm_event(ev);
				if (ret)
					return tern_error_prefix(err, "%s", who);
				return 0;
			}
			rdma_ack_cm_event(ev);
			switch (type) {
			case RDMA_CM_EVENT_ADDR_ERROR:
			case RDMA_CM_EVENT_ROUTE_ERROR:
			case RDMA_CM_EVENT_UNREACHABLE:
			case RDMA_CM_EVENT_CONNECT_ERROR:
			case RDMA_CM_EVENT_REJECTED:
			case RDMA_CM_EVENT_DISCONNECTED:
			case RDMA_CM_EVENT_DEVICE_REMOVAL:
				ret = type == RDMA_CM_EVENT_REJECTED	 ? -ECONNREFUSED
				      : type == RDMA_CM_EVENT_ADDR_ERROR ? -EHOSTUNREACH
									 : -ECONNRESET;
				return tern_error_set(err, ret, "%s: %s (status %d%s%s)", who,
						      rdma_event_str(type), status,
						      status < 0 ? ": " : "",
						      status < 0 ? errstr(status) : "");
			default:
				continue;
			}
		}
		if (errno != EAGAIN)
			return tern_error_set(err, -errno, "%s: rdma_get_cm_event: %s", who,
					      errstr(errno));
		if (now >= deadline)
			return tern_error_set(err, -ETIMEDOUT, "%s: no %s within the timeout", who,
					      rdma_event_str(want));
		ret = poll(pfd, wake_fd >= 0 ? 2 : 1, (int)MIN(deadline - now, 1000));
		if (ret < 0 && errno != EINTR)
			return tern_error_set(err, -errno, "%s: poll: %s", who, errstr(errno));
		if (ret > 0 && wake_fd >= 0 && pfd[1].revents)
			return tern_error_set(err, -ECANCELED, "%s: cancelled (shut down)", who);
	}
}

static struct rdma_conn *conn_alloc(void)
{
	struct rdma_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->base.ops = &rdma_conn_ops;
	c->cur = -1;
	pthread_mutex_init(&c->lock, NULL);
	c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	c->kick_fd[0] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	c->kick_fd[1] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->wake_fd < 0 || c->kick_fd[0] < 0 || c->kick_fd[1] < 0) {
		for (int i = 0; i < 2; i++)
			if (c->kick_fd[i] >= 0)
				close(c->kick_fd[i]);
		if (c->wake_fd >= 0)
			close(c->wake_fd);
		free(c);
		return NULL;
	}
	return c;
}

/* Verbs objects and buffers of a connection whose cm id has a device. */
static int conn_setup(struct rdma_conn *c, struct tern_error *err)
{
	struct ibv_qp_init_attr qa = {0};
	const char *what;

	what = "protection domain";
	c->pd = rdma_pd_get(c->id->verbs);
	if (!c->pd)
		goto err;
	what = "completion channel";
	c->cch = ibv_create_comp_channel(c->id->verbs);
	if (!c->cch)
		goto err;
	rdma_obj_add(RDMA_OBJ_CHANNEL, 1);
	if (set_nonblock(c->cch->fd))
		goto err;
	what = "completion queue";
	c->cq = ibv_create_cq(c->id->verbs, RDMA_SQ_DEPTH + RDMA_RECV_DEPTH + 8, NULL, c->cch, 0);
	if (!c->cq)
		goto err;
	rdma_obj_add(RDMA_OBJ_CQ, 1);
	qa.send_cq = c->cq;
	qa.recv_cq = c->cq;
	qa.qp_type = IBV_QPT_RC;
	qa.cap.max_send_wr = RDMA_SQ_DEPTH;
	qa.cap.max_recv_wr = RDMA_RECV_DEPTH;
	qa.cap.max_send_sge = RDMA_MAX_SGE;
	qa.cap.max_recv_sge = 1;
	what = "queue pair";
	if (rdma_create_qp(c->id, c->pd, &qa))
		goto err;
	rdma_obj_add(RDMA_OBJ_QP, 1);
	c->qp = c->id->qp;
	c->max_sge = MAX(1u, MIN(qa.cap.max_send_sge, RDMA_MAX_SGE));

	what = "message buffers";
	c->rx_mem = aligned_alloc(4096, (size_t)RDMA_RECV_DEPTH * RDMA_BUF_SIZE);
	c->tx_mem = aligned_alloc(4096, (size_t)RDMA_SEND_BUFS * RDMA_BUF_SIZE);
	c->fb_mem = aligned_alloc(4096, 8192);
	if (!c->rx_mem || !c->tx_mem || !c->fb_mem) {
		errno = ENOMEM;
		goto err;
	}
	memset(c->fb_mem, 0, 8192);
	rdma_feedback_encode(&(struct rdma_feedback){0}, c->fb_mem);
	c->rx_mr = rdma_reg(c->pd, c->rx_mem, (size_t)RDMA_RECV_DEPTH * RDMA_BUF_SIZE,
			    IBV_ACCESS_LOCAL_WRITE);
	if (!c->rx_mr)
		goto err_reg;
	c->tx_mr = rdma_reg(c->pd, c->tx_mem, (size_t)RDMA_SEND_BUFS * RDMA_BUF_SIZE, 0);
	if (!c->tx_mr)
		goto err_reg;
	/* the one remotely writable buffer besides guest RAM and the ring */
	c->fb_in_mr =
	    rdma_reg(c->pd, c->fb_mem, 4096, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
	if (!c->fb_in_mr)
		goto err_reg;
	c->fb_out_mr = rdma_reg(c->pd, c->fb_mem + 4096, 4096, 0);
	if (!c->fb_out_mr)
		goto err_reg;
	if (rdma_conn_post_recvs(c))
		return tern_error_set(err, -EIO, "%s", c->base.detail);
	return 0;

err_reg : {
	char msg[200];
	int code = -errno;

	rdma_reg_error(msg, sizeof(msg), code, "message buffers",
		       (uint64_t)(RDMA_RECV_DEPTH + RDMA_SEND_BUFS) * RDMA_BUF_SIZE, NULL);
	return tern_error_set(err, code, "%s", msg);
}
err:
	return tern_error_set(err, errno ? -errno : -ENOMEM, "creating the %s failed: %s", what,
			      errstr(errno ? errno : ENOMEM));
}

static void conn_priv(const struct rdma_conn *c, uint8_t *buf)
{
	struct rdma_priv p = {.recv_depth = RDMA_RECV_DEPTH,
			      .buf_size = RDMA_BUF_SIZE,
			      .fb_addr = (uintptr_t)c->fb_mem,
			      .fb_rkey = c->fb_in_mr->rkey};

	rdma_priv_encode(&p, buf);
}

static void conn_param(struct rdma_conn_param *cp, const uint8_t *priv)
{
	memset(cp, 0, sizeof(*cp));
	cp->private_data = priv;
	cp->private_data_len = RDMA_PRIV_LEN;
	cp->responder_resources = 1;
	cp->initiator_depth = 1;
	cp->retry_count = 7;
	cp->rnr_retry_count = 7;
}

void rdma_conn_free(struct rdma_conn *c)
{
	if (!c)
		return;
	rdma_place_free(c);
	if (c->qp) {
		rdma_disconnect(c->id);
		rdma_destroy_qp(c->id);
		rdma_obj_add(RDMA_OBJ_QP, -1);
	}
	rdma_dereg(c->rx_mr);
	rdma_dereg(c->tx_mr);
	rdma_dereg(c->fb_in_mr);
	rdma_dereg(c->fb_out_mr);
	if (c->cq) {
		ibv_destroy_cq(c->cq);
		rdma_obj_add(RDMA_OBJ_CQ, -1);
	}
	if (c->cch) {
		ibv_destroy_comp_channel(c->cch);
		rdma_obj_add(RDMA_OBJ_CHANNEL, -1);
	}
	rdma_pd_put(c->pd);
	id_free(c->id);
	channel_free(c->ech);
	free(c->rx_mem);
	free(c->tx_mem);
	free(c->fb_mem);
	if (c->wake_fd >= 0)
		close(c->wake_fd);
	close(c->kick_fd[0]);
	close(c->kick_fd[1]);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static int resolve(const char *uri_addr, bool passive, struct addrinfo **ret, struct hostport *hp,
		   struct tern_error *err)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0)};
	const char *why = uri_addr ? hostport_split(uri_addr, hp) : "no address";
	int rc;

	if (why)
		return tern_error_set(err, -EINVAL, "rdma: bad address \"%s\": %s",
				      uri_addr ? uri_addr : "", why);
	rc = getaddrinfo(hp->host, hp->port, &hints, ret);
	if (rc)
		return tern_error_set(err, -EADDRNOTAVAIL, "rdma:%s: %s", uri_addr,
				      gai_strerror(rc));
	return 0;
}

static int no_device(struct tern_error *err, int code, const char *host, const char *call)
{
	char devs[128];

	rdma_device_names(devs, sizeof(devs));
	return tern_error_set(err, code,
			      "no RDMA device serves %s (%s: %s); devices on this host: %s", host,
			      call, errstr(code), devs);
}

static int rdma_connect_uri(const char *addr, int timeout_ms, int cancel_fd,
			    struct tern_conn **ret_conn, struct tern_error *err)
{
	uint64_t deadline =
	    tern_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : RDMA_CONNECT_DEFAULT_MS);
	int step_ms = timeout_ms > 0 ? timeout_ms : RDMA_CONNECT_DEFAULT_MS;
	uint8_t priv[RDMA_PRIV_LEN];
	struct rdma_conn_param cp;
	struct addrinfo *ai;
	struct rdma_conn *c;
	struct hostport hp;
	char who[300];
	int ret;

	ret = resolve(addr, false, &ai, &hp, err);
	if (ret)
		return ret;
	snprintf(who, sizeof(who), "rdma:%s", addr);
	c = conn_alloc();
	if (!c) {
		freeaddrinfo(ai);
		return tern_error_set(err, -ENOMEM, "%s: out of memory", who);
	}
	rdma_str_copy(c->base.peer, sizeof(c->base.peer), who);
	c->ech = channel_new();
	if (!c->ech) {
		ret = tern_error_set(err, -errno, "%s: rdma_create_event_channel: %s", who,
				     errstr(errno));
		goto err_conn;
	}
	if (rdma_create_id(c->ech, &c->id, c, RDMA_PS_TCP)) {
		ret = tern_error_set(err, -errno, "%s: rdma_create_id: %s", who, errstr(errno));
		goto err_conn;
	}
	rdma_obj_add(RDMA_OBJ_CM_ID, 1);
	if (rdma_resolve_addr(c->id, NULL, ai->ai_addr, step_ms)) {
		ret = no_device(err, -errno, hp.host, "rdma_resolve_addr");
		goto err_conn;
	}
	ret = cm_wait(c->ech, cancel_fd, deadline, RDMA_CM_EVENT_ADDR_RESOLVED, NULL, who, err);
	if (ret)
		goto err_conn;
	if (!c->id->verbs) {
		ret = no_device(err, -ENODEV, hp.host, "rdma_resolve_addr");
		goto err_conn;
	}
	if (rdma_resolve_route(c->id, step_ms)) {
		ret = tern_error_set(err, -errno, "%s: rdma_resolve_route: %s", who, errstr(errno));
		goto err_conn;
	}
	ret = cm_wait(c->ech, cancel_fd, deadline, RDMA_CM_EVENT_ROUTE_RESOLVED, NULL, who, err);
	if (ret)
		goto err_conn;
	ret = conn_setup(c, err);
	if (ret) {
		tern_error_prefix(err, "%s", who);
		goto err_conn;
	}
	conn_priv(c, priv);
	conn_param(&cp, priv);
	if (rdma_connect(c->id, &cp)) {
		ret = tern_error_set(err, -errno, "%s: rdma_connect: %s", who, errstr(errno));
		goto err_conn;
	}
	ret = cm_wait(c->ech, cancel_fd, deadline, RDMA_CM_EVENT_ESTABLISHED, &c->peer, who, err);
	if (ret)
		goto err_conn;
	sockaddr_uri(rdma_get_peer_addr(c->id), c->base.peer, sizeof(c->base.peer));
	freeaddrinfo(ai);
	*ret_conn = &c->base;
	return 0;

err_conn:
	rdma_conn_free(c);
	freeaddrinfo(ai);
	return ret;
}

static int rdma_listen_uri(const char *addr, struct tern_listener **ret_listener,
			   struct tern_error *err)
{
	struct rdma_listener *l;
	struct addrinfo *ai;
	struct hostport hp;
	int ret;

	ret = resolve(addr, true, &ai, &hp, err);
	if (ret)
		return ret;
	l = calloc(1, sizeof(*l));
	if (!l) {
		freeaddrinfo(ai);
		return tern_error_set(err, -ENOMEM, "rdma:%s: out of memory", addr);
	}
	l->base.ops = &rdma_listener_ops;
	l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	l->ech = channel_new();
	if (l->wake_fd < 0 || !l->ech) {
		ret = tern_error_set(err, -errno, "rdma:%s: %s", addr, errstr(errno));
		goto err_listener;
	}
	if (rdma_create_id(l->ech, &l->id, l, RDMA_PS_TCP)) {
		ret =
		    tern_error_set(err, -errno, "rdma:%s: rdma_create_id: %s", addr, errstr(errno));
		goto err_listener;
	}
	rdma_obj_add(RDMA_OBJ_CM_ID, 1);
	if (rdma_bind_addr(l->id, ai->ai_addr)) {
		ret = no_device(err, -errno, hp.host, "rdma_bind_addr");
		tern_error_prefix(err, "rdma:%s", addr);
		goto err_listener;
	}
	if (rdma_listen(l->id, RDMA_LISTEN_BACKLOG)) {
		ret = tern_error_set(err, -errno, "rdma:%s: rdma_listen: %s", addr, errstr(errno));
		goto err_listener;
	}
	if (strchr(hp.host, ':'))
		snprintf(l->name, sizeof(l->name), "rdma:[%s]:%u", hp.host,
			 ntohs(rdma_get_src_port(l->id)));
	else
		snprintf(l->name, sizeof(l->name), "rdma:%s:%u", hp.host,
			 ntohs(rdma_get_src_port(l->id)));
	freeaddrinfo(ai);
	*ret_listener = &l->base;
	return 0;

err_listener:
	freeaddrinfo(ai);
	l->base.ops->close(&l->base);
	return ret;
}

/* A connection request on @l: the new id becomes a connection of its own. */
static int accept_request(struct rdma_listener *l, struct rdma_cm_id *id,
			  const struct rdma_priv *peer, struct tern_conn **ret_conn,
			  struct tern_error *err)
{
	uint8_t priv[RDMA_PRIV_LEN];
	struct rdma_conn_param cp;
	struct rdma_conn *c = conn_alloc();
	int ret;

	if (!c) {
		rdma_reject(id, NULL, 0);
		id_free(id);
		return tern_error_set(err, -ENOMEM, "%s: out of memory", l->name);
	}
	c->id = id;
	c->peer = *peer;
	sockaddr_uri(rdma_get_peer_addr(id), c->base.peer, sizeof(c->base.peer));
	c->ech = channel_new();
	if (!c->ech || rdma_migrate_id(id, c->ech)) {
		ret =
		    tern_error_set(err, -errno, "%s: rdma_migrate_id: %s", l->name, errstr(errno));
		rdma_reject(id, NULL, 0);
		goto err_conn;
	}
	ret = conn_setup(c, err);
	if (ret) {
		rdma_reject(id, NULL, 0);
		tern_error_prefix(err, "%s: accept %s", l->name, c->base.peer);
		goto err_conn;
	}
	conn_priv(c, priv);
	conn_param(&cp, priv);
	if (rdma_accept(id, &cp)) {
		ret = tern_error_set(err, -errno, "%s: rdma_accept: %s", l->name, errstr(errno));
		goto err_conn;
	}
	ret = cm_wait(c->ech, l->wake_fd, tern_now_ms() + RDMA_ACCEPT_ESTABLISH_MS,
		      RDMA_CM_EVENT_ESTABLISHED, NULL, c->base.peer, err);
	if (ret)
		goto err_conn;
	*ret_conn = &c->base;
	return 0;

err_conn:
	rdma_conn_free(c);
	return ret;
}

static int rdma_listener_accept(struct tern_listener *tl, int timeout_ms,
				struct tern_conn **ret_conn, struct tern_error *err)
{
	struct rdma_listener *l = (struct rdma_listener *)tl;
	uint64_t deadline = tern_now_ms() + (timeout_ms > 0 ? (uint64_t)timeout_ms : 0);
	struct pollfd pfd[2] = {{.fd = l->ech->fd, .events = POLLIN},
				{.fd = l->wake_fd, .events = POLLIN}};
	struct rdma_cm_event *ev;

	for (;;) {
		int n, wait = -1;

		if (__atomic_load_n(&l->shut, __ATOMIC_ACQUIRE))
			return tern_error_set(err, -ECANCELED, "%s: accept cancelled (shut down)",
					      l->name);
		if (!rdma_get_cm_event(l->ech, &ev)) {
			struct rdma_cm_id *id = ev->id;
			struct tern_error perr = {0};
			struct rdma_priv peer;
			int ret;

			if (ev->event != RDMA_CM_EVENT_CONNECT_REQUEST) {
				rdma_ack_cm_event(ev);
				continue;
			}
			ret = rdma_priv_decode(ev->param.conn.private_data,
					       ev->param.conn.private_data_len, &peer, &perr);
			rdma_ack_cm_event(ev);
			rdma_obj_add(RDMA_OBJ_CM_ID, 1);
			if (ret) {
				/* not a tern peer: turn it away, keep listening */
				rdma_reject(id, NULL, 0);
				id_free(id);
				continue;
			}
			return accept_request(l, id, &peer, ret_conn, err);
		}
		if (errno != EAGAIN)
			return tern_error_set(err, -errno, "%s: accept: %s", l->name,
					      errstr(errno));
		if (timeout_ms >= 0) {
			uint64_t now = tern_now_ms();

			if (now >= deadline)
				return tern_error_set(err, -ETIMEDOUT,
						      "%s: accept: no connection within %d ms",
						      l->name, timeout_ms);
			wait = (int)MIN(deadline - now, (uint64_t)INT32_MAX);
		}
		n = poll(pfd, 2, wait);
		if (n < 0 && errno != EINTR)
			return tern_error_set(err, -errno, "%s: accept: poll: %s", l->name,
					      errstr(errno));
	}
}

static int rdma_listener_uri(struct tern_listener *tl, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s", ((struct rdma_listener *)tl)->name);

	return n >= 0 && (size_t)n < len ? 0 : -ENOSPC;
}

static void rdma_listener_shutdown(struct tern_listener *tl)
{
	struct rdma_listener *l = (struct rdma_listener *)tl;
	uint64_t one = 1;

	if (__atomic_exchange_n(&l->shut, true, __ATOMIC_ACQ_REL))
		return;
	if (write(l->wake_fd, &one, sizeof(one)) < 0) {
		/* cannot fail on a fresh eventfd; the flag covers later calls */
	}
}

static void rdma_listener_close(struct tern_listener *tl)
{
	struct rdma_listener *l = (struct rdma_listener *)tl;

	if (!l)
		return;
	id_free(l->id);
	channel_free(l->ech);
	if (l->wake_fd >= 0)
		close(l->wake_fd);
	free(l);
}

static const struct tern_listener_ops rdma_listener_ops = {
    .accept = rdma_listener_accept,
    .uri = rdma_listener_uri,
    .shutdown = rdma_listener_shutdown,
    .close = rdma_listener_close,
};

bool rdma_available(void)
{
	return true;
}

const struct tern_transport_ops rdma_transport_ops = {
    .scheme = "rdma",
    .listen = rdma_listen_uri,
    .connect = rdma_connect_uri,
};
