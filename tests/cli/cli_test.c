/* SPDX-License-Identifier: MIT */
/*
 * ternctl against real servers: runs the built ternctl binary (fork/exec,
 * stdout, stderr and exit code captured) against tests/cli/cli_server.c's
 * sessions, and against fake servers played by this program for what a
 * real one does not do (never answer, events before the reply, a reply
 * that is not one).
 *
 * usage: cli_test TERNCTL CLI_SERVER
 *
 * Nothing is timed: waits have a generous guard that only catches a hang.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "tests/cmocka_compat.h"

#define HANG_GUARD_MS 60000
#define OUT_MAX (1 << 20)
#define NPAIRS 3

static const char *ternctl_bin, *server_bin;
static char dir[64];
static pid_t server_pid;
static int server_stdin = -1;

/* One ternctl run. */
struct run {
	pid_t pid;
	int out_fd, err_fd;
	char out[OUT_MAX], err[OUT_MAX];
	size_t out_len, err_len;
	int code; /* exit code; 128 + signal when killed */
};

static char *sock(char *buf, size_t len, const char *role, int pair)
{
	snprintf(buf, len, "%s/%s%d.sock", dir, role, pair);
	return buf;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Start ternctl with @argv (NULL-terminated, without argv[0]). */
static void run_start(struct run *r, const char *const *argv)
{
	const char *args[32];
	int out[2], err[2];
	size_t n;

	args[0] = ternctl_bin;
	for (n = 0; argv[n]; n++) {
		assert_true(n + 2 < sizeof(args) / sizeof(args[0]));
		args[n + 1] = argv[n];
	}
	args[n + 1] = NULL;
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	assert_int_equal(pipe2(err, O_CLOEXEC), 0);
	r->out_len = r->err_len = 0;
	r->out[0] = r->err[0] = '\0';
	r->pid = fork();
	assert_true(r->pid >= 0);
	if (!r->pid) {
		dup2(out[1], STDOUT_FILENO);
		dup2(err[1], STDERR_FILENO);
		execv(ternctl_bin, (char *const *)args);
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	r->out_fd = out[0];
	r->err_fd = err[0];
}

/* Read what is there; false once both pipes are closed. */
static bool run_pump(struct run *r, int timeout_ms)
{
	struct pollfd pfd[2] = {{r->out_fd, POLLIN, 0}, {r->err_fd, POLLIN, 0}};
	int i, n;

	if (r->out_fd < 0 && r->err_fd < 0)
		return false;
	n = poll(pfd, 2, timeout_ms);
	assert_true(n >= 0 || errno == EINTR);
	for (i = 0; n > 0 && i < 2; i++) {
		int *fd = i ? &r->err_fd : &r->out_fd;
		char *buf = i ? r->err : r->out;
		size_t *len = i ? &r->err_len : &r->out_len;
		ssize_t got;

		if (!pfd[i].revents)
			continue;
		got = read(*fd, buf + *len, OUT_MAX - 1 - *len);
		if (got <= 0) {
			close(*fd);
			*fd = -1;
			pfd[i].fd = -1;
		} else {
			*len += (size_t)got;
			buf[*len] = '\0';
		}
	}
	return r->out_fd >= 0 || r->err_fd >= 0;
}

/* Wait until stdout holds a whole line (the first progress line of watch). */
static void run_wait_line(struct run *r)
{
	int64_t end = now_ms() + HANG_GUARD_MS;

	while (!strchr(r->out, '\n')) {
		assert_true(now_ms() < end);
		if (!run_pump(r, 100))
			fail_msg("ternctl ended before printing a line: %s", r->err);
	}
}

static void run_finish(struct run *r)
{
	int64_t end = now_ms() + HANG_GUARD_MS;
	int status;

	while (run_pump(r, 100)) {
		if (now_ms() > end) {
			kill(r->pid, SIGKILL);
			fail_msg("ternctl hangs; stdout: %s; stderr: %s", r->out, r->err);
		}
	}
	assert_int_equal(waitpid(r->pid, &status, 0), r->pid);
	r->code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static struct run *run_v(const char *const *argv)
{
	struct run *r = calloc(1, sizeof(*r));

	assert_non_null(r);
	run_start(r, argv);
	run_finish(r);
	return r;
}

#define CTL(...) run_v((const char *const[]){__VA_ARGS__, NULL})

/* @r ended with @code; on a mismatch, show what it printed. */
static void expect_code(struct run *r, int code)
{
	if (r->code != code)
		fail_msg("ternctl exited %d, expected %d\nstdout: %s\nstderr: %s", r->code, code,
			 r->out, r->err);
}

static struct json_object *parse_out(struct run *r)
{
	struct json_object *o = json_tokener_parse(r->out);

	if (!o || !json_object_is_type(o, json_type_object))
		fail_msg("not a JSON object: %s", r->out);
	/* exactly one line */
	assert_non_null(strchr(r->out, '\n'));
	assert_true(strchr(r->out, '\n') == r->out + r->out_len - 1);
	return o;
}

static struct json_object *get(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	if (!json_object_object_get_ex(o, key, &v))
		fail_msg("no field '%s' in %s", key, json_object_to_json_string(o));
	return v;
}

/* ---- fixture: the real servers ------------------------------------------------ */

static int group_setup(void **state)
{
	int in[2], out[2];
	char buf[16] = "", n[4];
	FILE *f;

	snprintf(dir, sizeof(dir), "/tmp/ternctl-test.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC))
		return -1;
	snprintf(n, sizeof(n), "%d", NPAIRS);
	server_pid = fork();
	if (server_pid < 0)
		return -1;
	if (!server_pid) {
		dup2(in[0], STDIN_FILENO);
		dup2(out[1], STDOUT_FILENO);
		execl(server_bin, server_bin, dir, n, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	server_stdin = in[1];
	f = fdopen(out[0], "r");
	if (!f || !fgets(buf, sizeof(buf), f) || strcmp(buf, "ready\n")) {
		fprintf(stderr, "cli_server did not start\n");
		return -1;
	}
	fclose(f);
	return 0;
}

static int group_teardown(void **state)
{
	int status = -1;

	if (server_stdin >= 0)
		close(server_stdin);
	if (server_pid > 0)
		waitpid(server_pid, &status, 0);
	rmdir(dir);
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "cli_server ended badly (status %#x)\n", status);
		return -1;
	}
	return 0;
}

/* ---- usage and reachability ----------------------------------------------------- */

static void test_usage(void **state)
{
	char s[108];
	struct run *r;

	sock(s, sizeof(s), "src", 0);
	r = CTL("-s", s, "frobnicate");
	expect_code(r, 2);
	assert_str_contains(r->err, "ternctl: ");
	assert_str_contains(r->err, "unknown command 'frobnicate'");
	free(r);

	r = CTL("-s", s);
	expect_code(r, 2);
	assert_str_contains(r->err, "no command");
	free(r);

	r = CTL("query");
	expect_code(r, 2);
	assert_str_contains(r->err, "-s PATH");
	free(r);

	r = CTL("-s", s, "set", "max-bandwidth");
	expect_code(r, 2);
	assert_str_contains(r->err, "set NAME VALUE");
	free(r);

	r = CTL("-s", s, "query", "extra");
	expect_code(r, 2);
	free(r);

	r = CTL("-s", s, "caps", "verify-ram");
	expect_code(r, 2);
	free(r);

	r = CTL("-s", s, "caps", "verify-ram", "maybe");
	expect_code(r, 2);
	assert_str_contains(r->err, "'maybe'");
	free(r);

	r = CTL("-s", s, "--bogus", "query");
	expect_code(r, 2);
	assert_str_contains(r->err, "--bogus");
	free(r);

	r = CTL("-s", s, "watch", "--interval", "0");
	expect_code(r, 2);
	free(r);

	r = CTL("--help");
	expect_code(r, 0);
	assert_str_contains(r->out, "usage: ternctl");
	free(r);
}

static void test_unreachable(void **state)
{
	char s[108];
	struct run *r;

	snprintf(s, sizeof(s), "%s/nobody-here.sock", dir);
	r = CTL("-s", s, "query");
	expect_code(r, 2);
	assert_str_contains(r->err, s);
	assert_str_contains(r->err, strerror(ENOENT));
	assert_int_equal(r->out_len, 0);
	free(r);
}

/* ---- against the real server ---------------------------------------------------- */

static void test_query(void **state)
{
	struct json_object *o;
	char s[108];
	struct run *r;

	sock(s, sizeof(s), "src", 0);
	r = CTL("-s", s, "query");
	expect_code(r, 0);
	assert_str_contains(r->out, "status");
	assert_str_contains(r->out, "none");
	assert_str_contains(r->out, "1.00 MiB total");
	free(r);

	r = CTL("-s", s, "--json", "query");
	expect_code(r, 0);
	o = parse_out(r);
	assert_string_equal(json_object_get_string(get(o, "status")), "none");
	assert_int_equal(json_object_get_int64(get(o, "ram_total")), 1 << 20);
	json_object_put(o);
	free(r);

	/* --json after the command works as well */
	r = CTL("-s", s, "query", "--json");
	expect_code(r, 0);
	json_object_put(parse_out(r));
	free(r);
}

static uint64_t param(const char *s, const char *name)
{
	struct json_object *o;
	struct run *r;
	uint64_t v;

	r = CTL("-s", s, "--json", "params");
	expect_code(r, 0);
	o = parse_out(r);
	v = json_object_get_uint64(get(o, name));
	json_object_put(o);
	free(r);
	return v;
}

static void test_set(void **state)
{
	struct json_object *o;
	char s[108];
	struct run *r;

	sock(s, sizeof(s), "src", 0);
	r = CTL("-s", s, "set", "max-bandwidth", "1.5GiB/s");
	expect_code(r, 0);
	assert_str_contains(r->out, "max-bandwidth: unlimited (0) -> ");
	assert_str_contains(r->out, "(1610612736)");
	free(r);
	assert_uint_equal(param(s, "max-bandwidth"), 1610612736);

	r = CTL("-s", s, "--json", "set", "max-bandwidth", "1gbit");
	expect_code(r, 0);
	o = parse_out(r);
	assert_uint_equal(json_object_get_uint64(get(o, "old")), 1610612736);
	assert_uint_equal(json_object_get_uint64(get(o, "new")), 125000000);
	json_object_put(o);
	free(r);

	r = CTL("-s", s, "set", "downtime-limit", "1.5s");
	expect_code(r, 0);
	free(r);
	assert_uint_equal(param(s, "downtime-limit"), 1500);

	r = CTL("-s", s, "set", "xbzrle-cache-size", "128MiB");
	expect_code(r, 0);
	free(r);
	assert_uint_equal(param(s, "xbzrle-cache-size"), 128 << 20);

	r = CTL("-s", s, "set", "cpu-throttle-initial", "30%");
	expect_code(r, 0);
	free(r);
	assert_uint_equal(param(s, "cpu-throttle-initial"), 30);

	r = CTL("-s", s, "set", "migration-timeout", "2m");
	expect_code(r, 0);
	free(r);
	assert_uint_equal(param(s, "migration-timeout"), 120);
	r = CTL("-s", s, "set", "migration-timeout", "0");
	expect_code(r, 0);
	free(r);

	/* a named parameter travels as a string */
	r = CTL("-s", s, "set", "migration-timeout-policy", "force");
	expect_code(r, 0);
	assert_str_contains(r->out, "cancel -> force");
	free(r);
	r = CTL("-s", s, "--json", "params");
	expect_code(r, 0);
	o = parse_out(r);
	assert_string_equal(json_object_get_string(get(o, "migration-timeout-policy")), "force");
	json_object_put(o);
	free(r);
	r = CTL("-s", s, "set", "migration-timeout-policy", "cancel");
	expect_code(r, 0);
	free(r);

	/* the human list shows units */
	r = CTL("-s", s, "params");
	expect_code(r, 0);
	assert_str_contains(r->out, "downtime-limit");
	assert_str_contains(r->out, "1.50 s (1500 ms)");
	assert_str_contains(r->out, "128.00 MiB (134217728)");
	free(r);
}

static void test_set_refused(void **state)
{
	char s[108];
	struct run *r;

	sock(s, sizeof(s), "src", 0);
	/* the server's range check, in the server's words */
	r = CTL("-s", s, "set", "downtime-limit", "0");
	expect_code(r, 1);
	assert_true(!strncmp(r->err, "ternctl: set: ", 14));
	assert_str_contains(r->err, "downtime-limit");
	assert_str_contains(r->err, "outside");
	assert_int_equal(r->out_len, 0);
	free(r);

	r = CTL("-s", s, "set", "no-such-parameter", "1");
	expect_code(r, 1);
	assert_str_contains(r->err, "no-such-parameter");
	free(r);

	r = CTL("-s", s, "set", "multifd-compression", "carrier-pigeon");
	expect_code(r, 1);
	assert_str_contains(r->err, "carrier-pigeon");
	free(r);

	/* ternctl's own parsing: exit 2, naming the argument, nothing sent */
	r = CTL("-s", s, "set", "max-bandwidth", "12Q");
	expect_code(r, 2);
	assert_str_contains(r->err, "max-bandwidth");
	assert_str_contains(r->err, "'12Q'");
	free(r);

	/* a little is not "unlimited" (0): refused before anything is sent */
	r = CTL("-s", s, "set", "max-bandwidth", "1bit");
	expect_code(r, 2);
	assert_str_contains(r->err, "'1bit'");
	assert_str_contains(r->err, "round to 0");
	free(r);
	r = CTL("-s", s, "set", "max-bandwidth", "0.4");
	expect_code(r, 2);
	assert_str_contains(r->err, "'0.4'");
	free(r);

	r = CTL("-s", s, "set", "downtime-limit", "-5");
	expect_code(r, 2);
	assert_str_contains(r->err, "'-5'");
	assert_str_contains(r->err, "negative");
	free(r);

	r = CTL("-s", s, "set", "migration-timeout", "1.5s");
	expect_code(r, 2);
	assert_str_contains(r->err, "whole seconds");
	free(r);

	r = CTL("-s", s, "set", "multifd-channels", "4k");
	expect_code(r, 2);
	assert_str_contains(r->err, "'4k'");
	free(r);

	r = CTL("-s", s, "set", "xbzrle-cache-size", "");
	expect_code(r, 2);
	assert_str_contains(r->err, "empty");
	free(r);

	/* the values above were not sent */
	assert_uint_equal(param(s, "downtime-limit"), 1500);
}

static void test_caps(void **state)
{
	struct json_object *o;
	char s[108];
	struct run *r;

	sock(s, sizeof(s), "src", 0);
	r = CTL("-s", s, "caps", "verify-ram", "on");
	expect_code(r, 0);
	assert_str_contains(r->out, "verify-ram: off -> on");
	free(r);

	r = CTL("-s", s, "--json", "caps");
	expect_code(r, 0);
	o = parse_out(r);
	assert_true(json_object_get_boolean(get(o, "verify-ram")));
	assert_false(json_object_get_boolean(get(o, "auto-converge")));
	json_object_put(o);
	free(r);

	r = CTL("-s", s, "caps");
	expect_code(r, 0);
	assert_str_contains(r->out, "verify-ram");
	assert_non_null(strstr(r->out, "verify-ram"));
	assert_str_contains(strstr(r->out, "verify-ram"), " on\n");
	free(r);

	r = CTL("-s", s, "caps", "no-such-cap", "on");
	expect_code(r, 1);
	assert_str_contains(r->err, "no-such-cap");
	free(r);
}

static void test_continue_cancel_idle(void **state)
{
	char s[108];
	struct run *r;

	sock(s, sizeof(s), "src", 0);
	r = CTL("-s", s, "continue");
	expect_code(r, 1);
	assert_true(!strncmp(r->err, "ternctl: continue", 17));
	free(r);

	r = CTL("-s", s, "cancel");
	expect_code(r, 1);
	assert_str_contains(r->err, "no migration is running");
	free(r);

	r = CTL("-s", s, "migrate", "carrier-pigeon:x");
	expect_code(r, 1);
	assert_str_contains(r->err, "uri");
	free(r);
}

/* incoming on dstN; returns the bound URI (malloc'ed). */
static char *incoming(int pair)
{
	struct json_object *o;
	char s[108], *uri;
	struct run *r;

	sock(s, sizeof(s), "dst", pair);
	r = CTL("-s", s, "--json", "incoming", "tcp:127.0.0.1:0");
	expect_code(r, 0);
	o = parse_out(r);
	uri = strdup(json_object_get_string(get(o, "uri")));
	assert_non_null(strstr(uri, "tcp:127.0.0.1:"));
	json_object_put(o);
	free(r);
	return uri;
}

/* A whole migration with watch running from before it starts. */
static void test_migrate_watch(void **state)
{
	struct run *w = calloc(1, sizeof(*w)), *r;
	char s[108], d[108], *uri;
	struct json_object *o, *recv;

	assert_non_null(w);
	sock(s, sizeof(s), "src", 0);
	sock(d, sizeof(d), "dst", 0);
	/* back to unlimited: the test does not want to wait for a slow link */
	r = CTL("-s", s, "set", "max-bandwidth", "0");
	expect_code(r, 0);
	free(r);

	run_start(w, (const char *const[]){"-s", s, "watch", "--interval", "20ms", NULL});
	run_wait_line(w); /* subscribed, and it has queried once */
	assert_str_contains(w->out, "none");

	uri = incoming(0);
	r = CTL("-s", s, "migrate", uri);
	expect_code(r, 0);
	assert_str_contains(r->out, uri);
	free(r);
	free(uri);

	run_finish(w);
	expect_code(w, 0);
	/* posted when migrate ran, so read before any later query's reply */
	assert_str_contains(w->out, "state: none -> setup");
	assert_str_contains(w->out, "migration completed after");
	assert_str_contains(w->out, "downtime");
	/* verify-ram's digests are a part of the downtime, shown as such */
	assert_str_contains(w->out, ", verify ");
	assert_str_contains(w->out, "verified            yes");
	/* what the migration cost the source in CPU, its send workers' share */
	assert_str_contains(w->out, "s per GiB moved");
	assert_str_contains(w->out, "\n  send ");
	assert_null(strchr(w->out, '\r')); /* not a terminal: one line per update */
	free(w);

	r = CTL("-s", d, "--json", "query");
	expect_code(r, 0);
	o = parse_out(r);
	assert_string_equal(json_object_get_string(get(o, "status")), "completed");
	assert_true(json_object_get_boolean(get(o, "verified")));
	/* the destination's receive workers cost it CPU, and the total adds up */
	recv = get(get(o, "cpu"), "recv");
	assert_true(json_object_get_uint64(get(recv, "user_us")) +
		    json_object_get_uint64(get(recv, "sys_us")));
	assert_true(json_object_get_uint64(get(o, "cpu_total_user_us")) >=
		    json_object_get_uint64(get(recv, "user_us")));
	json_object_put(o);
	free(r);

	r = CTL("-s", s, "query");
	expect_code(r, 0);
	assert_str_contains(r->out, "completed (source)");
	assert_str_contains(r->out, "expected downtime");
	assert_str_contains(r->out, "\ncpu ");
	free(r);

	/* watch on a finished migration: the summary at once; --json: JSON lines */
	r = CTL("-s", s, "watch", "--json");
	expect_code(r, 0);
	o = parse_out(r);
	assert_string_equal(json_object_get_string(get(o, "status")), "completed");
	json_object_put(o);
	free(r);

	r = CTL("-s", s, "cancel");
	expect_code(r, 1);
	free(r);
}

/* pause-before-switchover: the source waits in pre-switchover until continue. */
static void test_pause_continue(void **state)
{
	int64_t end = now_ms() + HANG_GUARD_MS;
	char s[108], *uri;
	struct json_object *o;
	struct run *r;
	bool waiting = false;

	sock(s, sizeof(s), "src", 1);
	r = CTL("-s", s, "caps", "pause-before-switchover", "on");
	expect_code(r, 0);
	free(r);

	uri = incoming(1);
	r = CTL("-s", s, "migrate", uri);
	expect_code(r, 0);
	free(r);
	free(uri);

	while (!waiting) {
		assert_true(now_ms() < end);
		r = CTL("-s", s, "--json", "query");
		expect_code(r, 0);
		o = parse_out(r);
		waiting = !strcmp(json_object_get_string(get(o, "status")), "pre-switchover");
		assert_false(!strcmp(json_object_get_string(get(o, "status")), "completed"));
		json_object_put(o);
		free(r);
		if (!waiting)
			usleep(10000);
	}
	r = CTL("-s", s, "continue");
	expect_code(r, 0);
	free(r);

	r = CTL("-s", s, "watch", "--interval", "10ms");
	expect_code(r, 0);
	assert_str_contains(r->out, "migration completed");
	assert_str_contains(r->out, "wait ");
	free(r);
}

/* A migration that fails: watch says so and exits 1. */
static void test_watch_failed(void **state)
{
	char d[108], *uri;
	struct run *r;

	sock(d, sizeof(d), "dst", 2);
	uri = incoming(2);
	free(uri);
	r = CTL("-s", d, "cancel");
	expect_code(r, 0);
	free(r);
	r = CTL("-s", d, "watch");
	expect_code(r, 1);
	assert_str_contains(r->out, "migration failed");
	free(r);
}

/* ---- fake servers ---------------------------------------------------------------- */

static int fake_listen(char *path, size_t len)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	snprintf(path, len, "%s/fake.sock", dir);
	unlink(path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);
	return fd;
}

/* Accept ternctl, read its request line, answer with @lines (%llu: its id). */
static void fake_serve(int lfd, const char *const *lines)
{
	struct pollfd pfd = {lfd, POLLIN, 0};
	struct json_object *req, *id;
	char buf[4096], out[1024];
	size_t len = 0;
	int fd;

	assert_int_equal(poll(&pfd, 1, HANG_GUARD_MS), 1);
	fd = accept(lfd, NULL, NULL);
	assert_true(fd >= 0);
	while (!memchr(buf, '\n', len)) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);

		assert_true(n > 0);
		len += (size_t)n;
	}
	buf[len] = '\0';
	req = json_tokener_parse(buf);
	assert_non_null(req);
	assert_true(json_object_object_get_ex(req, "id", &id));
	for (; *lines; lines++) {
		snprintf(out, sizeof(out), *lines, (unsigned long long)json_object_get_uint64(id));
		assert_int_equal(write(fd, out, strlen(out)), (ssize_t)strlen(out));
	}
	json_object_put(req);
	close(fd);
}

static void test_fake_events_skipped(void **state)
{
	struct run *r = calloc(1, sizeof(*r));
	char path[108];
	int lfd;

	assert_non_null(r);
	lfd = fake_listen(path, sizeof(path));
	run_start(r, (const char *const[]){"-s", path, "--json", "query", NULL});
	fake_serve(lfd,
		   (const char *const[]){
		       "{\"event\":\"state\",\"from\":\"none\",\"to\":\"setup\"}\n{\"eve",
		       "nt\":\"round\",\"round\":1}\n",
		       "{\"ok\":true,\"return\":{\"status\":\"none\",\"x\":[1,2]},\"id\":%llu}\n",
		       NULL});
	run_finish(r);
	expect_code(r, 0);
	assert_string_equal(r->out, "{\"status\":\"none\",\"x\":[1,2]}\n");

	/* not a reply */
	run_start(r, (const char *const[]){"-s", path, "query", NULL});
	fake_serve(lfd, (const char *const[]){"[1,2,3]\n", NULL});
	run_finish(r);
	expect_code(r, 2);
	assert_str_contains(r->err, "not a JSON object");

	/* a reply to some other request */
	run_start(r, (const char *const[]){"-s", path, "query", NULL});
	fake_serve(lfd, (const char *const[]){"{\"ok\":true,\"return\":{},\"id\":999999}\n", NULL});
	run_finish(r);
	expect_code(r, 2);
	assert_str_contains(r->err, "another request");

	/* the server hangs up */
	run_start(r, (const char *const[]){"-s", path, "query", NULL});
	fake_serve(lfd, (const char *const[]){NULL});
	run_finish(r);
	expect_code(r, 2);
	assert_str_contains(r->err, "closed the connection");

	close(lfd);
	unlink(path);
	free(r);
}

/* A server that never answers: ternctl gives up after --timeout. */
static void test_fake_timeout(void **state)
{
	char path[108];
	struct run *r;
	int lfd;

	lfd = fake_listen(path, sizeof(path));
	/* never accepted: the connection waits in the backlog, unanswered */
	r = CTL("-s", path, "--timeout", "100ms", "query");
	expect_code(r, 2);
	assert_str_contains(r->err, path);
	assert_str_contains(r->err, "no reply within 100 ms");
	free(r);
	close(lfd);
	unlink(path);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_usage),
	    cmocka_unit_test(test_unreachable),
	    cmocka_unit_test(test_query),
	    cmocka_unit_test(test_set),
	    cmocka_unit_test(test_set_refused),
	    cmocka_unit_test(test_caps),
	    cmocka_unit_test(test_continue_cancel_idle),
	    cmocka_unit_test(test_migrate_watch),
	    cmocka_unit_test(test_pause_continue),
	    cmocka_unit_test(test_watch_failed),
	    cmocka_unit_test(test_fake_events_skipped),
	    cmocka_unit_test(test_fake_timeout),
	};

	if (argc != 3) {
		fprintf(stderr, "usage: cli_test TERNCTL CLI_SERVER\n");
		return 2;
	}
	ternctl_bin = argv[1];
	server_bin = argv[2];
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
