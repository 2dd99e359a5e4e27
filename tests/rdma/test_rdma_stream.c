/* SPDX-License-Identifier: MIT */
/*
 * The rdma transport's connections and byte stream on a real (soft) RDMA
 * device: round trips, a one-way flood that needs credits back, deadlines,
 * shutdown, a peer killed, a QP in error, no device. Every case ends with no
 * verbs object left.
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rdma_harness.h"

static void fill(uint8_t *buf, size_t len, uint32_t seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)((i * 2654435761u + seed) >> 7);
}

static void case_round_trip(void)
{
	struct pair p;
	char buf[16] = {0};

	pair_open(&p);
	CHECK(!strncmp(p.cli->peer, "rdma:", 5));
	CHECK_RET(conn_send(p.cli, "hello", 5), 0);
	CHECK_RET(conn_recv(p.srv, buf, 5), 0);
	CHECK(!memcmp(buf, "hello", 5));
	CHECK_RET(conn_send(p.srv, "world!", 6), 0);
	CHECK_RET(conn_recv(p.cli, buf, 6), 0);
	CHECK(!memcmp(buf, "world!", 6));
	pair_close(&p);
	check_no_leaks("stream round trip");
}

struct flood {
	struct tern_conn *c;
	uint8_t *buf;
	size_t len, piece;
	int ret;
};

static void *recv_thread(void *opaque)
{
	struct flood *f = opaque;

	for (size_t off = 0; off < f->len && !f->ret; off += f->piece)
		f->ret = conn_recv(f->c, f->buf + off, MIN(f->piece, f->len - off));
	return NULL;
}

static void case_large(void)
{
	size_t len = 3u << 20;
	uint8_t *src = malloc(len), *dst = calloc(1, len);
	struct flood f = {.buf = dst, .len = len, .piece = 12345};
	struct pair p;
	pthread_t t;
	uint64_t t0;

	fill(src, len, 1);
	pair_open(&p);
	f.c = p.srv;
	CHECK(!pthread_create(&t, NULL, recv_thread, &f));
	t0 = tern_now_ns();
	CHECK_RET(conn_send(p.cli, src, len), 0);
	pthread_join(t, NULL);
	CHECK_RET(f.ret, 0);
	printf("# stream: %zu MiB in %.3f s: %.1f MB/s\n", len >> 20,
	       (double)(tern_now_ns() - t0) / 1e9,
	       (double)len * 1e3 / (double)(tern_now_ns() - t0));
	CHECK(!memcmp(src, dst, len));
	pair_close(&p);
	free(src);
	free(dst);
	check_no_leaks("stream large (3 MiB, odd read sizes)");
}

/* 20000 small messages one way: far more than the receive depth, so the
 * sender lives on credits the receiver writes back. */
static void case_flood(void)
{
	enum { N = 20000, SZ = 100 };
	uint8_t *dst = calloc(N, SZ), msg[SZ];
	struct flood f = {.buf = dst, .len = (size_t)N * SZ, .piece = SZ};
	struct pair p;
	pthread_t t;

	pair_open(&p);
	f.c = p.srv;
	CHECK(!pthread_create(&t, NULL, recv_thread, &f));
	for (int i = 0; i < N; i++) {
		memset(msg, (uint8_t)i, SZ);
		CHECK_RET(conn_send(p.cli, msg, SZ), 0);
	}
	pthread_join(t, NULL);
	CHECK_RET(f.ret, 0);
	for (int i = 0; i < N; i++)
		CHECK(dst[(size_t)i * SZ] == (uint8_t)i &&
		      dst[(size_t)i * SZ + SZ - 1] == (uint8_t)i);
	pair_close(&p);
	free(dst);
	check_no_leaks("stream one-way flood (credits)");
}

struct echo {
	struct tern_conn *c;
	int n, ret;
};

static void *echo_thread(void *opaque)
{
	struct echo *e = opaque;
	uint8_t msg[300];

	for (int i = 0; i < e->n && !e->ret; i++) {
		e->ret = conn_recv(e->c, msg, sizeof(msg));
		if (!e->ret)
			e->ret = conn_send(e->c, msg, sizeof(msg));
	}
	return NULL;
}

static void *send_thread(void *opaque)
{
	struct echo *e = opaque;
	uint8_t msg[300];

	for (int i = 0; i < e->n && !e->ret; i++) {
		memset(msg, (uint8_t)i, sizeof(msg));
		e->ret = conn_send(e->c, msg, sizeof(msg));
	}
	return NULL;
}

/* A control channel's pattern: one thread sends while another receives on
 * the same connection (the peer echoes). */
static void case_duplex(void)
{
	enum { N = 3000 };
	struct echo echo = {.n = N}, snd = {.n = N};
	uint8_t msg[300];
	pthread_t te, ts;
	struct pair p;

	pair_open(&p);
	echo.c = p.srv;
	snd.c = p.cli;
	CHECK(!pthread_create(&te, NULL, echo_thread, &echo));
	CHECK(!pthread_create(&ts, NULL, send_thread, &snd));
	/* a lost wakeup fails here rather than hanging the suite */
	CHECK_RET(conn_set_recv_timeout(p.cli, 20000), 0);
	for (int i = 0; i < N; i++) {
		int ret = conn_recv(p.cli, msg, sizeof(msg));

		if (ret)
			fprintf(stderr, "echo %d: %d; sender %d, echo thread %d: %s\n", i, ret,
				snd.ret, echo.ret, p.cli->detail);
		CHECK_RET(ret, 0);
		CHECK(msg[0] == (uint8_t)i && msg[299] == (uint8_t)i);
	}
	pthread_join(ts, NULL);
	pthread_join(te, NULL);
	CHECK_RET(snd.ret, 0);
	CHECK_RET(echo.ret, 0);
	pair_close(&p);
	check_no_leaks("duplex: one thread sends, another receives, same connection");
}

static void case_recv_timeout(void)
{
	struct pair p;
	uint64_t t0;
	char c;

	pair_open(&p);
	CHECK_RET(conn_set_recv_timeout(p.srv, 200), 0);
	t0 = tern_now_ms();
	CHECK_RET(conn_recv(p.srv, &c, 1), -EAGAIN);
	CHECK(tern_now_ms() - t0 >= 190);
	CHECK_RET(conn_send(p.cli, "x", 1), 0);
	CHECK_RET(conn_recv(p.srv, &c, 1), 0);
	CHECK(c == 'x');
	pair_close(&p);
	check_no_leaks("recv timeout -> -EAGAIN");
}

struct blocked {
	struct tern_conn *c;
	int ret;
};

static void *blocked_recv(void *opaque)
{
	struct blocked *b = opaque;
	char c;

	b->ret = conn_recv(b->c, &c, 1);
	return NULL;
}

static void case_shutdown(void)
{
	struct blocked b = {0};
	struct tern_error err = {0};
	struct tern_conn *none = NULL;
	struct tern_listener *l;
	char uri[128];
	struct pair p;
	pthread_t t;

	pair_open(&p);
	b.c = p.srv;
	CHECK(!pthread_create(&t, NULL, blocked_recv, &b));
	usleep(200000);
	conn_shutdown(p.srv);
	pthread_join(t, NULL);
	CHECK_RET(b.ret, -ECANCELED);
	CHECK_RET(conn_send(p.srv, "x", 1), -ECANCELED);
	pair_close(&p);

	listen_any(&l, uri, sizeof(uri));
	CHECK_RET(l->ops->accept(l, 100, &none, &err), -ETIMEDOUT);
	l->ops->shutdown(l);
	memset(&err, 0, sizeof(err));
	CHECK_RET(l->ops->accept(l, -1, &none, &err), -ECANCELED);
	l->ops->close(l);
	check_no_leaks("shutdown wakes recv and accept; accept timeout");
}

/* Forked before this process touches rdma at all: the child gets the URI
 * through a pipe, connects, says "ping" and waits to be killed. */
static void case_peer_killed(void)
{
	struct tern_listener *l;
	struct tern_conn *srv = NULL;
	struct tern_error err = {0};
	char uri[128] = "", buf[4];
	int fds[2], ret, st;
	pid_t pid;

	CHECK(!pipe(fds));
	pid = fork();
	CHECK(pid >= 0);
	if (!pid) {
		struct tern_conn *c;

		close(fds[1]);
		if (read(fds[0], uri, sizeof(uri)) <= 0)
			_exit(3);
		if (rdma_transport_ops.connect(uri + 5, 10000, -1, &c, &err)) {
			fprintf(stderr, "child: %s\n", err.msg);
			_exit(2);
		}
		if (conn_send(c, "ping", 4))
			_exit(2);
		pause();
		_exit(0);
	}
	close(fds[0]);
	listen_any(&l, uri, sizeof(uri));
	CHECK(write(fds[1], uri, sizeof(uri)) == sizeof(uri));
	close(fds[1]);
	CHECK_RET(l->ops->accept(l, 10000, &srv, &err), 0);
	CHECK_RET(conn_recv(srv, buf, 4), 0);
	CHECK(!memcmp(buf, "ping", 4));
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	CHECK_RET(conn_set_recv_timeout(srv, 20000), 0);
	ret = conn_recv(srv, buf, 1);
	printf("# peer killed: recv = %d (%s), detail \"%s\"\n", ret, strerror(-ret), srv->detail);
	CHECK(ret == -EPIPE || ret == -ECONNRESET || ret == -EIO);
	CHECK(srv->detail[0]);
	conn_close(srv);
	l->ops->close(l);
	check_no_leaks("peer killed -> error with a detail");
}

static void case_qp_error(void)
{
	struct pair p;
	char buf[1];
	int ret;

	pair_open(&p);
	CHECK_RET(rdma_test_qp_error(p.cli), 0);
	ret = conn_send(p.cli, "x", 1);
	if (!ret) {
		CHECK_RET(conn_set_recv_timeout(p.cli, 5000), 0);
		ret = conn_recv(p.cli, buf, 1);
	}
	printf("# QP in error: %d (%s), detail \"%s\"\n", ret, strerror(-ret), p.cli->detail);
	CHECK(ret < 0 && ret != -EAGAIN);
	CHECK(p.cli->detail[0]);
	pair_close(&p);
	check_no_leaks("QP forced to error -> error with a detail");
}

static void case_no_device(void)
{
	struct tern_listener *l = NULL;
	struct tern_error err = {0};
	int ret = rdma_transport_ops.listen("127.0.0.1:0", &l, &err);

	printf("# listen on 127.0.0.1: %d: %s\n", ret, err.msg);
	if (!ret) {
		/* some stacks bind loopback; then connecting must fail */
		l->ops->close(l);
	} else {
		CHECK(strstr(err.msg, "no RDMA device serves 127.0.0.1"));
	}
	check_no_leaks("no device on 127.0.0.1 -> says so");
}

int main(void)
{
	harness_init();
	printf("# rdma stream tests on %s (%s)\n", rdma_addr, rdma_dev);
	case_peer_killed(); /* first: forks before any rdma state exists */
	case_round_trip();
	case_large();
	case_flood();
	case_duplex();
	case_recv_timeout();
	case_shutdown();
	case_qp_error();
	case_no_device();
	return 0;
}
