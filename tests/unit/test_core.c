/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for core/: parameters and capabilities, the state machine, the
 * control channel's framing (buffers, bounds-checked reader, frames over a
 * socketpair), the HELLO handshake, device sections, RAM blocks and dirty
 * bitmaps with a test dirty-log provider, the rate limiter on a synthetic
 * clock, and the RAM digest.
 *
 * Everything runs on the test thread except where a frame is too large for
 * a socket buffer; such helper threads never call cmocka assertions, they
 * record results that the test thread checks after the join. Nothing is
 * timed: the rate limiter gets its clock values from the test.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/cmocka_compat.h"
#include "compress/compress.h"
#include "core/core_priv.h"
#include "core/source_priv.h"
#include "tcp/tcp.h"
#include "util/util.h"

#define MAX_MAPS 1024
#define MAX_SESSIONS 4

struct fixture {
	struct tern_session *s[MAX_SESSIONS];
	struct {
		void *p;
		size_t len;
	} maps[MAX_MAPS];
	int nmaps;
	struct tern_conn *a; /* sending end of the socketpair */
	struct tern_conn *b; /* receiving end */
	uint8_t *payload;    /* a frame ctl_recv() returned */
	struct buf buf;
	struct tern_error err;
	uint32_t page;
};

static int fixture_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	long page = sysconf(_SC_PAGESIZE);

	if (!f)
		return -1;
	f->page = page > 0 ? (uint32_t)page : 4096;
	buf_init(&f->buf);
	*state = f;
	return 0;
}

static int fixture_teardown(void **state)
{
	struct fixture *f = *state;
	int i;

	for (i = 0; i < MAX_SESSIONS; i++) {
		if (f->s[i])
			f->s[i]->started = false; /* tests fake a running session */
		tern_session_free(f->s[i]);
	}
	for (i = 0; i < f->nmaps; i++)
		munmap(f->maps[i].p, f->maps[i].len);
	conn_close(f->a);
	conn_close(f->b);
	free(f->payload);
	buf_fini(&f->buf);
	free(f);
	return 0;
}

/* Fresh anonymous memory, unmapped by the teardown. */
static void *map_anon(struct fixture *f, size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	assert_true(f->nmaps < MAX_MAPS);
	f->maps[f->nmaps].p = p;
	f->maps[f->nmaps].len = len;
	f->nmaps++;
	return p;
}

static struct tern_session *new_session(struct fixture *f, int slot, const struct tern_vmm_ops *ops,
					void *opaque)
{
	assert_null(f->s[slot]);
	assert_rc_equal(tern_session_new(ops, opaque, &f->s[slot], NULL), 0);
	assert_non_null(f->s[slot]);
	return f->s[slot];
}

/* A socketpair as two connections: f->a sends, f->b receives. */
static void open_pair(struct fixture *f)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_rc_equal(tcp_conn_from_fd(sv[0], "src", &f->a, NULL), 0);
	assert_rc_equal(tcp_conn_from_fd(sv[1], "dst", &f->b, NULL), 0);
}

static void send_raw(struct fixture *f, const void *p, size_t len)
{
	assert_rc_equal(conn_send(f->a, p, len), 0);
}

/* A frame header, written as raw bytes. */
static void send_frame_hdr(struct fixture *f, uint16_t type, uint16_t flags, uint32_t len)
{
	uint8_t h[CTL_HDR_SIZE];

	put_be16(h, type);
	put_be16(h + 2, flags);
	put_be32(h + 4, len);
	send_raw(f, h, sizeof(h));
}

/* ======================================================================== */
/* parameters and capabilities                                              */
/* ======================================================================== */

static const struct {
	const char *name;
	enum param_id id;
	uint64_t min, max, def;
	bool live;
} param_cases[] = {
    {"multifd-channels", PARAM_MULTIFD_CHANNELS, 1, 64, 2, false},
    {"max-bandwidth", PARAM_MAX_BANDWIDTH, 0, UINT64_MAX / 2, 0, true},
    {"avail-switchover-bandwidth", PARAM_AVAIL_SWITCHOVER_BANDWIDTH, 0, UINT64_MAX / 2, 0, true},
    {"downtime-limit", PARAM_DOWNTIME_LIMIT, 1, 2000000, 300, true},
    {"clear-bitmap-shift", PARAM_CLEAR_BITMAP_SHIFT, 6, 31, 18, false},
    {"multifd-zlib-level", PARAM_MULTIFD_ZLIB_LEVEL, 1, 9, 1, false},
    {"multifd-zstd-level", PARAM_MULTIFD_ZSTD_LEVEL, 1, 20, 1, false},
    {"xbzrle-cache-size", PARAM_XBZRLE_CACHE_SIZE, 4096, 1ull << 40, 64ull << 20, true},
    {"cpu-throttle-initial", PARAM_CPU_THROTTLE_INITIAL, 1, 99, 20, true},
    {"cpu-throttle-increment", PARAM_CPU_THROTTLE_INCREMENT, 1, 99, 10, true},
    {"max-cpu-throttle", PARAM_MAX_CPU_THROTTLE, 1, 99, 99, true},
    {"migration-timeout", PARAM_MIGRATION_TIMEOUT, 0, 31536000, 0, true},
    {"handshake-timeout", PARAM_HANDSHAKE_TIMEOUT, 100, 600000, 10000, false},
    {"io-timeout", PARAM_IO_TIMEOUT, 1000, 3600000, 30000, false},
    {"rdma-pin-limit", PARAM_RDMA_PIN_LIMIT, 4ull << 20, 1ull << 50, 1ull << 30, false},
    {"postcopy-recover-timeout", PARAM_POSTCOPY_RECOVER_TIMEOUT, 0, 31536000000ull, 0, true},
};
/* the numeric ones; multifd-compression and migration-timeout-policy (names)
 * have test_params_compression and test_params_timeout_policy */
_Static_assert(ARRAY_SIZE(param_cases) == PARAM_MAX - 3, "a parameter without a test case");

static void assert_range_msg(const struct tern_error *err, const char *name, uint64_t min,
			     uint64_t max)
{
	char range[64];

	snprintf(range, sizeof(range), "%" PRIu64 "..%" PRIu64, min, max);
	assert_rc_equal(err->code, -ERANGE);
	assert_str_contains(err->msg, name);
	assert_str_contains(err->msg, range);
}

static void test_params_ranges(void **state)
{
	struct params p;
	size_t i;

	(void)state;
	params_init(&p);
	for (i = 0; i < ARRAY_SIZE(param_cases); i++) {
		const char *name = param_cases[i].name;
		enum param_id id = param_cases[i].id, found = PARAM_INVALID;
		uint64_t min = param_cases[i].min, max = param_cases[i].max;
		struct tern_error err = {0};

		assert_rc_equal(params_lookup(name, &found), 0);
		assert_int_equal(found, id);
		assert_string_equal(param_name(id), name);
		assert_true(params_get(&p, id) == param_cases[i].def);

		assert_rc_equal(params_set(&p, id, min, false, &err), 0);
		assert_true(params_get(&p, id) == min);
		assert_rc_equal(params_set(&p, id, max, false, &err), 0);
		assert_true(params_get(&p, id) == max);
		assert_int_equal(err.code, 0);

		if (min > 0) {
			assert_rc_equal(params_set(&p, id, min - 1, false, &err), -ERANGE);
			assert_range_msg(&err, name, min, max);
			assert_true(params_get(&p, id) == max); /* unchanged */
			tern_error_clear(&err);
		}
		assert_rc_equal(params_set(&p, id, max + 1, false, &err), -ERANGE);
		assert_range_msg(&err, name, min, max);
		assert_true(params_get(&p, id) == max);
		tern_error_clear(&err);
		assert_rc_equal(params_set(&p, id, UINT64_MAX, false, &err), -ERANGE);
		assert_range_msg(&err, name, min, max);
		tern_error_clear(&err);

		assert_rc_equal(params_set(&p, id, param_cases[i].def, false, &err), 0);
		assert_true(params_get(&p, id) == param_cases[i].def);
	}
	assert_rc_equal(params_set(&p, PARAM_INVALID, 1, false, NULL), -EINVAL);
	assert_rc_equal(params_set(&p, PARAM_MAX, 1, false, NULL), -EINVAL);
	assert_string_equal(param_name(PARAM_INVALID), "invalid");
	assert_string_equal(param_name(PARAM_MAX), "invalid");
}

static void test_params_unknown_names(void **state)
{
	enum param_id pid = PARAM_MAX_BANDWIDTH;
	enum cap_id cid = CAP_VERIFY_RAM;

	(void)state;
	assert_rc_equal(params_lookup("no-such-param", &pid), -ENOENT);
	assert_rc_equal(params_lookup("", &pid), -ENOENT);
	assert_rc_equal(params_lookup(NULL, &pid), -ENOENT);
	assert_rc_equal(params_lookup("Max-Bandwidth", &pid), -ENOENT);
	assert_rc_equal(params_lookup("max-bandwidth ", &pid), -ENOENT);
	assert_int_equal(pid, PARAM_MAX_BANDWIDTH); /* not written */
	assert_rc_equal(caps_lookup("no-such-cap", &cid), -ENOENT);
	assert_rc_equal(caps_lookup(NULL, &cid), -ENOENT);
	assert_rc_equal(caps_lookup("max-bandwidth", &cid), -ENOENT);
	cid = CAP_INVALID;
	assert_rc_equal(caps_lookup("verify-ram", &cid), 0);
	assert_int_equal(cid, CAP_VERIFY_RAM);
}

static void test_params_running(void **state)
{
	struct params p;
	size_t i;

	(void)state;
	params_init(&p);
	for (i = 0; i < ARRAY_SIZE(param_cases); i++) {
		enum param_id id = param_cases[i].id;
		uint64_t v = param_cases[i].max - 1; /* not the default */
		struct tern_error err = {0};
		int rc = params_set(&p, id, v, true, &err);

		if (param_cases[i].live) {
			assert_rc_equal(rc, 0);
			assert_true(params_get(&p, id) == v);
		} else {
			assert_rc_equal(rc, -EBUSY);
			assert_str_contains(err.msg, param_cases[i].name);
			assert_str_contains(err.msg, "running");
			assert_true(params_get(&p, id) == param_cases[i].def);
		}
		/* The range is still checked while running. */
		tern_error_clear(&err);
		assert_rc_equal(params_set(&p, id, param_cases[i].max + 1, true, &err), -ERANGE);
	}
}

static void test_params_public(void **state)
{
	struct fixture *f = *state;
	struct tern_session *s = new_session(f, 0, NULL, NULL);
	uint64_t v;
	bool on;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(param_cases); i++) {
		const char *name = param_cases[i].name;
		uint64_t min = param_cases[i].min, max = param_cases[i].max;

		v = 12345;
		assert_rc_equal(tern_param_get(s, name, &v, NULL), 0);
		assert_true(v == param_cases[i].def);
		assert_rc_equal(tern_param_set(s, name, max, NULL), 0);
		assert_rc_equal(tern_param_get(s, name, &v, NULL), 0);
		assert_true(v == max);
		assert_rc_equal(tern_param_set(s, name, min, NULL), 0);
		assert_rc_equal(tern_param_get(s, name, &v, NULL), 0);
		assert_true(v == min);
		tern_error_clear(&f->err);
		assert_rc_equal(tern_param_set(s, name, max + 1, &f->err), -ERANGE);
		assert_range_msg(&f->err, name, min, max);
		if (min) {
			tern_error_clear(&f->err);
			assert_rc_equal(tern_param_set(s, name, min - 1, &f->err), -ERANGE);
			assert_range_msg(&f->err, name, min, max);
		}
		assert_rc_equal(tern_param_get(s, name, &v, NULL), 0);
		assert_true(v == min);
	}

	tern_error_clear(&f->err);
	v = 777;
	assert_rc_equal(tern_param_set(s, "bogus", 1, &f->err), -ENOENT);
	assert_str_contains(f->err.msg, "unknown parameter 'bogus'");
	assert_rc_equal(tern_param_get(s, "bogus", &v, NULL), -ENOENT);
	assert_true(v == 777);
	assert_rc_equal(tern_param_set(s, NULL, 1, NULL), -ENOENT);
	/* A capability is not a parameter, and the reverse. */
	assert_rc_equal(tern_param_set(s, "verify-ram", 1, NULL), -ENOENT);
	assert_rc_equal(tern_cap_set(s, "max-bandwidth", true, NULL), -ENOENT);

	on = true;
	assert_rc_equal(tern_cap_get(s, "verify-ram", &on, NULL), 0);
	assert_false(on);
	assert_true(caps_bits(&s->params) == 0);
	assert_rc_equal(tern_cap_set(s, "verify-ram", true, NULL), 0);
	assert_rc_equal(tern_cap_get(s, "verify-ram", &on, NULL), 0);
	assert_true(on);
	assert_true(caps_bits(&s->params) == CAP_BIT(CAP_VERIFY_RAM));
	assert_true((caps_bits(&s->params) & ~CAPS_KNOWN) == 0);
	tern_error_clear(&f->err);
	assert_rc_equal(tern_cap_set(s, "bogus-cap", true, &f->err), -ENOENT);
	assert_str_contains(f->err.msg, "unknown capability 'bogus-cap'");
	on = true;
	assert_rc_equal(tern_cap_get(s, "bogus-cap", &on, NULL), -ENOENT);
	assert_true(on); /* not written */
	assert_rc_equal(tern_cap_set(s, "verify-ram", false, NULL), 0);
	assert_rc_equal(tern_cap_get(s, "verify-ram", &on, NULL), 0);
	assert_false(on);
}

/*
 * zero-copy-send (issue 12): tern_migrate() refuses the transports and codecs
 * it cannot serve, at once, naming why, and starts nothing; tcp: with none or
 * auto passes the check.
 */
static void test_caps_zero_copy_refused(void **state)
{
	static const struct {
		const char *uri, *codec, *why;
	} refused[] = {
	    {"unix:/nonexistent/tern.sock", "none",
	     "tcp: only (unix: sockets have no SO_ZEROCOPY)"},
	    {"rdma:127.0.0.1:1", "none", "not applicable to rdma:"},
	    {"tcp:127.0.0.1:1", "xbzrle", "multifd-compression xbzrle encodes every page"},
	};
	struct fixture *f = *state;
	struct tern_session *s = new_session(f, 0, NULL, NULL);
	struct tern_ram_block *b;
	size_t i;

	assert_rc_equal(tern_ram_register(s, "ram", map_anon(f, f->page), f->page, &b, NULL), 0);
	assert_rc_equal(tern_cap_set(s, "zero-copy-send", true, NULL), 0);
	for (i = 0; i < ARRAY_SIZE(refused); i++) {
		tern_error_clear(&f->err);
		assert_rc_equal(
		    tern_param_set_str(s, "multifd-compression", refused[i].codec, NULL), 0);
		assert_rc_equal(tern_migrate(s, refused[i].uri, &f->err), -EOPNOTSUPP);
		assert_str_contains(f->err.msg, "zero-copy-send: ");
		assert_str_contains(f->err.msg, refused[i].why);
		assert_false(s->started);
		assert_int_equal(session_status(s), TERN_STATUS_NONE);
	}
	/* what is accepted: tcp with none or auto (not started here) */
	assert_rc_equal(caps_check_source(&s->params, "tcp", TERN_CODEC_NONE, NULL), 0);
	assert_rc_equal(caps_check_source(&s->params, "tcp", MF_METHOD_AUTO, NULL), 0);
	assert_rc_equal(caps_check_source(&s->params, "tcp", TERN_CODEC_ZLIB, NULL), -EOPNOTSUPP);
	assert_rc_equal(caps_check_source(&s->params, "tcp", TERN_CODEC_ZSTD, NULL), -EOPNOTSUPP);
	/* the capability off: nothing to refuse */
	assert_rc_equal(tern_cap_set(s, "zero-copy-send", false, NULL), 0);
	assert_rc_equal(caps_check_source(&s->params, "unix", TERN_CODEC_NONE, NULL), 0);
	assert_rc_equal(caps_check_source(&s->params, "rdma", TERN_CODEC_ZSTD, NULL), 0);
}

/* multifd-compression: a name, through the _str setters only. */
static void test_params_timeout_policy(void **state)
{
	struct fixture *f = *state;
	struct tern_session *s = new_session(f, 0, NULL, NULL);
	uint64_t v = 77;
	char buf[16];

	assert_true(param_is_enum(PARAM_MIGRATION_TIMEOUT_POLICY));
	assert_rc_equal(tern_param_get_str(s, "migration-timeout-policy", buf, sizeof(buf), NULL),
			0);
	assert_string_equal(buf, "cancel");
	assert_rc_equal(tern_param_set_str(s, "migration-timeout-policy", "force", NULL), 0);
	assert_rc_equal(tern_param_get_str(s, "migration-timeout-policy", buf, sizeof(buf), NULL),
			0);
	assert_string_equal(buf, "force");
	assert_rc_equal(tern_param_set_str(s, "migration-timeout-policy", "later", &f->err),
			-EINVAL);
	assert_str_contains(f->err.msg, "migration-timeout-policy");
	assert_str_contains(f->err.msg, "cancel, force, postcopy");
	tern_error_clear(&f->err);
	assert_rc_equal(tern_param_set(s, "migration-timeout-policy", 1, &f->err), -EINVAL);
	assert_str_contains(f->err.msg, "tern_param_set_str");
	tern_error_clear(&f->err);
	assert_rc_equal(tern_param_get(s, "migration-timeout-policy", &v, NULL), -EINVAL);
	assert_true(v == 77);
	assert_string_equal(buf, "force"); /* unchanged by the refusals */
}

/*
 * postcopy-ram's preconditions, refused at tern_migrate() with the reason:
 * rdma:, 64 channels (no room for the urgent one), migration-timeout-policy
 * postcopy without the capability; live, the policy too. And
 * tern_postcopy_start() before anything runs or without the capability.
 */
static void test_caps_postcopy_refused(void **state)
{
	struct fixture *f = *state;
	struct tern_session *s = new_session(f, 0, NULL, NULL);
	struct tern_ram_block *b;
	struct params p;

	assert_rc_equal(tern_ram_register(s, "ram", map_anon(f, f->page), f->page, &b, NULL), 0);
	assert_rc_equal(tern_postcopy_start(s, &f->err), -EINVAL);
	assert_str_contains(f->err.msg, "postcopy-ram capability is off");
	tern_error_clear(&f->err);
	assert_rc_equal(tern_param_set_str(s, "migration-timeout-policy", "postcopy", NULL), 0);
	assert_rc_equal(tern_migrate(s, "tcp:127.0.0.1:1", &f->err), -EINVAL);
	assert_str_contains(f->err.msg, "migration-timeout-policy postcopy needs the postcopy-ram");
	tern_error_clear(&f->err);
	assert_rc_equal(tern_cap_set(s, "postcopy-ram", true, NULL), 0);
	assert_rc_equal(tern_postcopy_start(s, &f->err), -EINVAL);
	assert_str_contains(f->err.msg, "no outgoing migration is running");
	tern_error_clear(&f->err);
	assert_rc_equal(tern_migrate(s, "rdma:127.0.0.1:1", &f->err), -EOPNOTSUPP);
	assert_str_contains(f->err.msg, "postcopy-ram: tcp: and unix: only");
	tern_error_clear(&f->err);
	assert_rc_equal(tern_param_set(s, "multifd-channels", TERN_MAX_CHANNELS, NULL), 0);
	assert_rc_equal(tern_migrate(s, "tcp:127.0.0.1:1", &f->err), -EOPNOTSUPP);
	assert_str_contains(f->err.msg, "at most 63 multifd-channels");
	assert_false(s->started);
	tern_error_clear(&f->err);

	/* live: the policy postcopy only where the capability is on */
	params_init(&p);
	assert_rc_equal(params_set(&p, PARAM_MIGRATION_TIMEOUT_POLICY, TIMEOUT_POLICY_POSTCOPY + 1,
				   true, &f->err),
			-EINVAL);
	assert_str_contains(f->err.msg, "postcopy needs the postcopy-ram capability");
	tern_error_clear(&f->err);
	assert_rc_equal(params_set(&p, PARAM_MIGRATION_TIMEOUT_POLICY, TIMEOUT_POLICY_POSTCOPY + 1,
				   false, NULL),
			0);
	p.cap[CAP_POSTCOPY_RAM] = true;
	assert_rc_equal(
	    params_set(&p, PARAM_MIGRATION_TIMEOUT_POLICY, TIMEOUT_POLICY_POSTCOPY + 1, true, NULL),
	    0);
}

static void test_params_compression(void **state)
{
	struct fixture *f = *state;
	struct tern_session *s = new_session(f, 0, NULL, NULL);
	static const char *const names[] = {"none", "zlib", "zstd", "xbzrle", "auto"};
	char buf[16];
	uint64_t v = 77;
	size_t i;

	assert_true(param_is_enum(PARAM_MULTIFD_COMPRESSION));
	assert_false(param_is_enum(PARAM_MULTIFD_ZSTD_LEVEL));
	assert_rc_equal(tern_param_get_str(s, "multifd-compression", buf, sizeof(buf), NULL), 0);
	assert_string_equal(buf, "none");

	/* the number setter and getter refuse it, listing the names */
	assert_rc_equal(tern_param_set(s, "multifd-compression", 3, &f->err), -EINVAL);
	assert_str_contains(f->err.msg, "multifd-compression");
	assert_str_contains(f->err.msg, "none, zlib, zstd, xbzrle, auto");
	assert_str_contains(f->err.msg, "tern_param_set_str");
	tern_error_clear(&f->err);
	assert_rc_equal(tern_param_get(s, "multifd-compression", &v, &f->err), -EINVAL);
	assert_true(v == 77);
	tern_error_clear(&f->err);

	for (i = 0; i < ARRAY_SIZE(names); i++) {
		int rc = tern_param_set_str(s, "multifd-compression", names[i], &f->err);

		if (mf_method_check(mf_method_by_name(names[i]), "x", NULL)) {
			/* this build lacks a codec: refused, naming it */
			assert_rc_equal(rc, -EPROTONOSUPPORT);
			assert_str_contains(f->err.msg, "multifd-compression");
			assert_str_contains(f->err.msg, "which this build lacks");
			tern_error_clear(&f->err);
			continue;
		}
		assert_rc_equal(rc, 0);
		assert_rc_equal(
		    tern_param_get_str(s, "multifd-compression", buf, sizeof(buf), NULL), 0);
		assert_string_equal(buf, names[i]);
	}
	assert_rc_equal(tern_param_set_str(s, "multifd-compression", "none", NULL), 0);
	assert_rc_equal(tern_param_set_str(s, "multifd-compression", "lz4", &f->err), -EINVAL);
	assert_str_contains(f->err.msg, "multifd-compression: unknown value 'lz4'");
	assert_str_contains(f->err.msg, "none, zlib, zstd, xbzrle, auto");
	tern_error_clear(&f->err);
	assert_rc_equal(tern_param_set_str(s, "multifd-compression", "ZSTD", NULL), -EINVAL);
	assert_rc_equal(tern_param_set_str(s, "multifd-compression", "", NULL), -EINVAL);
	assert_rc_equal(tern_param_set_str(s, "multifd-compression", NULL, NULL), -EINVAL);
	assert_rc_equal(tern_param_get_str(s, "multifd-compression", buf, sizeof(buf), NULL), 0);
	assert_string_equal(buf, "none");
	/* internal ids outside the method set */
	assert_rc_equal(params_set(&s->params, PARAM_MULTIFD_COMPRESSION, 0, false, NULL), -EINVAL);
	assert_rc_equal(
	    params_set(&s->params, PARAM_MULTIFD_COMPRESSION, TERN_CODEC_MAX, false, NULL),
	    -EINVAL);

	/* numbers through the text setter, checked as ever */
	assert_rc_equal(tern_param_set_str(s, "multifd-zstd-level", "19", NULL), 0);
	assert_rc_equal(tern_param_get(s, "multifd-zstd-level", &v, NULL), 0);
	assert_true(v == 19);
	assert_rc_equal(tern_param_get_str(s, "multifd-zstd-level", buf, sizeof(buf), NULL), 0);
	assert_string_equal(buf, "19");
	assert_rc_equal(tern_param_set_str(s, "multifd-zstd-level", "21", &f->err), -ERANGE);
	assert_range_msg(&f->err, "multifd-zstd-level", 1, 20);
	tern_error_clear(&f->err);
	assert_rc_equal(tern_param_set_str(s, "multifd-zlib-level", "9x", &f->err), -EINVAL);
	assert_str_contains(f->err.msg, "multifd-zlib-level: '9x' is not a number");
	assert_rc_equal(tern_param_set_str(s, "multifd-zlib-level", "-1", NULL), -EINVAL);
	tern_error_clear(&f->err);
	assert_rc_equal(tern_param_set_str(s, "xbzrle-cache-size", "4095", &f->err), -ERANGE);
	assert_range_msg(&f->err, "xbzrle-cache-size", 4096, 1ull << 40);
	assert_rc_equal(tern_param_get_str(s, "xbzrle-cache-size", buf, 3, NULL), -ENOSPC);
	assert_rc_equal(tern_param_set_str(s, "bogus", "1", NULL), -ENOENT);
	assert_rc_equal(tern_param_get_str(s, "bogus", buf, sizeof(buf), NULL), -ENOENT);

	/* while a migration runs: the method is fixed, the cache size is live */
	s->started = true;
	__atomic_store_n(&s->status, TERN_STATUS_ACTIVE, __ATOMIC_RELEASE);
	tern_error_clear(&f->err);
	assert_rc_equal(tern_param_set_str(s, "multifd-compression", "none", &f->err), -EBUSY);
	assert_str_contains(f->err.msg, "multifd-compression");
	assert_rc_equal(tern_param_set_str(s, "xbzrle-cache-size", "1048576", NULL), 0);
	assert_rc_equal(tern_param_set(s, "multifd-zstd-level", 3, NULL), -EBUSY);
	__atomic_store_n(&s->status, TERN_STATUS_COMPLETED, __ATOMIC_RELEASE);
}

/* The public setters on a session whose migration runs (faked). */
static void test_params_public_running(void **state)
{
	struct fixture *f = *state;
	struct tern_session *s = new_session(f, 0, NULL, NULL);
	uint64_t v;

	s->started = true;
	__atomic_store_n(&s->status, TERN_STATUS_ACTIVE, __ATOMIC_RELEASE);

	assert_rc_equal(tern_param_set(s, "multifd-channels", 4, &f->err), -EBUSY);
	assert_str_contains(f->err.msg, "multifd-channels");
	assert_rc_equal(tern_param_set(s, "clear-bitmap-shift", 20, NULL), -EBUSY);
	assert_rc_equal(tern_cap_set(s, "verify-ram", true, NULL), -EBUSY);
	assert_rc_equal(tern_param_set(s, "max-bandwidth", 1000000, NULL), 0);
	assert_rc_equal(tern_param_set(s, "downtime-limit", 50, NULL), 0);
	assert_rc_equal(tern_param_get(s, "multifd-channels", &v, NULL), 0);
	assert_true(v == 2);
	assert_rc_equal(tern_param_get(s, "max-bandwidth", &v, NULL), 0);
	assert_true(v == 1000000);
	assert_rc_equal(tern_param_get(s, "downtime-limit", &v, NULL), 0);
	assert_true(v == 50);

	/* Once the migration ended, everything may change again. */
	__atomic_store_n(&s->status, TERN_STATUS_COMPLETED, __ATOMIC_RELEASE);
	assert_rc_equal(tern_param_set(s, "multifd-channels", 4, NULL), 0);
	assert_rc_equal(tern_cap_set(s, "verify-ram", true, NULL), 0);
}

/* ======================================================================== */
/* states                                                                   */
/* ======================================================================== */

struct transitions {
	int n; /* atomic */
	enum tern_status from[16], to[16];
};

static void on_state(void *opaque, enum tern_status from, enum tern_status to)
{
	struct transitions *t = opaque;
	int i = __atomic_fetch_add(&t->n, 1, __ATOMIC_ACQ_REL);

	if (i < 16) {
		t->from[i] = from;
		t->to[i] = to;
	}
}

static void test_status_names(void **state)
{
	static const char *const names[TERN_STATUS_MAX] = {
	    "invalid",		"none",	     "setup",		"active",
	    "pre-switchover",	"device",    "completed",	"failed",
	    "cancelling",	"cancelled", "postcopy-active", "postcopy-paused",
	    "postcopy-recover",
	};
	int i;

	(void)state;
	for (i = 0; i < TERN_STATUS_MAX; i++)
		assert_string_equal(tern_status_name((enum tern_status)i), names[i]);
	assert_string_equal(tern_status_name(TERN_STATUS_MAX), "invalid");
	assert_string_equal(tern_status_name((enum tern_status)1000), "invalid");
	assert_string_equal(tern_status_name((enum tern_status) - 1), "invalid");

	for (i = 0; i < TERN_STATUS_MAX; i++) {
		bool final = i == TERN_STATUS_COMPLETED || i == TERN_STATUS_FAILED ||
			     i == TERN_STATUS_CANCELLED;

		assert_int_equal(status_is_final((enum tern_status)i), final);
	}
}

static void test_state_transitions(void **state)
{
	struct fixture *f = *state;
	struct tern_vmm_ops ops = {.state_changed = on_state};
	struct transitions t = {0};
	struct tern_session *s = new_session(f, 0, &ops, &t);

	assert_int_equal(session_status(s), TERN_STATUS_NONE);
	/* Only from the expected state. */
	assert_false(session_transition(s, TERN_STATUS_SETUP, TERN_STATUS_ACTIVE));
	assert_int_equal(session_status(s), TERN_STATUS_NONE);
	assert_int_equal(t.n, 0);

	assert_true(session_transition(s, TERN_STATUS_NONE, TERN_STATUS_SETUP));
	assert_int_equal(session_status(s), TERN_STATUS_SETUP);
	assert_int_equal(t.n, 1);
	assert_int_equal(t.from[0], TERN_STATUS_NONE);
	assert_int_equal(t.to[0], TERN_STATUS_SETUP);

	/* A second transition from the old state fails and reports nothing. */
	assert_false(session_transition(s, TERN_STATUS_NONE, TERN_STATUS_SETUP));
	assert_false(session_transition(s, TERN_STATUS_NONE, TERN_STATUS_FAILED));
	assert_int_equal(session_status(s), TERN_STATUS_SETUP);
	assert_int_equal(t.n, 1);

	assert_true(session_transition(s, TERN_STATUS_SETUP, TERN_STATUS_ACTIVE));
	assert_true(session_transition(s, TERN_STATUS_ACTIVE, TERN_STATUS_FAILED));
	assert_int_equal(t.n, 3);
	assert_int_equal(t.from[1], TERN_STATUS_SETUP);
	assert_int_equal(t.to[1], TERN_STATUS_ACTIVE);
	assert_int_equal(t.from[2], TERN_STATUS_ACTIVE);
	assert_int_equal(t.to[2], TERN_STATUS_FAILED);
	assert_false(session_transition(s, TERN_STATUS_ACTIVE, TERN_STATUS_COMPLETED));
	assert_int_equal(session_status(s), TERN_STATUS_FAILED);
	assert_int_equal(t.n, 3);

	/* No callback registered: the transition still works. */
	{
		struct tern_session *s2 = new_session(f, 1, NULL, NULL);

		assert_true(session_transition(s2, TERN_STATUS_NONE, TERN_STATUS_CANCELLING));
		assert_int_equal(session_status(s2), TERN_STATUS_CANCELLING);
	}
}

#define RACERS 8

struct racer {
	struct tern_session *s;
	pthread_barrier_t *barrier;
	enum tern_status to;
	bool won;
};

static void *racer_main(void *arg)
{
	struct racer *r = arg;

	pthread_barrier_wait(r->barrier);
	r->won = session_transition(r->s, TERN_STATUS_ACTIVE, r->to);
	return NULL;
}

/* Concurrent transitions from one state: exactly one wins. */
static void test_state_cas_race(void **state)
{
	struct fixture *f = *state;
	struct tern_vmm_ops ops = {.state_changed = on_state};
	struct transitions t = {0};
	struct tern_session *s = new_session(f, 0, &ops, &t);
	pthread_barrier_t barrier;
	struct racer r[RACERS];
	pthread_t th[RACERS];
	int iter, i, wins;

	for (iter = 0; iter < 50; iter++) {
		__atomic_store_n(&s->status, TERN_STATUS_ACTIVE, __ATOMIC_RELEASE);
		__atomic_store_n(&t.n, 0, __ATOMIC_RELEASE);
		assert_int_equal(pthread_barrier_init(&barrier, NULL, RACERS), 0);
		for (i = 0; i < RACERS; i++) {
			r[i] = (struct racer){
			    .s = s,
			    .barrier = &barrier,
			    .to = i % 2 ? TERN_STATUS_FAILED : TERN_STATUS_CANCELLING,
			};
			assert_int_equal(pthread_create(&th[i], NULL, racer_main, &r[i]), 0);
		}
		wins = 0;
		for (i = 0; i < RACERS; i++) {
			pthread_join(th[i], NULL);
			if (r[i].won) {
				wins++;
				assert_int_equal(session_status(s), r[i].to);
			}
		}
		pthread_barrier_destroy(&barrier);
		assert_int_equal(wins, 1);
		assert_int_equal(t.n, 1);
		assert_int_equal(t.from[0], TERN_STATUS_ACTIVE);
		assert_int_equal(t.to[0], session_status(s));
	}
}

/* ======================================================================== */
/* framing: buffers and the bounds-checked reader                           */
/* ======================================================================== */

static void test_buf_layout(void **state)
{
	struct fixture *f = *state;
	static const uint8_t want[] = {
	    0x12,					    /* u8 */
	    0x34, 0x56,					    /* u16 */
	    0x78, 0x9a, 0xbc, 0xde,			    /* u32 */
	    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, /* u64 */
	    0x00, 0x03, 'a',  'b',  'c',		    /* str */
	    0x00, 0x00,					    /* empty str */
	    'x',  'y',	'z',				    /* raw */
	    0xff, 0xff, 0xff, 0xff,			    /* u32 max */
	};
	struct buf *b = &f->buf;
	uint8_t big[1000];
	size_t i;

	buf_put_u8(b, 0x12);
	buf_put_u16(b, 0x3456);
	buf_put_u32(b, 0x789abcde);
	buf_put_u64(b, 0x0102030405060708ull);
	buf_put_str(b, "abc");
	buf_put_str(b, "");
	buf_put(b, "xyz", 3);
	buf_put_u32(b, UINT32_MAX);
	assert_false(b->oom);
	assert_int_equal(b->len, sizeof(want));
	assert_memory_equal(b->data, want, sizeof(want));

	/* Growing past the first allocation keeps what was there. */
	for (i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7);
	buf_put(b, big, sizeof(big));
	buf_put(b, NULL, 0);
	assert_int_equal(b->len, sizeof(want) + sizeof(big));
	assert_true(b->cap >= b->len);
	assert_memory_equal(b->data, want, sizeof(want));
	assert_memory_equal(b->data + sizeof(want), big, sizeof(big));

	buf_reset(b);
	assert_int_equal(b->len, 0);
	buf_put_u16(b, 0xbeef);
	assert_int_equal(b->len, 2);
	assert_int_equal(b->data[0], 0xbe);
	assert_int_equal(b->data[1], 0xef);
}

/* @len bytes placed at the very end of a page followed by a PROT_NONE page:
 * a read past them would crash the test. */
static uint8_t *guarded_bytes(struct fixture *f, const void *src, size_t len)
{
	uint8_t *m = map_anon(f, 2 * (size_t)f->page);
	uint8_t *p = m + f->page - len;

	assert_int_equal(mprotect(m + f->page, f->page, PROT_NONE), 0);
	memcpy(p, src, len);
	return p;
}

static void test_rd_bounds(void **state)
{
	struct fixture *f = *state;
	static const uint8_t data[7] = {0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03};
	const uint8_t *p = guarded_bytes(f, data, sizeof(data));
	struct rd r;
	int i;

	rd_init(&r, p, sizeof(data));
	assert_true(rd_u32(&r) == 0xdeadbeef);
	assert_false(r.bad);
	assert_int_equal(rd_left(&r), 3);
	assert_true(rd_u32(&r) == 0); /* 3 left: overrun */
	assert_true(r.bad);
	assert_int_equal(r.off, 4); /* nothing consumed */
	assert_int_equal(rd_left(&r), 3);
	/* Sticky: even a read that would fit now fails. */
	assert_int_equal(rd_u8(&r), 0);
	assert_null(rd_bytes(&r, 1));
	assert_int_equal(r.off, 4);

	rd_init(&r, p, sizeof(data));
	for (i = 0; i < 7; i++)
		assert_int_equal(rd_u8(&r), data[i]);
	assert_false(r.bad);
	assert_int_equal(rd_left(&r), 0);
	assert_int_equal(rd_u8(&r), 0);
	assert_true(r.bad);

	rd_init(&r, p, sizeof(data));
	assert_int_equal(rd_u16(&r), 0xdead);
	assert_true(rd_u64(&r) == 0);
	assert_true(r.bad);

	rd_init(&r, p, sizeof(data));
	assert_null(rd_bytes(&r, SIZE_MAX));
	assert_true(r.bad);
	rd_init(&r, p, sizeof(data));
	assert_null(rd_bytes(&r, 8));
	assert_true(r.bad);
	rd_init(&r, p, sizeof(data));
	assert_ptr_equal(rd_bytes(&r, 7), p);
	assert_false(r.bad);
	assert_ptr_equal(rd_bytes(&r, 0), p + 7); /* zero bytes at the end is fine */
	assert_false(r.bad);

	rd_init(&r, p, 0);
	assert_true(rd_u16(&r) == 0);
	assert_true(r.bad);
	assert_true(rd_u64(&r) == 0);
}

static void test_rd_str(void **state)
{
	struct fixture *f = *state;
	static const uint8_t ok[] = {0x00, 0x03, 'a', 'b', 'c', 0x42};
	static const uint8_t empty[] = {0x00, 0x00, 0x42};
	static const uint8_t nul[] = {0x00, 0x03, 'a', 0x00, 'c'};
	static const uint8_t overrun[] = {0x00, 0x05, 'a', 'b', 'c'};
	static const uint8_t half_len[] = {0x00};
	char out[4];
	struct rd r;

	rd_init(&r, guarded_bytes(f, ok, sizeof(ok)), sizeof(ok));
	memset(out, 'X', sizeof(out));
	rd_str(&r, out, sizeof(out));
	assert_false(r.bad);
	assert_string_equal(out, "abc");
	assert_int_equal(rd_u8(&r), 0x42);

	/* Too long for @out (needs room for the NUL). */
	rd_init(&r, ok, sizeof(ok));
	memset(out, 'X', sizeof(out));
	rd_str(&r, out, 3);
	assert_true(r.bad);
	assert_string_equal(out, "");

	rd_init(&r, guarded_bytes(f, empty, sizeof(empty)), sizeof(empty));
	memset(out, 'X', sizeof(out));
	rd_str(&r, out, sizeof(out));
	assert_true(r.bad);
	assert_string_equal(out, "");

	rd_init(&r, guarded_bytes(f, nul, sizeof(nul)), sizeof(nul));
	memset(out, 'X', sizeof(out));
	rd_str(&r, out, sizeof(out));
	assert_true(r.bad);
	assert_string_equal(out, "");

	{
		char big[16];

		rd_init(&r, guarded_bytes(f, overrun, sizeof(overrun)), sizeof(overrun));
		memset(big, 'X', sizeof(big));
		rd_str(&r, big, sizeof(big));
		assert_true(r.bad);
		assert_string_equal(big, "");
	}

	rd_init(&r, guarded_bytes(f, half_len, sizeof(half_len)), sizeof(half_len));
	memset(out, 'X', sizeof(out));
	rd_str(&r, out, sizeof(out));
	assert_true(r.bad);
	assert_string_equal(out, "");

	/* buf_put_str() and rd_str() agree. */
	buf_put_str(&f->buf, "pc.ram");
	{
		char name[256];

		rd_init(&r, f->buf.data, f->buf.len);
		rd_str(&r, name, sizeof(name));
		assert_false(r.bad);
		assert_string_equal(name, "pc.ram");
		assert_int_equal(rd_left(&r), 0);
	}
}

/* ======================================================================== */
/* framing: frames over a socketpair                                        */
/* ======================================================================== */

static const struct {
	uint16_t type;
	const char *name;
	uint32_t max;
} frame_types[] = {
    {CTL_HELLO, "HELLO", 1u << 20},
    {CTL_HELLO_ACK, "HELLO_ACK", 0},
    {CTL_ERROR, "ERROR", 4096},
    {CTL_SECTION_FULL, "SECTION_FULL", SECTION_MAX_PAYLOAD + 1024},
    {CTL_RAM_SYNC, "RAM_SYNC", 8},
    {CTL_EOS, "EOS", 16},
    {CTL_LOADED, "LOADED", 8},
    {CTL_COMPLETE, "COMPLETE", 64},
    {CTL_COMMIT, "COMMIT", 8},
    {CTL_RAM_SYNC_ACK, "RAM_SYNC_ACK", 8},
    {CTL_RAM_HINT, "RAM_HINT", 1u << 20},
    {CTL_RESUMED, "RESUMED", 8},
    {CTL_KEEPALIVE, "KEEPALIVE", 0},
    {CTL_POSTCOPY_DISCARD, "POSTCOPY_DISCARD", 1u << 20},
    {CTL_POSTCOPY_RUN, "POSTCOPY_RUN", 16},
    {CTL_POSTCOPY_RUNNING, "POSTCOPY_RUNNING", 8},
    {CTL_PAGE_REQ, "PAGE_REQ", 12},
    {CTL_POSTCOPY_RESUME, "POSTCOPY_RESUME", 28},
    {CTL_POSTCOPY_MISSING, "POSTCOPY_MISSING", 1u << 20},
    {CTL_POSTCOPY_RESUME_ACK, "POSTCOPY_RESUME_ACK", 16},
};
_Static_assert(ARRAY_SIZE(frame_types) == CTL_TYPE_MAX - 1, "a frame type without a test case");

struct frame_sender {
	struct tern_conn *c;
	uint16_t type;
	const uint8_t *payload;
	size_t len;
	int ret;
};

static void *frame_sender_main(void *arg)
{
	struct frame_sender *fs = arg;

	fs->ret = ctl_send(fs->c, (enum ctl_type)fs->type, fs->payload, fs->len);
	return NULL;
}

/* Send one frame from a helper thread (it may not fit a socket buffer) and
 * receive it on the test thread. */
static void frame_roundtrip(struct fixture *f, uint16_t type, const uint8_t *payload, size_t len)
{
	struct frame_sender fs = {.c = f->a, .type = type, .payload = payload, .len = len};
	uint16_t got_type = 0;
	uint32_t got_len = 12345;
	pthread_t th;

	assert_int_equal(pthread_create(&th, NULL, frame_sender_main, &fs), 0);
	tern_error_clear(&f->err);
	assert_rc_equal(ctl_recv(f->b, "test", &got_type, &f->payload, &got_len, &f->err), 0);
	pthread_join(th, NULL);
	assert_rc_equal(fs.ret, 0);
	assert_int_equal(got_type, type);
	assert_int_equal(got_len, len);
	if (len) {
		assert_non_null(f->payload);
		assert_memory_equal(f->payload, payload, len);
	} else {
		assert_null(f->payload);
	}
	free(f->payload);
	f->payload = NULL;
}

static void test_ctl_roundtrip(void **state)
{
	struct fixture *f = *state;
	size_t i, big = (size_t)SECTION_MAX_PAYLOAD + 1024, k;
	uint8_t *payload = malloc(big);

	assert_non_null(payload);
	for (k = 0; k < big; k++)
		payload[k] = (uint8_t)(k * 131 + (k >> 12));
	open_pair(f);
	for (i = 0; i < ARRAY_SIZE(frame_types); i++) {
		uint32_t max = frame_types[i].max;

		assert_string_equal(ctl_type_name(frame_types[i].type), frame_types[i].name);
		/* empty (where allowed: every type may be empty), small, the limit */
		frame_roundtrip(f, frame_types[i].type, payload, 0);
		if (max) {
			frame_roundtrip(f, frame_types[i].type, payload + 1, MIN(max, 5));
			frame_roundtrip(f, frame_types[i].type, payload, max);
		}
	}
	free(payload);
	assert_string_equal(ctl_type_name(CTL_INVALID), "invalid");
	assert_string_equal(ctl_type_name(CTL_TYPE_MAX), "unknown");
	assert_string_equal(ctl_type_name(0xffff), "unknown");
	assert_rc_equal(ctl_send(NULL, CTL_EOS, NULL, 0), -ENOTCONN);
}

static void test_ctl_frame_header_bytes(void **state)
{
	struct fixture *f = *state;
	uint8_t got[CTL_HDR_SIZE + 3];
	static const uint8_t want[] = {0x00, CTL_RAM_SYNC, 0x00, 0x00, 0x00, 0x00,
				       0x00, 0x03,	   'a',	 'b',  'c'};

	open_pair(f);
	assert_rc_equal(ctl_send(f->a, CTL_RAM_SYNC, "abc", 3), 0);
	assert_rc_equal(conn_recv(f->b, got, sizeof(got)), 0);
	assert_memory_equal(got, want, sizeof(want));
}

static void test_ctl_recv_over_limit(void **state)
{
	struct fixture *f = *state;
	uint8_t *p = (uint8_t *)"untouched";
	uint16_t type = 777;
	uint32_t len = 777;
	char mark[5] = {0};
	size_t i;

	open_pair(f);
	for (i = 0; i < ARRAY_SIZE(frame_types); i++) {
		/* Only the header goes out: the receiver must refuse on it alone. */
		send_frame_hdr(f, frame_types[i].type, 0, frame_types[i].max + 1);
		tern_error_clear(&f->err);
		assert_rc_equal(ctl_recv(f->b, "ctl", &type, &p, &len, &f->err), -EPROTO);
		assert_str_contains(f->err.msg, frame_types[i].name);
		assert_str_contains(f->err.msg, "limit");
		assert_str_contains(f->err.msg, "ctl: ");
	}
	/* Outputs are not written on failure. */
	assert_int_equal(type, 777);
	assert_int_equal(len, 777);
	assert_string_equal((char *)p, "untouched");

	/* 1 GiB of RAM_SYNC: refused on the header; the bytes behind it are
	 * still in the socket, so nothing tried to read (or allocate) them. */
	send_frame_hdr(f, CTL_RAM_SYNC, 0, 1u << 30);
	send_raw(f, "MARK", 4);
	tern_error_clear(&f->err);
	assert_rc_equal(ctl_recv(f->b, "ctl", &type, &p, &len, &f->err), -EPROTO);
	assert_str_contains(f->err.msg, "RAM_SYNC");
	assert_str_contains(f->err.msg, "1073741824");
	assert_rc_equal(conn_recv(f->b, mark, 4), 0);
	assert_string_equal(mark, "MARK");

	/* UINT32_MAX for the biggest type too. */
	send_frame_hdr(f, CTL_SECTION_FULL, 0, UINT32_MAX);
	send_raw(f, "MARK", 4);
	tern_error_clear(&f->err);
	assert_rc_equal(ctl_recv(f->b, "ctl", &type, &p, &len, &f->err), -EPROTO);
	assert_str_contains(f->err.msg, "SECTION_FULL");
	memset(mark, 0, sizeof(mark));
	assert_rc_equal(conn_recv(f->b, mark, 4), 0);
	assert_string_equal(mark, "MARK");
}

static void test_ctl_recv_bad_header(void **state)
{
	struct fixture *f = *state;
	static const uint16_t bad_types[] = {CTL_INVALID, CTL_TYPE_MAX, 0x100, 0xffff};
	uint8_t *p = NULL;
	uint16_t type;
	uint32_t len;
	size_t i;

	open_pair(f);
	for (i = 0; i < ARRAY_SIZE(bad_types); i++) {
		send_frame_hdr(f, bad_types[i], 0, 0);
		tern_error_clear(&f->err);
		assert_rc_equal(ctl_recv(f->b, "ctl", &type, &p, &len, &f->err), -EPROTO);
		assert_str_contains(f->err.msg, "unknown frame type");
	}
	send_frame_hdr(f, CTL_EOS, 0x8000, 0);
	tern_error_clear(&f->err);
	assert_rc_equal(ctl_recv(f->b, "ctl", &type, &p, &len, &f->err), -EPROTO);
	assert_str_contains(f->err.msg, "EOS frame with unknown flags 0x8000");
	send_frame_hdr(f, CTL_HELLO_ACK, 1, 0);
	tern_error_clear(&f->err);
	assert_rc_equal(ctl_recv(f->b, "ctl", &type, &p, &len, &f->err), -EPROTO);
	assert_str_contains(f->err.msg, "flags");
	assert_null(p);

	/* The stream still works after refused headers (no payload was read). */
	assert_rc_equal(ctl_send(f->a, CTL_RAM_SYNC, "12345678", 8), 0);
	assert_rc_equal(ctl_recv(f->b, "ctl", &type, &f->payload, &len, NULL), 0);
	assert_int_equal(type, CTL_RAM_SYNC);
	assert_int_equal(len, 8);
}

static void test_ctl_recv_truncated(void **state)
{
	struct fixture *f = *state;
	uint8_t *p = NULL;
	uint16_t type;
	uint32_t len;

	open_pair(f);
	send_frame_hdr(f, CTL_RAM_SYNC, 0, 8);
	send_raw(f, "abc", 3);
	conn_close(f->a);
	f->a = NULL;
	assert_rc_equal(ctl_recv(f->b, "ctl", &type, &p, &len, &f->err), -EPIPE);
	assert_str_contains(f->err.msg, "truncated");
	assert_str_contains(f->err.msg, "RAM_SYNC");
	assert_null(p);

	/* And a close between frames. */
	tern_error_clear(&f->err);
	assert_rc_equal(ctl_recv(f->b, "ctl", &type, &p, &len, &f->err), -EPIPE);
	assert_str_contains(f->err.msg, "closed the connection");
}

static void test_ctl_recv_truncated_header(void **state)
{
	struct fixture *f = *state;
	uint8_t *p = NULL;
	uint16_t type;
	uint32_t len;

	open_pair(f);
	send_raw(f, "\x00\x05\x00", 3);
	conn_close(f->a);
	f->a = NULL;
	assert_rc_equal(ctl_recv(f->b, "ctl", &type, &p, &len, &f->err), -EPIPE);
	assert_str_contains(f->err.msg, "closed the connection");
}

/*
 * ctl_recv_bounded(): a peer silent between frames is named after the read
 * deadline (not even a keepalive); one that stops inside a header is told
 * apart; ctl_recv() would wait for either without a deadline of its own.
 */
static void test_ctl_recv_bounded(void **state)
{
	struct fixture *f = *state;
	uint8_t *p = NULL;
	uint16_t type;
	uint32_t len;

	open_pair(f);
	assert_rc_equal(conn_set_recv_timeout(f->b, 100), 0);
	assert_rc_equal(ctl_send(f->a, CTL_KEEPALIVE, NULL, 0), 0);
	assert_rc_equal(ctl_recv_bounded(f->b, "ctl", "the source", &type, &p, &len, &f->err), 0);
	assert_int_equal(type, CTL_KEEPALIVE);
	assert_int_equal(len, 0);
	assert_null(p);

	assert_rc_equal(ctl_recv_bounded(f->b, "ctl", "the source", &type, &p, &len, &f->err),
			-ETIMEDOUT);
	assert_string_equal(f->err.msg,
			    "ctl: nothing from the source for 100 ms (not even a keepalive)");

	tern_error_clear(&f->err);
	send_raw(f, "\x00\x05\x00", 3);
	assert_rc_equal(ctl_recv_bounded(f->b, "ctl", "the source", &type, &p, &len, &f->err),
			-ETIMEDOUT);
	assert_str_contains(f->err.msg, "in the middle of a frame header");
}

static void test_ctl_stream_hdr(void **state)
{
	struct fixture *f = *state;
	uint8_t h[CTL_STREAM_HDR_SIZE];

	open_pair(f);
	assert_rc_equal(ctl_send_stream_hdr(f->a, CTL_MAGIC), 0);
	assert_rc_equal(ctl_recv_stream_hdr(f->b, CTL_MAGIC, "control channel", &f->err), 0);
	assert_rc_equal(ctl_send_stream_hdr(f->a, CTL_RP_MAGIC), 0);
	assert_rc_equal(ctl_recv_stream_hdr(f->b, CTL_RP_MAGIC, "return path", &f->err), 0);
	assert_int_equal(f->err.code, 0);

	/* The other direction's magic. */
	assert_rc_equal(ctl_send_stream_hdr(f->a, CTL_RP_MAGIC), 0);
	assert_rc_equal(ctl_recv_stream_hdr(f->b, CTL_MAGIC, "control channel", &f->err), -EPROTO);
	assert_str_contains(f->err.msg, "control channel: bad magic 0x54524e52");
	assert_str_contains(f->err.msg, "0x54524e43");

	put_be32(h, CTL_MAGIC);
	put_be32(h + 4, CTL_VERSION + 1);
	send_raw(f, h, sizeof(h));
	tern_error_clear(&f->err);
	assert_rc_equal(ctl_recv_stream_hdr(f->b, CTL_MAGIC, "control channel", &f->err),
			-EPROTONOSUPPORT);
	assert_str_contains(f->err.msg, "unknown protocol version 2");

	put_be32(h + 4, 0);
	send_raw(f, h, sizeof(h));
	tern_error_clear(&f->err);
	assert_rc_equal(ctl_recv_stream_hdr(f->b, CTL_MAGIC, "control channel", &f->err),
			-EPROTONOSUPPORT);
	assert_str_contains(f->err.msg, "version 0");

	send_raw(f, h, 5);
	conn_close(f->a);
	f->a = NULL;
	tern_error_clear(&f->err);
	assert_rc_equal(ctl_recv_stream_hdr(f->b, CTL_MAGIC, "control channel", &f->err), -EPIPE);
	assert_str_contains(f->err.msg, "truncated");
}

static void recv_error_frame(struct fixture *f, uint32_t *ret_len)
{
	uint16_t type = 0;

	free(f->payload);
	f->payload = NULL;
	assert_rc_equal(ctl_recv(f->b, "rp", &type, &f->payload, ret_len, NULL), 0);
	assert_int_equal(type, CTL_ERROR);
}

static void test_ctl_error_frames(void **state)
{
	struct fixture *f = *state;
	struct tern_error err = {0};
	char longmsg[5000];
	uint32_t len;

	open_pair(f);
	assert_rc_equal(ctl_send_error(f->a, -EPROTO, "RAM layout mismatch"), 0);
	recv_error_frame(f, &len);
	assert_rc_equal(ctl_decode_error(f->payload, len, "destination", &err), -EPROTO);
	assert_rc_equal(err.code, -EPROTO);
	assert_string_equal(err.msg, "destination: RAM layout mismatch");

	/* An empty message still makes a valid frame. */
	assert_rc_equal(ctl_send_error(f->a, -ENOSPC, ""), 0);
	recv_error_frame(f, &len);
	tern_error_clear(&err);
	assert_rc_equal(ctl_decode_error(f->payload, len, "source", &err), -ENOSPC);
	assert_string_equal(err.msg, "source: unknown error");

	/* A message longer than the frame allows is cut, not mangled. */
	memset(longmsg, 'm', sizeof(longmsg) - 1);
	longmsg[sizeof(longmsg) - 1] = '\0';
	assert_rc_equal(ctl_send_error(f->a, -EIO, longmsg), 0);
	recv_error_frame(f, &len);
	assert_int_equal(len, 4096); /* code, length, 4090 bytes of text */
	assert_int_equal(get_be16(f->payload + 4), 4090);
	tern_error_clear(&err);
	assert_rc_equal(ctl_decode_error(f->payload, len, "peer", &err), -EIO);
	assert_str_contains(err.msg, "peer: mmmm");
}

static void test_ctl_error_malformed(void **state)
{
	struct fixture *f = *state;
	struct tern_error err;
	struct buf *b = &f->buf;

	(void)f;
	/* code 0 */
	buf_reset(b);
	buf_put_u32(b, 0);
	buf_put_str(b, "x");
	tern_error_clear(&err);
	assert_rc_equal(ctl_decode_error(b->data, (uint32_t)b->len, "peer", &err), -EPROTO);
	assert_str_contains(err.msg, "peer sent a malformed ERROR frame");
	/* code out of errno range */
	buf_reset(b);
	buf_put_u32(b, 4096);
	buf_put_str(b, "x");
	tern_error_clear(&err);
	assert_rc_equal(ctl_decode_error(b->data, (uint32_t)b->len, "peer", &err), -EPROTO);
	assert_str_contains(err.msg, "malformed");
	/* the largest code is fine */
	buf_reset(b);
	buf_put_u32(b, 4095);
	buf_put_str(b, "x");
	tern_error_clear(&err);
	assert_rc_equal(ctl_decode_error(b->data, (uint32_t)b->len, "peer", &err), -4095);
	/* empty message */
	buf_reset(b);
	buf_put_u32(b, EIO);
	buf_put_u16(b, 0);
	tern_error_clear(&err);
	assert_rc_equal(ctl_decode_error(b->data, (uint32_t)b->len, "peer", &err), -EPROTO);
	/* message longer than the frame */
	buf_reset(b);
	buf_put_u32(b, EIO);
	buf_put_u16(b, 10);
	buf_put(b, "abc", 3);
	tern_error_clear(&err);
	assert_rc_equal(ctl_decode_error(b->data, (uint32_t)b->len, "peer", &err), -EPROTO);
	/* truncated code, empty payload */
	tern_error_clear(&err);
	assert_rc_equal(ctl_decode_error(b->data, 2, "peer", &err), -EPROTO);
	tern_error_clear(&err);
	assert_rc_equal(ctl_decode_error(NULL, 0, "peer", &err), -EPROTO);
	assert_str_contains(err.msg, "malformed");
	/* embedded NUL */
	buf_reset(b);
	buf_put_u32(b, EIO);
	buf_put_u16(b, 3);
	buf_put(b, "a\0b", 3);
	tern_error_clear(&err);
	assert_rc_equal(ctl_decode_error(b->data, (uint32_t)b->len, "peer", &err), -EPROTO);
}

/* ======================================================================== */
/* handshake                                                                */
/* ======================================================================== */

struct blk {
	const char *name;
	uint64_t pages;
};

static struct tern_session *session_with(struct fixture *f, int slot, const struct blk *blks, int n)
{
	struct tern_session *s = new_session(f, slot, NULL, NULL);
	int i;

	for (i = 0; i < n; i++) {
		size_t len = blks[i].pages * f->page;
		struct tern_ram_block *b = NULL;

		assert_rc_equal(tern_ram_register(s, blks[i].name, map_anon(f, len), len, &b, NULL),
				0);
		assert_non_null(b);
		assert_string_equal(tern_ram_block_name(b), blks[i].name);
		assert_true(tern_ram_block_size(b) == len);
	}
	return s;
}

static const struct blk layout[] = {{"pc.ram", 16}, {"vga", 4}};

/* The source side: layout[], four channels, verify-ram on, a fixed UUID. */
static struct tern_session *hello_source(struct fixture *f)
{
	struct tern_session *s = session_with(f, 0, layout, 2);
	int i;

	for (i = 0; i < 16; i++)
		s->uuid[i] = (uint8_t)(0xa0 + i);
	s->nchannels = 4;
	assert_rc_equal(tern_cap_set(s, "verify-ram", true, NULL), 0);
	buf_reset(&f->buf);
	assert_rc_equal(hello_encode(s, &f->buf), 0);
	return s;
}

static void test_hello_roundtrip(void **state)
{
	struct fixture *f = *state;
	struct tern_session *src = hello_source(f);
	struct tern_session *dst = session_with(f, 1, layout, 2);

	/* The layout the comment in hello.c gives. */
	assert_int_equal(f->buf.len, 16 + 4 + 4 + 4 + 4 + 4 + 8 + 4 + (2 + 6 + 8) + (2 + 3 + 8));
	assert_true(get_be32(f->buf.data + 16) == f->page);
	assert_true(get_be32(f->buf.data + 20) == 4);
	assert_true(get_be32(f->buf.data + 24) == TERN_CODEC_NONE);
	assert_true(get_be32(f->buf.data + 28) == 1); /* zlib level */
	assert_true(get_be32(f->buf.data + 32) == 1); /* zstd level */
	assert_true(get_be64(f->buf.data + 36) == CAP_BIT(CAP_VERIFY_RAM));
	assert_true(get_be32(f->buf.data + 44) == 2);

	assert_rc_equal(hello_check(dst, f->buf.data, (uint32_t)f->buf.len, &f->err), 0);
	assert_memory_equal(dst->uuid, src->uuid, 16);
	assert_int_equal(dst->nchannels, 4);
	assert_true(dst->peer_caps == CAP_BIT(CAP_VERIFY_RAM));
	assert_int_equal(dst->method, TERN_CODEC_NONE);
}

/* The method and levels travel in HELLO; the destination takes them over. */
static void test_hello_method(void **state)
{
	struct fixture *f = *state;
	struct tern_session *src = hello_source(f);
	static const uint32_t methods[] = {TERN_CODEC_ZLIB, TERN_CODEC_ZSTD, TERN_CODEC_XBZRLE,
					   MF_METHOD_AUTO};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(methods); i++) {
		struct tern_session *dst;
		int rc;

		src->method = methods[i];
		src->zlib_level = 9;
		src->zstd_level = 20;
		buf_reset(&f->buf);
		assert_rc_equal(hello_encode(src, &f->buf), 0);
		assert_true(get_be32(f->buf.data + 24) == methods[i]);
		assert_true(get_be32(f->buf.data + 28) == 9);
		assert_true(get_be32(f->buf.data + 32) == 20);
		dst = session_with(f, 1, layout, 2);
		rc = hello_check(dst, f->buf.data, (uint32_t)f->buf.len, &f->err);
		if (mf_method_check(methods[i], "x", NULL)) {
			/* a build without the codec refuses, naming it */
			assert_rc_equal(rc, -EPROTONOSUPPORT);
			assert_str_contains(f->err.msg, "which this build lacks");
			tern_error_clear(&f->err);
		} else {
			assert_rc_equal(rc, 0);
			assert_int_equal(dst->method, methods[i]);
			assert_int_equal(dst->zlib_level, 9);
			assert_int_equal(dst->zstd_level, 20);
		}
		tern_session_free(dst);
		f->s[1] = NULL;
	}
}

/* ---- RAM_HINT -------------------------------------------------------------- */

/*
 * Postcopy's page requests from a destination that is buggy or hostile:
 * too short or long, before POSTCOPY_RUN, an unknown block, a page past the
 * block, and a flood of them. Each is counted and none acted on (nothing
 * touches the data plane: this session has none), none ends the migration.
 */
static void test_pc_serve_refusals(void **state)
{
	struct fixture *f = *state;
	struct tern_session *s = session_with(f, 0, layout, 2);
	uint8_t p[16] = {0};
	uint64_t bad = 0;
	int i;

	put_be32(p, 0);
	put_be64(p + 4, 3);
	src_pc_serve(s, p, 12); /* before RUN */
	bad++;
	__atomic_store_n(&s->postcopy_run, true, __ATOMIC_RELEASE);
	src_pc_serve(s, p, 11);
	src_pc_serve(s, p, 13);
	src_pc_serve(s, p, 0);
	bad += 3;
	put_be32(p, 2); /* two blocks: 0 and 1 */
	src_pc_serve(s, p, 12);
	put_be32(p, UINT32_MAX);
	src_pc_serve(s, p, 12);
	put_be32(p, 1);
	put_be64(p + 4, 4); /* "vga" has pages 0..3 */
	src_pc_serve(s, p, 12);
	put_be64(p + 4, UINT64_MAX);
	src_pc_serve(s, p, 12);
	bad += 4;
	for (i = 0; i < 100000; i++) {
		put_be64(p + 4, 4 + (uint64_t)i);
		src_pc_serve(s, p, 12);
	}
	bad += 100000;
	assert_uint_equal(__atomic_load_n(&s->pc_bad_reqs, __ATOMIC_RELAXED), bad);
	assert_uint_equal(__atomic_load_n(&s->pc_urgent_pages, __ATOMIC_RELAXED), 0);
	__atomic_store_n(&s->postcopy_run, false, __ATOMIC_RELEASE);
}

static const struct blk hint_layout[] = {{"ram", 4 * 512}}; /* four 2 MiB regions */

static bool resident(const void *p, uint32_t page)
{
	unsigned char v = 0;

	assert_int_equal(mincore((void *)p, page, &v), 0);
	return v & 1;
}

/*
 * Region 0 holds a random page, region 1 was never touched, region 2 was
 * written with zeros, region 3 is zero but for the first line of its last
 * page (the scan reads each resident page's first cache line): the map must
 * be 1001, the destination must populate regions 0 and 3 only.
 */
static void test_hint_roundtrip(void **state)
{
	struct fixture *f = *state;
	struct tern_session *src = session_with(f, 0, hint_layout, 1);
	struct tern_session *dst = session_with(f, 1, hint_layout, 1);
	const uint64_t region = 2u << 20;
	uint8_t *sh = src->blocks[0]->host, *dh = dst->blocks[0]->host;
	uint64_t with_data = 0;
	uint16_t type;
	uint32_t len;
	int i;

	memset(sh + 100 * f->page, 0x5a, f->page);
	memset(sh + 2 * region, 0, region);
	sh[4 * region - f->page + 63] = 1;
	open_pair(f);
	src->ctl = f->a;
	assert_rc_equal(hint_send(src, &with_data, &f->err), 0);
	src->ctl = NULL;
	assert_true(with_data == 2);
	assert_rc_equal(ctl_recv(f->b, "test", &type, &f->payload, &len, &f->err), 0);
	assert_int_equal(type, CTL_RAM_HINT);
	assert_int_equal(len, 4 + 1 + 8 + 1);
	assert_true(get_be32(f->payload) == 0);
	assert_int_equal(f->payload[4], 21);
	assert_true(get_be64(f->payload + 5) == 4);
	assert_int_equal(f->payload[13], 0x09);

	assert_rc_equal(hint_receive(dst, f->payload, len, &f->err), 0);
	hint_prefault_start(dst);
	for (i = 0; i < 5000 && !resident(dh + 4 * region - f->page, f->page); i++)
		usleep(1000);
	hint_prefault_stop(dst);
	assert_true(resident(dh, f->page));
	assert_true(resident(dh + region - f->page, f->page));
	assert_true(resident(dh + 4 * region - f->page, f->page));
	assert_false(resident(dh + region, f->page));
	assert_false(resident(dh + 3 * region - f->page, f->page));
	/* populating never changes content */
	for (i = 0; i < 8; i++)
		assert_int_equal(dh[(uint64_t)i * (region / 2)], 0);
}

static void test_hint_refused(void **state)
{
	struct fixture *f = *state;
	struct tern_session *dst = session_with(f, 1, hint_layout, 1);
	uint8_t p[4 + 1 + 8 + 2];
	struct {
		uint32_t block;
		uint8_t shift;
		uint64_t regions;
		uint32_t len;
		const char *msg;
	} bad[] = {
	    {0, 21, 4, 3, "truncated"},
	    {1, 21, 4, 14, "block 1 of 1"},
	    {0, 20, 4, 14, "expected 4 of 2^21"},
	    {0, 21, 5, 14, "5 regions"},
	    {0, 21, 4, 15, "2 bitmap bytes, expected 1"},
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		struct tern_error err = {0};

		memset(p, 0xff, sizeof(p));
		put_be32(p, bad[i].block);
		p[4] = bad[i].shift;
		put_be64(p + 5, bad[i].regions);
		assert_rc_equal(hint_receive(dst, p, bad[i].len, &err), -EPROTO);
		assert_str_contains(err.msg, bad[i].msg);
	}
	put_be32(p, 0);
	p[4] = 21;
	put_be64(p + 5, 4);
	assert_rc_equal(hint_receive(dst, p, 14, &f->err), 0);
	assert_rc_equal(hint_receive(dst, p, 14, &f->err), -EPROTO);
	assert_str_contains(f->err.msg, "sent twice");
	hint_prefault_stop(dst); /* never started: frees the map */
}

/* Check a HELLO in f->buf against a fresh destination with layout @dl. */
static void hello_refused(struct fixture *f, int slot, const struct blk *dl, int n, uint32_t len,
			  int code, const char *msg)
{
	struct tern_session *dst = session_with(f, slot, dl, n);
	struct tern_error err = {0};

	assert_rc_equal(hello_check(dst, f->buf.data, len, &err), code);
	assert_str_contains(err.msg, msg);
	/* Nothing taken over from a refused HELLO. */
	assert_int_equal(dst->nchannels, 0);
	assert_true(dst->peer_caps == 0);
	tern_session_free(dst);
	f->s[slot] = NULL;
}

static void test_hello_layout_mismatch(void **state)
{
	struct fixture *f = *state;
	static const struct blk one[] = {{"pc.ram", 16}};
	static const struct blk three[] = {{"pc.ram", 16}, {"vga", 4}, {"rom", 1}};
	static const struct blk renamed[] = {{"pc.ram", 16}, {"vgb", 4}};
	static const struct blk swapped[] = {{"vga", 4}, {"pc.ram", 16}};
	static const struct blk resized[] = {{"pc.ram", 16}, {"vga", 8}};
	uint32_t len;
	char msg[160];

	hello_source(f);
	len = (uint32_t)f->buf.len;
	hello_refused(f, 1, one, 1, len, -EPROTO, "source has 2 blocks, destination 1");
	hello_refused(f, 1, three, 3, len, -EPROTO, "source has 2 blocks, destination 3");
	hello_refused(f, 1, renamed, 2, len, -EPROTO, "block 1 is 'vga' on the source, 'vgb' here");
	hello_refused(f, 1, swapped, 2, len, -EPROTO, "block 0 is 'pc.ram' on the source, 'vga'");
	snprintf(msg, sizeof(msg), "block 'vga' has %u bytes on the source, %u here", 4 * f->page,
		 8 * f->page);
	hello_refused(f, 1, resized, 2, len, -EPROTO, msg);
}

static void test_hello_field_mismatch(void **state)
{
	struct fixture *f = *state;
	struct tern_session *src;
	uint32_t len;
	char msg[64];

	src = hello_source(f);
	len = (uint32_t)f->buf.len;

	/* page size */
	put_be32(f->buf.data + 16, f->page * 2);
	snprintf(msg, sizeof(msg), "page size %u, ours is %u", f->page * 2, f->page);
	hello_refused(f, 1, layout, 2, len, -EPROTO, msg);
	put_be32(f->buf.data + 16, f->page);

	/* page encoding method and levels */
	snprintf(msg, sizeof(msg), "HELLO: unknown page encoding %u", TERN_CODEC_MAX);
	put_be32(f->buf.data + 24, TERN_CODEC_MAX);
	hello_refused(f, 1, layout, 2, len, -EPROTONOSUPPORT, msg);
	put_be32(f->buf.data + 24, TERN_CODEC_INVALID);
	hello_refused(f, 1, layout, 2, len, -EPROTONOSUPPORT, "HELLO: unknown page encoding 0");
	put_be32(f->buf.data + 24, MF_METHOD_AUTO + 1);
	hello_refused(f, 1, layout, 2, len, -EPROTONOSUPPORT, "HELLO: unknown page encoding 17");
	put_be32(f->buf.data + 24, TERN_CODEC_NONE);
	put_be32(f->buf.data + 28, 10);
	hello_refused(f, 1, layout, 2, len, -EPROTO, "zlib level 10 (1..9)");
	put_be32(f->buf.data + 28, 0);
	hello_refused(f, 1, layout, 2, len, -EPROTO, "zlib level 0 (1..9)");
	put_be32(f->buf.data + 28, 1);
	put_be32(f->buf.data + 32, 21);
	hello_refused(f, 1, layout, 2, len, -EPROTO, "zstd level 21 (1..20)");
	put_be32(f->buf.data + 32, 1);

	/* capabilities this side does not know */
	put_be64(f->buf.data + 36, CAP_BIT(CAP_VERIFY_RAM) | (1ull << 20));
	hello_refused(f, 1, layout, 2, len, -EPROTONOSUPPORT, "unknown capabilities 0x100000");
	/* postcopy-ram is known, but both sides must have it */
	put_be64(f->buf.data + 36, CAP_BIT(CAP_POSTCOPY_RAM));
	hello_refused(f, 1, layout, 2, len, -EPROTO,
		      "postcopy-ram is on at the source but not here");
	put_be64(f->buf.data + 36, 1ull << 63);
	hello_refused(f, 1, layout, 2, len, -EPROTONOSUPPORT, "unknown capabilities");
	put_be64(f->buf.data + 36, 0);

	/* channel counts: 0 and 65 refused, 1 and 64 accepted */
	src->nchannels = 0;
	buf_reset(&f->buf);
	assert_rc_equal(hello_encode(src, &f->buf), 0);
	hello_refused(f, 1, layout, 2, len, -EPROTO, "0 worker channels, outside 1..64");
	src->nchannels = TERN_MAX_CHANNELS + 1;
	buf_reset(&f->buf);
	assert_rc_equal(hello_encode(src, &f->buf), 0);
	hello_refused(f, 1, layout, 2, len, -EPROTO, "65 worker channels, outside 1..64");
	src->nchannels = UINT32_MAX;
	buf_reset(&f->buf);
	assert_rc_equal(hello_encode(src, &f->buf), 0);
	hello_refused(f, 1, layout, 2, len, -EPROTO, "worker channels");
	for (src->nchannels = 1; src->nchannels <= TERN_MAX_CHANNELS; src->nchannels += 63) {
		struct tern_session *dst = session_with(f, 1, layout, 2);

		buf_reset(&f->buf);
		assert_rc_equal(hello_encode(src, &f->buf), 0);
		assert_rc_equal(hello_check(dst, f->buf.data, len, NULL), 0);
		assert_int_equal(dst->nchannels, src->nchannels);
		tern_session_free(dst);
		f->s[1] = NULL;
	}
}

static void test_hello_truncated(void **state)
{
	struct fixture *f = *state;
	uint32_t len, cut;

	hello_source(f);
	len = (uint32_t)f->buf.len;
	hello_refused(f, 1, layout, 2, 0, -EPROTO, "HELLO: truncated (0 bytes)");
	hello_refused(f, 1, layout, 2, 10, -EPROTO, "HELLO: truncated (10 bytes)");
	hello_refused(f, 1, layout, 2, 47, -EPROTO, "HELLO: truncated");
	hello_refused(f, 1, layout, 2, 48, -EPROTO, "RAM block 0 truncated");
	hello_refused(f, 1, layout, 2, 48 + 16 - 1, -EPROTO, "RAM block 0 truncated");
	hello_refused(f, 1, layout, 2, 48 + 16, -EPROTO, "RAM block 1 truncated");
	hello_refused(f, 1, layout, 2, len - 1, -EPROTO, "RAM block 1 truncated");
	/* every cut is refused */
	for (cut = 0; cut < len; cut++) {
		struct tern_session *dst = session_with(f, 1, layout, 2);

		assert_rc_equal(hello_check(dst, f->buf.data, cut, NULL), -EPROTO);
		tern_session_free(dst);
		f->s[1] = NULL;
	}
}

static void test_hello_trailing(void **state)
{
	struct fixture *f = *state;
	uint32_t len;

	hello_source(f);
	buf_put_u8(&f->buf, 0);
	len = (uint32_t)f->buf.len;
	hello_refused(f, 1, layout, 2, len, -EPROTO, "HELLO: 1 trailing bytes");
	buf_put_u64(&f->buf, 0);
	len = (uint32_t)f->buf.len;
	hello_refused(f, 1, layout, 2, len, -EPROTO, "9 trailing bytes");
}

/* ======================================================================== */
/* device sections                                                          */
/* ======================================================================== */

struct dev {
	/* what save writes, what load read */
	uint32_t a;
	uint64_t b;
	char regs[8];
	uint32_t loaded_version;
	int loads, saves;
	/* behaviour */
	int fail_code;	   /* load/save fails with this */
	bool set_err;	   /* ... and sets a message */
	bool leave_unread; /* load skips the last field */
	/* tern_section_get past the end */
	int past_end_ret;
	int past_end_u32_ret;
	uint32_t past_end_u32;
	uint8_t past_end_buf[4];
};

static int dev_save(void *opaque, struct tern_section_writer *w, struct tern_error *err)
{
	struct dev *d = opaque;

	d->saves++;
	if (d->fail_code) {
		if (d->set_err)
			return tern_error_set(err, d->fail_code, "device refused to save");
		return d->fail_code;
	}
	if (tern_section_put_u32(w, d->a) || tern_section_put_u64(w, d->b) ||
	    tern_section_put(w, d->regs, sizeof(d->regs)))
		return -EIO;
	return 0;
}

static int dev_load(void *opaque, struct tern_section_reader *r, uint32_t version,
		    struct tern_error *err)
{
	struct dev *d = opaque;

	d->loads++;
	d->loaded_version = version;
	if (d->fail_code) {
		if (d->set_err)
			return tern_error_set(err, d->fail_code, "bad register value");
		return d->fail_code;
	}
	if (tern_section_remaining(r) != 4 + 8 + sizeof(d->regs))
		return -EBADMSG;
	if (tern_section_get_u32(r, &d->a) || tern_section_get_u64(r, &d->b))
		return -EBADMSG;
	if (d->leave_unread)
		return 0;
	/* 8 bytes left: a u32 fits, the rest is read in pieces. */
	if (tern_section_get(r, d->regs, 6))
		return -EBADMSG;
	memset(d->past_end_buf, 0xee, sizeof(d->past_end_buf));
	d->past_end_u32 = 0xeeeeeeee;
	d->past_end_u32_ret = tern_section_get_u32(r, &d->past_end_u32);
	d->past_end_ret = tern_section_get(r, d->past_end_buf, 3);
	if (tern_section_get(r, d->regs + 6, 2))
		return -EBADMSG;
	if (tern_section_get(r, d->regs, 0)) /* zero bytes at the end */
		return -EBADMSG;
	return 0;
}

static const struct tern_section_ops dev_ops = {.save = dev_save, .load = dev_load};

static void test_section_register(void **state)
{
	struct fixture *f = *state;
	struct tern_session *s = new_session(f, 0, NULL, NULL);
	struct tern_section_ops no_save = {.load = dev_load}, no_load = {.save = dev_save};
	char name[300];
	struct dev d = {0};

	assert_rc_equal(tern_section_register(s, "cpu", 0, 0, 0, &dev_ops, &d, &f->err), -EINVAL);
	assert_str_contains(f->err.msg, "section 'cpu'");
	assert_str_contains(f->err.msg, "min_version");
	assert_rc_equal(tern_section_register(s, "cpu", 0, 1, 0, &dev_ops, &d, NULL), -EINVAL);
	assert_rc_equal(tern_section_register(s, "cpu", 0, 2, 3, &dev_ops, &d, NULL), -EINVAL);
	assert_rc_equal(tern_section_register(s, "cpu", 0, 0, 1, &dev_ops, &d, NULL), -EINVAL);
	assert_rc_equal(tern_section_register(s, "cpu", 0, 1, 1, NULL, &d, NULL), -EINVAL);
	assert_rc_equal(tern_section_register(s, "cpu", 0, 1, 1, &no_save, &d, NULL), -EINVAL);
	assert_rc_equal(tern_section_register(s, "cpu", 0, 1, 1, &no_load, &d, NULL), -EINVAL);
	assert_rc_equal(tern_section_register(s, NULL, 0, 1, 1, &dev_ops, &d, NULL), -EINVAL);
	assert_rc_equal(tern_section_register(s, "", 0, 1, 1, &dev_ops, &d, NULL), -EINVAL);
	memset(name, 'n', sizeof(name));
	name[256] = '\0';
	assert_rc_equal(tern_section_register(s, name, 0, 1, 1, &dev_ops, &d, NULL), -EINVAL);
	assert_int_equal(s->nsections, 0);

	name[255] = '\0';
	assert_rc_equal(tern_section_register(s, name, 0, 1, 1, &dev_ops, &d, NULL), 0);
	assert_rc_equal(tern_section_register(s, "cpu", 0, 1, 1, &dev_ops, &d, NULL), 0);
	assert_rc_equal(tern_section_register(s, "cpu", 0, 5, 2, &dev_ops, &d, NULL), -EEXIST);
	tern_error_clear(&f->err);
	assert_rc_equal(tern_section_register(s, "cpu", 0, 1, 1, &dev_ops, &d, &f->err), -EEXIST);
	assert_str_contains(f->err.msg, "section 'cpu' instance 0 is registered already");
	assert_rc_equal(tern_section_register(s, "cpu", 1, 3, 2, &dev_ops, &d, NULL), 0);
	assert_rc_equal(tern_section_register(s, "cpu2", 0, 1, 1, &dev_ops, &d, NULL), 0);
	assert_int_equal(s->nsections, 4);
	assert_int_equal(s->sections[2]->version, 3);
	assert_int_equal(s->sections[2]->min_version, 2);

	s->started = true;
	assert_rc_equal(tern_section_register(s, "late", 0, 1, 1, &dev_ops, &d, NULL), -EBUSY);
	s->started = false;
	assert_int_equal(s->nsections, 4);
}

/* A SECTION_FULL payload: id | name | instance | version | plen | payload | footer */
static void section_frame(struct buf *b, uint32_t id, const char *name, uint32_t instance,
			  uint32_t version, uint32_t plen, const void *payload, size_t paylen,
			  uint32_t footer)
{
	buf_reset(b);
	buf_put_u32(b, id);
	buf_put_str(b, name);
	buf_put_u32(b, instance);
	buf_put_u32(b, version);
	buf_put_u32(b, plen);
	buf_put(b, payload, paylen);
	buf_put_u32(b, footer);
}

/* A well-formed payload for dev_load: a u32, a u64 and 8 bytes. */
static size_t dev_payload(uint8_t p[20])
{
	put_be32(p, 0x11223344);
	put_be64(p + 4, 0x5566778899aabbccull);
	memcpy(p + 12, "REGSREGS", 8);
	return 20;
}

static int load_frame(struct fixture *f, struct tern_session *s)
{
	tern_error_clear(&f->err);
	return section_load(s, f->buf.data, (uint32_t)f->buf.len, &f->err);
}

static void test_section_load_refusals(void **state)
{
	struct fixture *f = *state;
	struct tern_session *s = new_session(f, 0, NULL, NULL);
	struct dev d = {0};
	uint8_t p[20];
	size_t n = dev_payload(p);

	assert_rc_equal(tern_section_register(s, "cpu", 7, 3, 2, &dev_ops, &d, NULL), 0);

	/* good, at both ends of the version range */
	section_frame(&f->buf, 0, "cpu", 7, 3, (uint32_t)n, p, n, 0);
	assert_rc_equal(load_frame(f, s), 0);
	assert_int_equal(d.loaded_version, 3);
	assert_true(d.a == 0x11223344);
	assert_true(d.b == 0x5566778899aabbccull);
	assert_memory_equal(d.regs, "REGSREGS", 8);
	section_frame(&f->buf, 9, "cpu", 7, 2, (uint32_t)n, p, n, 9);
	assert_rc_equal(load_frame(f, s), 0);
	assert_int_equal(d.loaded_version, 2);
	assert_int_equal(d.loads, 2);

	section_frame(&f->buf, 0, "gpu", 7, 3, (uint32_t)n, p, n, 0);
	assert_rc_equal(load_frame(f, s), -ENOENT);
	assert_str_contains(f->err.msg, "unknown section 'gpu' instance 7");
	section_frame(&f->buf, 0, "cpu", 8, 3, (uint32_t)n, p, n, 0);
	assert_rc_equal(load_frame(f, s), -ENOENT);
	assert_str_contains(f->err.msg, "unknown section 'cpu' instance 8");

	section_frame(&f->buf, 0, "cpu", 7, 4, (uint32_t)n, p, n, 0);
	assert_rc_equal(load_frame(f, s), -EPROTONOSUPPORT);
	assert_str_contains(f->err.msg, "version 4, this destination loads 2..3");
	section_frame(&f->buf, 0, "cpu", 7, 1, (uint32_t)n, p, n, 0);
	assert_rc_equal(load_frame(f, s), -EPROTONOSUPPORT);
	assert_str_contains(f->err.msg, "version 1, this destination loads 2..3");
	section_frame(&f->buf, 0, "cpu", 7, 0, (uint32_t)n, p, n, 0);
	assert_rc_equal(load_frame(f, s), -EPROTONOSUPPORT);

	section_frame(&f->buf, 3, "cpu", 7, 3, (uint32_t)n, p, n, 4);
	assert_rc_equal(load_frame(f, s), -EPROTO);
	assert_str_contains(f->err.msg, "footer 4 does not match id 3");

	/* plen claims more than the frame holds */
	section_frame(&f->buf, 0, "cpu", 7, 3, (uint32_t)n + 1, p, n, 0);
	assert_rc_equal(load_frame(f, s), -EPROTO);
	assert_str_contains(f->err.msg, "overruns its frame");
	section_frame(&f->buf, 0, "cpu", 7, 3, UINT32_MAX, p, n, 0);
	assert_rc_equal(load_frame(f, s), -EPROTO);
	assert_str_contains(f->err.msg, "overruns");
	/* plen claims less: the footer reads payload bytes */
	section_frame(&f->buf, 0, "cpu", 7, 3, (uint32_t)n - 4, p, n, 0);
	assert_rc_equal(load_frame(f, s), -EPROTO);

	/* trailing bytes behind the footer */
	section_frame(&f->buf, 0, "cpu", 7, 3, (uint32_t)n, p, n, 0);
	buf_put_u8(&f->buf, 0);
	assert_rc_equal(load_frame(f, s), -EPROTO);
	assert_str_contains(f->err.msg, "1 trailing bytes");

	/* truncated headers */
	section_frame(&f->buf, 0, "cpu", 7, 3, (uint32_t)n, p, n, 0);
	tern_error_clear(&f->err);
	assert_rc_equal(section_load(s, f->buf.data, 4 + 2 + 3 + 4, &f->err), -EPROTO);
	assert_str_contains(f->err.msg, "truncated header");
	tern_error_clear(&f->err);
	assert_rc_equal(section_load(s, f->buf.data, 0, &f->err), -EPROTO);
	section_frame(&f->buf, 0, "", 7, 3, (uint32_t)n, p, n, 0);
	assert_rc_equal(load_frame(f, s), -EPROTO);

	/* none of the refusals reached the loader */
	assert_int_equal(d.loads, 2);
}

static void test_section_load_loader(void **state)
{
	struct fixture *f = *state;
	struct tern_session *s = new_session(f, 0, NULL, NULL);
	struct dev d = {0};
	uint8_t p[20];
	size_t n = dev_payload(p);

	assert_rc_equal(tern_section_register(s, "nic", 1, 1, 1, &dev_ops, &d, NULL), 0);
	section_frame(&f->buf, 0, "nic", 1, 1, (uint32_t)n, p, n, 0);

	/* the loader's message, prefixed */
	d.fail_code = -EINVAL;
	d.set_err = true;
	assert_rc_equal(load_frame(f, s), -EINVAL);
	assert_string_equal(f->err.msg, "loading section 'nic' instance 1: bad register value");
	/* a bare code gets a message */
	d.set_err = false;
	assert_rc_equal(load_frame(f, s), -EINVAL);
	assert_string_equal(f->err.msg, "loading section 'nic' instance 1 failed");
	/* and with no error object at all */
	assert_rc_equal(section_load(s, f->buf.data, (uint32_t)f->buf.len, NULL), -EINVAL);

	d.fail_code = 0;
	d.leave_unread = true;
	assert_rc_equal(load_frame(f, s), -EPROTO);
	assert_str_contains(f->err.msg, "loader left 8 of 20 bytes unread");
	assert_int_equal(d.loads, 4);
}

static void test_section_roundtrip(void **state)
{
	struct fixture *f = *state;
	struct tern_session *src = new_session(f, 0, NULL, NULL);
	struct tern_session *dst = new_session(f, 1, NULL, NULL);
	struct dev s_cpu0 = {.a = 0xdeadbeef, .b = 0x0123456789abcdefull, .regs = "rax=1..."};
	struct dev s_cpu1 = {.a = 1, .b = UINT64_MAX, .regs = "rbx=2..."};
	struct dev s_nic = {.a = 0, .b = 0, .regs = {0}};
	struct dev d_cpu0 = {0}, d_cpu1 = {0}, d_nic = {0};
	uint64_t bytes = 0, got_bytes = 0;
	uint32_t i, len;
	uint16_t type;

	assert_rc_equal(tern_section_register(src, "cpu", 0, 2, 1, &dev_ops, &s_cpu0, NULL), 0);
	assert_rc_equal(tern_section_register(src, "cpu", 1, 2, 1, &dev_ops, &s_cpu1, NULL), 0);
	assert_rc_equal(tern_section_register(src, "nic", 0, 1, 1, &dev_ops, &s_nic, NULL), 0);
	/* another order, newer loaders that still read what the source saves */
	assert_rc_equal(tern_section_register(dst, "nic", 0, 1, 1, &dev_ops, &d_nic, NULL), 0);
	assert_rc_equal(tern_section_register(dst, "cpu", 1, 3, 2, &dev_ops, &d_cpu1, NULL), 0);
	assert_rc_equal(tern_section_register(dst, "cpu", 0, 2, 1, &dev_ops, &d_cpu0, NULL), 0);

	open_pair(f);
	assert_rc_equal(sections_save_all(src, f->a, &bytes, &f->err), 0);
	assert_int_equal(s_cpu0.saves + s_cpu1.saves + s_nic.saves, 3);
	for (i = 0; i < 3; i++) {
		free(f->payload);
		f->payload = NULL;
		assert_rc_equal(ctl_recv(f->b, "ctl", &type, &f->payload, &len, &f->err), 0);
		assert_int_equal(type, CTL_SECTION_FULL);
		got_bytes += CTL_HDR_SIZE + len;
		assert_rc_equal(section_load(dst, f->payload, len, &f->err), 0);
	}
	assert_true(bytes == got_bytes);
	assert_int_equal(f->err.code, 0);

	assert_int_equal(d_cpu0.loads, 1);
	assert_int_equal(d_cpu0.loaded_version, 2);
	assert_true(d_cpu0.a == 0xdeadbeef);
	assert_true(d_cpu0.b == 0x0123456789abcdefull);
	assert_memory_equal(d_cpu0.regs, "rax=1...", 8);
	assert_int_equal(d_cpu1.loads, 1);
	assert_int_equal(d_cpu1.loaded_version, 2);
	assert_true(d_cpu1.a == 1);
	assert_true(d_cpu1.b == UINT64_MAX);
	assert_memory_equal(d_cpu1.regs, "rbx=2...", 8);
	assert_int_equal(d_nic.loads, 1);
	assert_true(d_nic.a == 0 && d_nic.b == 0);

	/* tern_section_get past the end: -EPROTO, nothing written */
	assert_rc_equal(d_cpu0.past_end_u32_ret, -EPROTO);
	assert_true(d_cpu0.past_end_u32 == 0xeeeeeeee);
	assert_rc_equal(d_cpu0.past_end_ret, -EPROTO);
	assert_memory_equal(d_cpu0.past_end_buf, "\xee\xee\xee\xee", 4);
}

static void test_section_save_error(void **state)
{
	struct fixture *f = *state;
	struct tern_session *src = new_session(f, 0, NULL, NULL);
	struct dev ok = {.a = 5}, bad = {.fail_code = -ENODEV, .set_err = true};
	uint64_t bytes = 99;

	assert_rc_equal(tern_section_register(src, "ok", 0, 1, 1, &dev_ops, &ok, NULL), 0);
	assert_rc_equal(tern_section_register(src, "bad", 2, 1, 1, &dev_ops, &bad, NULL), 0);
	open_pair(f);
	assert_rc_equal(sections_save_all(src, f->a, &bytes, &f->err), -ENODEV);
	assert_string_equal(f->err.msg, "saving section 'bad' instance 2: device refused to save");
	assert_true(bytes > 0); /* the first section went out */

	bad.set_err = false;
	tern_error_clear(&f->err);
	assert_rc_equal(sections_save_all(src, f->a, &bytes, &f->err), -ENODEV);
	assert_string_equal(f->err.msg, "saving section 'bad' instance 2 failed");

	/* nothing registered: nothing sent */
	{
		struct tern_session *none = new_session(f, 1, NULL, NULL);

		assert_rc_equal(sections_save_all(none, f->a, &bytes, NULL), 0);
		assert_true(bytes == 0);
	}
}

static int empty_save(void *opaque, struct tern_section_writer *w, struct tern_error *err)
{
	return 0;
}

static int empty_load(void *opaque, struct tern_section_reader *r, uint32_t version,
		      struct tern_error *err)
{
	int *ret = opaque;
	uint8_t x = 0x5a;

	ret[0] = (int)tern_section_remaining(r);
	ret[1] = tern_section_get(r, &x, 1);
	ret[2] = x;
	ret[3] = tern_section_get(r, &x, 0);
	return 0;
}

static void test_section_empty(void **state)
{
	struct fixture *f = *state;
	struct tern_section_ops ops = {.save = empty_save, .load = empty_load};
	struct tern_session *src = new_session(f, 0, NULL, NULL);
	struct tern_session *dst = new_session(f, 1, NULL, NULL);
	int got[4] = {-1, -1, -1, -1};
	uint64_t bytes;
	uint32_t len;
	uint16_t type;

	assert_rc_equal(tern_section_register(src, "empty", 0, 1, 1, &ops, NULL, NULL), 0);
	assert_rc_equal(tern_section_register(dst, "empty", 0, 1, 1, &ops, got, NULL), 0);
	open_pair(f);
	assert_rc_equal(sections_save_all(src, f->a, &bytes, NULL), 0);
	assert_rc_equal(ctl_recv(f->b, "ctl", &type, &f->payload, &len, NULL), 0);
	assert_rc_equal(section_load(dst, f->payload, len, &f->err), 0);
	assert_int_equal(got[0], 0);
	assert_rc_equal(got[1], -EPROTO);
	assert_int_equal(got[2], 0x5a);
	assert_rc_equal(got[3], 0);
}

/* ======================================================================== */
/* RAM blocks and dirty bitmaps                                             */
/* ======================================================================== */

static void test_ram_register(void **state)
{
	struct fixture *f = *state;
	struct tern_session *s = new_session(f, 0, NULL, NULL);
	uint8_t *mem = map_anon(f, 8 * (size_t)f->page);
	struct tern_ram_block *b = (struct tern_ram_block *)0x1;
	char name[300];

	assert_rc_equal(tern_ram_register(s, NULL, mem, f->page, &b, NULL), -EINVAL);
	assert_rc_equal(tern_ram_register(s, "", mem, f->page, &b, NULL), -EINVAL);
	memset(name, 'r', sizeof(name));
	name[256] = '\0';
	assert_rc_equal(tern_ram_register(s, name, mem, f->page, &b, NULL), -EINVAL);
	assert_rc_equal(tern_ram_register(s, "ram", NULL, f->page, &b, NULL), -EINVAL);
	assert_rc_equal(tern_ram_register(s, "ram", mem + 1, f->page, &b, &f->err), -EINVAL);
	assert_str_contains(f->err.msg, "not aligned");
	assert_rc_equal(tern_ram_register(s, "ram", mem + 64, f->page, &b, NULL), -EINVAL);
	assert_rc_equal(tern_ram_register(s, "ram", mem, 0, &b, NULL), -EINVAL);
	tern_error_clear(&f->err);
	assert_rc_equal(tern_ram_register(s, "ram", mem, f->page + 1, &b, &f->err), -EINVAL);
	assert_str_contains(f->err.msg, "size");
	assert_rc_equal(tern_ram_register(s, "ram", mem, f->page - 1, &b, NULL), -EINVAL);
	assert_ptr_equal(b, (struct tern_ram_block *)0x1); /* not written */
	assert_int_equal(s->nblocks, 0);

	name[255] = '\0';
	assert_rc_equal(tern_ram_register(s, name, mem, f->page, NULL, NULL), 0);
	assert_rc_equal(tern_ram_register(s, "ram", mem + f->page, 4 * (size_t)f->page, &b, NULL),
			0);
	assert_string_equal(tern_ram_block_name(b), "ram");
	assert_true(tern_ram_block_size(b) == 4 * (uint64_t)f->page);
	assert_true(b->npages == 4);
	assert_int_equal(b->index, 1);
	tern_error_clear(&f->err);
	assert_rc_equal(tern_ram_register(s, "ram", mem + 5 * f->page, f->page, NULL, &f->err),
			-EEXIST);
	assert_str_contains(f->err.msg, "'ram' is registered already");
	assert_int_equal(s->nblocks, 2);

	s->started = true;
	assert_rc_equal(tern_ram_register(s, "late", mem + 5 * f->page, f->page, NULL, NULL),
			-EBUSY);
	s->started = false;
}

/* The set bits of @map among @nbits, as a list; returns how many. */
static uint64_t set_bits(const uint64_t *map, uint64_t nbits, uint64_t *out, uint64_t max)
{
	uint64_t i, n = 0;

	for (i = 0; i < nbits; i++)
		if (bitmap_test(map, i) && n < max)
			out[n++] = i;
	return n;
}

static void assert_bits(const uint64_t *map, uint64_t nbits, const uint64_t *want, uint64_t n)
{
	uint64_t got[64];
	uint64_t i, k = set_bits(map, nbits, got, 64);

	assert_true(bitmap_count(map, nbits) == n);
	assert_true(k == n);
	for (i = 0; i < n; i++)
		assert_true(got[i] == want[i]);
}

static void clear_map(uint64_t *map, uint64_t nbits)
{
	memset(map, 0, BITMAP_WORDS(nbits) * sizeof(uint64_t));
}

static void test_ram_mark_dirty(void **state)
{
	struct fixture *f = *state;
	struct tern_session *s = new_session(f, 0, NULL, NULL);
	uint64_t P = f->page, size = 200 * P;
	struct tern_ram_block *b;

	assert_rc_equal(tern_ram_register(s, "ram", map_anon(f, size), size, &b, NULL), 0);

	assert_rc_equal(tern_ram_mark_dirty(b, 0, 1), 0);
	assert_bits(b->dirty, b->npages, (uint64_t[]){0}, 1);
	clear_map(b->dirty, b->npages);

	assert_rc_equal(tern_ram_mark_dirty(b, 5 * P, P), 0); /* exactly one page */
	assert_bits(b->dirty, b->npages, (uint64_t[]){5}, 1);
	clear_map(b->dirty, b->npages);

	assert_rc_equal(tern_ram_mark_dirty(b, P - 1, 2), 0); /* straddles 0|1 */
	assert_bits(b->dirty, b->npages, (uint64_t[]){0, 1}, 2);
	clear_map(b->dirty, b->npages);

	assert_rc_equal(tern_ram_mark_dirty(b, P + 100, P), 0); /* unaligned: pages 1, 2 */
	assert_bits(b->dirty, b->npages, (uint64_t[]){1, 2}, 2);
	clear_map(b->dirty, b->npages);

	assert_rc_equal(tern_ram_mark_dirty(b, 3 * P + 1, P - 2), 0); /* inside page 3 */
	assert_bits(b->dirty, b->npages, (uint64_t[]){3}, 1);
	clear_map(b->dirty, b->npages);

	assert_rc_equal(tern_ram_mark_dirty(b, 62 * P + 7, 3 * P), 0); /* crosses a word */
	assert_bits(b->dirty, b->npages, (uint64_t[]){62, 63, 64, 65}, 4);
	clear_map(b->dirty, b->npages);

	assert_rc_equal(tern_ram_mark_dirty(b, size - 1, 1), 0); /* the last byte */
	assert_bits(b->dirty, b->npages, (uint64_t[]){199}, 1);
	clear_map(b->dirty, b->npages);

	assert_rc_equal(tern_ram_mark_dirty(b, 10 * P, 0), 0); /* nothing */
	assert_true(bitmap_count(b->dirty, b->npages) == 0);

	assert_rc_equal(tern_ram_mark_dirty(b, 0, size), 0); /* all of it */
	assert_true(bitmap_count(b->dirty, b->npages) == 200);
	assert_true(bitmap_count(b->dirty, BITMAP_WORDS(200) * 64) == 200); /* no bit beyond */
	clear_map(b->dirty, b->npages);

	assert_rc_equal(tern_ram_mark_dirty(b, size, 1), -ERANGE);
	assert_rc_equal(tern_ram_mark_dirty(b, size, 0), -ERANGE);
	assert_rc_equal(tern_ram_mark_dirty(b, size - 1, 2), -ERANGE);
	assert_rc_equal(tern_ram_mark_dirty(b, 0, size + 1), -ERANGE);
	assert_rc_equal(tern_ram_mark_dirty(b, P, UINT64_MAX), -ERANGE);
	assert_rc_equal(tern_ram_mark_dirty(b, UINT64_MAX, 2), -ERANGE);
	assert_true(bitmap_count(b->dirty, b->npages) == 0);
}

static void test_ram_sync_manual(void **state)
{
	struct fixture *f = *state;
	struct tern_session *s = new_session(f, 0, NULL, NULL);
	uint64_t P = f->page, n = 12345;
	struct tern_ram_block *b0, *b1;

	assert_rc_equal(tern_ram_register(s, "a", map_anon(f, 100 * P), 100 * P, &b0, NULL), 0);
	assert_rc_equal(tern_ram_register(s, "b", map_anon(f, 3 * P), 3 * P, &b1, NULL), 0);
	assert_rc_equal(ram_prepare_source(s, &f->err), 0);
	/* The first round sends everything. */
	assert_true(ram_pending_pages(s) == 103);
	assert_true(bitmap_count(b0->send, 100) == 100);
	assert_true(bitmap_count(b0->send, BITMAP_WORDS(100) * 64) == 100);
	assert_true(s->mf_blocks[0].host == b0->host && s->mf_blocks[1].size == 3 * P);

	/* Nothing marked, nothing new. */
	assert_rc_equal(ram_sync(s, &n, &f->err), 0);
	assert_true(n == 0);

	/* "Send" the round, then the VMM marks pages. */
	clear_map(b0->send, b0->npages);
	clear_map(b1->send, b1->npages);
	assert_rc_equal(tern_ram_mark_dirty(b0, 0, 1), 0);
	assert_rc_equal(tern_ram_mark_dirty(b0, 63 * P, 2 * P), 0);
	assert_rc_equal(tern_ram_mark_dirty(b1, 2 * P, P), 0);
	assert_rc_equal(ram_sync(s, &n, &f->err), 0);
	assert_true(n == 4);
	assert_bits(b0->send, b0->npages, (uint64_t[]){0, 63, 64}, 3);
	assert_bits(b1->send, b1->npages, (uint64_t[]){2}, 1);
	assert_true(bitmap_count(b0->dirty, b0->npages) == 0); /* drained */
	assert_true(bitmap_count(b1->dirty, b1->npages) == 0);
	assert_true(ram_pending_pages(s) == 4);
	assert_true(__atomic_load_n(&s->remaining_pages, __ATOMIC_RELAXED) == 4);

	/* Pages still pending that were written again count as dirtied (the
	 * guest's dirty rate), though the send map does not grow by them. */
	assert_rc_equal(tern_ram_mark_dirty(b0, 0, 2 * P), 0);
	assert_rc_equal(ram_sync(s, &n, &f->err), 0);
	assert_true(n == 2);
	assert_true(ram_pending_pages(s) == 5);
}

/* A dirty-log provider whose sync reports a list of pages of one block. */
struct test_source {
	struct tern_ram_block *block;
	uint64_t first_page;
	uint64_t map[4]; /* 256 pages from first_page */
	uint64_t npages;
	int start_ret, sync_ret;
	int starts, syncs, stops, clears;
	int report_ret;
};

static int ts_start(void *opaque, struct tern_error *err)
{
	struct test_source *t = opaque;

	t->starts++;
	if (t->start_ret)
		return tern_error_set(err, t->start_ret, "no dirty log for you");
	return 0;
}

static int ts_sync(void *opaque, struct tern_error *err)
{
	struct test_source *t = opaque;

	t->syncs++;
	if (t->sync_ret)
		return tern_error_set(err, t->sync_ret, "ioctl failed");
	t->report_ret = tern_dirty_report(t->block, t->first_page, t->map, t->npages);
	return t->report_ret;
}

static int ts_clear(void *opaque, struct tern_ram_block *b, uint64_t first_page, uint64_t npages,
		    struct tern_error *err)
{
	struct test_source *t = opaque;

	t->clears++;
	return 0;
}

static void ts_stop(void *opaque)
{
	struct test_source *t = opaque;

	t->stops++;
}

static const struct tern_dirty_source_ops ts_ops = {
    .name = "test-log",
    .start = ts_start,
    .sync = ts_sync,
    .clear = ts_clear,
    .stop = ts_stop,
};

static void dirty_provider_case(struct fixture *f, unsigned int shift)
{
	struct tern_session *s = new_session(f, 0, NULL, NULL);
	uint64_t P = f->page, npages = 1000, n = 0, i;
	struct test_source t = {0};
	struct tern_ram_block *b;
	/* pages the provider reports (relative to first_page 700) and the chunks */
	static const uint64_t rel[] = {0, 1, 63, 64, 200, 255};
	uint64_t want[ARRAY_SIZE(rel)], chunks[ARRAY_SIZE(rel)], nchunks = 0;

	assert_rc_equal(tern_ram_register(s, "ram", map_anon(f, npages * P), npages * P, &b, NULL),
			0);
	assert_rc_equal(tern_param_set(s, "clear-bitmap-shift", shift, NULL), 0);
	assert_rc_equal(tern_dirty_source_add(s, &ts_ops, &t, NULL), 0);
	t.block = b;

	/* Before the migration there is nothing to report into. */
	assert_rc_equal(tern_dirty_report(b, 0, t.map, 1), -EINVAL);

	assert_rc_equal(ram_prepare_source(s, &f->err), 0);
	assert_int_equal(t.starts, 1);
	clear_map(b->send, npages);
	assert_true(bitmap_count(b->clear_chunks, (npages >> shift) + 1) == 0);

	t.first_page = 700;
	t.npages = 256;
	for (i = 0; i < ARRAY_SIZE(rel); i++) {
		bitmap_set(t.map, rel[i]);
		want[i] = 700 + rel[i];
		if (!nchunks || chunks[nchunks - 1] != want[i] >> shift)
			chunks[nchunks++] = want[i] >> shift;
	}
	assert_rc_equal(ram_sync(s, &n, &f->err), 0);
	assert_int_equal(t.syncs, 1);
	assert_rc_equal(t.report_ret, 0);
	assert_true(n == ARRAY_SIZE(rel));
	assert_bits(b->send, npages, want, ARRAY_SIZE(rel));
	assert_bits(b->clear_chunks, (npages >> shift) + 1, chunks, nchunks);
	assert_int_equal(t.clears, 0); /* clearing is the send loop's job */

	/* Bits past npages in the last word are ignored. */
	clear_map(b->send, npages);
	clear_map(b->clear_chunks, (npages >> shift) + 1);
	memset(t.map, 0xff, sizeof(t.map));
	t.first_page = npages - 3;
	t.npages = 3;
	assert_rc_equal(ram_sync(s, &n, &f->err), 0);
	assert_true(n == 3);
	assert_bits(b->send, npages, (uint64_t[]){npages - 3, npages - 2, npages - 1}, 3);
	assert_true(bitmap_count(b->clear_chunks, (npages >> shift) + 1) ==
		    1 + ((npages - 3) >> shift != (npages - 1) >> shift));
	assert_true(bitmap_test(b->clear_chunks, (npages - 1) >> shift));

	/* A report that leaves the block fails the sync. */
	t.first_page = npages - 3;
	t.npages = 4;
	tern_error_clear(&f->err);
	assert_rc_equal(ram_sync(s, &n, &f->err), -ERANGE);
	assert_str_contains(f->err.msg, "dirty-log provider 'test-log'");

	ram_sources_stop(s);
	ram_sources_stop(s);
	assert_int_equal(t.stops, 1);
	tern_session_free(s);
	f->s[0] = NULL;
}

static void test_ram_dirty_provider(void **state)
{
	struct fixture *f = *state;

	dirty_provider_case(f, 6);
	dirty_provider_case(f, 7);
	dirty_provider_case(f, 31);
}

static void test_dirty_report_ranges(void **state)
{
	struct fixture *f = *state;
	struct tern_session *s = new_session(f, 0, NULL, NULL);
	uint64_t P = f->page, map[2] = {~0ull, ~0ull};
	struct tern_ram_block *b;

	assert_rc_equal(tern_ram_register(s, "ram", map_anon(f, 100 * P), 100 * P, &b, NULL), 0);
	assert_rc_equal(ram_prepare_source(s, NULL), 0);
	clear_map(b->send, 100);

	assert_rc_equal(tern_dirty_report(b, 101, map, 0), -ERANGE);
	assert_rc_equal(tern_dirty_report(b, 100, map, 1), -ERANGE);
	assert_rc_equal(tern_dirty_report(b, 0, map, 101), -ERANGE);
	assert_rc_equal(tern_dirty_report(b, 50, map, 51), -ERANGE);
	assert_rc_equal(tern_dirty_report(b, UINT64_MAX, map, 2), -ERANGE);
	assert_rc_equal(tern_dirty_report(b, 2, map, UINT64_MAX), -ERANGE);
	assert_true(bitmap_count(b->send, 100) == 0);

	assert_rc_equal(tern_dirty_report(b, 100, map, 0), 0);
	assert_rc_equal(tern_dirty_report(b, 0, map, 0), 0);
	assert_true(bitmap_count(b->send, 100) == 0);
	assert_rc_equal(tern_dirty_report(b, 36, map, 64), 0); /* exactly to the end */
	assert_true(bitmap_count(b->send, 100) == 64);
	assert_false(bitmap_test(b->send, 35));
	assert_true(bitmap_test(b->send, 36) && bitmap_test(b->send, 99));
	assert_rc_equal(tern_dirty_report(b, 0, map, 100), 0);
	assert_true(bitmap_count(b->send, 100) == 100);
	assert_true(bitmap_count(b->send, BITMAP_WORDS(100) * 64) == 100);
}

static void test_dirty_sources(void **state)
{
	struct fixture *f = *state;
	struct tern_session *s = new_session(f, 0, NULL, NULL);
	struct tern_dirty_source_ops no_sync = ts_ops;
	struct test_source t[3] = {{0}};
	struct tern_ram_block *b;
	uint64_t P = f->page;
	int i;

	no_sync.sync = NULL;
	assert_rc_equal(tern_ram_register(s, "ram", map_anon(f, 8 * P), 8 * P, &b, NULL), 0);
	assert_rc_equal(tern_dirty_source_add(s, NULL, NULL, NULL), -EINVAL);
	assert_rc_equal(tern_dirty_source_add(s, &no_sync, NULL, NULL), -EINVAL);
	for (i = 0; i < 3; i++) {
		t[i].block = b;
		assert_rc_equal(tern_dirty_source_add(s, &ts_ops, &t[i], NULL), 0);
	}
	/* The third one fails to start: the first two are stopped, it is not. */
	t[2].start_ret = -ENOTTY;
	assert_rc_equal(ram_prepare_source(s, &f->err), -ENOTTY);
	assert_str_contains(f->err.msg, "dirty-log provider 'test-log'");
	assert_str_contains(f->err.msg, "no dirty log for you");
	assert_int_equal(t[0].starts + t[1].starts + t[2].starts, 3);
	ram_sources_stop(s);
	ram_sources_stop(s);
	assert_int_equal(t[0].stops, 1);
	assert_int_equal(t[1].stops, 1);
	assert_int_equal(t[2].stops, 0);

	s->started = true;
	assert_rc_equal(tern_dirty_source_add(s, &ts_ops, &t[0], NULL), -EBUSY);
	s->started = false;
	for (i = 3; i < MAX_DIRTY_SOURCES; i++)
		assert_rc_equal(tern_dirty_source_add(s, &ts_ops, &t[0], NULL), 0);
	assert_rc_equal(tern_dirty_source_add(s, &ts_ops, &t[0], NULL), -ENOSPC);
}

static void test_dirty_sync_error(void **state)
{
	struct fixture *f = *state;
	struct tern_session *s = new_session(f, 0, NULL, NULL);
	struct tern_dirty_source_ops nostop = ts_ops;
	struct test_source t = {0};
	struct tern_ram_block *b;
	uint64_t n = 77;

	nostop.stop = NULL;
	nostop.start = NULL;
	assert_rc_equal(tern_ram_register(s, "ram", map_anon(f, f->page), f->page, &b, NULL), 0);
	t.block = b;
	assert_rc_equal(tern_dirty_source_add(s, &nostop, &t, NULL), 0);
	assert_rc_equal(ram_prepare_source(s, &f->err), 0);
	t.sync_ret = -EFAULT;
	assert_rc_equal(ram_sync(s, &n, &f->err), -EFAULT);
	assert_string_equal(f->err.msg, "dirty-log provider 'test-log': ioctl failed");
	assert_true(n == 77); /* not written on failure */
	ram_sources_stop(s);  /* no stop hook: nothing to call */
	assert_int_equal(t.stops, 0);
}

/* ======================================================================== */
/* rate windows                                                             */
/* ======================================================================== */

#define T0 5000000000ull
#define MS 1000000ull

static void test_ratelimit_unlimited(void **state)
{
	struct ratelimit rl;

	(void)state;
	ratelimit_init(&rl, T0, 1000, 0);
	assert_true(ratelimit_account(&rl, T0 + 10 * MS, 1100, 4096, 0) == 0);
	assert_true(ratelimit_account(&rl, T0 + 50 * MS, 1000 + (100u << 20), 4096, 0) == 0);
	assert_true(ratelimit_account(&rl, T0 + 99 * MS, UINT32_MAX, 4096, 0) == 0);
	/* an enormous limit is as good as none */
	assert_true(ratelimit_account(&rl, T0 + 99 * MS, UINT32_MAX, 4096, UINT64_MAX / 2) == 0);
	assert_true(rl.bw_bps == 0); /* no window closed yet */
}

static void test_ratelimit_sleep(void **state)
{
	const uint64_t max = 10000000; /* 10 MB/s: at most 1 MB of credit */
	struct ratelimit rl;

	(void)state;
	ratelimit_init(&rl, T0, 0, 0);
	/* 10 ms earned 100 kB; 999999 bytes leave a debt of 899999: 89.9999 ms. */
	assert_true(ratelimit_account(&rl, T0 + 10 * MS, 999999, 0, max) == 89999900);
	/* Slept it off: the debt is paid. */
	assert_true(ratelimit_account(&rl, T0 + 100 * MS, 999999, 0, max) == 0);
	/* The window ended: it closed, rates over exactly 100 ms. */
	assert_true(rl.win_start_ns == T0 + 100 * MS);
	assert_true(rl.win_start_bytes == 999999);
	assert_true(rl.bw_bps == 9999990);
	/* Bytes that drained while we slept are charged too: a big debt waits
	 * at most one window, so a lowered limit bites within a window. */
	assert_true(ratelimit_account(&rl, T0 + 110 * MS, 2999999, 0, max) == RATE_WINDOW_NS);
	/* Long idle earns at most one window of credit. */
	assert_true(ratelimit_account(&rl, T0 + 100000 * MS, 2999999, 0, max) == 0);
	assert_true(ratelimit_account(&rl, T0 + 100000 * MS, 2999999 + 1000000, 0, max) == 0);
	assert_true(ratelimit_account(&rl, T0 + 100000 * MS, 2999999 + 1000001, 0, max) == 100);
}

/*
 * A simulated sender that writes 256 KiB batches and sleeps as told, while
 * the bytes the limiter sees lag behind and jump (a queue draining): over
 * 20 s of simulated time the rate stays at the limit.
 */
static void test_ratelimit_long_run(void **state)
{
	const uint64_t max = 50000000; /* 50 MB/s */
	uint64_t now = T0, queued = 0, seen = 0;
	struct ratelimit rl;
	double rate;
	int i;

	(void)state;
	ratelimit_init(&rl, now, 0, 0);
	for (i = 0; now < T0 + 20000 * MS; i++) {
		uint64_t wait;

		queued += 256 << 10;
		/* the workers hold up to 4 batches: the wire lags the queue */
		if (queued - seen > (1u << 20) || i % 7 == 0)
			seen = queued - (i % 3) * (256u << 10);
		wait = ratelimit_account(&rl, now, seen, queued, max);
		assert_true(wait <= RATE_WINDOW_NS);
		now += wait + 200000; /* + 0.2 ms of work per batch */
	}
	rate = (double)seen * 1e9 / (double)(now - T0);
	assert_true(rate <= max * 1.02);
	assert_true(rate >= max * 0.95);
}

static void test_ratelimit_idle(void **state)
{
	struct ratelimit rl;

	(void)state;
	/* A partial window under 1 MiB tells nothing. */
	ratelimit_init(&rl, T0, 0, 0);
	assert_true(ratelimit_account(&rl, T0 + 10 * MS, 512 << 10, 512 << 10, 0) == 0);
	ratelimit_idle(&rl, T0 + 20 * MS, (1 << 20) - 1, 1 << 20, 0);
	assert_true(rl.bw_bps == 0);
	assert_true(rl.ram_bps == 0);
	assert_true(rl.busy_start_ns == 0);

	/* Idle time is not counted: the next batch starts a fresh window. */
	assert_true(ratelimit_account(&rl, T0 + 10000 * MS, 1 << 20, 1 << 20, 0) == 0);
	assert_true(rl.win_start_ns == T0 + 10000 * MS);
	assert_true(rl.win_start_bytes == 1 << 20);
	assert_true(rl.busy_start_ns == T0 + 10000 * MS);
	assert_true(ratelimit_account(&rl, T0 + 10100 * MS, (1 << 20) + 2000000,
				      (1 << 20) + 4000000, 0) == 0);
	assert_true(rl.bw_bps == 20000000);
	assert_true(rl.ram_bps == 40000000);

	/* Exactly 1 MiB closes the partial window. */
	ratelimit_init(&rl, T0, 0, 0);
	ratelimit_idle(&rl, T0 + 20 * MS, 1 << 20, 2 << 20, 0);
	assert_true(rl.bw_bps == 52428800);
	assert_true(rl.ram_bps == 104857600);
	assert_true(rl.busy_start_ns == 0);

	/* Idle while idle: nothing closes. */
	ratelimit_idle(&rl, T0 + 40 * MS, 100 << 20, 100 << 20, 0);
	assert_true(rl.bw_bps == 52428800);

	/* No time passed: nothing closes (no division by zero). */
	ratelimit_init(&rl, T0, 0, 0);
	ratelimit_idle(&rl, T0, 8 << 20, 8 << 20, 0);
	assert_true(rl.bw_bps == 0);

	/* A burst shorter than 20 ms into empty buffers measures nothing. */
	ratelimit_init(&rl, T0, 0, 0);
	ratelimit_idle(&rl, T0 + 19 * MS, 64 << 20, 64 << 20, 0);
	assert_true(rl.bw_bps == 0);

	/* With a limit set, the estimate never exceeds it. */
	ratelimit_init(&rl, T0, 0, 0);
	ratelimit_idle(&rl, T0 + 50 * MS, 64 << 20, 64 << 20, 1000000);
	assert_true(rl.bw_bps == 1000000);
}

/* ======================================================================== */
/* The switchover's rate (src_estimate.c)                                   */
/* ======================================================================== */

/*
 * Which rate prices the last round: the declared one whenever set (even
 * before any round was measured, and even below the rounds' rate: the
 * operator knows the path); without max-bandwidth the rounds' rate; under a
 * max-bandwidth that holds the rounds back, the rounds' rate until a tail
 * was learned, then 3/4 of the tails' rate -- unless that is no more than the
 * rounds' rate (a shaped link: the path is the limit, today's behaviour).
 */
static void test_switchover_rate(void **state)
{
	const uint64_t M = 1000000;
	enum sw_rate why;

	(void)state;
	assert_int_equal(src_switchover_rate(125 * M, true, 2000 * M, 0, &why), 2000 * M);
	assert_int_equal(why, SW_RATE_DECLARED);
	assert_int_equal(src_switchover_rate(0, false, 300 * M, 0, &why), 300 * M);
	assert_int_equal(why, SW_RATE_DECLARED);
	assert_int_equal(src_switchover_rate(900 * M, false, 50 * M, 0, &why), 50 * M);
	assert_int_equal(why, SW_RATE_DECLARED);
	/* nothing measured, nothing declared: no rate */
	assert_int_equal(src_switchover_rate(0, true, 0, 4000 * M, &why), 0);
	assert_int_equal(why, SW_RATE_NONE);
	/* not held back (no limit, or a path slower than it): the rounds'
	 * rate, whatever a tail said */
	assert_int_equal(src_switchover_rate(80 * M, false, 0, 4000 * M, &why), 80 * M);
	assert_int_equal(why, SW_RATE_MEASURED);
	/* held back, nothing learned yet (the windows may read below the
	 * limit: the sender slept, that is what counts) */
	assert_int_equal(src_switchover_rate(98 * M, true, 0, 0, &why), 98 * M);
	assert_int_equal(why, SW_RATE_THROTTLED);
	/* held back, the tails ran at 4 GB/s: 3 GB/s */
	assert_int_equal(src_switchover_rate(125 * M, true, 0, 4000 * M, &why), 3000 * M);
	assert_int_equal(why, SW_RATE_LEARNED);
	/* held back, the tails ran no faster than the limit: the path is it */
	assert_int_equal(src_switchover_rate(125 * M, true, 0, 130 * M, &why), 125 * M);
	assert_int_equal(why, SW_RATE_LINK);
	assert_string_equal(sw_rate_name(SW_RATE_LEARNED), "learned");
	assert_string_equal(sw_rate_name(SW_RATE_THROTTLED), "max-bandwidth");
	assert_string_equal(sw_rate_name((enum sw_rate)99), "invalid");
}

/* ======================================================================== */
/* RAM digest                                                               */
/* ======================================================================== */

static void digest_of(struct tern_session *s, struct ram_digest *d)
{
	struct tern_error err = {0};

	memset(d, 0, sizeof(*d));
	assert_rc_equal(ram_digest_compute(s, d, NULL, &err), 0);
}

static bool digest_eq(const struct ram_digest *a, const struct ram_digest *b)
{
	return a->h[0] == b->h[0] && a->h[1] == b->h[1];
}

/* Flip one bit at @p: the digest of @d must change; restore it: equal again. */
static void digest_flip(struct tern_session *d, const struct ram_digest *want, uint8_t *p,
			uint8_t bit)
{
	struct ram_digest got;
	uint8_t old = *p;

	*p = (uint8_t)(old ^ bit);
	digest_of(d, &got);
	*p = old;
	assert_false(digest_eq(want, &got));
}

/* Several small blocks: one byte anywhere, a misplaced page, equal copies. */
static void test_digest_small(void **state)
{
	struct fixture *f = *state;
	const uint64_t P = f->page;
	static const uint64_t pages[] = {4, 1, 3};
	struct tern_session *s = new_session(f, 0, NULL, NULL);
	struct tern_session *d = new_session(f, 1, NULL, NULL);
	struct ram_digest ds, dd;
	uint8_t *sm[3], *dm[3];
	uint64_t i, k;

	for (k = 0; k < 3; k++) {
		char name[8];

		snprintf(name, sizeof(name), "b%u", (unsigned)k);
		sm[k] = map_anon(f, pages[k] * P);
		dm[k] = map_anon(f, pages[k] * P);
		for (i = 0; i < pages[k] * P; i++)
			sm[k][i] = dm[k][i] = (uint8_t)((i + k) * 2654435761u >> 13);
		assert_rc_equal(tern_ram_register(s, name, sm[k], pages[k] * P, NULL, NULL), 0);
		assert_rc_equal(tern_ram_register(d, name, dm[k], pages[k] * P, NULL, NULL), 0);
	}
	digest_of(s, &ds);
	digest_of(d, &dd);
	assert_true(digest_eq(&ds, &dd));
	assert_true(ds.h[0] != 0 || ds.h[1] != 0);

	for (k = 0; k < 3; k++) {
		const uint64_t size = pages[k] * P;
		const uint64_t offs[] = {0,	1, 7,	      8,	31,	 32,
					 P - 1, P, size - 33, size - 8, size - 1};

		for (i = 0; i < ARRAY_SIZE(offs); i++) {
			if (offs[i] >= size)
				continue;
			digest_flip(d, &ds, dm[k] + offs[i], 0x01);
			digest_flip(d, &ds, dm[k] + offs[i], 0x80);
		}
	}
	digest_of(d, &dd);
	assert_true(digest_eq(&ds, &dd)); /* everything restored */

	/* A misplaced page: the same bytes in another place. */
	{
		uint8_t *tmp = malloc(P);

		assert_non_null(tmp);
		memcpy(tmp, dm[0], P);
		memcpy(dm[0], dm[0] + P, P);
		memcpy(dm[0] + P, tmp, P);
		digest_of(d, &dd);
		assert_false(digest_eq(&ds, &dd));
		memcpy(dm[0] + P, dm[0], P);
		memcpy(dm[0], tmp, P);
		free(tmp);
	}
	/* A page moved to the next block. */
	memcpy(dm[1], sm[0] + 3 * P, P);
	memcpy(dm[0] + 3 * P, sm[1], P);
	digest_of(d, &dd);
	assert_false(digest_eq(&ds, &dd));
	memcpy(dm[1], sm[1], P);
	memcpy(dm[0] + 3 * P, sm[0] + 3 * P, P);
	digest_of(d, &dd);
	assert_true(digest_eq(&ds, &dd));
}

/* A block of 64 MiB and two pages (a thousand 64 KiB regions and a short
 * one), hashed by several threads: the same result every time, and a byte at
 * either end of the block, or of the last whole region, counts. */
static void test_digest_chunks(void **state)
{
	struct fixture *f = *state;
	const uint64_t P = f->page, chunk = 64ull << 20, big = chunk + 2 * P;
	struct tern_session *s = new_session(f, 0, NULL, NULL);
	struct tern_session *d = new_session(f, 1, NULL, NULL);
	uint8_t *sb = map_anon(f, big), *db = map_anon(f, big);
	const uint64_t offs[] = {0, chunk - 1, chunk, big - 1};
	struct ram_digest ds, dd, again;
	uint64_t i;

	for (i = 0; i < 3; i++) { /* a few written pages; the rest stays unallocated */
		memset(sb + i * (chunk / 2), (int)(0x10 + i), P);
		memset(db + i * (chunk / 2), (int)(0x10 + i), P);
	}
	assert_rc_equal(tern_ram_register(s, "big", sb, big, NULL, NULL), 0);
	assert_rc_equal(tern_ram_register(d, "big", db, big, NULL, NULL), 0);

	digest_of(s, &ds);
	digest_of(d, &dd);
	assert_true(digest_eq(&ds, &dd));
	for (i = 0; i < 2; i++) {
		digest_of(s, &again);
		assert_true(digest_eq(&ds, &again));
	}
	for (i = 0; i < ARRAY_SIZE(offs); i++)
		digest_flip(d, &ds, db + offs[i], 0x40);
	digest_of(d, &dd);
	assert_true(digest_eq(&ds, &dd));
}

/* The same bytes under another layout are another digest. */
static void test_digest_layout(void **state)
{
	struct fixture *f = *state;
	const uint64_t P = f->page;
	struct tern_session *s = new_session(f, 0, NULL, NULL);
	struct tern_session *d = new_session(f, 1, NULL, NULL);
	uint8_t *m = map_anon(f, 4 * P);
	struct ram_digest ds, dd;

	memset(m, 0x77, 4 * P);
	assert_rc_equal(tern_ram_register(s, "x", m, 4 * P, NULL, NULL), 0);
	assert_rc_equal(tern_ram_register(d, "x", m, 2 * P, NULL, NULL), 0);
	assert_rc_equal(tern_ram_register(d, "y", m + 2 * P, 2 * P, NULL, NULL), 0);
	digest_of(s, &ds);
	digest_of(d, &dd);
	assert_false(digest_eq(&ds, &dd));
}

/* The vector code and the scalar code are one function: on random bytes of
 * every length class (whole stripes, a partial scramble span, tail words,
 * trailing bytes) and any alignment, both give the same hash. Skipped where
 * the CPU has no vector unit digest_hash.c uses (then only scalar runs). */
static void test_digest_hash_simd_scalar(void **state)
{
	static const uint64_t lens[] = {0, 8, 63, 64, 72, 4096, 4160, 4104, 65536, 65543};
	uint8_t *buf = malloc(65536 + 64);
	uint64_t a[2], b[2], i, k, x = 0x1234567;
	unsigned int off;

	(void)state;
	assert_non_null(buf);
	if (!digest_hash_has_simd()) {
		free(buf);
		skip();
	}
	for (i = 0; i < 65536 + 64; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		buf[i] = (uint8_t)x;
	}
	for (off = 0; off < 3; off++)
		for (k = 0; k < ARRAY_SIZE(lens); k++) {
			digest_hash_bytes_with(true, buf + off, lens[k], k * 7 + off, a);
			digest_hash_bytes_with(false, buf + off, lens[k], k * 7 + off, b);
			assert_int_equal(a[0], b[0]);
			assert_int_equal(a[1], b[1]);
		}
	/* zero pages, the common case, agree too */
	memset(buf, 0, 65536);
	digest_hash_bytes_with(true, buf, 65536, 5, a);
	digest_hash_bytes_with(false, buf, 65536, 5, b);
	assert_int_equal(a[0], b[0]);
	assert_int_equal(a[1], b[1]);
	free(buf);
}

/* Equal data in other places is another hash: two 64-byte stripes of a page
 * swapped, two pages of a region swapped, two words of a stripe swapped, and
 * a region whose words are all equal against the same shifted by a stripe.
 * And the function is pinned: a known answer, so that both sides' builds
 * (and a change to digest_hash.c) agree with docs/PROTOCOL.md's definition. */
#define DIGEST_KNOWN0 0xfef88f85f859f0b3ull
#define DIGEST_KNOWN1 0xc5b8b1397ef34a84ull
static void test_digest_hash_positions(void **state)
{
	const uint64_t len = 65536;
	uint8_t *m = malloc(len), tmp[4096];
	uint64_t want[2], got[2], i, x = 99;

	(void)state;
	assert_non_null(m);
	for (i = 0; i < len; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		m[i] = (uint8_t)x;
	}
	digest_hash_bytes(m, len, 1, want);

	memcpy(tmp, m + 64, 64), memcpy(m + 64, m + 192, 64), memcpy(m + 192, tmp, 64);
	digest_hash_bytes(m, len, 1, got);
	assert_true(got[0] != want[0] || got[1] != want[1]);
	memcpy(tmp, m + 64, 64), memcpy(m + 64, m + 192, 64), memcpy(m + 192, tmp, 64);

	memcpy(tmp, m, 4096), memcpy(m, m + 8192, 4096), memcpy(m + 8192, tmp, 4096);
	digest_hash_bytes(m, len, 1, got);
	assert_true(got[0] != want[0] || got[1] != want[1]);
	memcpy(tmp, m, 4096), memcpy(m, m + 8192, 4096), memcpy(m + 8192, tmp, 4096);

	memcpy(tmp, m + 4096, 8), memcpy(m + 4096, m + 4104, 8), memcpy(m + 4104, tmp, 8);
	digest_hash_bytes(m, len, 1, got);
	assert_true(got[0] != want[0] || got[1] != want[1]);
	memcpy(tmp, m + 4096, 8), memcpy(m + 4096, m + 4104, 8), memcpy(m + 4104, tmp, 8);

	digest_hash_bytes(m, len, 1, got);
	assert_int_equal(got[0], want[0]);
	assert_int_equal(got[1], want[1]);
	digest_hash_bytes(m, len, 2, got); /* another region's seed */
	assert_true(got[0] != want[0] && got[1] != want[1]);

	/* a page of one repeated byte and the page with one stripe zeroed */
	memset(m, 0x5a, 4096);
	digest_hash_bytes(m, 4096, 1, want);
	memset(m + 4032, 0, 64);
	digest_hash_bytes(m, 4096, 1, got);
	assert_true(got[0] != want[0] || got[1] != want[1]);

	/* the known answer: bytes i * 7 mod 256, seed 3 */
	for (i = 0; i < len; i++)
		m[i] = (uint8_t)(i * 7);
	digest_hash_bytes(m, len, 3, got);
	assert_int_equal(got[0], DIGEST_KNOWN0);
	assert_int_equal(got[1], DIGEST_KNOWN1);
	free(m);
}

/* ======================================================================== */

#define T(fn) cmocka_unit_test_setup_teardown(fn, fixture_setup, fixture_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_params_ranges),
	    T(test_params_unknown_names),
	    T(test_params_running),
	    T(test_params_public),
	    T(test_params_public_running),
	    T(test_params_compression),
	    T(test_params_timeout_policy),
	    T(test_caps_zero_copy_refused),
	    T(test_status_names),
	    T(test_caps_postcopy_refused),
	    T(test_pc_serve_refusals),
	    T(test_state_transitions),
	    T(test_state_cas_race),
	    T(test_buf_layout),
	    T(test_rd_bounds),
	    T(test_rd_str),
	    T(test_ctl_roundtrip),
	    T(test_ctl_frame_header_bytes),
	    T(test_ctl_recv_over_limit),
	    T(test_ctl_recv_bad_header),
	    T(test_ctl_recv_truncated),
	    T(test_ctl_recv_truncated_header),
	    T(test_ctl_recv_bounded),
	    T(test_ctl_stream_hdr),
	    T(test_ctl_error_frames),
	    T(test_ctl_error_malformed),
	    T(test_hint_roundtrip),
	    T(test_hint_refused),
	    T(test_hello_roundtrip),
	    T(test_hello_method),
	    T(test_hello_layout_mismatch),
	    T(test_hello_field_mismatch),
	    T(test_hello_truncated),
	    T(test_hello_trailing),
	    T(test_section_register),
	    T(test_section_load_refusals),
	    T(test_section_load_loader),
	    T(test_section_roundtrip),
	    T(test_section_save_error),
	    T(test_section_empty),
	    T(test_ram_register),
	    T(test_ram_mark_dirty),
	    T(test_ram_sync_manual),
	    T(test_ram_dirty_provider),
	    T(test_dirty_report_ranges),
	    T(test_dirty_sources),
	    T(test_dirty_sync_error),
	    T(test_ratelimit_unlimited),
	    T(test_ratelimit_sleep),
	    T(test_ratelimit_long_run),
	    T(test_ratelimit_idle),
	    T(test_switchover_rate),
	    T(test_digest_small),
	    T(test_digest_chunks),
	    T(test_digest_layout),
	    T(test_digest_hash_simd_scalar),
	    T(test_digest_hash_positions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
