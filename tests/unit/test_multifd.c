/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for multifd/: the channel hello and packet header encodings and
 * their validation, offsets checks, and the data plane end to end over
 * socketpairs -- 1, 2 and 4 channels moving rounds of pages (zero and not)
 * from a source buffer into untouched destination memory, the round barrier
 * that keeps a newer copy of a page from being overwritten by an older one,
 * hand-made bad packets fed to a real receiver whose block sits between
 * PROT_NONE guard pages, and cancel from another thread. Postcopy: the
 * urgent channel (bulk batches never on it, urgent ones only there, closed by
 * the last SYNC, beside a concurrent bulk producer), postcopy batches never
 * as XBZRLE, and postcopy packets going to a test placer -- never into the
 * destination's RAM -- in runs, after it is set, through zlib and zstd too,
 * with its errors failing the receiver.
 *
 * Helper threads never call cmocka assertions; they record results that the
 * test thread checks after the join. Sleeps only give a helper the chance to
 * block before it is woken; no assertion depends on them, and joins have a
 * generous timeout that only a hang would hit.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tests/cmocka_compat.h"
#include "compress/compress.h"
#include "multifd/multifd.h"
#include "tcp/tcp.h"
#include "util/util.h"

#define MAX_MAPS 64
#define MAX_RAW 16
#define HANG_GUARD_S 30
#define HUGE_2M (2ull << 20)
#define MAX_CALLS 256

/* One call of the test placer. */
struct place_call {
	uint32_t block;
	uint64_t page;
	uint32_t n;
	bool zero; /* data NULL */
};

/*
 * The test placer (mf_place_fn): records its calls and copies what it is
 * given to ->out (page i at i x page; zero pages cleared), never into the
 * destination's RAM; fails every call with ->fail when set. Runs on the
 * receive workers: it only records, the test thread asserts.
 */
struct placer {
	pthread_mutex_t lock;
	struct place_call calls[MAX_CALLS];
	uint32_t ncalls;
	bool overflow;
	uint8_t *out;
	uint64_t out_pages;
	uint32_t page;
	int fail;
};

struct fixture {
	struct mf_send *snd;
	struct mf_recv *rcv;
	struct {
		void *p;
		size_t len;
	} maps[MAX_MAPS];
	int nmaps;
	uint64_t *touched[4];
	int raw[MAX_RAW]; /* raw socket ends the test writes or leaves unread */
	int nraw;
	int errors; /* on_error calls (atomic) */
	uint32_t page;
	struct tern_error err;
	struct xbzrle_cache *cache;
	struct placer pl;
};

static int fixture_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	long page = sysconf(_SC_PAGESIZE);

	if (!f)
		return -1;
	f->page = page > 0 ? (uint32_t)page : 4096;
	pthread_mutex_init(&f->pl.lock, NULL);
	f->pl.page = f->page;
	*state = f;
	return 0;
}

static void close_raw(struct fixture *f)
{
	int i;

	for (i = 0; i < f->nraw; i++)
		if (f->raw[i] >= 0)
			close(f->raw[i]);
	f->nraw = 0;
}

static int fixture_teardown(void **state)
{
	struct fixture *f = *state;
	int i;

	mf_send_free(f->snd);
	mf_recv_free(f->rcv);
	if (f->cache)
		xbzrle_cache_free(f->cache);
	close_raw(f);
	for (i = 0; i < 4; i++)
		bitmap_free(f->touched[i]);
	for (i = 0; i < f->nmaps; i++)
		munmap(f->maps[i].p, f->maps[i].len);
	pthread_mutex_destroy(&f->pl.lock);
	free(f);
	return 0;
}

static void on_error(void *opaque)
{
	struct fixture *f = opaque;

	__atomic_fetch_add(&f->errors, 1, __ATOMIC_ACQ_REL);
}

static int error_count(struct fixture *f)
{
	return __atomic_load_n(&f->errors, __ATOMIC_ACQUIRE);
}

static void record_map(struct fixture *f, void *p, size_t len)
{
	assert_true(f->nmaps < MAX_MAPS);
	f->maps[f->nmaps].p = p;
	f->maps[f->nmaps].len = len;
	f->nmaps++;
}

static void *map_anon(struct fixture *f, size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	record_map(f, p, len);
	return p;
}

/* Destination memory: 2 MiB aligned, never backed by huge pages (so that
 * mincore() shows exactly the 4 KiB pages that were written). */
static uint8_t *map_dest(struct fixture *f, size_t len)
{
	size_t total = len + HUGE_2M;
	uint8_t *p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	record_map(f, p, total);
	assert_int_equal(madvise(p, total, MADV_NOHUGEPAGE), 0);
	return (uint8_t *)(((uintptr_t)p + HUGE_2M - 1) & ~(uintptr_t)(HUGE_2M - 1));
}

/* @len bytes of memory with a PROT_NONE page right before and after. */
static uint8_t *map_guarded(struct fixture *f, size_t len)
{
	size_t total = len + 2 * (size_t)f->page;
	uint8_t *p = mmap(NULL, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	record_map(f, p, total);
	assert_int_equal(mprotect(p + f->page, len, PROT_READ | PROT_WRITE), 0);
	return p + f->page;
}

/* A socketpair: *ret_conn wraps one end, the other stays raw in f->raw. */
static int raw_pair(struct fixture *f, struct tern_conn **ret_conn)
{
	int sv[2];

	assert_true(f->nraw < MAX_RAW);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_rc_equal(tcp_conn_from_fd(sv[1], "peer", ret_conn, NULL), 0);
	f->raw[f->nraw++] = sv[0];
	return sv[0];
}

static void conn_pairs(uint32_t n, struct tern_conn **a, struct tern_conn **b)
{
	uint32_t i;

	for (i = 0; i < n; i++) {
		int sv[2];

		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		assert_rc_equal(tcp_conn_from_fd(sv[0], "src", &a[i], NULL), 0);
		assert_rc_equal(tcp_conn_from_fd(sv[1], "dst", &b[i], NULL), 0);
	}
}

static const uint8_t test_uuid[16] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
				      0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10};

static void cfg_init(struct fixture *f, struct mf_config *c, uint32_t nch,
		     const struct mf_block *blocks, uint32_t nblocks)
{
	memset(c, 0, sizeof(*c));
	memcpy(c->uuid, test_uuid, 16);
	c->page_size = f->page;
	c->nchannels = nch;
	c->method = TERN_CODEC_NONE;
	c->zlib_level = 1;
	c->zstd_level = 1;
	c->blocks = blocks;
	c->nblocks = nblocks;
	c->on_error = on_error;
	c->opaque = f;
}

static void send_all(int fd, const void *p, size_t len)
{
	const uint8_t *b = p;

	while (len) {
		ssize_t n = send(fd, b, len, MSG_NOSIGNAL);

		assert_true(n > 0);
		b += n;
		len -= (size_t)n;
	}
}

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Join @th, failing (rather than hanging) if it does not end in time. */
static void join_guarded(pthread_t th)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += HANG_GUARD_S;
	if (pthread_timedjoin_np(th, NULL, &ts))
		fail_msg("a thread did not end within %d s", HANG_GUARD_S);
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* A page of pseudo-random bytes, never all zero. */
static void fill_page(uint8_t *p, uint32_t page, uint64_t seed)
{
	uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1, w;
	uint32_t i;

	for (i = 0; i < page; i += 8) {
		w = xorshift(&s);
		memcpy(p + i, &w, 8);
	}
	p[0] |= 1;
}

static bool is_zero(const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* ======================================================================== */
/* encodings and validation                                                 */
/* ======================================================================== */

static void test_hdr_layout(void **state)
{
	static const uint8_t want[MF_HDR_SIZE] = {
	    0x54, 0x52, 0x4e, 0x50,			    /* magic "TRNP" */
	    0x00, 0x01,					    /* version */
	    0x00, 0x03,					    /* flags */
	    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, /* seq */
	    0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, /* round */
	    0x21, 0x22, 0x23, 0x24,			    /* block */
	    0x31, 0x32, 0x33, 0x34,			    /* normal */
	    0x41, 0x42, 0x43, 0x44,			    /* zero */
	    0x51, 0x52, 0x53, 0x54,			    /* codec */
	    0x61, 0x62, 0x63, 0x64,			    /* payload_len */
	    0x71, 0x72, 0x73, 0x74,			    /* reserved */
	};
	const struct mf_packet_hdr h = {
	    .magic = MF_PACKET_MAGIC,
	    .version = MF_VERSION,
	    .flags = MF_FLAG_SYNC | MF_FLAG_LAST,
	    .seq = 0x0102030405060708ull,
	    .round = 0x1112131415161718ull,
	    .block = 0x21222324,
	    .normal = 0x31323334,
	    .zero = 0x41424344,
	    .codec = 0x51525354,
	    .payload_len = 0x61626364,
	    .reserved = 0x71727374,
	};
	struct mf_packet_hdr d;
	uint8_t buf[MF_HDR_SIZE + 1];

	(void)state;
	memset(buf, 0xaa, sizeof(buf));
	mf_hdr_encode(buf, &h);
	assert_memory_equal(buf, want, MF_HDR_SIZE);
	assert_int_equal(buf[MF_HDR_SIZE], 0xaa); /* nothing past the header */

	memset(&d, 0, sizeof(d));
	mf_hdr_decode(want, &d);
	assert_true(d.magic == h.magic);
	assert_true(d.version == h.version);
	assert_true(d.flags == h.flags);
	assert_true(d.seq == h.seq);
	assert_true(d.round == h.round);
	assert_true(d.block == h.block);
	assert_true(d.normal == h.normal);
	assert_true(d.zero == h.zero);
	assert_true(d.codec == h.codec);
	assert_true(d.payload_len == h.payload_len);
	assert_true(d.reserved == h.reserved);

	/* extremes survive the round trip */
	memset(&d, 0xff, sizeof(d));
	mf_hdr_encode(buf, &d);
	{
		struct mf_packet_hdr e;

		memset(&e, 0, sizeof(e));
		mf_hdr_decode(buf, &e);
		assert_true(e.seq == UINT64_MAX && e.round == UINT64_MAX);
		assert_true(e.payload_len == UINT32_MAX && e.flags == 0xffff);
	}
}

static void test_hello_layout(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[MF_HELLO_SIZE];
	struct mf_config cfg;
	uint32_t index = 99;

	mf_hello_encode(buf, test_uuid, 3, 4);
	assert_memory_equal(buf, "TRNW\x00\x00\x00\x01", 8);
	assert_memory_equal(buf + 8, test_uuid, 16);
	assert_memory_equal(buf + 24, "\x00\x00\x00\x03\x00\x00\x00\x04", 8);

	cfg_init(f, &cfg, 4, NULL, 0);
	assert_rc_equal(mf_hello_check(buf, &cfg, &index, &f->err), 0);
	assert_int_equal(index, 3);
	mf_hello_encode(buf, test_uuid, 0, 4);
	assert_rc_equal(mf_hello_check(buf, &cfg, &index, &f->err), 0);
	assert_int_equal(index, 0);
	assert_int_equal(f->err.code, 0);
}

static void test_hello_check_refusals(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[MF_HELLO_SIZE], other[16];
	char other_s[37], ours_s[37];
	struct mf_config cfg;
	uint32_t index = 99;

	cfg_init(f, &cfg, 4, NULL, 0);

	mf_hello_encode(buf, test_uuid, 1, 4);
	put_be32(buf, MF_PACKET_MAGIC);
	assert_rc_equal(mf_hello_check(buf, &cfg, &index, &f->err), -EPROTO);
	assert_str_contains(f->err.msg, "bad magic 0x54524e50");

	mf_hello_encode(buf, test_uuid, 1, 4);
	put_be32(buf + 4, MF_VERSION + 1);
	tern_error_clear(&f->err);
	assert_rc_equal(mf_hello_check(buf, &cfg, &index, &f->err), -EPROTONOSUPPORT);
	assert_str_contains(f->err.msg, "unknown version 2");

	/* another session's channel */
	memcpy(other, test_uuid, 16);
	other[15] ^= 0x01;
	mf_hello_encode(buf, other, 1, 4);
	tern_error_clear(&f->err);
	assert_rc_equal(mf_hello_check(buf, &cfg, &index, &f->err), -EPROTO);
	tern_uuid_format(other, other_s);
	tern_uuid_format(test_uuid, ours_s);
	assert_str_contains(f->err.msg, "worker channel 1 belongs to session");
	assert_str_contains(f->err.msg, other_s);
	assert_str_contains(f->err.msg, ours_s);

	mf_hello_encode(buf, test_uuid, 4, 4);
	tern_error_clear(&f->err);
	assert_rc_equal(mf_hello_check(buf, &cfg, &index, &f->err), -EPROTO);
	assert_str_contains(f->err.msg, "index 4 of 4");
	mf_hello_encode(buf, test_uuid, UINT32_MAX, 4);
	assert_rc_equal(mf_hello_check(buf, &cfg, &index, NULL), -EPROTO);

	/* the channel counts disagree */
	mf_hello_encode(buf, test_uuid, 1, 2);
	tern_error_clear(&f->err);
	assert_rc_equal(mf_hello_check(buf, &cfg, &index, &f->err), -EPROTO);
	assert_str_contains(f->err.msg, "index 1 of 2 channels, expected one of 4");
	mf_hello_encode(buf, test_uuid, 1, 8);
	assert_rc_equal(mf_hello_check(buf, &cfg, &index, NULL), -EPROTO);

	assert_int_equal(index, 99); /* never written on failure */
}

/* A valid header for cfg_hdr(): channel 2 expects packet 7 of round 3. */
static struct mf_packet_hdr good_hdr(uint32_t page)
{
	return (struct mf_packet_hdr){
	    .magic = MF_PACKET_MAGIC,
	    .version = MF_VERSION,
	    .seq = 7,
	    .round = 3,
	    .block = 1,
	    .normal = 3,
	    .zero = 2,
	    .codec = TERN_CODEC_NONE,
	    .payload_len = 3 * page,
	};
}

static int check_hdr(struct fixture *f, const struct mf_packet_hdr *h)
{
	struct mf_block blocks[2] = {{.size = 16 * (uint64_t)f->page},
				     {.size = 16 * (uint64_t)f->page}};
	struct mf_config cfg;

	cfg_init(f, &cfg, 4, blocks, 2);
	tern_error_clear(&f->err);
	return mf_hdr_check(h, &cfg, 2, 7, 3, &f->err);
}

static void test_hdr_check(void **state)
{
	struct fixture *f = *state;
	const uint32_t P = f->page;
	const struct mf_packet_hdr good = good_hdr(P);
	struct mf_packet_hdr h;
	static const struct {
		const char *what;
		int field;
		const char *msg;
	} bad[] = {
	    {"magic", 0, "bad magic 0x54524e57"},
	    {"version", 1, "unknown version 2"},
	    {"flags", 2, "unknown flags 0x8"},
	    {"reserved", 3, "reserved field 0x1 not zero"},
	    {"seq", 4, "packet number 8, expected 7"},
	    {"round", 5, "round 2, expected 3"},
	    {"sync with pages", 6, "sync packet carries 5 pages"},
	    {"last without sync", 7, "LAST without SYNC"},
	    {"codec", 8, "codec zlib was not negotiated (multifd-compression none)"},
	    {"no pages", 9, "page count 0 outside 1..512"},
	    {"too many pages", 10, "page count 513 outside 1..512"},
	    {"overflowing counts", 11, "page count 4294967296 outside"},
	    {"block", 12, "RAM block 2 of 2"},
	    {"payload short", 13, "payload"},
	    {"payload long", 14, "payload"},
	    {"round + 1", 15, "round 4, expected 3"},
	    {"sync with payload", 16, "sync packet carries 0 pages"},
	    {"seq - 1", 17, "packet number 6, expected 7"},
	    {"sync with postcopy", 18, "sync packet with the POSTCOPY flag"},
	    {"last sync with postcopy", 19, "sync packet with the POSTCOPY flag"},
	};
	size_t i;

	h = good;
	assert_rc_equal(check_hdr(f, &h), 0);
	/* zero pages only, the most pages, a sync and the last sync */
	h.normal = 0;
	h.zero = MF_MAX_PAGES;
	h.payload_len = 0;
	assert_rc_equal(check_hdr(f, &h), 0);
	h.normal = MF_MAX_PAGES;
	h.zero = 0;
	h.payload_len = MF_MAX_PAGES * P;
	assert_rc_equal(check_hdr(f, &h), 0);
	h = (struct mf_packet_hdr){.magic = MF_PACKET_MAGIC,
				   .version = MF_VERSION,
				   .flags = MF_FLAG_SYNC,
				   .seq = 7,
				   .round = 3,
				   .codec = TERN_CODEC_NONE};
	assert_rc_equal(check_hdr(f, &h), 0);
	h.flags = MF_FLAG_SYNC | MF_FLAG_LAST;
	assert_rc_equal(check_hdr(f, &h), 0);
	/* a postcopy page packet: normal and zero pages, or zero pages only */
	h = good;
	h.flags = MF_FLAG_POSTCOPY;
	assert_rc_equal(check_hdr(f, &h), 0);
	h.normal = 0;
	h.payload_len = 0;
	assert_rc_equal(check_hdr(f, &h), 0);

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		h = good;
		switch (bad[i].field) {
		case 0:
			h.magic = MF_HELLO_MAGIC;
			break;
		case 1:
			h.version = MF_VERSION + 1;
			break;
		case 2:
			h.flags = 0x8;
			break;
		case 3:
			h.reserved = 1;
			break;
		case 4:
			h.seq = 8;
			break;
		case 5:
			h.round = 2;
			break;
		case 6:
			h.flags = MF_FLAG_SYNC;
			break;
		case 7:
			h.flags = MF_FLAG_LAST;
			break;
		case 8:
			h.codec = TERN_CODEC_NONE + 1;
			break;
		case 9:
			h.normal = 0;
			h.zero = 0;
			h.payload_len = 0;
			break;
		case 10:
			h.normal = MF_MAX_PAGES + 1;
			h.zero = 0;
			h.payload_len = (MF_MAX_PAGES + 1) * P;
			break;
		case 11:
			h.normal = UINT32_MAX;
			h.zero = 1;
			break;
		case 12:
			h.block = 2;
			break;
		case 13:
			h.payload_len = 3 * P - 1;
			break;
		case 14:
			h.payload_len = 4 * P;
			break;
		case 15:
			h.round = 4;
			break;
		case 16:
			h.flags = MF_FLAG_SYNC;
			h.normal = 0;
			h.zero = 0;
			h.payload_len = P;
			break;
		case 17:
			h.seq = 6;
			break;
		case 18:
		case 19:
			h.flags = MF_FLAG_SYNC | MF_FLAG_POSTCOPY |
				  (bad[i].field == 19 ? MF_FLAG_LAST : 0);
			h.normal = 0;
			h.zero = 0;
			h.payload_len = 0;
			break;
		}
		if (check_hdr(f, &h) != -EPROTO)
			fail_msg("%s: accepted or wrong code (%d)", bad[i].what, f->err.code);
		if (!strstr(f->err.msg, bad[i].msg))
			fail_msg("%s: \"%s\" does not contain \"%s\"", bad[i].what, f->err.msg,
				 bad[i].msg);
		assert_str_contains(f->err.msg, "channel 2");
	}
}

/* Methods, the codecs each allows, and the checks on encoded payloads. */
static void test_hdr_check_codecs(void **state)
{
	struct fixture *f = *state;
	const uint32_t P = f->page;
	struct mf_block blocks[2] = {{.size = 16 * (uint64_t)P}, {.size = 16 * (uint64_t)P}};
	struct mf_packet_hdr h;
	struct mf_config cfg;
	uint32_t id;

	/* names and codec sets */
	assert_string_equal(mf_method_name(TERN_CODEC_NONE), "none");
	assert_string_equal(mf_method_name(TERN_CODEC_XBZRLE), "xbzrle");
	assert_string_equal(mf_method_name(MF_METHOD_AUTO), "auto");
	assert_string_equal(mf_method_name(0), "invalid");
	assert_string_equal(mf_method_name(TERN_CODEC_MAX), "invalid");
	assert_int_equal(mf_method_by_name("auto"), MF_METHOD_AUTO);
	assert_int_equal(mf_method_by_name("zlib"), TERN_CODEC_ZLIB);
	assert_int_equal(mf_method_by_name("lz4"), 0);
	assert_int_equal(mf_method_by_name(NULL), 0);
	assert_int_equal(mf_method_codecs(0), 0);
	assert_int_equal(mf_method_codecs(MF_METHOD_AUTO + 1), 0);
	assert_int_equal(mf_method_codecs(TERN_CODEC_NONE), 1u << TERN_CODEC_NONE);
	assert_int_equal(mf_method_codecs(TERN_CODEC_ZLIB),
			 1u << TERN_CODEC_NONE | 1u << TERN_CODEC_ZLIB);
	assert_int_equal(mf_method_codecs(MF_METHOD_AUTO),
			 1u << TERN_CODEC_NONE | 1u << TERN_CODEC_ZSTD | 1u << TERN_CODEC_XBZRLE);
	assert_false(mf_codec_allowed(MF_METHOD_AUTO, TERN_CODEC_ZLIB));
	assert_false(mf_codec_allowed(TERN_CODEC_ZSTD, TERN_CODEC_XBZRLE));
	assert_false(mf_codec_allowed(TERN_CODEC_ZSTD, 99));
	assert_true(mf_codec_allowed(TERN_CODEC_XBZRLE, TERN_CODEC_NONE));
	assert_rc_equal(mf_method_check(0, "HELLO", &f->err), -EPROTONOSUPPORT);
	assert_str_contains(f->err.msg, "HELLO: unknown page encoding 0");
	tern_error_clear(&f->err);

	cfg_init(f, &cfg, 4, blocks, 2);
	for (id = TERN_CODEC_ZLIB; id < TERN_CODEC_MAX; id++) {
		uint64_t max = codec_payload_max((enum tern_codec_id)id, P, 3);
		uint32_t other;

		cfg.method = id;
		h = good_hdr(P);
		h.codec = id;
		/* an encoded payload of any length up to the codec's bound */
		h.payload_len = 1;
		assert_rc_equal(mf_hdr_check(&h, &cfg, 2, 7, 3, &f->err), 0);
		h.payload_len = (uint32_t)MIN(max, UINT32_MAX);
		assert_rc_equal(mf_hdr_check(&h, &cfg, 2, 7, 3, &f->err), 0);
		if (max < UINT32_MAX) {
			h.payload_len = (uint32_t)max + 1;
			assert_rc_equal(mf_hdr_check(&h, &cfg, 2, 7, 3, &f->err), -EPROTO);
			assert_str_contains(f->err.msg, "more than the");
			assert_str_contains(f->err.msg, codec_name((enum tern_codec_id)id));
			assert_str_contains(f->err.msg, "channel 2 packet 7");
			tern_error_clear(&f->err);
		}
		/* no normal page: nothing to decode */
		h.normal = 0;
		h.payload_len = 8;
		assert_rc_equal(mf_hdr_check(&h, &cfg, 2, 7, 3, &f->err), -EPROTO);
		assert_str_contains(f->err.msg, "no normal page");
		tern_error_clear(&f->err);
		/* NONE is always allowed, with its exact length */
		h = good_hdr(P);
		assert_rc_equal(mf_hdr_check(&h, &cfg, 2, 7, 3, &f->err), 0);
		h.payload_len = 2 * P;
		assert_rc_equal(mf_hdr_check(&h, &cfg, 2, 7, 3, &f->err), -EPROTO);
		tern_error_clear(&f->err);
		/* another compressing codec is not */
		other = id == TERN_CODEC_ZLIB ? TERN_CODEC_ZSTD : TERN_CODEC_ZLIB;
		h = good_hdr(P);
		h.codec = other;
		h.payload_len = 100;
		assert_rc_equal(mf_hdr_check(&h, &cfg, 2, 7, 3, &f->err), -EPROTO);
		assert_str_contains(f->err.msg, "was not negotiated");
		tern_error_clear(&f->err);
	}

	/* auto: none, zstd, xbzrle -- not zlib */
	cfg.method = MF_METHOD_AUTO;
	h = good_hdr(P);
	h.payload_len = 100;
	h.codec = TERN_CODEC_ZSTD;
	assert_rc_equal(mf_hdr_check(&h, &cfg, 2, 7, 3, &f->err), 0);
	h.codec = TERN_CODEC_XBZRLE;
	assert_rc_equal(mf_hdr_check(&h, &cfg, 2, 7, 3, &f->err), 0);
	h.codec = TERN_CODEC_ZLIB;
	assert_rc_equal(mf_hdr_check(&h, &cfg, 2, 7, 3, &f->err), -EPROTO);
	assert_str_contains(f->err.msg, "channel 2 packet 7: codec zlib was not negotiated "
					"(multifd-compression auto)");
	tern_error_clear(&f->err);

	/* postcopy: zstd and none go, XBZRLE never (under auto and xbzrle) */
	h.flags = MF_FLAG_POSTCOPY;
	h.codec = TERN_CODEC_ZSTD;
	assert_rc_equal(mf_hdr_check(&h, &cfg, 2, 7, 3, &f->err), 0);
	h.codec = TERN_CODEC_XBZRLE;
	assert_rc_equal(mf_hdr_check(&h, &cfg, 2, 7, 3, &f->err), -EPROTO);
	assert_str_contains(f->err.msg, "channel 2 packet 7: postcopy packet with codec xbzrle");
	tern_error_clear(&f->err);
	cfg.method = TERN_CODEC_XBZRLE;
	assert_rc_equal(mf_hdr_check(&h, &cfg, 2, 7, 3, &f->err), -EPROTO);
	assert_str_contains(f->err.msg, "postcopy packet with codec xbzrle");
	tern_error_clear(&f->err);
	h = good_hdr(P);
	h.flags = MF_FLAG_POSTCOPY;
	assert_rc_equal(mf_hdr_check(&h, &cfg, 2, 7, 3, &f->err), 0);
	cfg.method = MF_METHOD_AUTO;
	h.flags = 0;

	/* unknown ids, and a sync packet with a codec */
	h.codec = TERN_CODEC_MAX;
	assert_rc_equal(mf_hdr_check(&h, &cfg, 2, 7, 3, &f->err), -EPROTO);
	assert_str_contains(f->err.msg, "unknown codec 5");
	tern_error_clear(&f->err);
	h.codec = TERN_CODEC_INVALID;
	assert_rc_equal(mf_hdr_check(&h, &cfg, 2, 7, 3, &f->err), -EPROTO);
	assert_str_contains(f->err.msg, "unknown codec 0");
	tern_error_clear(&f->err);
	h = (struct mf_packet_hdr){.magic = MF_PACKET_MAGIC,
				   .version = MF_VERSION,
				   .flags = MF_FLAG_SYNC,
				   .seq = 7,
				   .round = 3,
				   .codec = TERN_CODEC_ZSTD};
	assert_rc_equal(mf_hdr_check(&h, &cfg, 2, 7, 3, &f->err), -EPROTO);
	assert_str_contains(f->err.msg, "sync packet with codec 3");
}

static void test_offsets_check(void **state)
{
	struct fixture *f = *state;
	const uint64_t P = f->page, size = 16 * P;
	const struct mf_block blk = {.size = size};
	uint8_t offs[8 * 4];
	/* unaligned, the block size, past it, and values that wrap host + off
	 * (UINT64_MAX - (P - 1) is page-aligned: the page before the block) */
	const uint64_t bad[] = {1,	   100,	       P - 1,
				P / 2,	   size,       size + P,
				size + 1,  UINT64_MAX, UINT64_MAX - (P - 1),
				1ull << 63};
	size_t i;

	/* good: the first and the last page, in any order */
	put_be64(offs, size - P);
	put_be64(offs + 8, 0);
	put_be64(offs + 16, 5 * P);
	put_be64(offs + 24, size - P);
	assert_rc_equal(mf_offsets_check(offs, 4, &blk, f->page, 1, 9, &f->err), 0);
	assert_rc_equal(mf_offsets_check(offs, 0, &blk, f->page, 1, 9, &f->err), 0);
	assert_int_equal(f->err.code, 0);

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		char want[64];
		int pos = (int)(i % 4); /* the bad one anywhere in the list */
		int k;

		for (k = 0; k < 4; k++)
			put_be64(offs + 8 * k, k == pos ? bad[i] : (uint64_t)k * P);
		tern_error_clear(&f->err);
		assert_rc_equal(mf_offsets_check(offs, 4, &blk, f->page, 1, 9, &f->err), -EPROTO);
		snprintf(want, sizeof(want), "page offset %#" PRIx64, bad[i]);
		assert_str_contains(f->err.msg, want);
		assert_str_contains(f->err.msg, "channel 1 packet 9");
		/* but the offsets before it pass on their own */
		assert_rc_equal(mf_offsets_check(offs, (uint32_t)pos, &blk, f->page, 1, 9, NULL),
				0);
	}
}

/* ======================================================================== */
/* end to end over socketpairs                                              */
/* ======================================================================== */

struct expect {
	uint64_t normal, zero, wire, packets;
};

struct e2e {
	struct fixture *f;
	uint32_t nch;
	uint8_t *src[2], *dst[2];
	uint64_t npages[2];
	uint8_t *ever[2]; /* per page: received data at least once */
	struct expect exp;
	unsigned int batch_turn;
};

static const uint32_t batch_sizes[] = {1, 100, MF_BATCH_PAGES, 37, 300, 64};

/* Queue @n pages of @block for @round, in batches of varying sizes. */
static void queue_pages(struct e2e *e, uint32_t block, uint64_t round, const uint64_t *pages,
			uint64_t n)
{
	const uint32_t P = e->f->page;
	uint64_t i = 0;

	while (i < n) {
		struct mf_batch *b = mf_send_batch_get(e->f->snd);
		uint32_t want = batch_sizes[e->batch_turn++ % ARRAY_SIZE(batch_sizes)], j, normal;

		assert_non_null(b);
		b->block = block;
		b->round = round;
		b->npages = (uint32_t)MIN((uint64_t)want, n - i);
		normal = 0;
		for (j = 0; j < b->npages; j++) {
			uint64_t pg = pages[i + j];

			b->pages[j] = pg;
			if (is_zero(e->src[block] + pg * P, P)) {
				e->exp.zero++;
			} else {
				e->exp.normal++;
				normal++;
				e->ever[block][pg] = 1;
			}
		}
		e->exp.wire += MF_HDR_SIZE + 8ull * b->npages + (uint64_t)normal * P;
		e->exp.packets++;
		i += b->npages;
		assert_rc_equal(mf_send_batch_queue(e->f->snd, b, -1), 0);
	}
}

static void end_round(struct e2e *e, uint64_t round, bool last)
{
	struct tern_error err = {0};

	assert_rc_equal(mf_send_sync(e->f->snd, round, last, -1), 0);
	e->exp.wire += MF_HDR_SIZE * (uint64_t)e->nch;
	e->exp.packets += e->nch;
	if (mf_recv_wait_sync(e->f->rcv, round, &err))
		fail_msg("round %" PRIu64 ": %s", round, err.msg);
}

/* What went through the codecs adds up to the normal pages, on both sides. */
static void check_codec_stats(struct fixture *f, uint32_t method, uint64_t normal)
{
	struct mf_codec_stats sc, rc;
	char reason[128];
	uint64_t spages = 0, rpages = 0, sin = 0, sout = 0, rout = 0, chosen = 0;
	uint32_t id;

	mf_send_codec_stats(f->snd, &sc, reason, sizeof(reason));
	mf_recv_codec_stats(f->rcv, &rc);
	for (id = 0; id < MF_NCODECS; id++) {
		if (!mf_codec_allowed(method, id)) {
			assert_true(sc.codec[id].pages == 0);
			assert_true(rc.codec[id].pages == 0);
		}
		spages += sc.codec[id].pages;
		rpages += rc.codec[id].pages;
		sin += sc.codec[id].bytes_in;
		sout += sc.codec[id].bytes_out;
		rout += rc.codec[id].bytes_out;
		chosen += sc.auto_packets[id];
		assert_true(sc.codec[id].pages == rc.codec[id].pages);
		assert_true(sc.codec[id].bytes_out == rc.codec[id].bytes_out);
	}
	assert_true(spages == normal);
	assert_true(rpages == normal);
	assert_true(sin == normal * f->page);
	assert_true(sout == rout);
	if (method == MF_METHOD_AUTO) {
		assert_true(chosen > 0);
		print_message("auto: none %" PRIu64 ", zstd %" PRIu64 ", xbzrle %" PRIu64
			      " packets; last: %s\n",
			      sc.auto_packets[TERN_CODEC_NONE], sc.auto_packets[TERN_CODEC_ZSTD],
			      sc.auto_packets[TERN_CODEC_XBZRLE], reason);
	} else {
		assert_true(chosen == 0);
	}
}

static void run_e2e_method(struct fixture *f, uint32_t nch, uint32_t method)
{
	const uint32_t P = f->page;
	const uint64_t size0 = 8ull << 20, size1 = 16ull * P;
	const uint64_t zr_first = HUGE_2M / P, zr_n = HUGE_2M / P; /* the 2nd 2 MiB */
	struct tern_conn *sc[4], *rc[4];
	struct mf_block sblk[2], dblk[2];
	struct mf_config scfg, rcfg;
	struct mf_chan_stats st, rt, sper[4], rper[4];
	struct e2e e = {.f = f, .nch = nch};
	uint64_t *list, n, i, zero_before_data = UINT64_MAX;
	uint32_t k;
	unsigned char *vec;

	e.npages[0] = size0 / P;
	e.npages[1] = size1 / P;
	e.src[0] = map_anon(f, size0);
	e.src[1] = map_anon(f, size1);
	e.dst[0] = map_dest(f, size0);
	e.dst[1] = map_dest(f, size1);
	e.ever[0] = calloc(e.npages[0], 1);
	e.ever[1] = calloc(e.npages[1], 1);
	list = calloc(e.npages[0], sizeof(*list));
	vec = calloc(e.npages[0], 1);
	assert_true(e.ever[0] && e.ever[1] && list && vec);

	for (k = 0; k < 2; k++) {
		f->touched[k] = bitmap_new(e.npages[k]);
		assert_non_null(f->touched[k]);
		sblk[k] = (struct mf_block){.host = e.src[k], .size = k ? size1 : size0};
		dblk[k] = (struct mf_block){
		    .host = e.dst[k], .size = k ? size1 : size0, .touched = f->touched[k]};
	}
	/* round 1 content: the zero region, every 7th page zero, the rest data */
	for (i = 0; i < e.npages[0]; i++)
		if (!(i >= zr_first && i < zr_first + zr_n) && i % 7 != 3)
			fill_page(e.src[0] + i * P, P, i);
	for (i = 0; i < e.npages[1]; i++)
		if (i % 3)
			fill_page(e.src[1] + i * P, P, 100000 + i);

	cfg_init(f, &scfg, nch, sblk, 2);
	cfg_init(f, &rcfg, nch, dblk, 2);
	scfg.method = rcfg.method = method;
	scfg.zstd_level = rcfg.zstd_level = 3;
	if (mf_method_codecs(method) >> TERN_CODEC_XBZRLE & 1) {
		assert_rc_equal(xbzrle_cache_new(8ull << 20, P, &f->cache, &f->err), 0);
		scfg.xbzrle = f->cache;
	}
	conn_pairs(nch, sc, rc);
	assert_rc_equal(mf_recv_new(&rcfg, &f->rcv, &f->err), 0);
	assert_rc_equal(mf_send_start(&scfg, sc, &f->snd, &f->err), 0);
	for (k = 0; k < nch; k++) {
		assert_false(mf_recv_complete(f->rcv));
		/* channels join in any order */
		assert_rc_equal(mf_recv_add_channel(f->rcv, rc[nch - 1 - k], &f->err), 0);
	}
	assert_true(mf_recv_complete(f->rcv));

	/* round 1: everything */
	for (i = 0; i < e.npages[0]; i++)
		list[i] = i;
	queue_pages(&e, 0, 1, list, e.npages[0]);
	queue_pages(&e, 1, 1, list, e.npages[1]);
	end_round(&e, 1, false);

	/* round 2: new data on every 5th page (some were zero), data -> zero on
	 * others, a quarter of the zero region again (still zero), block 1
	 * inverted */
	n = 0;
	for (i = 0; i < e.npages[0]; i++) {
		bool zr = i >= zr_first && i < zr_first + zr_n;

		if (zr) {
			if (i % 4 == 0)
				list[n++] = i;
		} else if (i % 5 == 0) {
			if (i % 7 == 3 && zero_before_data == UINT64_MAX)
				zero_before_data = i;
			fill_page(e.src[0] + i * P, P, 200000 + i);
			list[n++] = i;
		} else if (i % 11 == 1) {
			memset(e.src[0] + i * P, 0, P);
			list[n++] = i;
		}
	}
	queue_pages(&e, 0, 2, list, n);
	for (i = 0; i < e.npages[1]; i++) {
		if (i % 3)
			memset(e.src[1] + i * P, 0, P);
		else
			fill_page(e.src[1] + i * P, P, 300000 + i);
		list[i] = i;
	}
	queue_pages(&e, 1, 2, list, e.npages[1]);
	end_round(&e, 2, false);

	/* round 3, the last: every 13th page outside the zero region toggles */
	n = 0;
	for (i = 2; i < e.npages[0]; i += 13) {
		if (i >= zr_first && i < zr_first + zr_n)
			continue;
		if (is_zero(e.src[0] + i * P, P))
			fill_page(e.src[0] + i * P, P, 400000 + i);
		else
			memset(e.src[0] + i * P, 0, P);
		list[n++] = i;
	}
	queue_pages(&e, 0, 3, list, n);
	end_round(&e, 3, true);

	assert_rc_equal(mf_recv_finish(f->rcv, &f->err), 0);
	assert_rc_equal(mf_send_flush(f->snd, -1), 0);
	assert_rc_equal(mf_send_error(f->snd, &f->err), 0);
	assert_rc_equal(mf_recv_error(f->rcv, &f->err), 0);

	/* Before anything reads the destination: pages that never received
	 * data were never faulted in -- the whole zero region among them. */
	assert_int_equal(mincore(e.dst[0], size0, vec), 0);
	for (i = 0; i < e.npages[0]; i++) {
		if (i >= zr_first && i < zr_first + zr_n && (vec[i] & 1))
			fail_msg("page %" PRIu64 " of the zero region was faulted in", i);
		if (!e.ever[0][i] && (vec[i] & 1))
			fail_msg("page %" PRIu64 " never had data but was faulted in", i);
		assert_int_equal(bitmap_test(f->touched[0], i), e.ever[0][i]);
	}
	for (i = 0; i < e.npages[1]; i++)
		assert_int_equal(bitmap_test(f->touched[1], i), e.ever[1][i]);

	/* Byte for byte. */
	assert_memory_equal(e.dst[0], e.src[0], size0);
	assert_memory_equal(e.dst[1], e.src[1], size1);
	/* data in round 1, zero in round 2: reads back as zero */
	assert_true(e.ever[0][1]);
	assert_true(is_zero(e.dst[0] + 1 * P, P));
	/* zero in round 1, data in round 2 */
	assert_true(zero_before_data != UINT64_MAX);
	assert_false(is_zero(e.dst[0] + zero_before_data * P, P));

	/* Figures: what the test queued, the same on both sides, per channel. */
	mf_send_stats(f->snd, &st, sper);
	mf_recv_stats(f->rcv, &rt, rper);
	assert_true(st.normal_pages == e.exp.normal);
	assert_true(st.zero_pages == e.exp.zero);
	assert_true(st.packets == e.exp.packets);
	if (method == TERN_CODEC_NONE)
		assert_true(st.wire_bytes == e.exp.wire + MF_HELLO_SIZE * (uint64_t)nch);
	assert_true(rt.normal_pages == st.normal_pages);
	assert_true(rt.zero_pages == st.zero_pages);
	assert_true(rt.packets == st.packets);
	assert_true(rt.wire_bytes == st.wire_bytes);
	for (k = 0; k < nch; k++) {
		assert_true(sper[k].wire_bytes == rper[k].wire_bytes);
		assert_true(sper[k].normal_pages == rper[k].normal_pages);
		assert_true(sper[k].zero_pages == rper[k].zero_pages);
		assert_true(sper[k].packets == rper[k].packets);
		assert_true(sper[k].packets >= 3); /* at least the three syncs */
	}
	assert_int_equal(error_count(f), 0);
	check_codec_stats(f, method, st.normal_pages);

	free(e.ever[0]);
	free(e.ever[1]);
	free(list);
	free(vec);
}

static void run_e2e(struct fixture *f, uint32_t nch)
{
	run_e2e_method(f, nch, TERN_CODEC_NONE);
}

static void test_e2e_1ch(void **state)
{
	run_e2e(*state, 1);
}

/* Every page-encoding method, over 1 and 3 channels. */
static void test_e2e_codecs(void **state)
{
	static const uint32_t methods[] = {TERN_CODEC_ZLIB, TERN_CODEC_ZSTD, TERN_CODEC_XBZRLE,
					   MF_METHOD_AUTO};
	size_t i;
	uint32_t nch;

	for (i = 0; i < ARRAY_SIZE(methods); i++) {
		if (mf_method_check(methods[i], "test", NULL)) {
			print_message("skipping %s: not in this build\n",
				      mf_method_name(methods[i]));
			continue;
		}
		for (nch = 1; nch <= 3; nch += 2) {
			print_message("method %s, %u channel(s)\n", mf_method_name(methods[i]),
				      nch);
			run_e2e_method(*state, nch, methods[i]);
			/* a fresh fixture for the next run; cmocka tears the last down */
			fixture_teardown(state);
			assert_int_equal(fixture_setup(state), 0);
		}
	}
}

static void test_e2e_2ch(void **state)
{
	run_e2e(*state, 2);
}

static void test_e2e_4ch(void **state)
{
	run_e2e(*state, 4);
}

/*
 * The round barrier: pages go out in round 1 (content A) on channel 0 and in
 * round 2 (content B: data or zero) on channel 1. Whatever the threads'
 * timing, B must be what stays. The tested pages come last in a full batch
 * on channel 0, so that channel 0 is still landing them when channel 1's
 * small round-2 batch arrives: without the barrier, B loses often.
 */
#define ORDER_PAGES MF_MAX_PAGES
#define ORDER_TESTED 8

static void queue_range(struct mf_send *snd, uint64_t round, uint32_t first, uint32_t n)
{
	struct mf_batch *b = mf_send_batch_get(snd);
	uint32_t j;

	assert_non_null(b);
	b->block = 0;
	b->round = round;
	b->npages = n;
	for (j = 0; j < n; j++)
		b->pages[j] = first + j;
	assert_rc_equal(mf_send_batch_queue(snd, b, -1), 0);
}

/*
 * mf_send_sync_wire(): the channels' bytes up to their SYNC of a round, once
 * every channel wrote it, and not once its mark was reused.
 */
static void test_sync_wire(void **state)
{
	struct fixture *f = *state;
	const uint32_t P = f->page, np = 64;
	const size_t size = np * (size_t)P;
	uint8_t *src = map_anon(f, size), *dst = map_dest(f, size);
	struct mf_block sblk = {.host = src, .size = size};
	struct mf_block dblk = {.host = dst, .size = size};
	struct tern_conn *sc[2], *rc[2];
	struct mf_config scfg, rcfg;
	struct mf_chan_stats st;
	uint64_t round, bytes = 1, at1 = 0;
	uint32_t j;

	f->touched[0] = bitmap_new(np);
	assert_non_null(f->touched[0]);
	dblk.touched = f->touched[0];
	for (j = 0; j < np; j++)
		fill_page(src + j * (size_t)P, P, j + 1);
	cfg_init(f, &scfg, 2, &sblk, 1);
	cfg_init(f, &rcfg, 2, &dblk, 1);
	conn_pairs(2, sc, rc);
	assert_rc_equal(mf_recv_new(&rcfg, &f->rcv, &f->err), 0);
	assert_rc_equal(mf_send_start(&scfg, sc, &f->snd, &f->err), 0);
	assert_rc_equal(mf_recv_add_channel(f->rcv, rc[0], &f->err), 0);
	assert_rc_equal(mf_recv_add_channel(f->rcv, rc[1], &f->err), 0);

	for (round = 1; round <= MF_SYNC_MARKS + 1; round++) {
		assert_false(mf_send_sync_wire(f->snd, round, &bytes));
		queue_range(f->snd, round, 0, np / 2);
		queue_range(f->snd, round, np / 2, np / 2);
		assert_rc_equal(mf_send_sync(f->snd, round, round == MF_SYNC_MARKS + 1, -1), 0);
		assert_rc_equal(mf_send_flush(f->snd, -1), 0);
		assert_rc_equal(mf_recv_wait_sync(f->rcv, round, &f->err), 0);
		/* nothing was written after the SYNCs: the channels' whole count */
		mf_send_stats(f->snd, &st, NULL);
		assert_true(mf_send_sync_wire(f->snd, round, &bytes));
		assert_uint_equal(bytes, st.wire_bytes);
		assert_true(bytes >= round * np * (uint64_t)P);
		if (round == 1)
			at1 = bytes;
		else if (round < MF_SYNC_MARKS + 1)
			assert_true(mf_send_sync_wire(f->snd, 1, &bytes) && bytes == at1);
	}
	/* round MF_SYNC_MARKS + 1 took round 1's marks */
	assert_false(mf_send_sync_wire(f->snd, 1, &bytes));
	assert_rc_equal(mf_recv_finish(f->rcv, &f->err), 0);
	assert_memory_equal(dst, src, size);
	assert_int_equal(error_count(f), 0);
}

static void test_ordering(void **state)
{
	struct fixture *f = *state;
	const uint32_t P = f->page, np = ORDER_PAGES, first = ORDER_PAGES - ORDER_TESTED;
	const size_t size = np * (size_t)P;
	uint8_t *src = map_anon(f, size), *dst = map_dest(f, size);
	struct mf_block sblk = {.host = src, .size = size};
	struct mf_block dblk = {.host = dst, .size = size};
	struct mf_chan_stats st, per[2];
	struct mf_config scfg, rcfg;
	int iter;

	f->touched[0] = bitmap_new(np);
	assert_non_null(f->touched[0]);
	dblk.touched = f->touched[0];
	cfg_init(f, &scfg, 2, &sblk, 1);
	cfg_init(f, &rcfg, 2, &dblk, 1);

	for (iter = 0; iter < 200; iter++) {
		struct tern_conn *sc[2], *rc[2];
		uint32_t j;

		/* The destination pages hold stale data from an earlier load. */
		memset(dst, 0xee, size);
		bitmap_set_range(f->touched[0], 0, np);
		memset(src, 1 + iter % 250, first * (size_t)P);
		for (j = first; j < np; j++)
			fill_page(src + j * (size_t)P, P, (uint64_t)iter * 1000 + j);

		conn_pairs(2, sc, rc);
		assert_rc_equal(mf_recv_new(&rcfg, &f->rcv, &f->err), 0);
		assert_rc_equal(mf_send_start(&scfg, sc, &f->snd, &f->err), 0);
		assert_rc_equal(mf_recv_add_channel(f->rcv, rc[0], &f->err), 0);
		assert_rc_equal(mf_recv_add_channel(f->rcv, rc[1], &f->err), 0);

		/* round 1: every page, A on the tested ones, on channel 0 */
		queue_range(f->snd, 1, 0, np);
		assert_rc_equal(mf_send_sync(f->snd, 1, false, -1), 0);
		assert_rc_equal(mf_send_flush(f->snd, -1), 0); /* A left the source */

		/* round 2: B on the tested pages, every other one zero, channel 1 */
		for (j = first; j < np; j++) {
			if ((j + (uint32_t)iter) % 2)
				memset(src + j * (size_t)P, 0, P);
			else
				fill_page(src + j * (size_t)P, P, (uint64_t)iter * 1000 + 500 + j);
		}
		queue_range(f->snd, 2, first, ORDER_TESTED);
		assert_rc_equal(mf_send_sync(f->snd, 2, true, -1), 0);
		assert_rc_equal(mf_send_flush(f->snd, -1), 0);

		assert_rc_equal(mf_recv_wait_sync(f->rcv, 1, &f->err), 0);
		assert_rc_equal(mf_recv_wait_sync(f->rcv, 2, &f->err), 0);
		assert_rc_equal(mf_recv_finish(f->rcv, &f->err), 0);

		/* the rounds went where the test meant them to */
		mf_send_stats(f->snd, &st, per);
		assert_true(per[0].normal_pages == np && per[0].zero_pages == 0);
		assert_true(per[1].normal_pages == ORDER_TESTED / 2);
		assert_true(per[1].zero_pages == ORDER_TESTED / 2);
		if (memcmp(dst, src, size))
			fail_msg("iteration %d: an older copy of a page won", iter);

		mf_send_free(f->snd);
		f->snd = NULL;
		mf_recv_free(f->rcv);
		f->rcv = NULL;
	}
	assert_int_equal(error_count(f), 0);
}

/* ======================================================================== */
/* bad packets through a real receiver                                      */
/* ======================================================================== */

#define BAD_PAGES 16

struct bad_rx {
	struct fixture *f;
	uint8_t *dst;
	int fd; /* what the test writes into */
	struct mf_config cfg;
	struct mf_block blk;
};

/* One channel under @method; its hello went out and the worker runs. */
static void bad_rx_start_method(struct fixture *f, struct bad_rx *x, uint32_t method)
{
	struct tern_conn *c;
	uint8_t hello[MF_HELLO_SIZE];

	x->f = f;
	x->dst = map_guarded(f, BAD_PAGES * (size_t)f->page);
	f->touched[0] = bitmap_new(BAD_PAGES);
	assert_non_null(f->touched[0]);
	x->blk = (struct mf_block){
	    .host = x->dst, .size = BAD_PAGES * (uint64_t)f->page, .touched = f->touched[0]};
	cfg_init(f, &x->cfg, 1, &x->blk, 1);
	x->cfg.method = method;
	assert_rc_equal(mf_recv_new(&x->cfg, &f->rcv, &f->err), 0);
	x->fd = raw_pair(f, &c);
	mf_hello_encode(hello, test_uuid, 0, 1);
	send_all(x->fd, hello, sizeof(hello));
	assert_rc_equal(mf_recv_add_channel(f->rcv, c, &f->err), 0);
}

static void bad_rx_start(struct fixture *f, struct bad_rx *x)
{
	bad_rx_start_method(f, x, TERN_CODEC_NONE);
}

/* A header of round 1 with @flags and @codec. */
static void send_hdr_ex(struct bad_rx *x, uint64_t seq, uint16_t flags, uint32_t codec,
			uint32_t block, uint32_t normal, uint32_t zero, uint32_t payload_len)
{
	struct mf_packet_hdr h = {
	    .magic = MF_PACKET_MAGIC,
	    .version = MF_VERSION,
	    .flags = flags,
	    .seq = seq,
	    .round = 1,
	    .block = block,
	    .normal = normal,
	    .zero = zero,
	    .codec = codec,
	    .payload_len = payload_len,
	};
	uint8_t buf[MF_HDR_SIZE];

	mf_hdr_encode(buf, &h);
	send_all(x->fd, buf, sizeof(buf));
}

static void send_hdr(struct bad_rx *x, uint64_t seq, uint32_t block, uint32_t normal, uint32_t zero,
		     uint32_t payload_len)
{
	send_hdr_ex(x, seq, 0, TERN_CODEC_NONE, block, normal, zero, payload_len);
}

static void send_offsets(struct bad_rx *x, const uint64_t *offs, uint32_t n)
{
	uint8_t buf[8 * 8];
	uint32_t i;

	assert_true(n <= 8);
	for (i = 0; i < n; i++)
		put_be64(buf + 8 * i, offs[i]);
	send_all(x->fd, buf, 8 * (size_t)n);
}

static void send_pages(struct bad_rx *x, uint32_t n, uint8_t fill)
{
	uint8_t *p = malloc(x->f->page);
	uint32_t i;

	assert_non_null(p);
	memset(p, fill, x->f->page);
	for (i = 0; i < n; i++)
		send_all(x->fd, p, x->f->page);
	free(p);
}

/*
 * Wait for the failure, check its code and message, then free the receiver
 * (joining its worker) and check on_error fired once.
 */
static void expect_failure(struct bad_rx *x, int code, const char *msg)
{
	struct fixture *f = x->f;
	struct tern_error err = {0}, err2 = {0};

	assert_rc_equal(mf_recv_wait_sync(f->rcv, 1, &err), code);
	assert_str_contains(err.msg, msg);
	assert_rc_equal(mf_recv_error(f->rcv, &err2), code);
	assert_string_equal(err2.msg, err.msg);
	tern_error_clear(&err2);
	assert_rc_equal(mf_recv_finish(f->rcv, &err2), code);
	mf_recv_free(f->rcv);
	f->rcv = NULL;
	assert_int_equal(error_count(f), 1);
}

static void assert_block_untouched(struct bad_rx *x)
{
	assert_true(is_zero(x->dst, BAD_PAGES * (size_t)x->f->page));
	assert_true(bitmap_count(x->f->touched[0], BAD_PAGES) == 0);
}

static void test_bad_offset_after_block(void **state)
{
	struct fixture *f = *state;
	struct bad_rx x;
	char msg[64];

	bad_rx_start(f, &x);
	/* the second page lands right on the guard page after the block */
	send_hdr(&x, 0, 0, 2, 0, 2 * f->page);
	send_offsets(&x, (uint64_t[]){0, BAD_PAGES * (uint64_t)f->page}, 2);
	send_pages(&x, 2, 0xab);
	snprintf(msg, sizeof(msg), "page offset %#" PRIx64, BAD_PAGES * (uint64_t)f->page);
	expect_failure(&x, -EPROTO, msg);
	assert_block_untouched(&x); /* nothing landed before the check */
}

static void test_bad_offset_before_block(void **state)
{
	struct fixture *f = *state;
	struct bad_rx x;

	bad_rx_start(f, &x);
	/* host + offset wraps to the guard page before the block */
	send_hdr(&x, 0, 0, 1, 0, f->page);
	send_offsets(&x, (uint64_t[]){(uint64_t)0 - f->page}, 1);
	send_pages(&x, 1, 0xab);
	expect_failure(&x, -EPROTO, "page offset 0xfffffffffffff");
	assert_block_untouched(&x);
}

static void test_bad_offset_unaligned(void **state)
{
	struct fixture *f = *state;
	struct bad_rx x;

	bad_rx_start(f, &x);
	/* the last page, shifted by 100 bytes, would spill into the guard page */
	send_hdr(&x, 0, 0, 1, 0, f->page);
	send_offsets(&x, (uint64_t[]){(BAD_PAGES - 1) * (uint64_t)f->page + 100}, 1);
	send_pages(&x, 1, 0xab);
	expect_failure(&x, -EPROTO, "page offset");
	assert_block_untouched(&x);
}

static void test_bad_zero_offset(void **state)
{
	struct fixture *f = *state;
	struct bad_rx x;

	bad_rx_start(f, &x);
	/* a zero page outside the block (it would be memset if "touched") */
	bitmap_set_range(f->touched[0], 0, BAD_PAGES);
	send_hdr(&x, 0, 0, 1, 1, f->page);
	send_offsets(&x, (uint64_t[]){0, (BAD_PAGES + 1) * (uint64_t)f->page}, 2);
	send_pages(&x, 1, 0xab);
	expect_failure(&x, -EPROTO, "page offset");
	assert_true(is_zero(x.dst, BAD_PAGES * (size_t)f->page));
}

static void test_bad_page_count(void **state)
{
	struct fixture *f = *state;
	struct bad_rx x;

	bad_rx_start(f, &x);
	/* only the header: the receiver must refuse on it alone */
	send_hdr(&x, 0, 0, MF_MAX_PAGES + 1, 0, (MF_MAX_PAGES + 1) * f->page);
	expect_failure(&x, -EPROTO, "page count 513 outside 1..512");
	assert_block_untouched(&x);
}

static void test_bad_block_index(void **state)
{
	struct fixture *f = *state;
	struct bad_rx x;

	bad_rx_start(f, &x);
	send_hdr(&x, 0, 1, 1, 0, f->page);
	expect_failure(&x, -EPROTO, "RAM block 1 of 1");
	assert_block_untouched(&x);
}

static void test_bad_header_magic(void **state)
{
	struct fixture *f = *state;
	uint8_t junk[MF_HDR_SIZE];
	struct bad_rx x;

	bad_rx_start(f, &x);
	memset(junk, 0x5a, sizeof(junk));
	send_all(x.fd, junk, sizeof(junk));
	expect_failure(&x, -EPROTO, "bad magic 0x5a5a5a5a");
	assert_block_untouched(&x);
}

static void test_bad_seq_after_good(void **state)
{
	struct fixture *f = *state;
	struct bad_rx x;
	uint32_t i;

	bad_rx_start(f, &x);
	send_hdr(&x, 0, 0, 1, 0, f->page);
	send_offsets(&x, (uint64_t[]){3 * (uint64_t)f->page}, 1);
	send_pages(&x, 1, 0x77);
	send_hdr(&x, 5, 0, 1, 0, f->page);
	expect_failure(&x, -EPROTO, "packet number 5, expected 1");
	/* the good packet landed where it belonged, nothing else changed */
	for (i = 0; i < BAD_PAGES; i++) {
		const uint8_t *p = x.dst + i * (size_t)f->page;

		assert_int_equal(p[0], i == 3 ? 0x77 : 0);
		assert_int_equal(p[f->page - 1], i == 3 ? 0x77 : 0);
		assert_int_equal(bitmap_test(f->touched[0], i), i == 3);
	}
}

static void test_bad_truncated_payload(void **state)
{
	struct fixture *f = *state;
	struct bad_rx x;
	int i;

	bad_rx_start(f, &x);
	send_hdr(&x, 0, 0, 2, 0, 2 * f->page);
	send_offsets(&x, (uint64_t[]){0, (BAD_PAGES - 1) * (uint64_t)f->page}, 2);
	send_pages(&x, 1, 0xcd);
	for (i = 0; i < f->nraw; i++) { /* the sender goes away mid-packet */
		if (f->raw[i] == x.fd) {
			close(f->raw[i]);
			f->raw[i] = -1;
		}
	}
	expect_failure(&x, -EPIPE, "closed the connection in packet 0 (pages)");
	/* the page whose bytes never came is untouched */
	assert_true(is_zero(x.dst + (BAD_PAGES - 1) * (size_t)f->page, f->page));
}

static void test_bad_payload_len(void **state)
{
	struct fixture *f = *state;
	struct bad_rx x;

	bad_rx_start(f, &x);
	send_hdr(&x, 0, 0, 2, 0, 3 * f->page);
	expect_failure(&x, -EPROTO, "payload");
	assert_block_untouched(&x);
}

/* Hellos that add_channel refuses: the error comes back from the call. */
static void test_bad_hellos(void **state)
{
	struct fixture *f = *state;
	const uint64_t size = 4 * (uint64_t)f->page;
	struct mf_block blk = {.host = map_guarded(f, size), .size = size};
	uint8_t hello[MF_HELLO_SIZE], other[16];
	struct tern_conn *c;
	struct mf_config cfg;
	int fd;

	f->touched[0] = bitmap_new(4);
	blk.touched = f->touched[0];
	cfg_init(f, &cfg, 2, &blk, 1);
	assert_rc_equal(mf_recv_new(&cfg, &f->rcv, &f->err), 0);

	/* channel 0 joins */
	fd = raw_pair(f, &c);
	mf_hello_encode(hello, test_uuid, 0, 2);
	send_all(fd, hello, sizeof(hello));
	assert_rc_equal(mf_recv_add_channel(f->rcv, c, &f->err), 0);

	/* another session's UUID */
	memcpy(other, test_uuid, 16);
	other[0] ^= 0x80;
	fd = raw_pair(f, &c);
	mf_hello_encode(hello, other, 1, 2);
	send_all(fd, hello, sizeof(hello));
	tern_error_clear(&f->err);
	assert_rc_equal(mf_recv_add_channel(f->rcv, c, &f->err), -EPROTO);
	assert_str_contains(f->err.msg, "worker channel 1 belongs to session");

	/* channel 0 again */
	fd = raw_pair(f, &c);
	mf_hello_encode(hello, test_uuid, 0, 2);
	send_all(fd, hello, sizeof(hello));
	tern_error_clear(&f->err);
	assert_rc_equal(mf_recv_add_channel(f->rcv, c, &f->err), -EPROTO);
	assert_str_contains(f->err.msg, "worker channel 0 connected twice");

	/* an index past the count */
	fd = raw_pair(f, &c);
	mf_hello_encode(hello, test_uuid, 2, 2);
	send_all(fd, hello, sizeof(hello));
	tern_error_clear(&f->err);
	assert_rc_equal(mf_recv_add_channel(f->rcv, c, &f->err), -EPROTO);
	assert_str_contains(f->err.msg, "index 2 of 2");

	/* a hello cut short */
	fd = raw_pair(f, &c);
	send_all(fd, hello, 10);
	close(fd);
	f->raw[f->nraw - 1] = -1;
	tern_error_clear(&f->err);
	assert_rc_equal(mf_recv_add_channel(f->rcv, c, &f->err), -EPIPE);
	assert_str_contains(f->err.msg, "reading hello: connection closed");

	assert_false(mf_recv_complete(f->rcv));
	assert_rc_equal(mf_recv_error(f->rcv, NULL), 0); /* refused, not failed */
	assert_int_equal(error_count(f), 0);
	mf_recv_free(f->rcv); /* the joined worker is blocked reading: woken, joined */
	f->rcv = NULL;
	assert_int_equal(error_count(f), 0);
	assert_true(bitmap_count(f->touched[0], 4) == 0);
}

/* ======================================================================== */
/* cancel                                                                   */
/* ======================================================================== */

struct producer {
	struct mf_send *snd;
	uint8_t *src;
	int queued; /* atomic */
	bool got_null;
	int queue_ret;
};

/* Fill and queue full batches until the data plane refuses. */
static void *producer_main(void *arg)
{
	struct producer *p = arg;
	uint32_t j;

	for (;;) {
		struct mf_batch *b = mf_send_batch_get(p->snd);

		if (!b) {
			p->got_null = true;
			return NULL;
		}
		b->block = 0;
		b->round = 1;
		b->npages = MF_MAX_PAGES;
		for (j = 0; j < MF_MAX_PAGES; j++)
			b->pages[j] = j;
		p->queue_ret = mf_send_batch_queue(p->snd, b, -1);
		if (p->queue_ret)
			return NULL;
		__atomic_fetch_add(&p->queued, 1, __ATOMIC_ACQ_REL);
	}
}

/* A sender whose receiver never reads: its workers block in send. */
static void start_stuck_sender_ex(struct fixture *f, uint32_t nch, bool urgent,
				  struct mf_block *blk, struct mf_config *cfg)
{
	struct tern_conn *sc[4];
	uint32_t i, j;

	blk->size = MF_MAX_PAGES * (uint64_t)f->page;
	blk->host = map_anon(f, blk->size);
	for (j = 0; j < MF_MAX_PAGES; j++)
		fill_page(blk->host + j * (size_t)f->page, f->page, j);
	cfg_init(f, cfg, nch, blk, 1);
	cfg->urgent = urgent;
	for (i = 0; i < nch; i++)
		raw_pair(f, &sc[i]);
	assert_rc_equal(mf_send_start(cfg, sc, &f->snd, &f->err), 0);
}

static void start_stuck_sender(struct fixture *f, uint32_t nch, struct mf_block *blk,
			       struct mf_config *cfg)
{
	start_stuck_sender_ex(f, nch, false, blk, cfg);
}

static void test_shutdown_wakes_queue(void **state)
{
	struct fixture *f = *state;
	struct mf_block blk;
	struct mf_config cfg;
	struct producer p = {0};
	pthread_t th;
	int waited = 0;

	start_stuck_sender(f, 1, &blk, &cfg);
	p.snd = f->snd;
	assert_int_equal(pthread_create(&th, NULL, producer_main, &p), 0);
	/* Two batches fit (one sending, one in the slot); the third blocks. */
	while (__atomic_load_n(&p.queued, __ATOMIC_ACQUIRE) < 2 && waited++ < HANG_GUARD_S * 1000)
		sleep_ms(1);
	sleep_ms(50);
	mf_send_shutdown(f->snd);
	join_guarded(th);
	assert_true(p.got_null || p.queue_ret < 0);
	if (!p.got_null)
		assert_rc_equal(p.queue_ret, -ECANCELED);
	assert_true(p.queued >= 2);
	/* Everything refuses from now on. */
	assert_null(mf_send_batch_get(f->snd));
	assert_true(mf_send_sync(f->snd, 1, true, -1) < 0);
	assert_true(mf_send_flush(f->snd, -1) < 0);
	mf_send_free(f->snd);
	f->snd = NULL;
}

struct getter {
	struct mf_send *snd;
	struct mf_batch *got;
	bool done;
};

static void *getter_main(void *arg)
{
	struct getter *g = arg;

	g->got = mf_send_batch_get(g->snd);
	__atomic_store_n(&g->done, true, __ATOMIC_RELEASE);
	return NULL;
}

static void test_shutdown_wakes_batch_get(void **state)
{
	struct fixture *f = *state;
	struct mf_batch *held[2 * 2 + 1];
	struct getter g = {0};
	struct mf_block blk;
	struct mf_config cfg;
	pthread_t th;
	size_t i;

	start_stuck_sender(f, 2, &blk, &cfg);
	/* The pool holds 2 x channels + 1 batches: take them all. */
	for (i = 0; i < ARRAY_SIZE(held); i++) {
		held[i] = mf_send_batch_get(f->snd);
		assert_non_null(held[i]);
		assert_int_equal(held[i]->npages, 0);
	}
	g.snd = f->snd;
	assert_int_equal(pthread_create(&th, NULL, getter_main, &g), 0);
	sleep_ms(50);
	assert_false(__atomic_load_n(&g.done, __ATOMIC_ACQUIRE)); /* the pool is empty */
	mf_send_shutdown(f->snd);
	join_guarded(th);
	assert_null(g.got);
	for (i = 0; i < ARRAY_SIZE(held); i++)
		mf_send_batch_put(f->snd, held[i]);
	assert_null(mf_send_batch_get(f->snd));
}

/* Putting a batch back wakes a waiting producer with that batch. */
static void test_batch_put_wakes_get(void **state)
{
	struct fixture *f = *state;
	struct mf_batch *held[3];
	struct getter g = {0};
	struct mf_block blk;
	struct mf_config cfg;
	pthread_t th;
	size_t i;

	start_stuck_sender(f, 1, &blk, &cfg);
	for (i = 0; i < ARRAY_SIZE(held); i++)
		assert_non_null(held[i] = mf_send_batch_get(f->snd));
	g.snd = f->snd;
	assert_int_equal(pthread_create(&th, NULL, getter_main, &g), 0);
	sleep_ms(20);
	mf_send_batch_put(f->snd, held[1]);
	join_guarded(th);
	assert_ptr_equal(g.got, held[1]);
	mf_send_batch_put(f->snd, held[0]);
	mf_send_batch_put(f->snd, held[2]);
	mf_send_batch_put(f->snd, g.got);
	mf_send_batch_put(f->snd, NULL); /* a no-op */
}

static void test_batch_queue_invalid(void **state)
{
	struct fixture *f = *state;
	struct mf_block blk;
	struct mf_config cfg;
	struct mf_batch *b;
	int i;

	start_stuck_sender(f, 1, &blk, &cfg);
	for (i = 0; i < 3; i++) {
		b = mf_send_batch_get(f->snd);
		assert_non_null(b);
		b->block = 0;
		b->round = 1;
		b->pages[0] = 0;
		b->npages = 1;
		if (i == 0)
			b->npages = 0;
		else if (i == 1)
			b->npages = MF_MAX_PAGES + 1;
		else
			b->block = 1;
		/* refused, and the batch goes back to the pool */
		assert_rc_equal(mf_send_batch_queue(f->snd, b, -1), -EINVAL);
	}
	/* all three batches are back: three more gets do not block */
	for (i = 0; i < 3; i++)
		assert_non_null(mf_send_batch_get(f->snd));
	assert_rc_equal(mf_send_error(f->snd, NULL), 0);
}

struct waiter {
	struct mf_recv *rcv;
	int ret;
	struct tern_error err;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;

	w->ret = mf_recv_wait_sync(w->rcv, 1, &w->err);
	return NULL;
}

static void test_recv_shutdown(void **state)
{
	struct fixture *f = *state;
	struct waiter w = {0};
	struct bad_rx x;
	pthread_t th;

	bad_rx_start(f, &x); /* a worker blocked reading a header */
	w.rcv = f->rcv;
	assert_int_equal(pthread_create(&th, NULL, waiter_main, &w), 0);
	sleep_ms(50);
	mf_recv_shutdown(f->rcv);
	join_guarded(th);
	assert_rc_equal(w.ret, -ECANCELED);
	assert_str_contains(w.err.msg, "cancelled");
	assert_rc_equal(mf_recv_finish(f->rcv, NULL), -ECANCELED);
	mf_recv_free(f->rcv);
	f->rcv = NULL;
	/* a cancel is not a failure */
	assert_int_equal(error_count(f), 0);
}

/* The receiver goes away: the sender fails once, with the channel named. */
static void test_send_peer_gone(void **state)
{
	struct fixture *f = *state;
	struct mf_block blk;
	struct mf_config cfg;
	struct tern_error err = {0};
	int i, ret = 0;

	start_stuck_sender(f, 2, &blk, &cfg);
	close(f->raw[1]);
	f->raw[1] = -1;
	for (i = 0; i < 64 && !ret; i++) {
		struct mf_batch *b = mf_send_batch_get(f->snd);

		if (!b) {
			ret = -1;
			break;
		}
		b->block = 0;
		b->round = 1;
		b->npages = 1;
		b->pages[0] = (uint64_t)i % MF_MAX_PAGES;
		ret = mf_send_batch_queue(f->snd, b, -1);
		if (!ret && i % 4 == 3)
			ret = mf_send_sync(f->snd, (uint64_t)i / 4 + 1, false, -1);
		if (!ret && i % 8 == 7) {
			/* drain channel 0 so that only channel 1 can fail */
			char buf[65536];

			while (recv(f->raw[0], buf, sizeof(buf), MSG_DONTWAIT) > 0)
				;
			ret = mf_send_flush(f->snd, -1);
		}
	}
	assert_true(ret != 0);
	assert_true(mf_send_error(f->snd, &err) < 0);
	assert_str_contains(err.msg, "channel 1");
	mf_send_free(f->snd);
	f->snd = NULL;
	assert_int_equal(error_count(f), 1);
}

/* Free with workers blocked in send and nothing shut down first. */
static void test_send_free_blocked(void **state)
{
	struct fixture *f = *state;
	struct mf_block blk;
	struct mf_config cfg;
	struct mf_batch *b;
	uint32_t i, j;

	start_stuck_sender(f, 2, &blk, &cfg);
	for (i = 0; i < 4; i++) {
		b = mf_send_batch_get(f->snd);
		assert_non_null(b);
		b->block = 0;
		b->round = 1;
		b->npages = MF_MAX_PAGES;
		for (j = 0; j < MF_MAX_PAGES; j++)
			b->pages[j] = j;
		assert_rc_equal(mf_send_batch_queue(f->snd, b, -1), 0);
	}
	mf_send_free(f->snd); /* must wake and join both workers */
	f->snd = NULL;
}

/* ======================================================================== */
/* postcopy                                                                 */
/* ======================================================================== */

static int test_place(void *opaque, uint32_t block, uint64_t page, uint32_t n, const void *data,
		      struct tern_error *err)
{
	struct placer *pl = opaque;
	int ret = 0;

	pthread_mutex_lock(&pl->lock);
	if (pl->ncalls < MAX_CALLS)
		pl->calls[pl->ncalls++] = (struct place_call){block, page, n, !data};
	else
		pl->overflow = true;
	if (pl->fail)
		ret = tern_error_set(err, pl->fail, "test placer: refused page %" PRIu64, page);
	else if (pl->out && page + n <= pl->out_pages && data)
		memcpy(pl->out + page * pl->page, data, (size_t)n * pl->page);
	else if (pl->out && page + n <= pl->out_pages)
		memset(pl->out + page * pl->page, 0, (size_t)n * pl->page);
	pthread_mutex_unlock(&pl->lock);
	return ret;
}

/* Where the test placer copies pages 0..@np-1 to: 0xee until placed. */
static void placer_init(struct fixture *f, uint64_t np)
{
	f->pl.out = map_anon(f, np * f->page);
	memset(f->pl.out, 0xee, np * f->page);
	f->pl.out_pages = np;
}

static uint32_t placer_calls(struct fixture *f)
{
	uint32_t n;

	pthread_mutex_lock(&f->pl.lock);
	n = f->pl.ncalls;
	pthread_mutex_unlock(&f->pl.lock);
	return n;
}

/* How many calls placed exactly @n pages at @page of block 0 (@zero: as zero pages). */
static int placer_count(struct fixture *f, uint64_t page, uint32_t n, bool zero)
{
	int count = 0;
	uint32_t i;

	pthread_mutex_lock(&f->pl.lock);
	for (i = 0; i < f->pl.ncalls; i++) {
		const struct place_call *c = &f->pl.calls[i];

		if (!c->block && c->page == page && c->n == n && c->zero == zero)
			count++;
	}
	pthread_mutex_unlock(&f->pl.lock);
	return count;
}

static bool page_equal(const uint8_t *a, const uint8_t *b, uint64_t pg, uint32_t page)
{
	return !memcmp(a + pg * page, b + pg * page, page);
}

#define PC_PAGES 64

struct pc_pair {
	uint8_t *src, *dst;
	struct mf_block sblk, dblk;
	struct mf_config scfg, rcfg;
};

/* A source and a destination of one block of PC_PAGES data pages over @nch
 * socketpairs, the test placer set (copying to f->pl.out). */
static void pc_pair_start(struct fixture *f, struct pc_pair *p, uint32_t nch, bool urgent,
			  uint32_t method)
{
	const uint32_t P = f->page;
	const size_t size = PC_PAGES * (size_t)P;
	struct tern_conn *sc[4], *rc[4];
	uint32_t j;

	assert_true(nch <= 4);
	p->src = map_anon(f, size);
	p->dst = map_dest(f, size);
	for (j = 0; j < PC_PAGES; j++)
		fill_page(p->src + j * (size_t)P, P, j + 1);
	f->touched[0] = bitmap_new(PC_PAGES);
	assert_non_null(f->touched[0]);
	p->sblk = (struct mf_block){.host = p->src, .size = size};
	p->dblk = (struct mf_block){.host = p->dst, .size = size, .touched = f->touched[0]};
	cfg_init(f, &p->scfg, nch, &p->sblk, 1);
	cfg_init(f, &p->rcfg, nch, &p->dblk, 1);
	p->scfg.urgent = p->rcfg.urgent = urgent;
	p->scfg.method = p->rcfg.method = method;
	if (mf_method_codecs(method) >> TERN_CODEC_XBZRLE & 1) {
		assert_rc_equal(xbzrle_cache_new(8ull << 20, P, &f->cache, &f->err), 0);
		p->scfg.xbzrle = f->cache;
	}
	placer_init(f, PC_PAGES);
	conn_pairs(nch, sc, rc);
	assert_rc_equal(mf_recv_new(&p->rcfg, &f->rcv, &f->err), 0);
	mf_recv_set_placer(f->rcv, test_place, &f->pl);
	assert_rc_equal(mf_send_start(&p->scfg, sc, &f->snd, &f->err), 0);
	for (j = 0; j < nch; j++)
		assert_rc_equal(mf_recv_add_channel(f->rcv, rc[j], &f->err), 0);
}

/* A bulk batch of pages @first..@first+@n-1. */
static void queue_bulk(struct fixture *f, uint64_t round, uint32_t first, uint32_t n, bool postcopy)
{
	struct mf_batch *b = mf_send_batch_get(f->snd);
	uint32_t j;

	assert_non_null(b);
	assert_false(b->postcopy || b->raw || b->paused);
	b->block = 0;
	b->round = round;
	b->postcopy = postcopy;
	b->npages = n;
	for (j = 0; j < n; j++)
		b->pages[j] = first + j;
	assert_rc_equal(mf_send_batch_queue(f->snd, b, -1), 0);
}

/* An urgent batch of @n pages from @pages; @round: what the caller believes. */
static void queue_urgent(struct fixture *f, uint64_t round, const uint64_t *pages, uint32_t n)
{
	struct mf_batch *b = mf_send_urgent_get(f->snd);

	assert_non_null(b);
	assert_true(b->postcopy && b->raw && !b->paused);
	assert_int_equal(b->npages, 0);
	b->block = 0;
	b->round = round;
	b->npages = n;
	memcpy(b->pages, pages, n * sizeof(*pages));
	assert_rc_equal(mf_send_urgent_queue(f->snd, b, -1), 0);
}

static void pc_round_end(struct fixture *f, uint64_t round, bool last)
{
	assert_rc_equal(mf_send_sync(f->snd, round, last, -1), 0);
	assert_rc_equal(mf_recv_wait_sync(f->rcv, round, &f->err), 0);
}

/*
 * Three channels, the last urgent: twelve bulk batches never touch it, the
 * urgent batches go nowhere else; an urgent batch queued after a SYNC carries
 * the round after it whatever the caller said; postcopy pages reach the
 * placer, in runs, and never the destination's RAM.
 */
static void test_urgent_channel(void **state)
{
	struct fixture *f = *state;
	const uint32_t P = f->page;
	struct mf_chan_stats st, rt, sper[3], rper[3];
	struct pc_pair p;
	uint64_t pg;
	uint32_t i;

	pc_pair_start(f, &p, 3, true, TERN_CODEC_NONE);
	/* round 1: pages 0..47 in bulk, 60..62 and 57 urgent (round: nonsense) */
	for (i = 0; i < 12; i++)
		queue_bulk(f, 1, 4 * i, 4, false);
	queue_urgent(f, 99, (const uint64_t[]){60, 61, 62, 57}, 4);
	pc_round_end(f, 1, false);
	/* round 2: the caller still says round 1; a postcopy bulk batch */
	queue_urgent(f, 1, (const uint64_t[]){55}, 1);
	queue_bulk(f, 2, 48, 4, true);
	pc_round_end(f, 2, true);
	assert_rc_equal(mf_recv_finish(f->rcv, &f->err), 0);
	assert_rc_equal(mf_send_flush(f->snd, -1), 0);
	assert_null(mf_send_urgent_get(f->snd)); /* closed by SYNC|LAST */
	assert_rc_equal(mf_send_error(f->snd, &f->err), 0);
	assert_rc_equal(mf_recv_error(f->rcv, &f->err), 0);

	mf_send_stats(f->snd, &st, sper);
	mf_recv_stats(f->rcv, &rt, rper);
	assert_uint_equal(sper[2].normal_pages, 5);
	assert_uint_equal(sper[2].packets, 2 + 2); /* and the two SYNCs */
	assert_uint_equal(sper[0].normal_pages + sper[1].normal_pages, 48 + 4);
	assert_true(sper[0].normal_pages && sper[1].normal_pages);
	assert_uint_equal(st.zero_pages, 0);
	for (i = 0; i < 3; i++) {
		assert_uint_equal(rper[i].normal_pages, sper[i].normal_pages);
		assert_uint_equal(rper[i].packets, sper[i].packets);
		assert_uint_equal(rper[i].wire_bytes, sper[i].wire_bytes);
	}

	/* runs: 60..62 and 57 (one packet), 55, 48..51 */
	assert_int_equal(placer_calls(f), 4);
	assert_int_equal(placer_count(f, 60, 3, false), 1);
	assert_int_equal(placer_count(f, 57, 1, false), 1);
	assert_int_equal(placer_count(f, 55, 1, false), 1);
	assert_int_equal(placer_count(f, 48, 4, false), 1);
	for (pg = 0; pg < PC_PAGES; pg++) {
		bool placed =
		    (pg >= 48 && pg < 52) || pg == 55 || pg == 57 || (pg >= 60 && pg < 63);
		bool sent = pg < 48 || placed;

		if (placed) {
			assert_true(page_equal(f->pl.out, p.src, pg, P));
			assert_true(is_zero(p.dst + pg * P, P)); /* never written */
		} else {
			assert_int_equal(f->pl.out[pg * P], 0xee);
		}
		if (pg < 48)
			assert_true(page_equal(p.dst, p.src, pg, P));
		assert_int_equal(bitmap_test(f->touched[0], pg), sent);
	}
	assert_int_equal(error_count(f), 0);
}

/* The urgent pool: its own, waited for, and refused once the channel closed. */
struct urgent_getter {
	struct mf_send *snd;
	struct mf_batch *got;
	bool done;
};

static void *urgent_getter_main(void *arg)
{
	struct urgent_getter *g = arg;

	g->got = mf_send_urgent_get(g->snd);
	__atomic_store_n(&g->done, true, __ATOMIC_RELEASE);
	return NULL;
}

static void test_urgent_closed(void **state)
{
	struct fixture *f = *state;
	struct mf_batch *bulk[2 * 1 + 1], *u[2];
	struct urgent_getter g = {0};
	struct mf_chan_stats st, per[2];
	struct mf_config cfg;
	struct mf_block blk;
	struct tern_conn *c;
	pthread_t th;
	size_t i;

	/* an urgent channel needs a bulk one beside it */
	blk = (struct mf_block){.host = map_anon(f, f->page), .size = f->page};
	cfg_init(f, &cfg, 1, &blk, 1);
	cfg.urgent = true;
	raw_pair(f, &c);
	assert_rc_equal(mf_send_start(&cfg, &c, &f->snd, &f->err), -EINVAL);
	assert_str_contains(f->err.msg, "urgent channel needs 2 channels or more, not 1");
	assert_null(f->snd);
	tern_error_clear(&f->err);
	assert_rc_equal(mf_recv_new(&cfg, &f->rcv, &f->err), -EINVAL);
	assert_str_contains(f->err.msg, "urgent channel needs 2 channels or more, not 1");
	assert_null(f->rcv);

	start_stuck_sender_ex(f, 2, true, &blk, &cfg);
	/* the bulk pool (one bulk channel: 3 batches) empty, the urgent one gives */
	for (i = 0; i < ARRAY_SIZE(bulk); i++)
		assert_non_null(bulk[i] = mf_send_batch_get(f->snd));
	u[0] = mf_send_urgent_get(f->snd);
	u[1] = mf_send_urgent_get(f->snd);
	assert_non_null(u[0]);
	assert_non_null(u[1]);
	assert_ptr_not_equal(u[0], u[1]);
	for (i = 0; i < ARRAY_SIZE(bulk); i++) {
		assert_ptr_not_equal(bulk[i], u[0]);
		assert_ptr_not_equal(bulk[i], u[1]);
		mf_send_batch_put(f->snd, bulk[i]);
	}
	/* both out: a third waits until one comes back, to the urgent pool */
	g.snd = f->snd;
	assert_int_equal(pthread_create(&th, NULL, urgent_getter_main, &g), 0);
	sleep_ms(50);
	assert_false(__atomic_load_n(&g.done, __ATOMIC_ACQUIRE));
	mf_send_batch_put(f->snd, u[1]); /* by its address, not the bulk pool */
	join_guarded(th);
	assert_ptr_equal(g.got, u[1]);

	u[0]->block = 0;
	u[0]->npages = 1;
	u[0]->pages[0] = 0;
	assert_rc_equal(mf_send_urgent_queue(f->snd, u[0], -1), 0);
	assert_rc_equal(mf_send_sync(f->snd, 1, true, -1), 0);
	/* closed: refused, and the batch taken back */
	u[1]->block = 0;
	u[1]->npages = 1;
	u[1]->pages[0] = 1;
	assert_rc_equal(mf_send_urgent_queue(f->snd, u[1], -1), -EPIPE);
	assert_null(mf_send_urgent_get(f->snd));
	assert_rc_equal(mf_send_flush(f->snd, -1), 0);
	assert_rc_equal(mf_send_error(f->snd, NULL), 0); /* no failure */
	mf_send_stats(f->snd, &st, per);
	assert_uint_equal(per[1].normal_pages, 1); /* u[0], on the urgent channel */
	assert_uint_equal(per[1].packets, 2);
	assert_uint_equal(per[0].normal_pages, 0);
	assert_uint_equal(per[0].packets, 1);
	mf_send_free(f->snd);
	f->snd = NULL;

	/* without cfg.urgent there is no urgent channel */
	start_stuck_sender(f, 2, &blk, &cfg);
	assert_null(mf_send_urgent_get(f->snd));
	u[0] = mf_send_batch_get(f->snd);
	assert_non_null(u[0]);
	u[0]->block = 0;
	u[0]->npages = 1;
	assert_rc_equal(mf_send_urgent_queue(f->snd, u[0], -1), -EINVAL);
	assert_int_equal(error_count(f), 0);
}

/* The return-path thread's urgent batches beside the migration thread's
 * bulk batches and syncs, until SYNC|LAST closes the urgent channel. */
struct urgent_producer {
	struct mf_send *snd;
	uint64_t pages;	  /* queued (atomic) */
	uint32_t batches; /* queued (atomic) */
	int epipe, nulls, other;
};

static void *urgent_producer_main(void *arg)
{
	struct urgent_producer *u = arg;
	uint32_t k;

	for (k = 0;; k++) {
		struct mf_batch *b = mf_send_urgent_get(u->snd);
		uint32_t n = 1 + k % 4, j;
		int ret;

		if (!b) {
			u->nulls++;
			return NULL;
		}
		b->block = 0;
		b->round = 0;
		b->npages = n;
		for (j = 0; j < n; j++)
			b->pages[j] = (4 * k + j) % 16;
		ret = mf_send_urgent_queue(u->snd, b, -1);
		if (ret == -EPIPE) {
			u->epipe++;
			return NULL;
		}
		if (ret) {
			u->other = ret;
			return NULL;
		}
		__atomic_fetch_add(&u->pages, n, __ATOMIC_RELEASE);
		__atomic_fetch_add(&u->batches, 1, __ATOMIC_RELEASE);
	}
}

static void test_urgent_concurrent(void **state)
{
	struct fixture *f = *state;
	const uint32_t P = f->page;
	struct urgent_producer u = {0};
	struct mf_chan_stats st, rt, sper[3], rper[3];
	struct pc_pair p;
	uint64_t round, pg;
	pthread_t th;
	int waited = 0;
	uint32_t i;

	pc_pair_start(f, &p, 3, true, TERN_CODEC_NONE);
	u.snd = f->snd;
	assert_int_equal(pthread_create(&th, NULL, urgent_producer_main, &u), 0);
	for (round = 1; round <= 5; round++) {
		for (i = 0; i < 6; i++)
			queue_bulk(f, round, 16 + 8 * i, 8, false);
		/* before the channel closes: more urgent batches than the
		 * urgent pool holds, so each went back to it */
		while (round == 5 && __atomic_load_n(&u.batches, __ATOMIC_ACQUIRE) < 8 &&
		       waited++ < HANG_GUARD_S * 1000)
			sleep_ms(1);
		pc_round_end(f, round, round == 5);
	}
	join_guarded(th);
	assert_rc_equal(mf_recv_finish(f->rcv, &f->err), 0);
	assert_rc_equal(mf_send_flush(f->snd, -1), 0);
	assert_int_equal(u.other, 0);
	assert_int_equal(u.epipe + u.nulls, 1);
	assert_true(u.batches >= 8);

	mf_send_stats(f->snd, &st, sper);
	mf_recv_stats(f->rcv, &rt, rper);
	assert_uint_equal(sper[2].normal_pages, u.pages);
	assert_uint_equal(sper[0].normal_pages + sper[1].normal_pages, 5 * 48);
	for (i = 0; i < 3; i++) {
		assert_uint_equal(rper[i].normal_pages, sper[i].normal_pages);
		assert_uint_equal(rper[i].wire_bytes, sper[i].wire_bytes);
	}
	for (pg = 0; pg < PC_PAGES; pg++) {
		if (pg >= 16) {
			assert_true(page_equal(p.dst, p.src, pg, P));
		} else {
			assert_true(is_zero(p.dst + pg * P, P));
			if (f->pl.out[pg * P] != 0xee)
				assert_true(page_equal(f->pl.out, p.src, pg, P));
		}
	}
	assert_true(page_equal(f->pl.out, p.src, 0, P)); /* the first batch's */
	assert_false(f->pl.overflow && placer_calls(f) < MAX_CALLS);
	assert_int_equal(error_count(f), 0);
}

/*
 * Method xbzrle: a postcopy batch goes raw, and its pages leave the cache --
 * the same pages sent again with XBZRLE miss, as in the first round.
 */
static void test_postcopy_xbzrle_raw(void **state)
{
	struct fixture *f = *state;
	struct mf_codec_stats sc, rc;
	const uint32_t P = f->page;
	struct pc_pair p;
	uint64_t pg;

	pc_pair_start(f, &p, 1, false, TERN_CODEC_XBZRLE);
	queue_bulk(f, 1, 0, 8, false);
	pc_round_end(f, 1, false);
	queue_bulk(f, 2, 0, 8, true);
	assert_rc_equal(mf_send_flush(f->snd, -1), 0);
	mf_send_codec_stats(f->snd, &sc, NULL, 0);
	assert_uint_equal(sc.codec[TERN_CODEC_XBZRLE].pages, 8);
	assert_uint_equal(sc.codec[TERN_CODEC_NONE].pages, 8);
	queue_bulk(f, 2, 0, 8, false);
	pc_round_end(f, 2, true);
	assert_rc_equal(mf_recv_finish(f->rcv, &f->err), 0);
	assert_rc_equal(mf_send_flush(f->snd, -1), 0);

	mf_send_codec_stats(f->snd, &sc, NULL, 0);
	mf_recv_codec_stats(f->rcv, &rc);
	assert_uint_equal(sc.codec[TERN_CODEC_XBZRLE].pages, 16);
	assert_uint_equal(sc.codec[TERN_CODEC_XBZRLE].cache_hits, 0);
	assert_uint_equal(sc.codec[TERN_CODEC_XBZRLE].cache_misses, 16);
	assert_uint_equal(rc.codec[TERN_CODEC_NONE].pages, 8);
	assert_uint_equal(rc.codec[TERN_CODEC_XBZRLE].pages, 16);
	assert_int_equal(placer_calls(f), 1);
	assert_int_equal(placer_count(f, 0, 8, false), 1);
	for (pg = 0; pg < 8; pg++) {
		assert_true(page_equal(f->pl.out, p.src, pg, P));
		assert_true(page_equal(p.dst, p.src, pg, P)); /* the precopy copies */
	}
	assert_int_equal(error_count(f), 0);
}

/* AUTO tries XBZRLE first once round 2 begins -- but never for postcopy. */
static void test_postcopy_auto_no_xbzrle(void **state)
{
	struct fixture *f = *state;
	struct mf_codec_stats sc, rc;
	struct pc_pair p;

	if (mf_method_check(MF_METHOD_AUTO, "test", NULL)) {
		print_message("skipping: auto is not in this build\n");
		return;
	}
	pc_pair_start(f, &p, 1, false, MF_METHOD_AUTO);
	queue_bulk(f, 1, 0, 8, false);
	pc_round_end(f, 1, false);
	queue_bulk(f, 2, 0, 8, true);
	assert_rc_equal(mf_send_flush(f->snd, -1), 0);
	mf_send_codec_stats(f->snd, &sc, NULL, 0);
	assert_uint_equal(sc.auto_packets[TERN_CODEC_XBZRLE], 0);
	assert_uint_equal(sc.codec[TERN_CODEC_XBZRLE].pages, 0);
	/* the same choice without postcopy: XBZRLE */
	queue_bulk(f, 2, 8, 8, false);
	assert_rc_equal(mf_send_flush(f->snd, -1), 0);
	mf_send_codec_stats(f->snd, &sc, NULL, 0);
	assert_uint_equal(sc.auto_packets[TERN_CODEC_XBZRLE], 1);
	assert_uint_equal(sc.codec[TERN_CODEC_XBZRLE].pages, 8);
	pc_round_end(f, 2, true);
	assert_rc_equal(mf_recv_finish(f->rcv, &f->err), 0);
	mf_recv_codec_stats(f->rcv, &rc);
	assert_uint_equal(rc.codec[TERN_CODEC_XBZRLE].pages, 8);
	assert_int_equal(placer_count(f, 0, 8, false), 1);
	assert_memory_equal(f->pl.out, p.src, 8 * (size_t)f->page);
	assert_int_equal(error_count(f), 0);
}

/* zlib and zstd postcopy batches decode into the bounce buffer, then go to
 * the placer in runs, their zero pages too. */
static void test_postcopy_codecs(void **state)
{
	static const uint32_t methods[] = {TERN_CODEC_ZLIB, TERN_CODEC_ZSTD};
	size_t m;

	for (m = 0; m < ARRAY_SIZE(methods); m++) {
		struct fixture *f = *state;
		const uint32_t P = f->page, id = methods[m];
		struct mf_codec_stats sc, rc;
		struct pc_pair p;
		uint64_t pg;

		if (mf_method_check(id, "test", NULL)) {
			print_message("skipping %s: not in this build\n", mf_method_name(id));
			continue;
		}
		pc_pair_start(f, &p, 2, false, id);
		memset(p.src + 5 * (size_t)P, 0, P);
		memset(p.src + 20 * (size_t)P, 0, P);
		queue_bulk(f, 1, 0, 24, true);
		queue_bulk(f, 1, 24, 8, true);
		pc_round_end(f, 1, true);
		assert_rc_equal(mf_recv_finish(f->rcv, &f->err), 0);
		assert_rc_equal(mf_send_flush(f->snd, -1), 0);

		mf_send_codec_stats(f->snd, &sc, NULL, 0);
		mf_recv_codec_stats(f->rcv, &rc);
		assert_uint_equal(sc.codec[id].pages, 30);
		assert_uint_equal(rc.codec[id].pages, 30);
		assert_uint_equal(rc.codec[TERN_CODEC_NONE].pages, 0);
		/* runs in packet order: 0..4, 6..19, 21..23; zero 5, 20; 24..31 */
		assert_int_equal(placer_calls(f), 6);
		assert_int_equal(placer_count(f, 0, 5, false), 1);
		assert_int_equal(placer_count(f, 6, 14, false), 1);
		assert_int_equal(placer_count(f, 21, 3, false), 1);
		assert_int_equal(placer_count(f, 5, 1, true), 1);
		assert_int_equal(placer_count(f, 20, 1, true), 1);
		assert_int_equal(placer_count(f, 24, 8, false), 1);
		for (pg = 0; pg < PC_PAGES; pg++) {
			if (pg < 32)
				assert_true(page_equal(f->pl.out, p.src, pg, P));
			else
				assert_int_equal(f->pl.out[pg * P], 0xee);
			assert_int_equal(bitmap_test(f->touched[0], pg),
					 pg < 32 && pg != 5 && pg != 20);
		}
		assert_true(is_zero(p.dst, PC_PAGES * (size_t)P)); /* never written */
		assert_int_equal(error_count(f), 0);
		fixture_teardown(state);
		assert_int_equal(fixture_setup(state), 0);
	}
}

/*
 * A hand-made postcopy packet to a receiver without a placer: read, then
 * held -- nothing placed, nothing written, nothing counted -- until the
 * placer is set; then placed in runs, never written to the block.
 */
static void test_pc_recv_runs(void **state)
{
	struct fixture *f = *state;
	const uint32_t P = f->page;
	const uint64_t normal[] = {2, 3, 4, 7}, zero[] = {9, 10, 12};
	uint64_t offs[7];
	struct mf_chan_stats st;
	struct bad_rx x;
	uint32_t i, k;

	bad_rx_start(f, &x);
	placer_init(f, BAD_PAGES);
	for (i = 0; i < 4; i++)
		offs[i] = normal[i] * P;
	for (i = 0; i < 3; i++)
		offs[4 + i] = zero[i] * P;
	send_hdr_ex(&x, 0, MF_FLAG_POSTCOPY, TERN_CODEC_NONE, 0, 4, 3, 4 * P);
	send_offsets(&x, offs, 7);
	for (i = 0; i < 4; i++)
		send_pages(&x, 1, (uint8_t)(0xa1 + i));
	sleep_ms(100);
	assert_int_equal(placer_calls(f), 0);
	mf_recv_stats(f->rcv, &st, NULL);
	assert_uint_equal(st.packets, 0);
	assert_rc_equal(mf_recv_error(f->rcv, NULL), 0);
	assert_block_untouched(&x);

	mf_recv_set_placer(f->rcv, test_place, &f->pl);
	send_hdr_ex(&x, 1, MF_FLAG_SYNC | MF_FLAG_LAST, TERN_CODEC_NONE, 0, 0, 0, 0);
	assert_rc_equal(mf_recv_wait_sync(f->rcv, 1, &f->err), 0);
	assert_rc_equal(mf_recv_finish(f->rcv, &f->err), 0);

	assert_int_equal(placer_calls(f), 4);
	assert_int_equal(placer_count(f, 2, 3, false), 1);
	assert_int_equal(placer_count(f, 7, 1, false), 1);
	assert_int_equal(placer_count(f, 9, 2, true), 1);
	assert_int_equal(placer_count(f, 12, 1, true), 1);
	for (i = 0; i < BAD_PAGES; i++) {
		const uint8_t *o = f->pl.out + i * (size_t)P;
		int want = 0xee;
		bool data = false;

		for (k = 0; k < 4; k++)
			if (normal[k] == i) {
				want = 0xa1 + (int)k;
				data = true;
			}
		for (k = 0; k < 3; k++)
			if (zero[k] == i)
				want = 0;
		assert_int_equal(o[0], want);
		assert_int_equal(o[P - 1], want);
		assert_int_equal(bitmap_test(f->touched[0], i), data);
	}
	assert_true(is_zero(x.dst, BAD_PAGES * (size_t)P)); /* the block: never written */
	mf_recv_stats(f->rcv, &st, NULL);
	assert_uint_equal(st.normal_pages, 4);
	assert_uint_equal(st.zero_pages, 3);
	assert_uint_equal(st.packets, 2);
	assert_uint_equal(st.wire_bytes, MF_HELLO_SIZE + 2 * MF_HDR_SIZE + 7 * 8 + 4 * (uint64_t)P);
	assert_int_equal(error_count(f), 0);
}

static void test_pc_recv_xbzrle(void **state)
{
	struct fixture *f = *state;
	struct bad_rx x;

	bad_rx_start_method(f, &x, TERN_CODEC_XBZRLE);
	mf_recv_set_placer(f->rcv, test_place, &f->pl);
	send_hdr_ex(&x, 0, MF_FLAG_POSTCOPY, TERN_CODEC_XBZRLE, 0, 1, 0, 16);
	expect_failure(&x, -EPROTO, "channel 0 packet 0: postcopy packet with codec xbzrle");
	assert_block_untouched(&x);
	assert_int_equal(placer_calls(f), 0);
}

static void test_pc_recv_placer_error(void **state)
{
	struct fixture *f = *state;
	struct bad_rx x;

	bad_rx_start(f, &x);
	f->pl.fail = -EFAULT;
	mf_recv_set_placer(f->rcv, test_place, &f->pl);
	send_hdr_ex(&x, 0, MF_FLAG_POSTCOPY, TERN_CODEC_NONE, 0, 1, 0, f->page);
	send_offsets(&x, (uint64_t[]){5 * (uint64_t)f->page}, 1);
	send_pages(&x, 1, 0x5c);
	expect_failure(&x, -EFAULT,
		       "channel 0 packet 0: placing 1 pages at page 5 of block 0: "
		       "test placer: refused page 5");
	assert_block_untouched(&x);
	assert_int_equal(placer_calls(f), 1);
}

static void *recv_free_main(void *arg)
{
	mf_recv_free(arg);
	return NULL;
}

/* Shutdown ends a wait for the placer, and is no failure. */
static void test_pc_recv_shutdown_waiting(void **state)
{
	struct fixture *f = *state;
	struct bad_rx x;
	pthread_t th;

	bad_rx_start(f, &x);
	send_hdr_ex(&x, 0, MF_FLAG_POSTCOPY, TERN_CODEC_NONE, 0, 1, 1, f->page);
	send_offsets(&x, (uint64_t[]){3 * (uint64_t)f->page, 4 * (uint64_t)f->page}, 2);
	send_pages(&x, 1, 0x3c);
	sleep_ms(50);
	mf_recv_shutdown(f->rcv);
	assert_rc_equal(mf_recv_finish(f->rcv, &f->err), -ECANCELED);
	/* the worker left its wait: the join inside free ends */
	assert_int_equal(pthread_create(&th, NULL, recv_free_main, f->rcv), 0);
	f->rcv = NULL;
	join_guarded(th);
	assert_int_equal(error_count(f), 0);
	assert_int_equal(placer_calls(f), 0);
	assert_block_untouched(&x);
}

/* ======================================================================== */

#define T(fn) cmocka_unit_test_setup_teardown(fn, fixture_setup, fixture_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_hdr_layout),
	    T(test_hello_layout),
	    T(test_hello_check_refusals),
	    T(test_hdr_check),
	    T(test_hdr_check_codecs),
	    T(test_offsets_check),
	    T(test_e2e_1ch),
	    T(test_e2e_2ch),
	    T(test_e2e_4ch),
	    T(test_e2e_codecs),
	    T(test_sync_wire),
	    T(test_ordering),
	    T(test_bad_offset_after_block),
	    T(test_bad_offset_before_block),
	    T(test_bad_offset_unaligned),
	    T(test_bad_zero_offset),
	    T(test_bad_page_count),
	    T(test_bad_block_index),
	    T(test_bad_header_magic),
	    T(test_bad_seq_after_good),
	    T(test_bad_truncated_payload),
	    T(test_bad_payload_len),
	    T(test_bad_hellos),
	    T(test_shutdown_wakes_queue),
	    T(test_shutdown_wakes_batch_get),
	    T(test_batch_put_wakes_get),
	    T(test_batch_queue_invalid),
	    T(test_recv_shutdown),
	    T(test_send_peer_gone),
	    T(test_send_free_blocked),
	    T(test_urgent_channel),
	    T(test_urgent_closed),
	    T(test_urgent_concurrent),
	    T(test_postcopy_xbzrle_raw),
	    T(test_postcopy_auto_no_xbzrle),
	    T(test_postcopy_codecs),
	    T(test_pc_recv_runs),
	    T(test_pc_recv_xbzrle),
	    T(test_pc_recv_placer_error),
	    T(test_pc_recv_shutdown_waiting),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
