/* SPDX-License-Identifier: MIT */
/*
 * verify-ram catches what the wire spoiled. A real source migrates to a real
 * destination through a proxy that passes every byte on, except that it may
 * flip one byte of a page's data on a worker channel: the packets stay well
 * formed (codec none: the payload is the pages), so nothing but the RAM
 * digests can tell. Each case asserts that
 *
 *   - with nothing spoiled, the migration completes and is verified (the
 *     proxy itself is transparent);
 *   - with a page spoiled in round 1 (a region the destination digests in
 *     the background, long before the end), or in the last round (a region
 *     it digests at the end, guest paused), the source fails with "RAM
 *     digest mismatch", its guest runs on, and the destination never
 *     starts its own.
 *
 * The source has a dirty-log provider that reports page 0 at every sync, so
 * that the last round, sent with the guest paused, carries a page too, and
 * a max-bandwidth that makes round 1 last a few rate windows.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fake_peer.h"
#include "fault_util.h"

#define RAM_SIZE (8u << 20)
#define PROXY_MAX_CONNS 8

static const struct ram_spec ram[] = {{"ram0", RAM_SIZE}};

enum spoil {
	SPOIL_NOTHING = 0,
	SPOIL_ROUND1, /* one byte of a page of round 1 that is never sent again */
	SPOIL_LAST,   /* one byte of every page sent after round 1 */
};

struct proxy;

/* One direction of one proxied connection. */
struct pipe_dir {
	struct proxy *px;
	int from, to;
	bool parse; /* source -> destination on a worker channel */
	pthread_t thread;
	bool started;
};

struct proxy {
	enum spoil spoil;
	int lfd;
	uint16_t dst_port;
	char uri[64];
	pthread_t accept_thread;
	/* the accept thread's until it is joined */
	struct pipe_dir dirs[2 * PROXY_MAX_CONNS];
	unsigned int ndirs;
	int fds[2 * PROXY_MAX_CONNS];
	unsigned int nfds;
	/* atomic */
	unsigned int spoiled;
	bool claimed; /* SPOIL_ROUND1: the page is chosen */
	bool stop;
};

static int read_full(int fd, void *p, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, (uint8_t *)p + got, n - got);

		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

static int write_full(int fd, const void *p, size_t n)
{
	size_t put = 0;

	while (put < n) {
		ssize_t r = write(fd, (const uint8_t *)p + put, n - put);

		if (r <= 0)
			return -1;
		put += (size_t)r;
	}
	return 0;
}

/* Copy until EOF; then let the other side see EOF too. */
static void copy_plain(struct pipe_dir *d)
{
	uint8_t buf[65536];
	ssize_t n;

	while ((n = read(d->from, buf, sizeof(buf))) > 0)
		if (write_full(d->to, buf, (size_t)n))
			break;
}

/* Whether to spoil the packet @h whose offsets are at @offsets. */
static bool spoil_this(struct proxy *px, const struct mf_packet_hdr *h, const uint8_t *offsets)
{
	bool no = false;

	switch (px->spoil) {
	case SPOIL_ROUND1:
		/* once, on any channel; not page 0, which goes again every round */
		return h->round == 1 && get_be64(offsets) &&
		       __atomic_compare_exchange_n(&px->claimed, &no, true, false, __ATOMIC_RELAXED,
						   __ATOMIC_RELAXED);
	case SPOIL_LAST:
		return h->round > 1;
	default:
		return false;
	}
}

/* A worker channel, source to destination: hello, then packet by packet. */
static void copy_worker(struct pipe_dir *d)
{
	uint8_t hello[MF_HELLO_SIZE], hdr[MF_HDR_SIZE], *buf = NULL;

	if (read_full(d->from, hello, sizeof(hello)) || write_full(d->to, hello, sizeof(hello)))
		return;
	for (;;) {
		struct mf_packet_hdr h;
		size_t off_len, len;
		uint8_t *p;

		if (read_full(d->from, hdr, sizeof(hdr)) || write_full(d->to, hdr, sizeof(hdr)))
			break;
		mf_hdr_decode(hdr, &h);
		if (h.flags & MF_FLAG_SYNC)
			continue;
		off_len = 8 * (size_t)(h.normal + h.zero);
		len = off_len + h.payload_len;
		p = realloc(buf, len ? len : 1);
		if (!p)
			break;
		buf = p;
		if (read_full(d->from, buf, len))
			break;
		if (h.payload_len && h.codec == TERN_CODEC_NONE && spoil_this(d->px, &h, buf)) {
			/* the middle of the packet's first page */
			buf[off_len + 2048] ^= 0x5a;
			__atomic_fetch_add(&d->px->spoiled, 1, __ATOMIC_RELAXED);
		}
		if (write_full(d->to, buf, len))
			break;
	}
	free(buf);
}

static void *dir_thread(void *arg)
{
	struct pipe_dir *d = arg;

	if (d->parse)
		copy_worker(d);
	else
		copy_plain(d);
	shutdown(d->to, SHUT_WR);
	shutdown(d->from, SHUT_RD);
	return NULL;
}

static int dial_dest(struct proxy *px)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(px->dst_port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static void start_dir(struct proxy *px, int from, int to, bool parse)
{
	struct pipe_dir *d = &px->dirs[px->ndirs];

	*d = (struct pipe_dir){.px = px, .from = from, .to = to, .parse = parse};
	d->started = !pthread_create(&d->thread, NULL, dir_thread, d);
	px->ndirs++;
}

/* Accept connections; tell worker channels from the control channel by a
 * peek at their first 4 bytes. */
static void *accept_thread(void *arg)
{
	struct proxy *px = arg;

	while (px->nfds + 2 <= ARRAY_SIZE(px->fds)) {
		int c = accept4(px->lfd, NULL, NULL, SOCK_CLOEXEC), s;
		uint8_t magic[4];

		if (c < 0 || __atomic_load_n(&px->stop, __ATOMIC_RELAXED)) {
			if (c >= 0)
				close(c);
			break;
		}
		px->fds[px->nfds++] = c;
		s = dial_dest(px);
		if (s < 0)
			break;
		px->fds[px->nfds++] = s;
		if (recv(c, magic, sizeof(magic), MSG_PEEK | MSG_WAITALL) != sizeof(magic))
			continue;
		start_dir(px, c, s, get_be32(magic) == MF_HELLO_MAGIC);
		start_dir(px, s, c, false);
	}
	return NULL;
}

static void proxy_start(struct proxy *px, enum spoil spoil, const char *dst_uri)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t alen = sizeof(a);
	const char *colon = strrchr(dst_uri, ':');

	memset(px, 0, sizeof(*px));
	px->spoil = spoil;
	assert_non_null(colon);
	px->dst_port = (uint16_t)atoi(colon + 1);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	px->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(px->lfd >= 0);
	assert_int_equal(bind(px->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(px->lfd, 16), 0);
	assert_int_equal(getsockname(px->lfd, (struct sockaddr *)&a, &alen), 0);
	snprintf(px->uri, sizeof(px->uri), "tcp:127.0.0.1:%u", ntohs(a.sin_port));
	assert_int_equal(pthread_create(&px->accept_thread, NULL, accept_thread, px), 0);
}

/* Everything shut, every thread joined, every fd closed. */
static void proxy_stop(struct proxy *px)
{
	unsigned int i;

	__atomic_store_n(&px->stop, true, __ATOMIC_RELAXED);
	shutdown(px->lfd, SHUT_RDWR);
	pthread_join(px->accept_thread, NULL);
	for (i = 0; i < px->nfds; i++)
		shutdown(px->fds[i], SHUT_RDWR);
	for (i = 0; i < px->ndirs; i++)
		if (px->dirs[i].started)
			pthread_join(px->dirs[i].thread, NULL);
	for (i = 0; i < px->nfds; i++)
		close(px->fds[i]);
	close(px->lfd);
}

/* ---- the source's dirty log: page 0, at every sync -------------------------- */

static int page0_sync(void *opaque, struct tern_error *err)
{
	struct peer *p = opaque;
	const uint64_t one = 1;

	return tern_dirty_report(p->blocks[0], 0, &one, 1);
}

static const struct tern_dirty_source_ops page0_ops = {
    .name = "page0",
    .sync = page0_sync,
};

/* ---- the cases ----------------------------------------------------------------- */

static void verify_case(enum spoil spoil)
{
	struct tern_error err = {0};
	struct peer src, dst;
	struct tern_stats st;
	struct proxy px;

	peer_new(&dst, false, ram, 1, NULL, 0);
	peer_new(&src, true, ram, 1, NULL, 0);
	assert_rc_equal(tern_cap_set(dst.s, "verify-ram", true, &err), 0);
	assert_rc_equal(tern_cap_set(src.s, "verify-ram", true, &err), 0);
	assert_rc_equal(tern_dirty_source_add(src.s, &page0_ops, &src, &err), 0);
	/* round 1 long enough for a rate window to close: with no rate the
	 * page sent every round would never fit the downtime */
	peer_param(&src, "max-bandwidth", 32u << 20);
	peer_listen(&dst, "tcp:127.0.0.1:0");
	proxy_start(&px, spoil, dst.uri);
	assert_rc_equal(tern_migrate(src.s, px.uri, &err), 0);
	if (spoil == SPOIL_NOTHING) {
		peer_wait_final(&src, &st);
		fprintf(stderr, "[src] %s, verified %d, %" PRIu64 " rounds: %s\n",
			tern_status_name(st.status), st.verified, st.rounds, st.error);
		assert_int_equal(st.status, TERN_STATUS_COMPLETED);
		assert_true(st.verified);
		assert_true(st.downtime_verify_us > 0);
		peer_wait_final(&dst, &st);
		assert_int_equal(st.status, TERN_STATUS_COMPLETED);
		assert_true(st.verified);
		assert_uint_equal(probe_resumes(&dst.probe), 1);
	} else {
		expect_final(&src, TERN_STATUS_FAILED, "verify-ram: RAM digest mismatch");
		/* paused for the switchover, then resumed: the guest runs on */
		assert_uint_equal(probe_pauses(&src.probe), 1);
		assert_uint_equal(probe_resumes(&src.probe), 1);
		expect_final(&dst, TERN_STATUS_FAILED, "RAM digest mismatch");
		assert_uint_equal(probe_resumes(&dst.probe), 0);
		assert_true(__atomic_load_n(&px.spoiled, __ATOMIC_RELAXED) > 0);
	}
	peer_free(&src);
	peer_free(&dst);
	proxy_stop(&px);
}

static void test_verify_clean(void **state)
{
	verify_case(SPOIL_NOTHING);
}

static void test_verify_spoiled_round1(void **state)
{
	verify_case(SPOIL_ROUND1);
}

static void test_verify_spoiled_last_round(void **state)
{
	verify_case(SPOIL_LAST);
}

int main(int argc, char **argv)
{
	static const struct CMUnitTest tests[] = {
	    FAULT_CASE(test_verify_clean),
	    FAULT_CASE(test_verify_spoiled_round1),
	    FAULT_CASE(test_verify_spoiled_last_round),
	};

	return fault_main("fault_verify", tests, ARRAY_SIZE(tests), argc, argv);
}
