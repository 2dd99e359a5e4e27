/* SPDX-License-Identifier: MIT */
/*
 * The RDMA test harness's own smoke test: does the device the harness named
 * work for what the rdma transport needs? It runs in suite "rdma", inside
 * scripts/rdma-in-qemu/ once per soft device, or on a host with a real one.
 *
 *   TERN_RDMA_ADDR  an IPv4/IPv6 address on the netdev that carries the device
 *                   (unset: nothing to test, exit 77, meson's SKIP)
 *   TERN_RDMA_DEV   the device rdma_cm must pick for that address (optional)
 *
 * It opens the device by name and queries it, then connects an RC queue pair
 * to itself through rdma_cm's synchronous API (one thread per side) and does
 * what a migration channel does, once:
 *
 *   client thread                         server (main thread)
 *   rdma_connect                 ---->    rdma_get_request, rdma_accept
 *   SEND {addr, rkey, len}       ---->    RECV
 *                                <----    RDMA WRITE of a pattern to addr
 *                                <----    SEND "done", same QP
 *   RECV "done": RC ordering puts the WRITE's data in place before it;
 *   check the pattern byte for byte
 *
 * Completions are waited for through the completion channels that
 * rdma_create_ep() sets up, not by polling. A watchdog alarm turns a hang
 * (a connection that never completes) into a failure with a message.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <rdma/rdma_cma.h>
#include <rdma/rdma_verbs.h>

#define SMOKE_WRITE_LEN (1u << 20)
#define SMOKE_MSG_LEN 64
#define SMOKE_DEADLINE_S 120

/* client -> server, in the first SEND: where to write */
struct smoke_target {
	uint64_t addr;
	uint32_t rkey;
	uint32_t len;
};

struct smoke_client {
	const char *addr;
	char port[8];
	const char *want_dev;
	int rc; /* 0 or negative errno, set by the client thread */
};

static void smoke_watchdog(int sig)
{
	static const char msg[] = "rdma_smoke: no result within the deadline: FAIL\n";

	(void)sig;
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
		_exit(2);
	_exit(1);
}

static uint8_t smoke_pattern(size_t i)
{
	return (uint8_t)(i * 131 + (i >> 12));
}

static int smoke_fail(const char *what, int err)
{
	fprintf(stderr, "rdma_smoke: %s: %s\n", what, strerror(err));
	return -err;
}

/* The device by name: open it, print what the transport will care about. */
static int smoke_query_device(const char *name)
{
	struct ibv_device **list;
	struct ibv_context *ctx = NULL;
	struct ibv_device_attr attr;
	struct ibv_port_attr port;
	int i, n, ret = 0;

	list = ibv_get_device_list(&n);
	if (!list)
		return smoke_fail("ibv_get_device_list", errno);
	for (i = 0; i < n; i++) {
		printf("rdma_smoke: device %s\n", ibv_get_device_name(list[i]));
		if (!ctx && (!name || !strcmp(name, ibv_get_device_name(list[i]))))
			ctx = ibv_open_device(list[i]);
	}
	if (!ctx) {
		fprintf(stderr, "rdma_smoke: cannot open device %s among %d\n",
			name ? name : "(any)", n);
		ret = -ENODEV;
		goto out_list;
	}
	if (ibv_query_device(ctx, &attr) || ibv_query_port(ctx, 1, &port)) {
		ret = smoke_fail("ibv_query_device/port", errno);
		goto out_ctx;
	}
	printf("rdma_smoke: %s: fw %s, max_qp %d, max_cqe %d, max_mr_size %" PRIu64
	       ", max_sge %d, max_sge_rd %d; port 1 %s, mtu %d, link layer %s\n",
	       ibv_get_device_name(ctx->device), attr.fw_ver, attr.max_qp, attr.max_cqe,
	       (uint64_t)attr.max_mr_size, attr.max_sge, attr.max_sge_rd,
	       ibv_port_state_str(port.state), 128 << port.active_mtu,
	       port.link_layer == IBV_LINK_LAYER_ETHERNET ? "ethernet" : "infiniband");
	if (port.state != IBV_PORT_ACTIVE) {
		fprintf(stderr, "rdma_smoke: port 1 is not active\n");
		ret = -ENETDOWN;
	}
out_ctx:
	ibv_close_device(ctx);
out_list:
	ibv_free_device_list(list);
	return ret;
}

static int smoke_getaddrinfo(const char *addr, const char *port, bool passive,
			     struct rdma_addrinfo **ret_res)
{
	struct rdma_addrinfo hints = {.ai_port_space = RDMA_PS_TCP};

	if (passive)
		hints.ai_flags = RAI_PASSIVE;
	if (rdma_getaddrinfo(addr, port, &hints, ret_res))
		return smoke_fail("rdma_getaddrinfo", errno);
	return 0;
}

static void smoke_qp_attr(struct ibv_qp_init_attr *qa)
{
	memset(qa, 0, sizeof(*qa));
	qa->cap.max_send_wr = 4;
	qa->cap.max_recv_wr = 4;
	qa->cap.max_send_sge = 1;
	qa->cap.max_recv_sge = 1;
	qa->qp_type = IBV_QPT_RC;
}

static int smoke_wait(struct rdma_cm_id *id, bool send, const char *what)
{
	struct ibv_wc wc;
	int n = send ? rdma_get_send_comp(id, &wc) : rdma_get_recv_comp(id, &wc);

	if (n < 0)
		return smoke_fail(what, errno);
	if (wc.status != IBV_WC_SUCCESS) {
		fprintf(stderr, "rdma_smoke: %s: completion status %s\n", what,
			ibv_wc_status_str(wc.status));
		return -EIO;
	}
	return 0;
}

/* The client side, on its own thread: offer a buffer, wait for "done", check it. */
static void *smoke_client_run(void *arg)
{
	struct smoke_client *c = arg;
	struct rdma_addrinfo *res = NULL;
	struct ibv_qp_init_attr qa;
	struct rdma_cm_id *id = NULL;
	struct ibv_mr *target_mr = NULL, *msg_mr = NULL;
	struct smoke_target *t;
	uint8_t *target = NULL;
	char *msg = NULL;
	size_t i;
	int ret;

	target = calloc(1, SMOKE_WRITE_LEN);
	msg = calloc(2, SMOKE_MSG_LEN); /* [0]: the SEND out, [1]: the RECV */
	if (!target || !msg) {
		ret = -ENOMEM;
		goto out;
	}
	ret = smoke_getaddrinfo(c->addr, c->port, false, &res);
	if (ret)
		goto out;
	smoke_qp_attr(&qa);
	if (rdma_create_ep(&id, res, NULL, &qa)) {
		ret = smoke_fail("client rdma_create_ep", errno);
		goto out;
	}
	target_mr = rdma_reg_write(id, target, SMOKE_WRITE_LEN);
	msg_mr = rdma_reg_msgs(id, msg, 2 * SMOKE_MSG_LEN);
	if (!target_mr || !msg_mr) {
		ret = smoke_fail("client ibv_reg_mr", errno);
		goto out_ep;
	}
	if (rdma_post_recv(id, NULL, msg + SMOKE_MSG_LEN, SMOKE_MSG_LEN, msg_mr)) {
		ret = smoke_fail("client rdma_post_recv", errno);
		goto out_ep;
	}
	if (rdma_connect(id, NULL)) {
		ret = smoke_fail("rdma_connect", errno);
		goto out_ep;
	}
	if (c->want_dev && strcmp(ibv_get_device_name(id->verbs->device), c->want_dev)) {
		fprintf(stderr, "rdma_smoke: rdma_cm picked %s for %s, not %s\n",
			ibv_get_device_name(id->verbs->device), c->addr, c->want_dev);
		ret = -ENODEV;
		goto out_disconnect;
	}
	t = (struct smoke_target *)msg;
	t->addr = (uintptr_t)target;
	t->rkey = target_mr->rkey;
	t->len = SMOKE_WRITE_LEN;
	if (rdma_post_send(id, NULL, msg, sizeof(*t), msg_mr, IBV_SEND_SIGNALED)) {
		ret = smoke_fail("client rdma_post_send", errno);
		goto out_disconnect;
	}
	ret = smoke_wait(id, true, "client SEND");
	if (!ret)
		ret = smoke_wait(id, false, "client RECV");
	if (ret)
		goto out_disconnect;
	if (strcmp(msg + SMOKE_MSG_LEN, "done")) {
		fprintf(stderr, "rdma_smoke: client got '%.8s', not 'done'\n", msg + SMOKE_MSG_LEN);
		ret = -EPROTO;
		goto out_disconnect;
	}
	for (i = 0; i < SMOKE_WRITE_LEN; i++) {
		if (target[i] != smoke_pattern(i)) {
			fprintf(stderr, "rdma_smoke: byte %zu is %#x after the WRITE, not %#x\n", i,
				target[i], smoke_pattern(i));
			ret = -EIO;
			break;
		}
	}
out_disconnect:
	rdma_disconnect(id);
out_ep:
	if (msg_mr)
		rdma_dereg_mr(msg_mr);
	if (target_mr)
		rdma_dereg_mr(target_mr);
	rdma_destroy_ep(id);
out:
	if (res)
		rdma_freeaddrinfo(res);
	free(msg);
	free(target);
	c->rc = ret;
	return NULL;
}

/* The server side on an accepted id: read the target, WRITE the pattern, say "done". */
static int smoke_serve(struct rdma_cm_id *id)
{
	struct ibv_mr *src_mr = NULL, *msg_mr = NULL;
	struct smoke_target t;
	uint8_t *src;
	char *msg;
	size_t i;
	int ret;

	src = malloc(SMOKE_WRITE_LEN);
	msg = calloc(2, SMOKE_MSG_LEN); /* [0]: the RECV, [1]: the SEND out */
	if (!src || !msg) {
		ret = -ENOMEM;
		goto out;
	}
	for (i = 0; i < SMOKE_WRITE_LEN; i++)
		src[i] = smoke_pattern(i);
	src_mr = rdma_reg_msgs(id, src, SMOKE_WRITE_LEN);
	msg_mr = rdma_reg_msgs(id, msg, 2 * SMOKE_MSG_LEN);
	if (!src_mr || !msg_mr) {
		ret = smoke_fail("server ibv_reg_mr", errno);
		goto out_mr;
	}
	if (rdma_post_recv(id, NULL, msg, SMOKE_MSG_LEN, msg_mr)) {
		ret = smoke_fail("server rdma_post_recv", errno);
		goto out_mr;
	}
	if (rdma_accept(id, NULL)) {
		ret = smoke_fail("rdma_accept", errno);
		goto out_mr;
	}
	ret = smoke_wait(id, false, "server RECV");
	if (ret)
		goto out_disconnect;
	memcpy(&t, msg, sizeof(t));
	if (t.len != SMOKE_WRITE_LEN) {
		fprintf(stderr, "rdma_smoke: server: target of %u bytes, not %u\n", t.len,
			SMOKE_WRITE_LEN);
		ret = -EPROTO;
		goto out_disconnect;
	}
	/* unsignaled: the SEND behind it completes only after it */
	if (rdma_post_write(id, NULL, src, SMOKE_WRITE_LEN, src_mr, 0, t.addr, t.rkey)) {
		ret = smoke_fail("server rdma_post_write", errno);
		goto out_disconnect;
	}
	strcpy(msg + SMOKE_MSG_LEN, "done");
	if (rdma_post_send(id, NULL, msg + SMOKE_MSG_LEN, SMOKE_MSG_LEN, msg_mr,
			   IBV_SEND_SIGNALED)) {
		ret = smoke_fail("server rdma_post_send", errno);
		goto out_disconnect;
	}
	ret = smoke_wait(id, true, "server WRITE+SEND");
out_disconnect:
	rdma_disconnect(id);
out_mr:
	if (msg_mr)
		rdma_dereg_mr(msg_mr);
	if (src_mr)
		rdma_dereg_mr(src_mr);
out:
	free(msg);
	free(src);
	return ret;
}

int main(void)
{
	struct smoke_client client = {0};
	struct rdma_addrinfo *res = NULL;
	struct rdma_cm_id *listen_id = NULL, *id = NULL;
	struct ibv_qp_init_attr qa;
	pthread_t thread;
	int ret;

	setvbuf(stdout, NULL, _IOLBF, 0);
	client.addr = getenv("TERN_RDMA_ADDR");
	client.want_dev = getenv("TERN_RDMA_DEV");
	if (!client.addr || !*client.addr) {
		printf("rdma_smoke: TERN_RDMA_ADDR is not set (no RDMA device to test): SKIP\n");
		return 77;
	}
	signal(SIGALRM, smoke_watchdog);
	alarm(SMOKE_DEADLINE_S);

	ret = smoke_query_device(client.want_dev);
	if (ret)
		return 1;

	/* listen on an ephemeral port of TERN_RDMA_ADDR */
	ret = smoke_getaddrinfo(client.addr, "0", true, &res);
	if (ret)
		return 1;
	smoke_qp_attr(&qa);
	if (rdma_create_ep(&listen_id, res, NULL, &qa)) {
		ret = smoke_fail("server rdma_create_ep", errno);
		goto out_res;
	}
	if (rdma_listen(listen_id, 1)) {
		ret = smoke_fail("rdma_listen", errno);
		goto out_listen;
	}
	snprintf(client.port, sizeof(client.port), "%u", ntohs(rdma_get_src_port(listen_id)));
	printf("rdma_smoke: listening on %s port %s\n", client.addr, client.port);

	ret = -pthread_create(&thread, NULL, smoke_client_run, &client);
	if (ret) {
		smoke_fail("pthread_create", -ret);
		goto out_listen;
	}
	if (rdma_get_request(listen_id, &id)) {
		/* the client thread may be stuck in rdma_connect: exit() ends it */
		ret = smoke_fail("rdma_get_request", errno);
		goto out_listen;
	}
	ret = smoke_serve(id);
	pthread_join(thread, NULL);
	rdma_destroy_ep(id);
	if (!ret)
		ret = client.rc;
out_listen:
	rdma_destroy_ep(listen_id);
out_res:
	rdma_freeaddrinfo(res);
	if (ret) {
		printf("rdma_smoke: FAIL (%s)\n", strerror(-ret));
		return 1;
	}
	printf("rdma_smoke: %s: SEND, RDMA WRITE of %u bytes and SEND after it: PASS\n",
	       client.want_dev ? client.want_dev : client.addr, SMOKE_WRITE_LEN);
	return 0;
}
