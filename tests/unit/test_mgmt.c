/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the management server (core/mgmt.c): every command and
 * every error, the socket's mode, stale and foreign files at its path, two
 * clients at once, events on a real loopback migration, migrating again
 * after failed and cancelled, and teardown by tern_session_free() without
 * leaked fds or threads.
 *
 * The test thread is the only one that asserts. Replies are read with a
 * generous poll timeout that only guards against a hang; nothing is timed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "tests/cmocka_compat.h"
#include "core/core_priv.h"
#include "core/mgmt.h"
#include "tern/tern.h"

#define NPAGES 16
#define HANG_GUARD_MS 30000
#define MAX_EVENTS 256

struct client {
	int fd;
	char buf[1 << 17];
	size_t len;
	char *events[MAX_EVENTS]; /* event lines read while waiting for a reply */
	int nevents;
};

struct fixture {
	struct tern_session *s, *peer;
	void *ram, *peer_ram;
	size_t ram_len;
	char path[108], path2[108];
	struct client *c[2];
};

static int count_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static struct tern_session *new_session(void **ret_ram, size_t len)
{
	struct tern_error err = {0};
	struct tern_session *s = NULL;
	void *ram;

	assert_rc_equal(tern_session_new(NULL, NULL, &s, &err), 0);
	ram = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(ram != MAP_FAILED);
	assert_rc_equal(tern_ram_register(s, "ram", ram, len, NULL, &err), 0);
	*ret_ram = ram;
	return s;
}

static int setup(void **state)
{
	static int seq;
	struct fixture *f = calloc(1, sizeof(*f));
	struct tern_error err = {0};
	long page = sysconf(_SC_PAGESIZE);

	if (!f)
		return -1;
	f->ram_len = (size_t)(page > 0 ? page : 4096) * NPAGES;
	snprintf(f->path, sizeof(f->path), "/tmp/tern-mgmt-%d-%d.sock", (int)getpid(), ++seq);
	snprintf(f->path2, sizeof(f->path2), "/tmp/tern-mgmt-%d-%d.sock", (int)getpid(), ++seq);
	unlink(f->path);
	unlink(f->path2);
	f->s = new_session(&f->ram, f->ram_len);
	if (tern_mgmt_listen(f->s, f->path, &err)) {
		fprintf(stderr, "tern_mgmt_listen: %s\n", err.msg);
		return -1;
	}
	*state = f;
	return 0;
}

static void client_close(struct client *c)
{
	int i;

	if (!c)
		return;
	close(c->fd);
	for (i = 0; i < c->nevents; i++)
		free(c->events[i]);
	free(c);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	client_close(f->c[0]);
	client_close(f->c[1]);
	tern_session_free(f->s);
	tern_session_free(f->peer);
	munmap(f->ram, f->ram_len);
	if (f->peer_ram)
		munmap(f->peer_ram, f->ram_len);
	unlink(f->path);
	unlink(f->path2);
	free(f);
	return 0;
}

static struct client *client_open(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct client *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(c->fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return c;
}

static void client_send(struct client *c, const char *data, size_t len)
{
	while (len) {
		ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);

		assert_true(n > 0);
		data += n;
		len -= (size_t)n;
	}
}

/* The next line (malloc'ed, without its newline), or NULL at EOF. */
static char *client_line(struct client *c)
{
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		struct pollfd p = {.fd = c->fd, .events = POLLIN};
		ssize_t n;

		if (nl) {
			size_t l = (size_t)(nl - c->buf);
			char *line = strndup(c->buf, l);

			memmove(c->buf, nl + 1, c->len - l - 1);
			c->len -= l + 1;
			return line;
		}
		assert_int_equal(poll(&p, 1, HANG_GUARD_MS), 1);
		assert_true(c->len < sizeof(c->buf));
		n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
		assert_true(n >= 0);
		if (n == 0)
			return NULL;
		c->len += (size_t)n;
	}
}

static struct json_object *parse(const char *line)
{
	struct json_object *o = json_tokener_parse(line);

	assert_non_null(o);
	assert_true(json_object_is_type(o, json_type_object));
	return o;
}

/* Send @req (a newline is added) and return the reply; events are kept. */
static struct json_object *request(struct client *c, const char *req)
{
	for (client_send(c, req, strlen(req)), client_send(c, "\n", 1);;) {
		char *line = client_line(c);
		struct json_object *o;

		assert_non_null(line);
		o = parse(line);
		if (!json_object_object_get_ex(o, "event", NULL)) {
			free(line);
			return o;
		}
		json_object_put(o);
		assert_true(c->nevents < MAX_EVENTS);
		c->events[c->nevents++] = line;
	}
}

static const char *get_str(struct json_object *o, const char *path)
{
	struct json_object *v;

	assert_true(json_object_object_get_ex(o, path, &v));
	return json_object_get_string(v);
}

static struct json_object *get(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	if (!json_object_object_get_ex(o, key, &v))
		fail_msg("no '%s' in %s", key, json_object_to_json_string(o));
	return v;
}

static void expect_ok(struct json_object *r)
{
	if (!json_object_get_boolean(get(r, "ok")))
		fail_msg("expected ok: %s", json_object_to_json_string(r));
}

/* An error reply whose message contains @needle; consumes @r. */
static void expect_error(struct json_object *r, const char *needle)
{
	const char *msg;

	if (json_object_get_boolean(get(r, "ok")))
		fail_msg("expected an error: %s", json_object_to_json_string(r));
	msg = get_str(r, "error");
	if (!strstr(msg, needle))
		fail_msg("error '%s' does not mention '%s'", msg, needle);
	json_object_put(r);
}

/* Wait for an event of @type whose "to" is @to (NULL: any); consumes it. */
static struct json_object *wait_event(struct client *c, const char *type, const char *to)
{
	int i;

	for (i = 0;; i++) {
		struct json_object *o;
		char *line;

		if (i < c->nevents) {
			line = c->events[i];
		} else {
			line = client_line(c);
			assert_non_null(line);
			assert_true(c->nevents < MAX_EVENTS);
			c->events[c->nevents++] = line;
		}
		o = parse(line);
		if (json_object_object_get_ex(o, "event", NULL) &&
		    !strcmp(get_str(o, "event"), type) && (!to || !strcmp(get_str(o, "to"), to))) {
			free(line);
			memmove(&c->events[i], &c->events[i + 1],
				(size_t)(c->nevents - i - 1) * sizeof(c->events[0]));
			c->nevents--;
			return o;
		}
		json_object_put(o);
	}
}

/* ---- commands ------------------------------------------------------------ */

static void test_query(void **state)
{
	static const char *const keys[] = {"status",
					   "is_source",
					   "verified",
					   "channels",
					   "page_size",
					   "setup_ms",
					   "total_ms",
					   "downtime_ms",
					   "expected_downtime_ms",
					   "verify_ms",
					   "ram_total",
					   "ram_transferred",
					   "ram_remaining",
					   "normal_pages",
					   "zero_pages",
					   "wire_bytes",
					   "channel_wire_bytes",
					   "rounds",
					   "dirty_pages_rate",
					   "dirty_rate_window_ms",
					   "dirty_sync_us",
					   "dirty_clear_us",
					   "throughput_bps",
					   "bandwidth_bps",
					   "error",
					   "multifd_compression",
					   "codec",
					   "xbzrle_cache_size",
					   "xbzrle_cache_hits",
					   "xbzrle_cache_misses",
					   "xbzrle_overflows",
					   "xbzrle_bytes",
					   "xbzrle_cache_hit_rate",
					   "xbzrle_encoding_rate",
					   "auto_reason",
					   "round_bytes",
					   "round_sent_bytes",
					   "cpu_throttle_percent",
					   "expected_sync_us",
					   "expected_ram_us",
					   "expected_device_us",
					   "expected_resume_us",
					   "downtime_pause_us",
					   "downtime_wait_us",
					   "downtime_sync_us",
					   "downtime_ram_us",
					   "downtime_device_us",
					   "downtime_verify_us",
					   "downtime_resume_us",
					   "cpu",
					   "cpu_total_user_us",
					   "cpu_total_sys_us"};
	struct fixture *f = *state;
	struct json_object *r, *ret, *zstd;
	size_t i;

	f->c[0] = client_open(f->path);
	r = request(f->c[0], "{\"cmd\":\"query\",\"id\":7}");
	expect_ok(r);
	assert_int_equal(json_object_get_int(get(r, "id")), 7);
	ret = get(r, "return");
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		get(ret, keys[i]);
	assert_string_equal(get_str(ret, "status"), "none");
	assert_int_equal(json_object_get_uint64(get(ret, "ram_total")), f->ram_len);
	zstd = get(get(ret, "codec"), "zstd");
	get(zstd, "pages");
	get(zstd, "compression_rate");
	for (i = TERN_CPU_INVALID + 1; i < TERN_CPU_CLASSES; i++) {
		struct json_object *c = get(get(ret, "cpu"), tern_cpu_class_name(i));

		assert_int_equal(json_object_get_uint64(get(c, "user_us")), 0);
		assert_int_equal(json_object_get_uint64(get(c, "sys_us")), 0);
	}
	json_object_put(r);
}

static void test_set(void **state)
{
	struct fixture *f = *state;
	struct tern_error err = {0};
	struct json_object *r, *ret;
	uint64_t v = 0;
	char name[32];

	f->c[0] = client_open(f->path);
	r = request(f->c[0], "{\"cmd\":\"set\",\"name\":\"max-bandwidth\",\"value\":123}");
	expect_ok(r);
	ret = get(r, "return");
	assert_string_equal(get_str(ret, "name"), "max-bandwidth");
	assert_int_equal(json_object_get_uint64(get(ret, "old")), 0);
	assert_int_equal(json_object_get_uint64(get(ret, "new")), 123);
	json_object_put(r);
	assert_rc_equal(tern_param_get(f->s, "max-bandwidth", &v, &err), 0);
	assert_int_equal(v, 123);

	r = request(f->c[0],
		    "{\"cmd\":\"set\",\"name\":\"multifd-compression\",\"value\":\"xbzrle\"}");
	expect_ok(r);
	ret = get(r, "return");
	assert_string_equal(get_str(ret, "old"), "none");
	assert_string_equal(get_str(ret, "new"), "xbzrle");
	json_object_put(r);
	assert_rc_equal(tern_param_get_str(f->s, "multifd-compression", name, sizeof(name), &err),
			0);
	assert_string_equal(name, "xbzrle");
}

static void test_set_errors(void **state)
{
	struct fixture *f = *state;
	struct client *c;

	f->c[0] = c = client_open(f->path);
	expect_error(request(c, "{\"cmd\":\"set\",\"value\":1}"), "'name'");
	expect_error(request(c, "{\"cmd\":\"set\",\"name\":5,\"value\":1}"), "'name'");
	expect_error(request(c, "{\"cmd\":\"set\",\"name\":\"max-bandwidth\"}"), "'value'");
	expect_error(request(c, "{\"cmd\":\"set\",\"name\":\"nope\",\"value\":1}"), "nope");
	expect_error(request(c, "{\"cmd\":\"set\",\"name\":\"max-bandwidth\",\"value\":\"1\"}"),
		     "'value'");
	expect_error(request(c, "{\"cmd\":\"set\",\"name\":\"max-bandwidth\",\"value\":1.5}"),
		     "'value'");
	expect_error(request(c, "{\"cmd\":\"set\",\"name\":\"max-bandwidth\",\"value\":true}"),
		     "'value'");
	expect_error(request(c, "{\"cmd\":\"set\",\"name\":\"max-bandwidth\",\"value\":-1}"),
		     "'value'");
	expect_error(request(c, "{\"cmd\":\"set\",\"name\":\"multifd-compression\",\"value\":3}"),
		     "'value'");
	expect_error(
	    request(c, "{\"cmd\":\"set\",\"name\":\"multifd-compression\",\"value\":\"lz77\"}"),
	    "multifd-compression");
	/* out of range: the message names the parameter */
	expect_error(request(c, "{\"cmd\":\"set\",\"name\":\"downtime-limit\",\"value\":0}"),
		     "downtime-limit");
	expect_error(request(c, "{\"cmd\":\"set\",\"name\":\"multifd-channels\",\"value\":65}"),
		     "multifd-channels");
	expect_error(request(c, "{\"cmd\":\"set\",\"name\":\"downtime-limit\","
				"\"value\":18446744073709551615}"),
		     "downtime-limit");
}

static void test_caps(void **state)
{
	struct fixture *f = *state;
	struct tern_error err = {0};
	struct json_object *r, *ret;
	struct client *c;
	bool on = false;

	f->c[0] = c = client_open(f->path);
	r = request(c, "{\"cmd\":\"caps\",\"name\":\"verify-ram\",\"on\":true}");
	expect_ok(r);
	ret = get(r, "return");
	assert_false(json_object_get_boolean(get(ret, "old")));
	assert_true(json_object_get_boolean(get(ret, "new")));
	json_object_put(r);
	assert_rc_equal(tern_cap_get(f->s, "verify-ram", &on, &err), 0);
	assert_true(on);

	expect_error(request(c, "{\"cmd\":\"caps\",\"on\":true}"), "'name'");
	expect_error(request(c, "{\"cmd\":\"caps\",\"name\":\"verify-ram\"}"), "'on'");
	expect_error(request(c, "{\"cmd\":\"caps\",\"name\":\"verify-ram\",\"on\":1}"), "'on'");
	expect_error(request(c, "{\"cmd\":\"caps\",\"name\":\"teleport\",\"on\":true}"),
		     "teleport");
}

/* The parameters and their defaults (include/tern/tern.h). */
static const struct {
	const char *name;
	const char *def; /* a string for the named ones */
	uint64_t num;
} param_defaults[] = {
    {"multifd-channels", NULL, 2},
    {"max-bandwidth", NULL, 0},
    {"downtime-limit", NULL, 300},
    {"clear-bitmap-shift", NULL, 18},
    {"multifd-compression", "none", 0},
    {"multifd-zlib-level", NULL, 1},
    {"multifd-zstd-level", NULL, 1},
    {"xbzrle-cache-size", NULL, 64ull << 20},
    {"cpu-throttle-initial", NULL, 20},
    {"cpu-throttle-increment", NULL, 10},
    {"max-cpu-throttle", NULL, 99},
    {"migration-timeout", NULL, 0},
    {"migration-timeout-policy", "cancel", 0},
};

/* @ret holds @name, and it is what the library itself says. */
static void expect_param(struct fixture *f, struct json_object *ret, const char *name,
			 const char *str, uint64_t num)
{
	struct tern_error err = {0};
	struct json_object *v = get(ret, name);
	char buf[64];

	assert_rc_equal(tern_param_get_str(f->s, name, buf, sizeof(buf), &err), 0);
	if (str) {
		if (!json_object_is_type(v, json_type_string))
			fail_msg("params: %s is not a string: %s", name,
				 json_object_to_json_string(ret));
		assert_string_equal(json_object_get_string(v), str);
		assert_string_equal(buf, str);
	} else {
		if (!json_object_is_type(v, json_type_int))
			fail_msg("params: %s is not a number: %s", name,
				 json_object_to_json_string(ret));
		assert_int_equal(json_object_get_uint64(v), num);
		assert_int_equal(strtoull(buf, NULL, 10), num);
	}
}

static void test_params(void **state)
{
	struct fixture *f = *state;
	struct json_object *r, *ret;
	struct tern_error err = {0};
	struct client *c;
	size_t i;

	f->c[0] = c = client_open(f->path);
	r = request(c, "{\"cmd\":\"params\",\"id\":\"p\"}");
	expect_ok(r);
	assert_string_equal(get_str(r, "id"), "p");
	ret = get(r, "return");
	for (i = 0; i < sizeof(param_defaults) / sizeof(param_defaults[0]); i++)
		expect_param(f, ret, param_defaults[i].name, param_defaults[i].def,
			     param_defaults[i].num);
	/* nothing else: every key is a parameter the library knows */
	json_object_object_foreach(ret, key, val)
	{
		char buf[64];

		(void)val;
		if (tern_param_get_str(f->s, key, buf, sizeof(buf), &err))
			fail_msg("params: '%s' is no parameter: %s", key, err.msg);
	}
	json_object_put(r);

	/* what set changed, params shows */
	assert_rc_equal(tern_param_set(f->s, "max-cpu-throttle", 77, &err), 0);
	assert_rc_equal(tern_param_set_str(f->s, "migration-timeout-policy", "force", &err), 0);
	r = request(c, "{\"cmd\":\"params\"}");
	expect_ok(r);
	expect_param(f, get(r, "return"), "max-cpu-throttle", NULL, 77);
	expect_param(f, get(r, "return"), "migration-timeout-policy", "force", 0);
	json_object_put(r);
}

static void test_caps_list(void **state)
{
	static const char *const caps[] = {
	    "verify-ram",   "auto-converge",  "pause-before-switchover",
	    "rdma-pin-all", "zero-copy-send", "postcopy-ram"};
	struct fixture *f = *state;
	struct tern_error err = {0};
	struct json_object *r, *ret;
	struct client *c;
	bool on;
	size_t i;

	f->c[0] = c = client_open(f->path);
	r = request(c, "{\"cmd\":\"caps\"}");
	expect_ok(r);
	ret = get(r, "return");
	for (i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		struct json_object *v = get(ret, caps[i]);

		assert_true(json_object_is_type(v, json_type_boolean));
		assert_false(json_object_get_boolean(v));
	}
	json_object_object_foreach(ret, key, val)
	{
		(void)val;
		if (tern_cap_get(f->s, key, &on, &err))
			fail_msg("caps: '%s' is no capability: %s", key, err.msg);
	}
	json_object_put(r);

	/* set the two new ones through the socket: the library has them, the list shows them */
	for (i = 1; i < sizeof(caps) / sizeof(caps[0]); i++) {
		char req[128];

		snprintf(req, sizeof(req), "{\"cmd\":\"caps\",\"name\":\"%s\",\"on\":true}",
			 caps[i]);
		r = request(c, req);
		expect_ok(r);
		assert_string_equal(get_str(get(r, "return"), "name"), caps[i]);
		assert_false(json_object_get_boolean(get(get(r, "return"), "old")));
		assert_true(json_object_get_boolean(get(get(r, "return"), "new")));
		json_object_put(r);
		on = false;
		assert_rc_equal(tern_cap_get(f->s, caps[i], &on, &err), 0);
		assert_true(on);
	}
	r = request(c, "{\"cmd\":\"caps\"}");
	expect_ok(r);
	ret = get(r, "return");
	assert_false(json_object_get_boolean(get(ret, "verify-ram")));
	assert_true(json_object_get_boolean(get(ret, "auto-converge")));
	assert_true(json_object_get_boolean(get(ret, "pause-before-switchover")));
	json_object_put(r);

	/* and off again */
	r = request(c, "{\"cmd\":\"caps\",\"name\":\"auto-converge\",\"on\":false}");
	expect_ok(r);
	assert_true(json_object_get_boolean(get(get(r, "return"), "old")));
	json_object_put(r);
	assert_rc_equal(tern_cap_get(f->s, "auto-converge", &on, &err), 0);
	assert_false(on);
}

/* set of each new parameter: numbers in range, the policy by name. */
static void test_set_new_params(void **state)
{
	static const struct {
		const char *name;
		uint64_t value, old;
	} sets[] = {
	    {"cpu-throttle-initial", 30, 20},	  {"cpu-throttle-increment", 5, 10},
	    {"max-cpu-throttle", 80, 99},	  {"migration-timeout", 600, 0},
	    {"cpu-throttle-initial", 1, 30},	  {"cpu-throttle-initial", 99, 1},
	    {"migration-timeout", 31536000, 600}, {"migration-timeout", 0, 31536000},
	};
	struct fixture *f = *state;
	struct tern_error err = {0};
	struct json_object *r, *ret;
	struct client *c;
	char req[160], buf[32];
	uint64_t v;
	size_t i;

	f->c[0] = c = client_open(f->path);
	for (i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
		snprintf(req, sizeof(req), "{\"cmd\":\"set\",\"name\":\"%s\",\"value\":%llu}",
			 sets[i].name, (unsigned long long)sets[i].value);
		r = request(c, req);
		expect_ok(r);
		ret = get(r, "return");
		assert_string_equal(get_str(ret, "name"), sets[i].name);
		assert_int_equal(json_object_get_uint64(get(ret, "old")), sets[i].old);
		assert_int_equal(json_object_get_uint64(get(ret, "new")), sets[i].value);
		json_object_put(r);
		assert_rc_equal(tern_param_get(f->s, sets[i].name, &v, &err), 0);
		assert_int_equal(v, sets[i].value);
	}

	r = request(c,
		    "{\"cmd\":\"set\",\"name\":\"migration-timeout-policy\",\"value\":\"force\"}");
	expect_ok(r);
	ret = get(r, "return");
	assert_string_equal(get_str(ret, "old"), "cancel");
	assert_string_equal(get_str(ret, "new"), "force");
	json_object_put(r);
	assert_rc_equal(
	    tern_param_get_str(f->s, "migration-timeout-policy", buf, sizeof(buf), &err), 0);
	assert_string_equal(buf, "force");
	r = request(c,
		    "{\"cmd\":\"set\",\"name\":\"migration-timeout-policy\",\"value\":\"cancel\"}");
	expect_ok(r);
	assert_string_equal(get_str(get(r, "return"), "new"), "cancel");
	json_object_put(r);
	/* a name, not a number, through the numeric entry point */
	assert_rc_equal(tern_param_set(f->s, "migration-timeout-policy", 1, &err), -EINVAL);
}

/* recover and resume: the URI required, and refused where nothing is
 * paused in postcopy, with the reason once (not "recover: recover: "). */
static void test_recover_resume_refused(void **state)
{
	struct fixture *f = *state;
	struct client *c;
	struct json_object *r;

	f->c[0] = c = client_open(f->path);
	expect_error(request(c, "{\"cmd\":\"recover\"}"), "'uri'");
	expect_error(request(c, "{\"cmd\":\"resume\",\"uri\":7}"), "'uri'");
	expect_error(request(c, "{\"cmd\":\"resume\",\"uri\":\"bogus:1\"}"), "resume");
	r = request(c, "{\"cmd\":\"migrate-recover\",\"uri\":\"tcp:127.0.0.1:0\"}");
	assert_null(strstr(json_object_to_json_string(r), "recover: recover"));
	expect_error(r, "recover: no incoming migration is paused in postcopy (none)");
	expect_error(request(c, "{\"cmd\":\"resume\",\"uri\":\"tcp:127.0.0.1:1\"}"),
		     "resume: no outgoing migration is paused in postcopy (none)");
}

static void test_set_new_params_errors(void **state)
{
	static const char *const throttles[] = {"cpu-throttle-initial", "cpu-throttle-increment",
						"max-cpu-throttle"};
	struct fixture *f = *state;
	struct tern_error err = {0};
	struct client *c;
	char req[160], buf[32];
	uint64_t v;
	size_t i;

	f->c[0] = c = client_open(f->path);
	/* the policy takes a name: the message names the field and the values */
	expect_error(
	    request(c, "{\"cmd\":\"set\",\"name\":\"migration-timeout-policy\",\"value\":1}"),
	    "'value'");
	expect_error(
	    request(c, "{\"cmd\":\"set\",\"name\":\"migration-timeout-policy\",\"value\":1}"),
	    "migration-timeout-policy");
	expect_error(request(c, "{\"cmd\":\"set\",\"name\":\"migration-timeout-policy\","
				"\"value\":\"sometimes\"}"),
		     "cancel, force");
	expect_error(request(c, "{\"cmd\":\"set\",\"name\":\"migration-timeout-policy\","
				"\"value\":\"sometimes\"}"),
		     "migration-timeout-policy");
	expect_error(request(c, "{\"cmd\":\"set\",\"name\":\"migration-timeout-policy\"}"),
		     "'value'");
	assert_rc_equal(
	    tern_param_get_str(f->s, "migration-timeout-policy", buf, sizeof(buf), &err), 0);
	assert_string_equal(buf, "cancel");

	/* the percentages: numbers in 1..99; 0 and 100 are refused with the range */
	for (i = 0; i < sizeof(throttles) / sizeof(throttles[0]); i++) {
		uint64_t before;

		assert_rc_equal(tern_param_get(f->s, throttles[i], &before, &err), 0);
		snprintf(req, sizeof(req), "{\"cmd\":\"set\",\"name\":\"%s\",\"value\":0}",
			 throttles[i]);
		expect_error(request(c, req), throttles[i]);
		expect_error(request(c, req), "1..99");
		snprintf(req, sizeof(req), "{\"cmd\":\"set\",\"name\":\"%s\",\"value\":100}",
			 throttles[i]);
		expect_error(request(c, req), throttles[i]);
		expect_error(request(c, req), "1..99");
		snprintf(req, sizeof(req), "{\"cmd\":\"set\",\"name\":\"%s\",\"value\":\"20\"}",
			 throttles[i]);
		expect_error(request(c, req), "'value'");
		expect_error(request(c, req), throttles[i]);
		snprintf(req, sizeof(req), "{\"cmd\":\"set\",\"name\":\"%s\",\"value\":20.5}",
			 throttles[i]);
		expect_error(request(c, req), "'value'");
		snprintf(req, sizeof(req), "{\"cmd\":\"set\",\"name\":\"%s\",\"value\":-20}",
			 throttles[i]);
		expect_error(request(c, req), "'value'");
		/* nothing changed */
		assert_rc_equal(tern_param_get(f->s, throttles[i], &v, &err), 0);
		assert_int_equal(v, before);
	}

	expect_error(request(c, "{\"cmd\":\"set\",\"name\":\"migration-timeout\","
				"\"value\":31536001}"),
		     "0..31536000");
	expect_error(request(c, "{\"cmd\":\"set\",\"name\":\"migration-timeout\","
				"\"value\":31536001}"),
		     "migration-timeout");
	expect_error(request(c, "{\"cmd\":\"set\",\"name\":\"migration-timeout\",\"value\":true}"),
		     "'value'");
	expect_error(request(c, "{\"cmd\":\"set\",\"name\":\"migration-timeout\",\"value\":-1}"),
		     "'value'");
	assert_rc_equal(tern_param_get(f->s, "migration-timeout", &v, &err), 0);
	assert_int_equal(v, 0);

	/* a capability's name or value of the wrong kind */
	expect_error(request(c, "{\"cmd\":\"caps\",\"name\":\"auto-converge\",\"on\":\"yes\"}"),
		     "'on'");
	expect_error(request(c, "{\"cmd\":\"caps\",\"name\":7,\"on\":true}"), "'name'");
	expect_error(request(c, "{\"cmd\":\"caps\",\"name\":\"auto-converge\"}"), "'on'");
}

/* A source whose destination never answers HELLO stays in setup. */
static void start_stuck_migration(struct fixture *f, int *ret_lfd)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct tern_error err = {0};
	char uri[140];
	int lfd;

	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0);
	unlink(f->path2);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path2);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 8), 0);
	snprintf(uri, sizeof(uri), "unix:%s", f->path2);
	assert_rc_equal(tern_migrate(f->s, uri, &err), 0);
	*ret_lfd = lfd;
}

static void test_continue_errors(void **state)
{
	struct fixture *f = *state;
	struct tern_error err = {0};
	struct json_object *r;
	struct client *c;
	int lfd;

	f->c[0] = c = client_open(f->path);
	/* the capability is off */
	expect_error(request(c, "{\"cmd\":\"continue\"}"),
		     "continue: pause-before-switchover is off");
	assert_rc_equal(tern_continue(f->s, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "pause-before-switchover is off"));

	/* on, but nothing waits in pre-switchover: the message says what state it is */
	r = request(c, "{\"cmd\":\"caps\",\"name\":\"pause-before-switchover\",\"on\":true}");
	expect_ok(r);
	json_object_put(r);
	expect_error(request(c, "{\"cmd\":\"continue\"}"),
		     "continue: the migration is none, not pre-switchover");
	memset(&err, 0, sizeof(err));
	assert_rc_equal(tern_continue(f->s, &err), -EAGAIN);
	assert_non_null(strstr(err.msg, "none, not pre-switchover"));

	/* running, but not there yet */
	start_stuck_migration(f, &lfd);
	expect_error(request(c, "{\"cmd\":\"continue\"}"),
		     "continue: the migration is setup, not pre-switchover");
	/* capabilities are start-only */
	expect_error(request(c, "{\"cmd\":\"caps\",\"name\":\"auto-converge\",\"on\":true}"),
		     "auto-converge");
	r = request(c, "{\"cmd\":\"cancel\"}");
	expect_ok(r);
	json_object_put(r);
	assert_int_equal(tern_wait(f->s, HANG_GUARD_MS), TERN_STATUS_CANCELLED);
	expect_error(request(c, "{\"cmd\":\"continue\"}"),
		     "continue: the migration is cancelled, not pre-switchover");
	close(lfd);
}

static void test_errors(void **state)
{
	struct fixture *f = *state;
	struct json_object *r;
	struct client *c;

	f->c[0] = c = client_open(f->path);
	expect_error(request(c, "{\"cmd\":"), "malformed JSON");
	expect_error(request(c, "not json"), "malformed JSON");
	expect_error(request(c, "{\"cmd\":\"query\"} x"), "malformed JSON");
	expect_error(request(c, "[1,2]"), "object");
	expect_error(request(c, "{}"), "'cmd'");
	expect_error(request(c, "{\"cmd\":42}"), "'cmd'");
	expect_error(request(c, "{\"cmd\":\"reboot\"}"), "reboot");
	expect_error(request(c, "{\"cmd\":\"continue\"}"),
		     "continue: pause-before-switchover is off");
	expect_error(request(c, "{\"cmd\":\"cancel\"}"), "no migration");
	expect_error(request(c, "{\"cmd\":\"migrate\"}"), "'uri'");
	expect_error(request(c, "{\"cmd\":\"incoming\",\"uri\":[]}"), "'uri'");
	expect_error(request(c, "{\"cmd\":\"incoming\",\"uri\":\"carrier-pigeon:x\"}"), "'uri'");
	/* the connection goes on */
	r = request(c, "{\"cmd\":\"query\"}");
	expect_ok(r);
	json_object_put(r);
}

/* Well-formed UTF-8 (RFC 3629), checked independently of the server's code. */
static bool utf8_ok(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		uint32_t cp;
		int n, i;

		if (*p < 0x80) {
			p++;
			continue;
		}
		n = (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 : (*p & 0xf8) == 0xf0 ? 4 : 0;
		if (!n)
			return false;
		cp = *p & (0x7f >> n);
		for (i = 1; i < n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i] & 0x3f);
		}
		if (cp < (n == 2   ? 0x80u
			  : n == 3 ? 0x800u
				   : 0x10000u) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		p += n;
	}
	return true;
}

/* Send @req raw (a newline is added); the reply line, checked to be UTF-8. */
static struct json_object *request_utf8(struct client *c, const char *req)
{
	struct json_object *o;
	char *line;

	client_send(c, req, strlen(req));
	client_send(c, "\n", 1);
	line = client_line(c);
	assert_non_null(line);
	if (!utf8_ok(line))
		fail_msg("reply is not UTF-8: %s", line);
	o = parse(line);
	free(line);
	return o;
}

static void test_utf8(void **state)
{
	static const char *const bad[][2] = {
	    {"{\"cmd\":\"\xff\xfe\"}", "(byte 8)"},
	    {"{\"cmd\":\"q\xc3\"}", "(byte 9)"},	    /* cut short */
	    {"{\"cmd\":\"\xc0\xaf\"}", "(byte 8)"},	    /* overlong '/' */
	    {"{\"cmd\":\"\xed\xa0\x80\"}", "(byte 8)"},	    /* a surrogate */
	    {"{\"cmd\":\"\xf4\x90\x80\x80\"}", "(byte 8)"}, /* above U+10FFFF */
	    {"{\"cmd\":\"query\",\"id\":\"\x80\"}", "(byte 21)"},
	};
	struct fixture *f = *state;
	char req[256], want[128], *p;
	struct json_object *r;
	struct client *c;
	size_t i;

	f->c[0] = c = client_open(f->path);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = request_utf8(c, bad[i][0]);
		expect_error(json_object_get(r), "request is not valid UTF-8");
		expect_error(r, bad[i][1]);
	}

	/* 30 euro signs (90 bytes): the message keeps 21, whole */
	p = req + sprintf(req, "{\"cmd\":\"");
	for (i = 0; i < 30; i++)
		p += sprintf(p, "\xe2\x82\xac");
	sprintf(p, "\"}");
	p = want + sprintf(want, "unknown command '");
	for (i = 0; i < 21; i++)
		p += sprintf(p, "\xe2\x82\xac");
	sprintf(p, "'");
	expect_error(request_utf8(c, req), want);

	/* well-formed text beyond ASCII is fine, and comes back as it was */
	r = request_utf8(c, "{\"cmd\":\"query\",\"id\":\"caf\xc3\xa9 \xf0\x9f\x90\xa6\"}");
	expect_ok(r);
	assert_string_equal(get_str(r, "id"), "caf\xc3\xa9 \xf0\x9f\x90\xa6");
	json_object_put(r);
	/* an escaped lone surrogate never comes back as an ill-formed byte */
	r = request_utf8(c, "{\"cmd\":\"query\",\"id\":\"\\ud800\"}");
	json_object_put(r);
}

static void test_long_lines(void **state)
{
	struct fixture *f = *state;
	size_t big = 60000, huge = 70000;
	struct json_object *r;
	struct client *c;
	char *req;

	/* Under the limit: fine. */
	f->c[0] = c = client_open(f->path);
	req = malloc(huge + 1);
	assert_non_null(req);
	snprintf(req, huge, "{\"cmd\":\"query\",\"pad\":\"");
	memset(req + strlen(req), 'a', big - 2 - strlen(req));
	memcpy(req + big - 2, "\"}", 3);
	r = request(c, req);
	expect_ok(r);
	json_object_put(r);

	/* Over it: refused, and the connection closed. */
	memset(req, 'a', huge);
	client_send(c, req, huge);
	free(req);
	req = client_line(c);
	assert_non_null(req);
	expect_error(parse(req), "longer than 65536");
	free(req);
	assert_null(client_line(c));

	/* The server goes on. */
	f->c[1] = client_open(f->path);
	r = request(f->c[1], "{\"cmd\":\"query\"}");
	expect_ok(r);
	json_object_put(r);
}

/* ---- the socket ------------------------------------------------------------ */

static void test_socket_file(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct tern_session *other;
	struct tern_error err = {0};
	void *ram;
	struct stat st;
	int fd;

	assert_int_equal(lstat(f->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);

	assert_rc_equal(tern_mgmt_listen(f->s, f->path2, &err), -EBUSY);

	other = new_session(&ram, f->ram_len);
	/* a live server */
	memset(&err, 0, sizeof(err));
	assert_rc_equal(tern_mgmt_listen(other, f->path, &err), -EADDRINUSE);
	assert_non_null(strstr(err.msg, "another process is listening there"));
	assert_int_equal(lstat(f->path, &st), 0); /* still the live server's */
	/* not a socket */
	fd = open(f->path2, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	memset(&err, 0, sizeof(err));
	assert_rc_equal(tern_mgmt_listen(other, f->path2, &err), -EEXIST);
	assert_non_null(strstr(err.msg, "not a socket"));
	unlink(f->path2);
	/* a stale socket is replaced */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path2);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	assert_rc_equal(tern_mgmt_listen(other, f->path2, &err), 0);
	assert_int_equal(lstat(f->path2, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	tern_mgmt_close(other);
	assert_int_equal(lstat(f->path2, &st), -1);
	tern_mgmt_close(other); /* twice: a no-op */
	tern_session_free(other);
	munmap(ram, f->ram_len);
}

static void test_two_clients(void **state)
{
	const char *set = "{\"cmd\":\"set\",\"name\":\"downtime-limit\",\"value\":500}\n";
	const char *query = "{\"cmd\":\"query\"}\n";
	struct fixture *f = *state;
	struct json_object *r;
	char *line;

	f->c[0] = client_open(f->path);
	f->c[1] = client_open(f->path);
	/* Both requests are in flight before either reply is read. */
	client_send(f->c[0], set, strlen(set));
	client_send(f->c[1], query, strlen(query));
	line = client_line(f->c[1]);
	assert_non_null(line);
	r = parse(line);
	free(line);
	expect_ok(r);
	json_object_put(r);
	r = request(f->c[1], "{\"cmd\":\"query\"}");
	expect_ok(r);
	json_object_put(r);
	r = request(f->c[0], "{\"cmd\":\"query\"}");
	/* the first reply on c[0] was the set's */
	assert_true(json_object_object_get_ex(get(r, "return"), "name", NULL));
	assert_int_equal(json_object_get_uint64(get(get(r, "return"), "new")), 500);
	json_object_put(r);
	line = client_line(f->c[0]);
	assert_non_null(line);
	r = parse(line);
	free(line);
	assert_string_equal(get_str(get(r, "return"), "status"), "none");
	json_object_put(r);
}

/* ---- idle clients and refusals ---------------------------------------------- */

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void test_idle_clients(void **state)
{
	struct fixture *f = *state;
	struct pollfd p = {.events = POLLIN};
	struct client *idle, *busy, *watcher;
	struct json_object *r;
	uint64_t t0;
	char *line;
	int i;

	mgmt_set_idle_ms(f->s, 2000);
	f->c[1] = watcher = client_open(f->path);
	r = request(watcher, "{\"cmd\":\"subscribe\"}");
	expect_ok(r);
	json_object_put(r);
	t0 = mono_ms();
	f->c[0] = idle = client_open(f->path);
	busy = client_open(f->path);

	/* The idle one is told why and closed; the one that keeps asking is not. */
	p.fd = idle->fd;
	for (i = 0; !poll(&p, 1, 100); i++) {
		assert_true(i < HANG_GUARD_MS / 100);
		r = request(busy, "{\"cmd\":\"query\"}");
		expect_ok(r);
		json_object_put(r);
	}
	assert_true(mono_ms() - t0 >= 1990); /* not before its time */
	line = client_line(idle);
	assert_non_null(line);
	expect_error(parse(line), "idle for 2 s: closing");
	free(line);
	assert_null(client_line(idle));
	r = request(busy, "{\"cmd\":\"query\"}");
	expect_ok(r);
	json_object_put(r);
	client_close(busy);

	/* A watcher waits for events, not to be asked: still served after
	 * more than the bound without a request. */
	sleep_ms(2500);
	r = request(watcher, "{\"cmd\":\"query\"}");
	expect_ok(r);
	json_object_put(r);
}

static void test_refused_reads_why(void **state)
{
	static const char query[] = "{\"cmd\":\"query\"}\n";
	struct fixture *f = *state;
	struct pollfd p = {.events = POLLIN};
	struct client *cl[16], *extra;
	struct json_object *r;
	char *line;
	int i;

	for (i = 0; i < 16; i++) {
		cl[i] = client_open(f->path);
		r = request(cl[i], "{\"cmd\":\"query\"}");
		expect_ok(r);
		json_object_put(r);
	}
	/* One more: its request, written as ternctl writes it, after the
	 * server refused it, still goes through, and it reads why. */
	for (i = 0; i < 3; i++) {
		extra = client_open(f->path);
		p.fd = extra->fd;
		assert_int_equal(poll(&p, 1, HANG_GUARD_MS), 1);
		client_send(extra, query, sizeof(query) - 1);
		line = client_line(extra);
		assert_non_null(line);
		expect_error(parse(line), "too many management clients");
		free(line);
		assert_null(client_line(extra));
		client_close(extra);
	}
	for (i = 0; i < 16; i++) {
		r = request(cl[i], "{\"cmd\":\"query\"}");
		expect_ok(r);
		json_object_put(r);
		client_close(cl[i]);
	}
}

/* ---- events ------------------------------------------------------------------ */

static void test_subscribe_cancel(void **state)
{
	struct fixture *f = *state;
	struct json_object *r, *ev;
	char req[200], uri[128];

	f->c[0] = client_open(f->path);
	f->c[1] = client_open(f->path);
	r = request(f->c[0], "{\"cmd\":\"subscribe\"}");
	expect_ok(r);
	json_object_put(r);

	r = request(f->c[1], "{\"cmd\":\"incoming\",\"uri\":\"tcp:127.0.0.1:0\"}");
	expect_ok(r);
	snprintf(uri, sizeof(uri), "%s", get_str(get(r, "return"), "uri"));
	assert_non_null(strstr(uri, "tcp:127.0.0.1:"));
	json_object_put(r);
	ev = wait_event(f->c[0], "state", "setup");
	assert_string_equal(get_str(ev, "from"), "none");
	json_object_put(ev);

	/* A second start is refused with a reason (the state's, not the URI's). */
	snprintf(req, sizeof(req), "{\"cmd\":\"incoming\",\"uri\":\"%s\"}", uri);
	expect_error(request(f->c[1], req), "incoming: this session has run an incoming migration");

	expect_ok(r = request(f->c[1], "{\"cmd\":\"cancel\"}"));
	json_object_put(r);
	ev = wait_event(f->c[0], "state", "failed");
	json_object_put(ev);
	assert_int_equal(tern_wait(f->s, -1), TERN_STATUS_FAILED);
	/* the subscriber still answers requests */
	r = request(f->c[0], "{\"cmd\":\"query\"}");
	assert_string_equal(get_str(get(r, "return"), "status"), "failed");
	json_object_put(r);
	/* A destination does not listen again: its RAM holds a partial load. */
	expect_error(request(f->c[1], "{\"cmd\":\"incoming\",\"uri\":\"tcp:127.0.0.1:0\"}"),
		     "only a failed or cancelled outgoing migration may start again");
	expect_error(request(f->c[1], "{\"cmd\":\"migrate\",\"uri\":\"tcp:127.0.0.1:1\"}"),
		     "this session has run an incoming migration");
}

/* The next state event's "from" and "to" must be @from and @to; consumes it. */
static void expect_state(struct client *c, const char *from, const char *to)
{
	struct json_object *ev = wait_event(c, "state", NULL);

	if (strcmp(get_str(ev, "from"), from) || strcmp(get_str(ev, "to"), to))
		fail_msg("state event %s, want %s -> %s", json_object_to_json_string(ev), from, to);
	json_object_put(ev);
}

/*
 * Migrate again after failed and after cancelled, through the socket, as an
 * operator would: each attempt starts from none with fresh figures, the
 * parameters set in between apply, and the last one completes with the RAM
 * moved. Refused: a second start while one runs, and any start after the
 * completion. A refused URI leaves the last attempt's status and error.
 */
static void test_migrate_again(void **state)
{
	struct fixture *f = *state;
	struct tern_error err = {0};
	struct json_object *r, *ret;
	char req[300], uri[128], gone[160];
	int lfd, fds;

	memset(f->ram, 0x3c, f->ram_len / 2);
	f->c[0] = client_open(f->path);
	json_object_put(request(f->c[0], "{\"cmd\":\"subscribe\"}"));
	fds = count_dir("/proc/self/fd");

	/* 1: nobody listens there: failed at once, the reason kept */
	snprintf(gone, sizeof(gone), "%s.gone", f->path);
	unlink(gone);
	snprintf(req, sizeof(req), "{\"cmd\":\"migrate\",\"uri\":\"unix:%s\"}", gone);
	expect_ok(r = request(f->c[0], req));
	json_object_put(r);
	expect_state(f->c[0], "none", "setup");
	expect_state(f->c[0], "setup", "failed");
	assert_int_equal(tern_wait(f->s, HANG_GUARD_MS), TERN_STATUS_FAILED);
	r = request(f->c[0], "{\"cmd\":\"query\"}");
	assert_string_equal(get_str(get(r, "return"), "status"), "failed");
	assert_non_null(strstr(get_str(get(r, "return"), "error"), gone));
	json_object_put(r);
	/* a bad URI is refused and changes nothing */
	expect_error(request(f->c[0], "{\"cmd\":\"migrate\",\"uri\":\"bogus:1\"}"), "'uri'");
	r = request(f->c[0], "{\"cmd\":\"query\"}");
	assert_string_equal(get_str(get(r, "return"), "status"), "failed");
	assert_non_null(strstr(get_str(get(r, "return"), "error"), gone));
	json_object_put(r);

	/* 2: a destination that never answers: stuck in setup, refused a
	 * second start, then cancelled */
	start_stuck_migration(f, &lfd);
	expect_state(f->c[0], "none", "setup");
	r = request(f->c[0], "{\"cmd\":\"query\"}");
	assert_string_equal(get_str(get(r, "return"), "status"), "setup");
	assert_string_equal(get_str(get(r, "return"), "error"), "");
	json_object_put(r);
	expect_error(request(f->c[0], req), "migrate: a migration is running (setup)");
	assert_rc_equal(tern_migrate(f->s, "tcp:127.0.0.1:1", &err), -EBUSY);
	expect_ok(r = request(f->c[0], "{\"cmd\":\"cancel\"}"));
	json_object_put(r);
	expect_state(f->c[0], "setup", "cancelling");
	expect_state(f->c[0], "cancelling", "cancelled");
	assert_int_equal(tern_wait(f->s, HANG_GUARD_MS), TERN_STATUS_CANCELLED);
	close(lfd);
	unlink(f->path2);
	/* the attempts left no descriptor behind */
	assert_int_equal(count_dir("/proc/self/fd"), fds);

	/* start-only parameters may change between attempts */
	expect_ok(r = request(f->c[0], "{\"cmd\":\"set\",\"name\":\"multifd-channels\","
				       "\"value\":3}"));
	json_object_put(r);
	expect_ok(r = request(f->c[0], "{\"cmd\":\"caps\",\"name\":\"verify-ram\","
				       "\"on\":true}"));
	json_object_put(r);

	/* 3: a real destination: completed, the RAM moved, fresh figures */
	f->peer = new_session(&f->peer_ram, f->ram_len);
	assert_rc_equal(tern_mgmt_listen(f->peer, f->path2, &err), 0);
	f->c[1] = client_open(f->path2);
	r = request(f->c[1], "{\"cmd\":\"incoming\",\"uri\":\"tcp:127.0.0.1:0\"}");
	expect_ok(r);
	snprintf(uri, sizeof(uri), "%s", get_str(get(r, "return"), "uri"));
	json_object_put(r);
	snprintf(req, sizeof(req), "{\"cmd\":\"migrate\",\"uri\":\"%s\"}", uri);
	expect_ok(r = request(f->c[0], req));
	json_object_put(r);
	expect_state(f->c[0], "none", "setup");
	expect_state(f->c[0], "setup", "active");
	json_object_put(wait_event(f->c[0], "state", "completed"));
	assert_int_equal(tern_wait(f->s, HANG_GUARD_MS), TERN_STATUS_COMPLETED);
	assert_int_equal(tern_wait(f->peer, HANG_GUARD_MS), TERN_STATUS_COMPLETED);
	assert_memory_equal(f->ram, f->peer_ram, f->ram_len);
	assert_rc_equal(tern_incoming_uri(f->s, uri, sizeof(uri)), 0);
	assert_non_null(strstr(uri, "tcp:127.0.0.1:"));
	r = request(f->c[0], "{\"cmd\":\"query\"}");
	ret = get(r, "return");
	assert_string_equal(get_str(ret, "status"), "completed");
	assert_string_equal(get_str(ret, "error"), "");
	assert_true(json_object_get_boolean(get(ret, "verified")));
	assert_int_equal(json_object_get_uint64(get(ret, "channels")), 3);
	/* every page once (and pages dirtied since): not the sum of three attempts */
	assert_true(json_object_get_uint64(get(ret, "normal_pages")) +
			json_object_get_uint64(get(ret, "zero_pages")) <
		    2 * NPAGES);
	assert_true(json_object_get_uint64(get(ret, "rounds")) >= 2);
	json_object_put(r);

	/* after a completion the guest belongs to the destination */
	snprintf(req, sizeof(req), "{\"cmd\":\"migrate\",\"uri\":\"unix:%s\"}", gone);
	expect_error(request(f->c[0], req), "the migration completed");
	memset(&err, 0, sizeof(err));
	assert_rc_equal(tern_migrate(f->s, uri, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "completed"));
}

/* A whole loopback migration started through the socket: state and round
 * events on the source's server, state events on the destination's. */
static void test_migrate_events(void **state)
{
	struct fixture *f = *state;
	struct tern_error err = {0};
	struct json_object *r, *ev;
	char req[200], uri[128];

	f->peer = new_session(&f->peer_ram, f->ram_len);
	memset(f->ram, 0x5a, f->ram_len / 2);
	assert_rc_equal(tern_mgmt_listen(f->peer, f->path2, &err), 0);
	f->c[0] = client_open(f->path);
	f->c[1] = client_open(f->path2);
	json_object_put(request(f->c[0], "{\"cmd\":\"subscribe\"}"));
	json_object_put(request(f->c[1], "{\"cmd\":\"subscribe\"}"));

	r = request(f->c[1], "{\"cmd\":\"incoming\",\"uri\":\"tcp:127.0.0.1:0\"}");
	expect_ok(r);
	snprintf(uri, sizeof(uri), "%s", get_str(get(r, "return"), "uri"));
	json_object_put(r);
	snprintf(req, sizeof(req), "{\"cmd\":\"migrate\",\"uri\":\"%s\"}", uri);
	r = request(f->c[0], req);
	expect_ok(r);
	json_object_put(r);

	json_object_put(wait_event(f->c[0], "state", "setup"));
	json_object_put(wait_event(f->c[0], "state", "active"));
	ev = wait_event(f->c[0], "round", NULL);
	assert_int_equal(json_object_get_uint64(get(ev, "round")), 1);
	/* round 1 sends all RAM, whatever the log reported */
	get(ev, "dirty_pages");
	get(ev, "dirty_pages_rate");
	assert_int_equal(json_object_get_uint64(get(ev, "ram_remaining")), f->ram_len);
	/* auto-converge is off: never throttled */
	assert_int_equal(json_object_get_uint64(get(ev, "cpu_throttle_percent")), 0);
	json_object_put(ev);
	json_object_put(wait_event(f->c[0], "state", "device"));
	json_object_put(wait_event(f->c[0], "state", "completed"));
	json_object_put(wait_event(f->c[1], "state", "completed"));
	assert_int_equal(tern_wait(f->s, -1), TERN_STATUS_COMPLETED);
	assert_int_equal(tern_wait(f->peer, -1), TERN_STATUS_COMPLETED);
	assert_memory_equal(f->ram, f->peer_ram, f->ram_len);

	r = request(f->c[0], "{\"cmd\":\"query\"}");
	assert_string_equal(get_str(get(r, "return"), "status"), "completed");
	assert_true(json_object_get_uint64(get(get(r, "return"), "rounds")) >= 2);
	json_object_put(r);
	expect_error(request(f->c[0], "{\"cmd\":\"cancel\"}"), "no migration");
}

/* pause-before-switchover through the socket: the source stops in
 * pre-switchover (the state event says so, query too) until `continue`. */
static void test_pause_continue(void **state)
{
	struct fixture *f = *state;
	struct tern_error err = {0};
	struct json_object *r;
	char req[200], uri[128];

	f->peer = new_session(&f->peer_ram, f->ram_len);
	memset(f->ram, 0xa5, f->ram_len / 2);
	assert_rc_equal(tern_mgmt_listen(f->peer, f->path2, &err), 0);
	f->c[0] = client_open(f->path);
	f->c[1] = client_open(f->path2);
	json_object_put(request(f->c[0], "{\"cmd\":\"subscribe\"}"));
	r = request(f->c[0], "{\"cmd\":\"caps\",\"name\":\"pause-before-switchover\",\"on\":true}");
	expect_ok(r);
	json_object_put(r);

	r = request(f->c[1], "{\"cmd\":\"incoming\",\"uri\":\"tcp:127.0.0.1:0\"}");
	expect_ok(r);
	snprintf(uri, sizeof(uri), "%s", get_str(get(r, "return"), "uri"));
	json_object_put(r);
	snprintf(req, sizeof(req), "{\"cmd\":\"migrate\",\"uri\":\"%s\"}", uri);
	r = request(f->c[0], req);
	expect_ok(r);
	json_object_put(r);

	json_object_put(wait_event(f->c[0], "state", "pre-switchover"));
	/* it waits: the status stays, the destination has not completed */
	r = request(f->c[0], "{\"cmd\":\"query\"}");
	assert_string_equal(get_str(get(r, "return"), "status"), "pre-switchover");
	json_object_put(r);
	assert_int_equal(tern_wait(f->s, 200), TERN_STATUS_PRE_SWITCHOVER);
	r = request(f->c[1], "{\"cmd\":\"query\"}");
	assert_string_not_equal(get_str(get(r, "return"), "status"), "completed");
	json_object_put(r);

	r = request(f->c[0], "{\"cmd\":\"continue\",\"id\":3}");
	expect_ok(r);
	assert_int_equal(json_object_get_int(get(r, "id")), 3);
	json_object_put(r);
	json_object_put(wait_event(f->c[0], "state", "completed"));
	assert_int_equal(tern_wait(f->s, HANG_GUARD_MS), TERN_STATUS_COMPLETED);
	assert_int_equal(tern_wait(f->peer, HANG_GUARD_MS), TERN_STATUS_COMPLETED);
	assert_memory_equal(f->ram, f->peer_ram, f->ram_len);
	r = request(f->c[0], "{\"cmd\":\"query\"}");
	assert_true(json_object_get_uint64(get(get(r, "return"), "downtime_wait_us")) >= 200000);
	json_object_put(r);
	expect_error(request(f->c[0], "{\"cmd\":\"continue\"}"),
		     "continue: the migration is completed, not pre-switchover");
}

/* A subscriber that does not read: the notifier never waits, the events that
 * do not fit are dropped, and the count it is told adds up. */
static void test_slow_subscriber(void **state)
{
	enum { N = 20000 };
	struct fixture *f = *state;
	uint64_t got = 0, dropped = 0;
	struct json_object *r;
	char *line;
	int i;

	f->c[0] = client_open(f->path);
	r = request(f->c[0], "{\"cmd\":\"subscribe\"}");
	expect_ok(r);
	json_object_put(r);
	/* Far more than the queue, the server's output bound and the socket
	 * buffer hold together; posted from this thread, which must not block. */
	for (i = 0; i < N; i++)
		observers_state(f->s, TERN_STATUS_SETUP, TERN_STATUS_ACTIVE);

	/* Every event arrives or is counted as dropped: read until they add up
	 * (a lost one would hang here, and the read's guard fails the test). */
	while (got + dropped < N) {
		line = client_line(f->c[0]);
		assert_non_null(line);
		r = parse(line);
		free(line);
		if (!strcmp(get_str(r, "event"), "dropped"))
			dropped += json_object_get_uint64(get(r, "count"));
		else if (!strcmp(get_str(r, "event"), "state"))
			got++;
		else
			fail_msg("unexpected event %s", json_object_to_json_string(r));
		json_object_put(r);
	}
	assert_true(dropped > 0);
	/* Nothing more: the next line is the reply. */
	client_send(f->c[0], "{\"cmd\":\"query\"}\n", 16);
	line = client_line(f->c[0]);
	assert_non_null(line);
	r = parse(line);
	free(line);
	expect_ok(r);
	json_object_put(r);
}

/* ---- teardown ------------------------------------------------------------------ */

static void test_free_stops_server(void **state)
{
	struct fixture *f = *state;
	int fds, threads;
	struct tern_error err = {0};
	struct tern_session *s;
	struct client *c;
	struct stat st;
	void *ram;

	fds = count_dir("/proc/self/fd");
	threads = count_dir("/proc/self/task");
	s = new_session(&ram, f->ram_len);
	assert_rc_equal(tern_mgmt_listen(s, f->path2, &err), 0);
	c = client_open(f->path2);
	json_object_put(request(c, "{\"cmd\":\"subscribe\"}"));
	assert_true(count_dir("/proc/self/task") > threads);

	tern_session_free(s);
	assert_null(client_line(c)); /* the server hung up */
	client_close(c);
	assert_int_equal(lstat(f->path2, &st), -1);
	munmap(ram, f->ram_len);
	assert_int_equal(count_dir("/proc/self/fd"), fds);
	assert_int_equal(count_dir("/proc/self/task"), threads);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_query, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_set, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_set_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_caps, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_params, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_caps_list, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_set_new_params, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_set_new_params_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_recover_resume_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_continue_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_utf8, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_long_lines, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_socket_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_two_clients, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_idle_clients, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refused_reads_why, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_subscribe_cancel, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrate_events, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrate_again, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pause_continue, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_slow_subscriber, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_free_stops_server, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
