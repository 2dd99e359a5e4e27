/* SPDX-License-Identifier: MIT */
/*
 * Page placement over a real (soft) RDMA device, driven the way multifd/
 * drives it: a 32-byte hello, bind_ram() on both sides, then packets of a
 * 48-byte header plus offsets, with pages placed by RDMA WRITE (pin-all on
 * and off, a pin limit below the data so that chunks are evicted) or an
 * encoded payload through the staging ring (small ring: it wraps). The
 * destination thread never touches page data; every byte is compared at
 * the end. Then the faults: a wrong rkey, bad spans, regions and chunks in
 * transport messages, registration refused by RLIMIT_MEMLOCK.
 */
#include <sys/resource.h>
#include <unistd.h>

#include "rdma/rdma_wire.h"
#include "rdma_harness.h"

#define PAGE 4096u
#define RAM_SIZE (8u << 20)
#define HDR_LEN 48u
#define MAX_PAGES 64u

enum { PKT_PAGES = 1, PKT_PAYLOAD, PKT_END };

struct hdr {
	uint32_t kind, region, npages, payload_len, seq;
	uint8_t pad[HDR_LEN - 20];
};

struct ram {
	struct tern_ram_region r[2];
};

static void ram_new(struct ram *m, bool fill)
{
	for (int i = 0; i < 2; i++) {
		m->r[i].size = i ? (1u << 20) : RAM_SIZE;
		m->r[i].host = aligned_alloc(PAGE, m->r[i].size);
		CHECK(m->r[i].host);
		for (uint64_t k = 0; k < m->r[i].size; k++)
			m->r[i].host[k] =
			    fill ? (uint8_t)((k * 2654435761u + (uint64_t)i) >> 11) : 0;
	}
}

static void ram_free(struct ram *m)
{
	free(m->r[0].host);
	free(m->r[1].host);
}

static uint8_t payload_byte(uint32_t seq, uint64_t k)
{
	return (uint8_t)(seq * 131 + k * 7 + (k >> 9));
}

static uint32_t payload_len(uint32_t seq)
{
	return 100000 + (seq * 77777u) % 300000;
}

struct receiver {
	struct tern_conn *c;
	struct ram *ram;
	int ret;
	char detail[200];
	uint64_t pages, payloads;
};

static void *receiver_thread(void *opaque)
{
	struct receiver *rx = opaque;
	struct iovec dst[MAX_PAGES];
	uint64_t off[MAX_PAGES];
	uint8_t hello[32];
	struct hdr h;
	int ret;

	ret = conn_recv(rx->c, hello, sizeof(hello));
	if (!ret)
		ret = conn_bind_ram(rx->c, rx->ram->r, 2, NULL);
	while (!ret) {
		ret = conn_recv_msg(rx->c, &h, sizeof(h));
		if (ret || h.kind == PKT_END)
			break;
		if (h.npages > MAX_PAGES || h.region > 1) {
			ret = -EBADMSG;
			break;
		}
		ret = conn_recv(rx->c, off, h.npages * 8);
		if (ret)
			break;
		if (h.kind == PKT_PAGES) {
			/* the destination only names where the pages belong */
			for (uint32_t i = 0; i < h.npages; i++) {
				dst[i].iov_base = rx->ram->r[h.region].host + off[i];
				dst[i].iov_len = PAGE;
			}
			ret = conn_recv_pages(rx->c, dst, (int)h.npages);
			rx->pages += h.npages;
		} else {
			const void *v = NULL;
			const uint8_t *view;
			uint8_t *buf = malloc(h.payload_len);

			ret = conn_recv_payload(rx->c, buf, h.payload_len, &v);
			view = v;
			for (uint64_t k = 0; !ret && k < h.payload_len; k++)
				if (view[k] != payload_byte(h.seq, k))
					ret = -EILSEQ;
			free(buf);
			rx->payloads++;
		}
	}
	rx->ret = ret;
	snprintf(rx->detail, sizeof(rx->detail), "%.160s", rx->c->detail);
	conn_unbind_ram(rx->c);
	return NULL;
}

static int send_pages(struct tern_conn *c, struct ram *src, uint32_t region, const uint64_t *off,
		      uint32_t n, uint32_t seq)
{
	uint8_t head[HDR_LEN + MAX_PAGES * 8];
	struct iovec iov[1 + MAX_PAGES];
	struct hdr h = {.kind = PKT_PAGES, .region = region, .npages = n, .seq = seq};
	struct tern_placement pl = {.region = region, .npages = n, .page_size = PAGE, .off = off};

	memcpy(head, &h, HDR_LEN);
	memcpy(head + HDR_LEN, off, n * 8);
	iov[0].iov_base = head;
	iov[0].iov_len = HDR_LEN + n * 8;
	for (uint32_t i = 0; i < n; i++) {
		iov[1 + i].iov_base = src->r[region].host + off[i];
		iov[1 + i].iov_len = PAGE;
	}
	return conn_send_packet(c, iov, (int)(1 + n), &pl);
}

static int send_payload(struct tern_conn *c, uint32_t seq)
{
	uint32_t len = payload_len(seq), half = len / 3;
	uint8_t *buf = malloc(len), head[HDR_LEN + 8] = {0};
	struct hdr h = {.kind = PKT_PAYLOAD, .npages = 1, .payload_len = len, .seq = seq};
	struct iovec iov[3] = {{head, sizeof(head)}, {buf, half}, {buf + half, len - half}};
	int ret;

	for (uint64_t k = 0; k < len; k++)
		buf[k] = payload_byte(seq, k);
	memcpy(head, &h, HDR_LEN);
	ret = conn_send_packet(c, iov, 3, NULL);
	free(buf);
	return ret;
}

static int send_end(struct tern_conn *c)
{
	struct hdr h = {.kind = PKT_END};

	return conn_send(c, &h, sizeof(h));
}

struct session {
	struct pair p;
	struct ram src, dst;
	struct receiver rx;
	pthread_t t;
};

static int session_open(struct session *s, const struct tern_bind_opts *opts)
{
	uint8_t hello[32] = "hello";

	memset(s, 0, sizeof(*s));
	ram_new(&s->src, true);
	ram_new(&s->dst, false);
	pair_open(&s->p);
	s->rx.c = s->p.srv;
	s->rx.ram = &s->dst;
	CHECK(!pthread_create(&s->t, NULL, receiver_thread, &s->rx));
	CHECK_RET(conn_send(s->p.cli, hello, sizeof(hello)), 0);
	return conn_bind_ram(s->p.cli, s->src.r, 2, opts);
}

static void session_close(struct session *s)
{
	conn_shutdown(s->p.srv);
	pthread_join(s->t, NULL);
	conn_unbind_ram(s->p.cli);
	pair_close(&s->p);
	ram_free(&s->src);
	ram_free(&s->dst);
}

/* Every page but each 7th of region 0 (a "zero page"), in packets of up to
 * 64 pages, in an order that visits the chunks out of order; region 1 all. */
static uint64_t send_ram(struct session *s)
{
	uint32_t npages = RAM_SIZE / PAGE, seq = 0, n = 0;
	uint64_t off[MAX_PAGES], sent = 0;

	for (uint32_t k = 0; k < npages; k++) {
		/* chunk order 0, 3, 6, 1, 4, 7, 2, 5 */
		uint32_t chunk = (k / 256 * 3) % 8, page = chunk * 256 + k % 256;

		if (page % 7 == 3)
			continue;
		off[n++] = (uint64_t)page * PAGE;
		if (n == MAX_PAGES || k + 1 == npages || (k + 1) % 256 == 0) {
			CHECK_RET(send_pages(s->p.cli, &s->src, 0, off, n, seq++), 0);
			sent += n;
			n = 0;
		}
	}
	for (uint32_t k = 0; k < (1u << 20) / PAGE; k += MAX_PAGES) {
		for (n = 0; n < MAX_PAGES; n++)
			off[n] = (uint64_t)(k + n) * PAGE;
		CHECK_RET(send_pages(s->p.cli, &s->src, 1, off, n, seq++), 0);
		sent += n;
	}
	return sent;
}

static void check_ram(struct session *s)
{
	for (uint64_t page = 0; page < RAM_SIZE / PAGE; page++) {
		const uint8_t *a = s->src.r[0].host + page * PAGE,
			      *b = s->dst.r[0].host + page * PAGE;

		if (page % 7 == 3) {
			for (uint32_t k = 0; k < PAGE; k++)
				CHECK(!b[k]);
		} else if (memcmp(a, b, PAGE)) {
			fprintf(stderr, "page %" PRIu64 " differs\n", page);
			exit(1);
		}
	}
	CHECK(!memcmp(s->src.r[1].host, s->dst.r[1].host, 1u << 20));
}

static void case_placement(const char *name, bool pin_all, uint64_t pin_limit)
{
	struct tern_bind_opts opts = {.pin_all = pin_all, .pin_limit = pin_limit};
	struct tern_xport_stats st = {0}, dst_st = {0};
	struct session s;
	uint64_t t0, pages, ns;

	t0 = tern_now_ns();
	CHECK_RET(session_open(&s, &opts), 0);
	printf("# %s: bind took %.1f ms\n", name, (double)(tern_now_ns() - t0) / 1e6);
	t0 = tern_now_ns();
	pages = send_ram(&s);
	CHECK_RET(send_end(s.p.cli), 0);
	pthread_join(s.t, NULL);
	ns = tern_now_ns() - t0;
	if (s.rx.ret)
		fprintf(stderr, "receiver: %d (%s): %s\n", s.rx.ret, strerror(-s.rx.ret),
			s.rx.detail);
	CHECK_RET(s.rx.ret, 0);
	CHECK(s.rx.pages == pages);
	check_ram(&s);
	conn_xport_stats(s.p.cli, &st);
	conn_xport_stats(s.p.srv, &dst_st);
	printf("# %s: %" PRIu64 " pages placed in %.3f s: %.1f MB/s; source pinned peak %" PRIu64
	       " KiB, %" PRIu64 " registrations; destination peak %" PRIu64 " KiB, %" PRIu64
	       " registrations, %.1f ms registering\n",
	       name, pages, (double)ns / 1e9, (double)pages * PAGE * 1e3 / (double)ns,
	       st.pinned_peak >> 10, st.chunks_registered, dst_st.pinned_peak >> 10,
	       dst_st.chunks_registered, (double)dst_st.reg_ns / 1e6);
	CHECK(st.placed_bytes == pages * PAGE);
	if (pin_limit && !pin_all)
		CHECK(st.pinned_peak <= MAX(pin_limit, 4u << 20) + (1u << 20) + (8u << 20));
	CHECK(dst_st.pinned_bytes == 0); /* the receiver unbound: no rkey stays valid */
	/* restart the receiver thread's role is over; no thread to stop */
	s.t = 0;
	conn_unbind_ram(s.p.cli);
	memset(&st, 0, sizeof(st));
	conn_xport_stats(s.p.cli, &st);
	CHECK(st.pinned_bytes == 0);
	pair_close(&s.p);
	ram_free(&s.src);
	ram_free(&s.dst);
	check_no_leaks(name);
}

static void case_staged(void)
{
	struct tern_bind_opts opts = {.pin_all = false};
	struct tern_xport_stats st = {0};
	struct session s;
	uint64_t t0, bytes = 0;

	rdma_test_set_ring_size(1u << 20);
	CHECK_RET(session_open(&s, &opts), 0);
	t0 = tern_now_ns();
	for (uint32_t seq = 0; seq < 40; seq++) {
		CHECK_RET(send_payload(s.p.cli, seq), 0);
		bytes += payload_len(seq);
	}
	CHECK_RET(send_end(s.p.cli), 0);
	pthread_join(s.t, NULL);
	if (s.rx.ret)
		fprintf(stderr, "receiver: %d: %s\n", s.rx.ret, s.rx.detail);
	CHECK_RET(s.rx.ret, 0);
	CHECK(s.rx.payloads == 40);
	conn_xport_stats(s.p.cli, &st);
	CHECK(st.staged_bytes == bytes);
	printf("# staged: %" PRIu64 " KiB through a 1 MiB ring in %.3f s\n", bytes >> 10,
	       (double)(tern_now_ns() - t0) / 1e9);
	rdma_test_set_ring_size(0);
	conn_unbind_ram(s.p.cli);
	pair_close(&s.p);
	ram_free(&s.src);
	ram_free(&s.dst);
	check_no_leaks("staged payloads (1 MiB ring wraps)");
}

static void case_wrong_rkey(void)
{
	struct tern_bind_opts opts = {.pin_all = true};
	uint64_t off[4] = {0, PAGE, 2 * PAGE, 3 * PAGE};
	struct session s;
	uint64_t t0;
	int ret = 0;

	memset(&s, 0, sizeof(s));
	ram_new(&s.src, true);
	ram_new(&s.dst, false);
	pair_open(&s.p);
	rdma_test_corrupt_rkey(s.p.cli, 0x5a5a5a);
	s.rx.c = s.p.srv;
	s.rx.ram = &s.dst;
	CHECK(!pthread_create(&s.t, NULL, receiver_thread, &s.rx));
	CHECK_RET(conn_send(s.p.cli, "hello, this is thirty-two bytes", 32), 0);
	CHECK_RET(conn_bind_ram(s.p.cli, s.src.r, 2, &opts), 0);
	t0 = tern_now_ms();
	for (int i = 0; i < 200 && !ret; i++) {
		ret = send_pages(s.p.cli, &s.src, 0, off, 4, (uint32_t)i);
		usleep(10000);
	}
	printf("# wrong rkey: %d (%s) after %.1f s: \"%s\"\n", ret, strerror(-ret),
	       (double)(tern_now_ms() - t0) / 1e3, s.p.cli->detail);
	CHECK(ret < 0);
	CHECK(strstr(s.p.cli->detail, "status") || strstr(s.p.cli->detail, "flushed"));
	session_close(&s);
	check_no_leaks("wrong rkey -> the WR status in the detail");
}

/* A raw transport message from a bound sender; the receiver must fail with
 * -EPROTO and say @what in its detail. */
static void case_bad_msg(const char *name, bool pin_all, const struct rdma_msg *m,
			 const void *payload, const char *what)
{
	struct tern_bind_opts opts = {.pin_all = pin_all};
	struct session s;

	CHECK_RET(session_open(&s, &opts), 0);
	CHECK_RET(rdma_test_send_raw(s.p.cli, m, payload), 0);
	pthread_join(s.t, NULL);
	printf("# %s: receiver %d: \"%s\"\n", name, s.rx.ret, s.rx.detail);
	CHECK_RET(s.rx.ret, -EPROTO);
	CHECK(strstr(s.rx.detail, what));
	s.t = 0;
	conn_unbind_ram(s.p.cli);
	pair_close(&s.p);
	ram_free(&s.src);
	ram_free(&s.dst);
	check_no_leaks(name);
}

static void case_memlock(void)
{
	struct tern_bind_opts opts = {.pin_all = true};
	struct rlimit old, small = {4u << 20, 4u << 20};
	struct session s;
	int ret;

	if (!strncmp(rdma_dev, "rxe", 3) && !geteuid()) {
		printf("ok - # SKIP RLIMIT_MEMLOCK: rxe lets root pin past it\n");
		return;
	}
	CHECK(!getrlimit(RLIMIT_MEMLOCK, &old));
	memset(&s, 0, sizeof(s));
	ram_new(&s.src, true);
	ram_new(&s.dst, false);
	pair_open(&s.p);
	s.rx.c = s.p.srv;
	s.rx.ram = &s.dst;
	CHECK(!pthread_create(&s.t, NULL, receiver_thread, &s.rx));
	CHECK_RET(conn_send(s.p.cli, "hello, this is thirty-two bytes", 32), 0);
	small.rlim_max = old.rlim_max;
	CHECK(!setrlimit(RLIMIT_MEMLOCK, &small));
	ret = conn_bind_ram(s.p.cli, s.src.r, 2, &opts);
	CHECK(!setrlimit(RLIMIT_MEMLOCK, &old));
	printf("# memlock: bind = %d: \"%s\"\n", ret, s.p.cli->detail);
	CHECK(ret < 0);
	CHECK(strstr(s.p.cli->detail, "RLIMIT_MEMLOCK"));
	session_close(&s);
	check_no_leaks("RLIMIT_MEMLOCK too small -> says which limit");
}

int main(void)
{
	uint8_t data_hdr[HDR_LEN + 8] = {0};
	struct hdr h = {.kind = PKT_PAYLOAD, .npages = 1, .payload_len = 100};
	struct rdma_msg bad_span = {.type = RDMA_MSG_DATA,
				    .flags = RDMA_MSG_F_SPAN,
				    .len = sizeof(data_hdr),
				    .a = 8u << 20,
				    .b = 100,
				    .c = (8u << 20) + 100};
	struct rdma_msg bad_region = {.type = RDMA_MSG_REG, .a = 5};
	struct rdma_msg bad_chunk = {.type = RDMA_MSG_REG, .a = 0, .b = 100000};
	struct rdma_msg bad_type = {.type = 77};

	harness_init();
	printf("# rdma placement tests on %s (%s)\n", rdma_addr, rdma_dev);
	memcpy(data_hdr, &h, sizeof(h));
	case_placement("placement pin-all on", true, 0);
	case_placement("placement pin-all off", false, 0);
	case_placement("placement pin-all off, 2 MiB limit (evictions)", false, 2u << 20);
	case_staged();
	case_wrong_rkey();
	case_bad_msg("bad span -> -EPROTO", false, &bad_span, data_hdr, "staging span");
	case_bad_msg("bad region -> -EPROTO", false, &bad_region, NULL, "region 5");
	case_bad_msg("bad chunk -> -EPROTO", false, &bad_chunk, NULL, "chunk 100000");
	case_bad_msg("unknown message type -> -EPROTO", false, &bad_type, NULL, "unknown");
	case_memlock();
	return 0;
}
