/* SPDX-License-Identifier: MIT */
/*
 * What the rdma tests share: the address of the RDMA netdev from the
 * environment (exit 77, SKIP, without it), a connected pair of rdma
 * connections, checks that print where they failed, and the leak check
 * after each case.
 */
#ifndef TERN_RDMA_HARNESS_H
#define TERN_RDMA_HARNESS_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdma/rdma.h"
#include "rdma/rdma_test.h"
#include "util/util.h"

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);   \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

#define CHECK_RET(expr, want)                                                                      \
	do {                                                                                       \
		int got_ = (expr);                                                                 \
		if (got_ != (want)) {                                                              \
			fprintf(stderr, "%s:%d: %s = %d (%s), want %d\n", __FILE__, __LINE__,      \
				#expr, got_, strerror(-got_), (want));                             \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

static const char *rdma_addr, *rdma_dev;

static inline void harness_init(void)
{
	rdma_addr = getenv("TERN_RDMA_ADDR");
	rdma_dev = getenv("TERN_RDMA_DEV");
	if (!rdma_addr || !*rdma_addr) {
		printf("SKIP: TERN_RDMA_ADDR is not set (the IP of an RDMA netdev)\n");
		exit(77);
	}
	if (!rdma_dev)
		rdma_dev = "?";
}

struct pair {
	struct tern_listener *l;
	struct tern_conn *srv, *cli;
};

struct accept_arg {
	struct tern_listener *l;
	struct tern_conn *conn;
	struct tern_error err;
	int ret;
};

static inline void *accept_thread(void *opaque)
{
	struct accept_arg *a = opaque;

	a->ret = a->l->ops->accept(a->l, 10000, &a->conn, &a->err);
	return NULL;
}

static inline void listen_any(struct tern_listener **ret_l, char *uri, size_t size)
{
	struct tern_error err = {0};
	char addr[128];

	snprintf(addr, sizeof(addr), "%s:0", rdma_addr);
	if (rdma_transport_ops.listen(addr, ret_l, &err)) {
		fprintf(stderr, "listen %s: %s\n", addr, err.msg);
		exit(1);
	}
	CHECK_RET((*ret_l)->ops->uri(*ret_l, uri, size), 0);
}

static inline void pair_open(struct pair *p)
{
	struct accept_arg a = {0};
	struct tern_error err = {0};
	char uri[128];
	pthread_t t;

	memset(p, 0, sizeof(*p));
	listen_any(&p->l, uri, sizeof(uri));
	a.l = p->l;
	CHECK(!pthread_create(&t, NULL, accept_thread, &a));
	if (rdma_transport_ops.connect(uri + 5, 10000, -1, &p->cli, &err)) {
		fprintf(stderr, "connect %s: %s\n", uri, err.msg);
		exit(1);
	}
	pthread_join(t, NULL);
	if (a.ret) {
		fprintf(stderr, "accept %s: %s\n", uri, a.err.msg);
		exit(1);
	}
	p->srv = a.conn;
}

static inline void pair_close(struct pair *p)
{
	conn_close(p->cli);
	conn_close(p->srv);
	if (p->l)
		p->l->ops->close(p->l);
	memset(p, 0, sizeof(*p));
}

static inline void check_no_leaks(const char *name)
{
	char what[256];
	long n = rdma_live_objects(what, sizeof(what));

	if (n) {
		fprintf(stderr, "%s: %ld verbs objects left: %s\n", name, n, what);
		exit(1);
	}
	static uint64_t last;
	uint64_t now = tern_now_ms();

	printf("ok - %s (%.1f s)\n", name, last ? (double)(now - last) / 1e3 : 0.0);
	last = now;
	fflush(stdout);
}

#endif /* TERN_RDMA_HARNESS_H */
