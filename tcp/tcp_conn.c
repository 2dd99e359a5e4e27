/* SPDX-License-Identifier: MIT */
/*
 * Stream-socket channels: TCP and Unix sockets behind the transport ops.
 *
 * The hot path is send_iov / recv_iov: a multifd packet is one iovec for
 * header and offsets plus one per 4 KiB guest page, sent straight from guest
 * RAM and received straight into it. Both are one sendmsg() / recvmsg() loop
 * over the caller's array: no allocation, no lock, no copy. recvmsg() uses
 * MSG_WAITALL so that the kernel fills the whole batch before it wakes us,
 * rather than returning a wakeup's worth at a time. sendmsg() uses
 * MSG_NOSIGNAL, so a peer that went away is -EPIPE, never SIGPIPE in the
 * VMM. A partial transfer that stops inside an entry patches that entry in
 * place and restores it before returning: the caller's array reads the same
 * after the call as before.
 *
 * Cancel: conn shutdown() is shutdown(2) with SHUT_RDWR, which wakes a
 * thread blocked in recvmsg() or sendmsg() on the socket; the flag set just
 * before it turns the resulting EOF or EPIPE into -ECANCELED. A listener has
 * no such wakeup, so accept() polls the listening socket together with an
 * eventfd that the listener's shutdown() makes readable for good.
 *
 * Silent peers: every TCP connection gets keepalive and TCP_USER_TIMEOUT
 * (io-timeout's default, 30 s) when it is made or accepted;
 * set_io_timeout() replaces them with the session's io-timeout and bounds
 * each write by it (SO_SNDTIMEO: no byte accepted for that long is
 * -ETIMEDOUT).
 *
 * Zero-copy (zero-copy-send): set_zerocopy() turns SO_ZEROCOPY on, and
 * send_pages() then writes a packet in two sendmsg() calls: header and
 * offsets copied, with MSG_MORE so that they leave in the same segments as
 * the pages, then the pages with MSG_ZEROCOPY. The header buffer is the
 * caller's and reused for the next packet, so it must not be referenced
 * after the call; copying 4 KiB against 2 MiB of pages costs less than a
 * ring of header buffers kept until their completion would, and MSG_ZEROCOPY
 * does not pay below about 10 KiB anyway. Only pages ever go zero-copy;
 * tcp_zc.c tracks them until the kernel lets go (send_wait()), and close()
 * with sends in flight resets the connection (SO_LINGER 0), which drops the
 * queued data rather than go on sending guest pages to a peer given up on.
 * The kernel holds references on the pages while it needs them, so nothing
 * here ever reads memory the caller freed.
 *
 * Socket buffers: TCP sockets keep the kernel's buffer autotuning (TCP_NODELAY
 * only). Setting SO_SNDBUF / SO_RCVBUF on a TCP socket locks its size and
 * turns autotuning off, and the request is capped at net.core.[rw]mem_max
 * (208 KiB on a stock kernel), whereas autotuning grows the buffers up to
 * net.ipv4.tcp_[rw]mem (4 and 6 MiB by default). Unix sockets have no
 * autotuning, so they ask for 4 MiB (capped by the same limits, harmlessly).
 */
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/util.h"
#include "tcp.h"
#include "tcp_rate.h"
#include "tcp_zc.h"

#ifndef MSG_ZEROCOPY
#define MSG_ZEROCOPY 0x4000000
#endif

#define TCP_LISTEN_BACKLOG 128
#define TCP_UNIX_SOCKBUF (4 << 20)
/* io-timeout's default (core/params.c), for a connection nobody set one on */
#define TCP_DEFAULT_IO_TIMEOUT_MS 30000
#define TCP_KEEPALIVE_PROBES 3

/* strerror() is not thread-safe; this is, for the one message it is in. */
#define TCP_STRERROR(e) strerror_r((e), (char[64]){""}, 64)

struct tcp_conn {
	struct tern_conn base; /* first: the ops get a struct tern_conn * */
	/* immutable after creation */
	int fd;
	/* any thread: set once, by shutdown() */
	bool shut;
	/* set before the I/O threads start (set_io_timeout, set_zerocopy);
	 * then the sending thread's (*zc's counters: anyone, atomics) */
	int io_timeout_ms;
	struct tcp_zc *zc; /* NULL: zero-copy off */
};

struct tcp_listener {
	struct tern_listener base; /* first */
	/* immutable after listen() */
	int fd;	     /* non-blocking */
	int wake_fd; /* eventfd, readable once shutdown() ran */
	int family;
	char name[128]; /* "tcp:127.0.0.1:4444", "unix:/run/x.sock" */
	/* unix: the socket file bind() created, unlinked by close() if still ours */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t dev;
	ino_t ino;
	/* any thread: set once, by shutdown() */
	bool shut;
};

static const struct tern_conn_ops tcp_conn_ops;
static const struct tern_listener_ops tcp_listener_ops;

/* "@fmt: strerror(-@code)" into @err; pass -errno as @code before anything else runs. */
static int __attribute__((format(printf, 3, 4)))
sys_error(struct tern_error *err, int code, const char *fmt, ...)
{
	char what[192];
	va_list ap;

	if (!err || err->code)
		return code;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return tern_error_set(err, code, "%s: %s", what, TCP_STRERROR(-code));
}

/* Copy @src into @dst, truncated to fit: names in messages only. */
static void str_copy(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* Milliseconds left until @deadline, or -1 (forever) when @timeout_ms < 0. */
static int time_left_ms(int timeout_ms, uint64_t deadline)
{
	uint64_t now;

	if (timeout_ms < 0)
		return -1;
	now = tern_now_ms();
	return now >= deadline ? 0 : (int)MIN(deadline - now, (uint64_t)INT32_MAX);
}

/* ---- the hot path -------------------------------------------------------- */

/* A position in the caller's iovec array; see the comment at the top. */
struct iov_cursor {
	struct iovec *iov;
	int cnt;
	struct iovec *patched; /* the entry changed in place, or NULL */
	struct iovec saved;    /* its original */
};

static inline void iov_cursor_advance(struct iov_cursor *cur, size_t n)
{
	while (cur->cnt && n >= cur->iov->iov_len) {
		n -= cur->iov->iov_len;
		if (cur->iov == cur->patched) {
			*cur->patched = cur->saved;
			cur->patched = NULL;
		}
		cur->iov++;
		cur->cnt--;
	}
	if (cur->cnt && n) {
		if (!cur->patched) {
			cur->saved = *cur->iov;
			cur->patched = cur->iov;
		}
		cur->iov->iov_base = (uint8_t *)cur->iov->iov_base + n;
		cur->iov->iov_len -= n;
	}
}

/* Skips leading empty entries, so that a transfer of 0 bytes means EOF. */
static inline void iov_cursor_init(struct iov_cursor *cur, struct iovec *iov, int cnt)
{
	cur->iov = iov;
	cur->cnt = cnt;
	cur->patched = NULL;
	iov_cursor_advance(cur, 0);
}

static inline void iov_cursor_fini(struct iov_cursor *cur)
{
	if (cur->patched)
		*cur->patched = cur->saved;
}

/* The error a failed transfer reports: a local shutdown() explains it. */
static int conn_io_error(struct tcp_conn *tc, int code)
{
	return __atomic_load_n(&tc->shut, __ATOMIC_ACQUIRE) ? -ECANCELED : code;
}

/*
 * Move all of @iov: one sendmsg() or recvmsg() loop, no allocation, no lock.
 * A peer that closed is -EPIPE; an I/O after our own shutdown is -ECANCELED.
 * @flags: more sendmsg() flags; with MSG_ZEROCOPY each call that moves bytes
 * is one zero-copy send for tcp_zc.c, and one refused with ENOBUFS sends
 * the rest by copy.
 */
static int tcp_conn_xfer_iov(struct tcp_conn *tc, struct iovec *iov, int iovcnt, bool send,
			     int flags)
{
	struct iov_cursor cur;
	int ret = 0;

	if (UNLIKELY(iovcnt < 0))
		return -EINVAL;
	iov_cursor_init(&cur, iov, iovcnt);
	while (cur.cnt) {
		struct msghdr msg = {.msg_iov = cur.iov,
				     .msg_iovlen = (size_t)MIN(cur.cnt, IOV_MAX)};
		ssize_t n;

		if (flags & MSG_ZEROCOPY) {
			ret = tcp_zc_make_room(tc->zc, tc->fd, &tc->shut, tc->io_timeout_ms);
			if (ret) {
				ret = conn_io_error(tc, ret);
				break;
			}
		}
		n = send ? sendmsg(tc->fd, &msg, MSG_NOSIGNAL | flags)
			 : recvmsg(tc->fd, &msg, MSG_WAITALL);
		if (UNLIKELY(n <= 0)) {
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == ENOBUFS && (flags & MSG_ZEROCOPY)) {
				tcp_zc_nobufs(tc->zc, tc->fd);
				flags &= ~MSG_ZEROCOPY;
				continue;
			}
			/* SO_SNDTIMEO ran out with nothing sent (a partial
			 * send returns its count, and the next call starts a
			 * fresh timeout): no progress for the io timeout. */
			if (n < 0 && send && (errno == EAGAIN || errno == EWOULDBLOCK))
				errno = ETIMEDOUT;
			ret = conn_io_error(tc, n < 0 ? -errno : send ? -EIO : -EPIPE);
			break;
		}
		if (flags & MSG_ZEROCOPY)
			tcp_zc_sent(tc->zc, (size_t)n);
		iov_cursor_advance(&cur, (size_t)n);
	}
	iov_cursor_fini(&cur);
	return ret;
}

static int tcp_conn_send_iov(struct tern_conn *c, struct iovec *iov, int iovcnt)
{
	return tcp_conn_xfer_iov((struct tcp_conn *)c, iov, iovcnt, true, 0);
}

/* See "Zero-copy" at the top. */
static int tcp_conn_send_pages(struct tern_conn *c, struct iovec *iov, int iovcnt)
{
	struct tcp_conn *tc = (struct tcp_conn *)c;
	int ret;

	if (!tc->zc || iovcnt < 2)
		return tcp_conn_xfer_iov(tc, iov, iovcnt, true, 0);
	ret = tcp_conn_xfer_iov(tc, iov, 1, true, MSG_MORE);
	if (ret)
		return ret;
	return tcp_conn_xfer_iov(tc, iov + 1, iovcnt - 1, true, MSG_ZEROCOPY);
}

static int tcp_conn_send_wait(struct tern_conn *c)
{
	struct tcp_conn *tc = (struct tcp_conn *)c;

	if (!tc->zc)
		return 0;
	return conn_io_error(tc, tcp_zc_wait_all(tc->zc, tc->fd, &tc->shut, tc->io_timeout_ms));
}

static int tcp_conn_set_zerocopy(struct tern_conn *c)
{
	struct tcp_conn *tc = (struct tcp_conn *)c;

	if (tc->zc)
		return 0;
	return tcp_zc_new(tc->fd, &tc->zc);
}

static int tcp_conn_recv_iov(struct tern_conn *c, struct iovec *iov, int iovcnt)
{
	return tcp_conn_xfer_iov((struct tcp_conn *)c, iov, iovcnt, false, 0);
}

static int tcp_conn_recv(struct tern_conn *c, void *buf, size_t len)
{
	struct iovec iov = {.iov_base = buf, .iov_len = len};

	return tcp_conn_recv_iov(c, &iov, 1);
}

/* Thread-safe and idempotent; the fd stays open until close(). */
static void tcp_conn_shutdown(struct tern_conn *c)
{
	struct tcp_conn *tc = (struct tcp_conn *)c;

	if (__atomic_exchange_n(&tc->shut, true, __ATOMIC_ACQ_REL))
		return;
	shutdown(tc->fd, SHUT_RDWR);
}

static void tcp_conn_close(struct tern_conn *c)
{
	struct tcp_conn *tc = (struct tcp_conn *)c;

	if (!tc)
		return;
	if (tc->zc && tc->fd >= 0 && tcp_zc_busy(tc->zc, tc->fd)) {
		/* sends still in flight: a failure or a cancel. Reset rather
		 * than let the kernel go on sending the pages (see the top). */
		struct linger lg = {.l_onoff = 1, .l_linger = 0};

		(void)setsockopt(tc->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	if (tc->fd >= 0)
		close(tc->fd);
	tcp_zc_free(tc->zc);
	free(tc);
}

static void tcp_conn_xport_stats(struct tern_conn *c, struct tern_xport_stats *st)
{
	struct tcp_conn *tc = (struct tcp_conn *)c;

	if (tc->zc)
		tcp_zc_stats(tc->zc, st);
}

static uint64_t tcp_conn_delivery_rate(struct tern_conn *c, bool *app_limited)
{
	return tcp_fd_delivery_rate(((struct tcp_conn *)c)->fd, app_limited);
}

/*
 * Liveness, TCP only: keepalive probes a connection idle for half of
 * @timeout_ms, then TCP_KEEPALIVE_PROBES times over the other half, so a
 * peer host that vanished is noticed after about @timeout_ms even while
 * nothing is sent; TCP_USER_TIMEOUT gives up on data left unacknowledged
 * (or a window left shut) as long. Keepalive counts whole seconds, at least
 * one each.
 */
static int sock_set_liveness(int fd, int timeout_ms)
{
	int one = 1, cnt = TCP_KEEPALIVE_PROBES;
	int idle = MAX(1, timeout_ms / 2000);
	int intvl = MAX(1, timeout_ms / (2000 * TCP_KEEPALIVE_PROBES));
	unsigned int user = (unsigned int)timeout_ms;

	if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) ||
	    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user, sizeof(user)))
		return -errno;
	return 0;
}

static bool sock_is_inet(int fd)
{
	struct sockaddr_storage ss = {0};
	socklen_t sl = sizeof(ss);

	return !getsockname(fd, (struct sockaddr *)&ss, &sl) &&
	       (ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
}

/*
 * Writes are bounded with SO_SNDTIMEO rather than a poll() before each
 * write: the hot path stays one sendmsg() per packet, and the kernel's
 * timeout already means "no byte accepted for this long" -- a sendmsg()
 * that moved some bytes returns their count, and the loop's next call
 * starts a fresh timeout (tcp_conn_xfer_iov()).
 */
static int tcp_conn_set_io_timeout(struct tern_conn *c, int timeout_ms)
{
	struct tcp_conn *tc = (struct tcp_conn *)c;
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};

	if (timeout_ms <= 0)
		return -EINVAL;
	if (setsockopt(tc->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)))
		return -errno;
	tc->io_timeout_ms = timeout_ms;
	return sock_is_inet(tc->fd) ? sock_set_liveness(tc->fd, timeout_ms) : 0;
}

/*
 * The read deadline lives here, and only here: SO_RCVTIMEO. A recvmsg() that
 * gets no byte in time fails with EAGAIN, which tcp_conn_xfer_iov() passes
 * on as -EAGAIN; one that got part of its bytes returns them and the loop's
 * next call starts the clock again. No poll() per read on the hot path, and
 * shutdown() still wakes the read for cancel.
 */
static int tcp_conn_set_recv_timeout(struct tern_conn *c, int timeout_ms)
{
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};

	if (timeout_ms < 0)
		return -EINVAL;
	if (setsockopt(((struct tcp_conn *)c)->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)))
		return -errno;
	return 0;
}

static const struct tern_conn_ops tcp_conn_ops = {
    .send_iov = tcp_conn_send_iov,
    .recv = tcp_conn_recv,
    .recv_iov = tcp_conn_recv_iov,
    .shutdown = tcp_conn_shutdown,
    .close = tcp_conn_close,
    .delivery_rate = tcp_conn_delivery_rate,
    .set_recv_timeout = tcp_conn_set_recv_timeout,
    .set_io_timeout = tcp_conn_set_io_timeout,
    .set_zerocopy = tcp_conn_set_zerocopy,
    .send_pages = tcp_conn_send_pages,
    .send_wait = tcp_conn_send_wait,
    .xport_stats = tcp_conn_xport_stats,
};

/* ---- data connections ---------------------------------------------------- */

/* Options every data connection gets, then blocking mode. */
static int sock_setup_data(int fd, const char *peer, struct tern_error *err)
{
	struct sockaddr_storage ss = {0};
	socklen_t sl = sizeof(ss);
	int one = 1, size = TCP_UNIX_SOCKBUF, flags, ret;

	if (getsockname(fd, (struct sockaddr *)&ss, &sl))
		return sys_error(err, -errno, "%s: getsockname", peer);
	if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
		if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
			return sys_error(err, -errno, "%s: set TCP_NODELAY", peer);
		/* io-timeout's default, until the owner sets its own: no
		 * channel of either side waits on a silent host for ever */
		ret = sock_set_liveness(fd, TCP_DEFAULT_IO_TIMEOUT_MS);
		if (ret)
			return sys_error(err, ret, "%s: set keepalive", peer);
	} else {
		/* Best effort: the kernel caps both at net.core.[rw]mem_max. */
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	}
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK))
		return sys_error(err, -errno, "%s: set blocking mode", peer);
	return 0;
}

/* @fd: consumed. Applies the data-socket options. */
static int conn_new(int fd, const char *peer, struct tern_conn **ret_conn, struct tern_error *err)
{
	struct tcp_conn *tc;
	int ret;

	ret = sock_setup_data(fd, peer, err);
	if (ret)
		goto err_fd;
	tc = calloc(1, sizeof(*tc));
	if (!tc) {
		ret = tern_error_set(err, -ENOMEM, "%s: out of memory", peer);
		goto err_fd;
	}
	tc->base.ops = &tcp_conn_ops;
	str_copy(tc->base.peer, sizeof(tc->base.peer), peer);
	tc->fd = fd;
	tc->io_timeout_ms = TCP_DEFAULT_IO_TIMEOUT_MS;
	*ret_conn = &tc->base;
	return 0;

err_fd:
	close(fd);
	return ret;
}

int tcp_conn_from_fd(int fd, const char *peer, struct tern_conn **ret_conn, struct tern_error *err)
{
	if (fd < 0)
		return tern_error_set(err, -EBADF, "tcp: bad fd %d", fd);
	return conn_new(fd, peer ? peer : "fd", ret_conn, err);
}

/* Put the URI of the far end of @fd in @buf, if it can be had; else leave @buf. */
static void peer_uri(int fd, char *buf, size_t size)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (!getpeername(fd, (struct sockaddr *)&ss, &sl))
		tcp_sockaddr_uri((struct sockaddr *)&ss, sl, buf, size);
}

static int gai_to_errno(int rc)
{
	switch (rc) {
	case EAI_SYSTEM:
		return errno ? -errno : -EIO;
	case EAI_MEMORY:
		return -ENOMEM;
	case EAI_AGAIN:
		return -EAGAIN;
	default:
		return -EADDRNOTAVAIL;
	}
}

/*
 * Connect a new non-blocking socket to @ai by @deadline (@timeout_ms < 0: no limit).
 * Returns the fd, still non-blocking, or a negative errno (-ETIMEDOUT).
 */
static int sock_connect_inet(const struct addrinfo *ai, int timeout_ms, uint64_t deadline,
			     int cancel_fd)
{
	struct pollfd pfd[2];
	int fd, rc, soerr = 0;
	socklen_t sl = sizeof(soerr);

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
	if (fd < 0)
		return -errno;
	if (!connect(fd, ai->ai_addr, ai->ai_addrlen))
		return fd;
	if (errno != EINPROGRESS) {
		rc = -errno;
		goto err_fd;
	}
	pfd[0] = (struct pollfd){.fd = fd, .events = POLLOUT};
	pfd[1] = (struct pollfd){.fd = cancel_fd, .events = POLLIN};
	for (;;) {
		rc = poll(pfd, cancel_fd >= 0 ? 2 : 1, time_left_ms(timeout_ms, deadline));
		if (rc > 0 && cancel_fd >= 0 && pfd[1].revents) {
			rc = -ECANCELED;
			goto err_fd;
		}
		if (rc > 0)
			break;
		if (rc == 0) {
			rc = -ETIMEDOUT;
			goto err_fd;
		}
		if (errno != EINTR) {
			rc = -errno;
			goto err_fd;
		}
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl)) {
		rc = -errno;
		goto err_fd;
	}
	if (soerr) {
		rc = -soerr;
		goto err_fd;
	}
	return fd;

err_fd:
	close(fd);
	return rc;
}

static int tcp_connect(const char *addr, int timeout_ms, int cancel_fd, struct tern_conn **ret_conn,
		       struct tern_error *err)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	uint64_t deadline = tern_now_ms() + (timeout_ms > 0 ? (uint64_t)timeout_ms : 0);
	struct addrinfo *res, *ai;
	char peer[sizeof(((struct tern_conn *)0)->peer)];
	struct hostport a;
	int ret, fd = -ENOENT;

	ret = tcp_addr_parse(addr, &a, err);
	if (ret)
		return ret;
	ret = getaddrinfo(a.host, a.port, &hints, &res);
	if (ret)
		return tern_error_set(err, gai_to_errno(ret), "connect to tcp:%s: %s", addr,
				      gai_strerror(ret));
	for (ai = res; ai; ai = ai->ai_next) {
		fd = sock_connect_inet(ai, timeout_ms, deadline, cancel_fd);
		if (fd >= 0 || fd == -ETIMEDOUT || fd == -ECANCELED)
			break;
	}
	freeaddrinfo(res);
	if (fd == -ECANCELED)
		return tern_error_set(err, fd, "connect to tcp:%s: cancelled", addr);
	if (fd == -ETIMEDOUT)
		return tern_error_set(err, fd, "connect to tcp:%s: timed out after %d ms", addr,
				      timeout_ms);
	if (fd < 0)
		return sys_error(err, fd, "connect to tcp:%s", addr);
	snprintf(peer, sizeof(peer), "tcp:%s", addr);
	peer_uri(fd, peer, sizeof(peer));
	return conn_new(fd, peer, ret_conn, err);
}

static int unix_addr_fill(const char *path, struct sockaddr_un *sun, struct tern_error *err)
{
	size_t len = path ? strlen(path) : 0;

	if (!len)
		return tern_error_set(err, -EINVAL, "unix: empty socket path");
	if (len >= sizeof(sun->sun_path))
		return tern_error_set(err, -ENAMETOOLONG, "unix: path longer than %zu bytes: %s",
				      sizeof(sun->sun_path) - 1, path);
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, path, len + 1);
	return 0;
}

/*
 * A Unix-socket connect does not complete in the background: with the
 * listener's backlog full, a non-blocking one fails with EAGAIN at once and
 * a blocking one waits for room, up to SO_SNDTIMEO. So connect blocking,
 * with the timeout as SO_SNDTIMEO, and clear it afterwards. (So @cancel_fd
 * is not watched: the wait is for a local listener's backlog only.)
 */
static int unix_connect(const char *path, int timeout_ms, int cancel_fd,
			struct tern_conn **ret_conn, struct tern_error *err)
{
	(void)cancel_fd;
	struct timeval tv = {.tv_sec = 0};
	struct sockaddr_un sun;
	char peer[sizeof(((struct tern_conn *)0)->peer)];
	int ret, fd;

	ret = unix_addr_fill(path, &sun, err);
	if (ret)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (timeout_ms == 0 ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0)
		return sys_error(err, -errno, "connect to unix:%s: socket", path);
	if (timeout_ms > 0) {
		tv.tv_sec = timeout_ms / 1000;
		tv.tv_usec = (timeout_ms % 1000) * 1000;
		if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)))
			goto err_errno;
	}
	while (connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EINPROGRESS) {
			ret = tern_error_set(err, -ETIMEDOUT,
					     "connect to unix:%s: timed out after %d ms "
					     "(listener backlog full)",
					     path, timeout_ms);
			goto err_fd;
		}
		goto err_errno;
	}
	if (timeout_ms > 0) {
		tv.tv_sec = 0;
		tv.tv_usec = 0;
		if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)))
			goto err_errno;
	}
	snprintf(peer, sizeof(peer), "unix:%s", path);
	return conn_new(fd, peer, ret_conn, err);

err_errno:
	ret = sys_error(err, -errno, "connect to unix:%s", path);
err_fd:
	close(fd);
	return ret;
}

/* ---- listeners ----------------------------------------------------------- */

/*
 * @fd: a bound, listening, non-blocking socket; consumed.
 * @path, @st: unix only: the socket file and its identity (else NULL).
 */
static int listener_new(int fd, const char *path, const struct stat *st,
			struct tern_listener **ret_listener, struct tern_error *err)
{
	struct sockaddr_storage ss = {0};
	socklen_t sl = sizeof(ss);
	struct tcp_listener *l;
	int ret;

	l = calloc(1, sizeof(*l));
	if (!l) {
		close(fd);
		return tern_error_set(err, -ENOMEM, "listen: out of memory");
	}
	l->base.ops = &tcp_listener_ops;
	l->fd = fd;
	l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->wake_fd < 0) {
		ret = sys_error(err, -errno, "listen: eventfd");
		goto err_free;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &sl)) {
		ret = sys_error(err, -errno, "listen: getsockname");
		goto err_free;
	}
	l->family = ss.ss_family;
	if (path) {
		str_copy(l->path, sizeof(l->path), path);
		l->dev = st->st_dev;
		l->ino = st->st_ino;
		snprintf(l->name, sizeof(l->name), "unix:%s", path);
	} else {
		tcp_sockaddr_uri((struct sockaddr *)&ss, sl, l->name, sizeof(l->name));
	}
	*ret_listener = &l->base;
	return 0;

err_free:
	l->base.ops->close(&l->base);
	return ret;
}

static int tcp_listen(const char *addr, struct tern_listener **ret_listener, struct tern_error *err)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *res, *ai;
	const char *what = "socket";
	struct hostport a;
	int ret, fd = -1, one = 1, code = -EADDRNOTAVAIL;

	ret = tcp_addr_parse(addr, &a, err);
	if (ret)
		return ret;
	ret = getaddrinfo(a.host, a.port, &hints, &res);
	if (ret)
		return tern_error_set(err, gai_to_errno(ret), "tcp: listen on %s: %s", addr,
				      gai_strerror(ret));
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			    ai->ai_protocol);
		what = "socket";
		if (fd < 0) {
			code = -errno;
			continue;
		}
		what = "setsockopt SO_REUSEADDR";
		if (!setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one))) {
			what = "bind";
			if (!bind(fd, ai->ai_addr, ai->ai_addrlen)) {
				what = "listen";
				if (!listen(fd, TCP_LISTEN_BACKLOG))
					break;
			}
		}
		code = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return sys_error(err, code, "tcp: %s %s", what, addr);
	return listener_new(fd, NULL, NULL, ret_listener, err);
}

static int unix_listen(const char *path, struct tern_listener **ret_listener,
		       struct tern_error *err)
{
	struct sockaddr_un sun;
	struct stat st;
	const char *what = "socket";
	int ret, fd;

	ret = unix_addr_fill(path, &sun, err);
	if (ret)
		return ret;
	/* A socket file left behind by a process that died: take its place.
	 * Never a live one: its owner would be cut off from its clients. */
	ret = unix_path_reclaim(path);
	if (ret == -EADDRINUSE)
		return tern_error_set(err, ret, "unix:%s: another process is listening there",
				      path);
	if (ret == -EEXIST)
		return tern_error_set(err, ret, "unix: bind %s: exists and is not a socket", path);
	if (ret)
		return sys_error(err, ret, "unix: take over the stale socket %s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		ret = -errno;
		goto err;
	}
	what = "bind";
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		ret = -errno;
		goto err_fd;
	}
	what = "listen";
	if (stat(path, &st) || listen(fd, TCP_LISTEN_BACKLOG)) {
		ret = -errno;
		goto err_unlink;
	}
	/* its close() unlinks the file; if it fails first, the file is still ours */
	ret = listener_new(fd, path, &st, ret_listener, err);
	if (ret)
		unlink(path);
	return ret;

err_unlink:
	unlink(path);
err_fd:
	close(fd);
err:
	return sys_error(err, ret, "unix: %s %s", what, path);
}

static int tcp_listener_accept(struct tern_listener *tl, int timeout_ms,
			       struct tern_conn **ret_conn, struct tern_error *err)
{
	struct tcp_listener *l = (struct tcp_listener *)tl;
	uint64_t deadline = tern_now_ms() + (timeout_ms > 0 ? (uint64_t)timeout_ms : 0);
	struct pollfd pfd[2] = {{.fd = l->fd, .events = POLLIN},
				{.fd = l->wake_fd, .events = POLLIN}};
	char peer[sizeof(((struct tern_conn *)0)->peer)];
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd, n;

	for (;;) {
		if (__atomic_load_n(&l->shut, __ATOMIC_ACQUIRE))
			return tern_error_set(err, -ECANCELED, "%s: accept cancelled (shut down)",
					      l->name);
		n = poll(pfd, 2, time_left_ms(timeout_ms, deadline));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return sys_error(err, -errno, "%s: accept: poll", l->name);
		}
		if (pfd[1].revents)
			continue; /* shut down: reported at the top */
		if (!n)
			return tern_error_set(err, -ETIMEDOUT,
					      "%s: accept: no connection within %d ms", l->name,
					      timeout_ms);
		sl = sizeof(ss);
		fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
		if (fd >= 0)
			break;
		/* Gone between poll() and accept(), or a signal: wait again. */
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED ||
		    errno == EINTR || errno == EPROTO)
			continue;
		return sys_error(err, -errno, "%s: accept", l->name);
	}
	if (l->family == AF_UNIX ||
	    tcp_sockaddr_uri((struct sockaddr *)&ss, sl, peer, sizeof(peer)) == -EAFNOSUPPORT)
		str_copy(peer, sizeof(peer), l->name);
	return conn_new(fd, peer, ret_conn, err);
}

static int tcp_listener_uri(struct tern_listener *tl, char *buf, size_t len)
{
	struct tcp_listener *l = (struct tcp_listener *)tl;
	int n = snprintf(buf, len, "%s", l->name);

	return n >= 0 && (size_t)n < len ? 0 : -ENOSPC;
}

/* Thread-safe and idempotent: wakes every accept() for good. */
static void tcp_listener_shutdown(struct tern_listener *tl)
{
	struct tcp_listener *l = (struct tcp_listener *)tl;
	uint64_t one = 1;

	if (__atomic_exchange_n(&l->shut, true, __ATOMIC_ACQ_REL))
		return;
	if (write(l->wake_fd, &one, sizeof(one)) < 0) {
		/* Cannot fail on a fresh eventfd; the flag covers later calls. */
	}
}

static void tcp_listener_close(struct tern_listener *tl)
{
	struct tcp_listener *l = (struct tcp_listener *)tl;
	struct stat st;

	if (!l)
		return;
	/* Remove the socket file only if it is still the one we bound. */
	if (l->path[0] && !stat(l->path, &st) && st.st_dev == l->dev && st.st_ino == l->ino)
		unlink(l->path);
	if (l->wake_fd >= 0)
		close(l->wake_fd);
	if (l->fd >= 0)
		close(l->fd);
	free(l);
}

static const struct tern_listener_ops tcp_listener_ops = {
    .accept = tcp_listener_accept,
    .uri = tcp_listener_uri,
    .shutdown = tcp_listener_shutdown,
    .close = tcp_listener_close,
};

const struct tern_transport_ops tcp_transport_ops = {
    .scheme = "tcp",
    .listen = tcp_listen,
    .connect = tcp_connect,
};

const struct tern_transport_ops unix_transport_ops = {
    .scheme = "unix",
    .listen = unix_listen,
    .connect = unix_connect,
};
