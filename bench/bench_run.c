/* SPDX-License-Identifier: MIT */
/*
 * One tern-bench run: a destination, then a source, both waited for under
 * one deadline, and their final JSON lines read back. The two sides are
 * tern-vm processes (--guest kvm: real KVM guests) or tern-loopback processes
 * (--guest process: anonymous memory dirtied by a writer thread); on a shaped
 * link each runs in its network namespace (`ip netns exec NS prog ...`).
 *
 * The order of events, and who may hang where:
 *
 *   1. destination: `--incoming tcp:127.0.0.1:0` (the link's address on a
 *      shaped link, or a fresh unix path). It names the address it really
 *      listens on: tern-vm as its first stdout line
 *      ({"event":"listening","uri":...}), tern-loopback on stderr
 *      ("tern-loopback: listening on URI"). It may die first (no /dev/kvm,
 *      bad option): we report its exit, and its own message is on our stderr.
 *   2. source: `--migrate-to <that address>` with the scenario.
 *   3. both run to their end. Each program has its own --timeout and gives
 *      up cleanly. If one side fails (a non-zero exit, a signal, or a final
 *      line that is not "completed") while the other still runs, the other
 *      gets SIGTERM at once, then SIGKILL after a short grace: a source whose
 *      guest cannot start never connects, and its destination would wait for
 *      it until its own --timeout. Its error is the run's (->first_error).
 *      If the source completed and the destination still runs, the
 *      destination gets SIGTERM only after a grace (plus tern-vm's watch
 *      window): it is watching the guest it resumed. At the hard deadline
 *      both are killed and the run is reported as a timeout.
 *
 * Nothing here measures the migration: every figure comes from the
 * programs' lines (the library's stats). The wall clock of the whole run is
 * kept as a sanity field only.
 */
#include "bench.h"
#include "bench_proc.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NS_PER_S 1000000000ull
/* How long the destination may outlive the source before SIGTERM (beyond tern-vm's watch). */
#define DEST_GRACE_S 20
/* From SIGTERM to SIGKILL. */
#define TERM_GRACE_S 5
/* To read the rest of a side's stdout once it was reaped (its pipe is at EOF then). */
#define DRAIN_MS 200
/* tern-loopback's destination: its --timeout beyond the source's. */
#define DEST_EXTRA_S 30
/* tern-vm watches its guest this long after a resume by default. */
#define TV_WATCH_MS 1000

volatile sig_atomic_t bench_interrupted;

const char *bench_json_str(json_object *o, const char *key, const char *def)
{
	json_object *v;

	if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return def;
}

bool bench_json_bool(json_object *o, const char *key, bool *ret)
{
	json_object *v;

	if (o && json_object_object_get_ex(o, key, &v) &&
	    json_object_is_type(v, json_type_boolean)) {
		*ret = json_object_get_boolean(v);
		return true;
	}
	return false;
}

/* A figure is a finite number >= 0: anything else from the child is treated as missing. */
bool bench_json_num(json_object *o, const char *key, double *ret)
{
	json_object *v;
	double d;

	if (!o || !json_object_object_get_ex(o, key, &v))
		return false;
	if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
		return false;
	d = json_object_get_double(v);
	if (!isfinite(d) || d < 0)
		return false;
	*ret = d;
	return true;
}

/* ---- argv ------------------------------------------------------------------ */

struct argv_buf {
	char *v[128];
	unsigned int n;
	char store[8192];
	size_t used;
};

static void arg(struct argv_buf *a, const char *s)
{
	size_t len = strlen(s) + 1;

	/* 128 slots and 8 KiB hold the longest command line below with room to spare. */
	if (a->n + 2 > sizeof(a->v) / sizeof(a->v[0]) || a->used + len > sizeof(a->store))
		abort();
	memcpy(a->store + a->used, s, len);
	a->v[a->n++] = a->store + a->used;
	a->v[a->n] = NULL;
	a->used += len;
}

static void arg_u64(struct argv_buf *a, const char *opt, uint64_t v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
	arg(a, opt);
	arg(a, buf);
}

static void arg2(struct argv_buf *a, const char *opt, const char *v)
{
	arg(a, opt);
	arg(a, v);
}

/*
 * The program, in the link's namespace for @side on a shaped link:
 * `ip netns exec NS prog`. ip execs the program (no fork), so its pid is
 * the program's and our signals reach it directly.
 */
static void args_prog(struct argv_buf *a, const struct bench_opts *o,
		      const struct bench_scenario *sc, bool source)
{
	if (sc->link) {
		arg(a, sc->link->ip);
		arg2(a, "netns", "exec");
		arg(a, source ? sc->link->ns_src : sc->link->ns_dst);
	}
	arg(a, o->prog);
}

/* --mgmt: the source serves at PATH, the destination at PATH.dst. */
static void args_mgmt(struct argv_buf *a, const struct bench_opts *o, bool source)
{
	char path[4096];

	if (!o->mgmt)
		return;
	snprintf(path, sizeof(path), "%s%s", o->mgmt, source ? "" : ".dst");
	arg2(a, "--mgmt", path);
}

/* The library's source-side knobs, passed only when set so that older binaries still run. */
static void args_source_knobs(struct argv_buf *a, const struct bench_opts *o,
			      const struct bench_scenario *sc)
{
	arg_u64(a, "--downtime-limit", sc->v[AX_DOWNTIME].num);
	if (o->max_bandwidth)
		arg_u64(a, "--max-bandwidth", o->max_bandwidth);
	/* "none" is both programs' default: not passed, so older binaries still run. */
	if (strcmp(sc->v[AX_CODEC].text, "none"))
		arg2(a, "--codec", sc->v[AX_CODEC].text);
	if (sc->v[AX_AUTO_CONVERGE].num)
		arg(a, "--auto-converge");
	if (o->migration_timeout_set)
		arg_u64(a, "--migration-timeout", o->migration_timeout_s);
	if (o->timeout_policy)
		arg2(a, "--timeout-policy", o->timeout_policy);
	if (o->rdma_pin_all && !strcmp(sc->v[AX_TRANSPORT].text, "rdma"))
		arg(a, "--rdma-pin-all");
	if (o->zero_copy_send && !strcmp(sc->v[AX_TRANSPORT].text, "tcp"))
		arg(a, "--zero-copy-send");
}

/*
 * tern-vm: both sides get the guest's shape, the channel count, verify and
 * the time limits; the source the whole scenario.
 */
static void args_kvm(struct argv_buf *a, const struct bench_opts *o,
		     const struct bench_scenario *sc, bool source, const char *uri)
{
	args_prog(a, o, sc, source);
	arg_u64(a, "--ram", sc->v[AX_RAM].num);
	arg_u64(a, "--vcpus", sc->v[AX_VCPUS].num);
	arg_u64(a, "--channels", sc->v[AX_CHANNELS].num);
	if (sc->v[AX_VERIFY].num)
		arg(a, "--verify");
	arg_u64(a, "--timeout", o->timeout_s);
	if (o->watch_ms)
		arg_u64(a, "--watch-ms", o->watch_ms);
	if (o->verbosity)
		arg(a, o->verbosity);
	args_mgmt(a, o, source);
	if (!source) {
		arg2(a, "--incoming", uri);
		return;
	}
	arg2(a, "--migrate-to", uri);
	arg2(a, "--fill", bench_fill_word(&sc->v[AX_FILL]));
	arg_u64(a, "--zero-pct", bench_fill_zero_pct(o, &sc->v[AX_FILL]));
	arg_u64(a, "--dirty-rate", sc->v[AX_DIRTY_RATE].num);
	arg_u64(a, "--dirty-ws", sc->v[AX_DIRTY_WS].num);
	if (o->dirty_pages)
		arg_u64(a, "--dirty-pages", o->dirty_pages);
	arg2(a, "--pattern", sc->v[AX_PATTERN].text);
	arg_u64(a, "--clear-bitmap-shift", o->clear_bitmap_shift);
	args_source_knobs(a, o, sc);
}

/*
 * tern-loopback: anonymous memory and a writer thread instead of a guest.
 * No vCPUs, pattern, dirty-pages or clear-bitmap-shift (tern-bench said so
 * at the start). The destination's clock starts before the source's fill:
 * it gets 30 s more, so that the source's --timeout decides.
 */
static void args_process(struct argv_buf *a, const struct bench_opts *o,
			 const struct bench_scenario *sc, bool source, const char *uri)
{
	args_prog(a, o, sc, source);
	arg_u64(a, "--ram", sc->v[AX_RAM].num);
	arg_u64(a, "--channels", sc->v[AX_CHANNELS].num);
	if (sc->v[AX_VERIFY].num)
		arg(a, "--verify");
	arg_u64(a, "--timeout", o->timeout_s + (source ? 0 : DEST_EXTRA_S));
	if (o->verbosity)
		arg(a, o->verbosity);
	args_mgmt(a, o, source);
	if (!source) {
		arg2(a, "--incoming", uri);
		return;
	}
	arg2(a, "--migrate-to", uri);
	arg2(a, "--fill", bench_fill_word(&sc->v[AX_FILL]));
	arg_u64(a, "--zero-pct", bench_fill_zero_pct(o, &sc->v[AX_FILL]));
	arg_u64(a, "--dirty-rate", sc->v[AX_DIRTY_RATE].num);
	if (sc->v[AX_DIRTY_WS].num)
		arg_u64(a, "--dirty-ws", sc->v[AX_DIRTY_WS].num);
	args_source_knobs(a, o, sc);
}

static void args_side(struct argv_buf *a, const struct bench_opts *o,
		      const struct bench_scenario *sc, bool source, const char *uri)
{
	if (o->guest == GUEST_KVM)
		args_kvm(a, o, sc, source, uri);
	else
		args_process(a, o, sc, source, uri);
}

/* ---- the run --------------------------------------------------------------- */

static void problem(struct bench_run *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void problem(struct bench_run *r, const char *fmt, ...)
{
	size_t used = strlen(r->problem);
	va_list ap;

	if (used && used + 2 < sizeof(r->problem)) {
		memcpy(r->problem + used, "; ", 3);
		used += 2;
	}
	va_start(ap, fmt);
	vsnprintf(r->problem + used, sizeof(r->problem) - used, fmt, ap);
	va_end(ap);
}

/* @u is a URI of @transport with something after "transport:". */
static int take_uri(const char *u, const char *transport, char *uri, size_t len)
{
	size_t tlen = strlen(transport);

	if (strlen(u) >= len || strncmp(u, transport, tlen) || u[tlen] != ':' || !u[tlen + 1])
		return -EPROTO;
	memcpy(uri, u, strlen(u) + 1);
	return 0;
}

/* tern-vm's first line: {"event":"listening","uri":"tcp:127.0.0.1:41234"}. */
static int parse_listening(const char *line, const char *transport, char *uri, size_t len)
{
	json_object *o = json_tokener_parse(line);
	int ret = -EPROTO;

	if (!o)
		return -EPROTO;
	if (!strcmp(bench_json_str(o, "event", ""), "listening"))
		ret = take_uri(bench_json_str(o, "uri", ""), transport, uri, len);
	json_object_put(o);
	return ret;
}

/* tern-loopback's stderr line: "tern-loopback: listening on tcp:127.0.0.1:41234". */
static int parse_listening_err(const char *line, const char *transport, char *uri, size_t len)
{
	const char *at = strstr(line, "listening on ");

	if (!at)
		return -EPROTO;
	at += strlen("listening on ");
	return take_uri(at, transport, uri, len);
}

/*
 * A destination that fails before it listens (no /dev/kvm, no memory) prints
 * its final line first. Keep it as the destination's report and let it exit.
 */
static bool early_report(struct bench_proc *dst, const char *line, struct bench_run *r)
{
	json_object *o = line ? json_tokener_parse(line) : NULL;

	if (!o || !json_object_is_type(o, json_type_object) ||
	    strcmp(bench_json_str(o, "side", ""), "destination")) {
		json_object_put(o);
		return false;
	}
	r->dst = o;
	problem(r, "the destination ended before it listened: %s %s",
		bench_json_str(o, "status", "?"), bench_json_str(o, "error", ""));
	bench_proc_pump((struct bench_proc *const[]){dst}, 1, bench_now_ns() + 5 * NS_PER_S);
	return true;
}

/* The last JSON object a side printed, if it is that side's final line. */
static json_object *final_line(struct bench_proc *p, bool skip_first, const char *side,
			       struct bench_run *r)
{
	char *line = bench_proc_last_object(p, skip_first);
	json_object *o;

	if (!line) {
		problem(r, "no final line from the %s", p->name);
		return NULL;
	}
	o = json_tokener_parse(line);
	if (!o || !json_object_is_type(o, json_type_object) ||
	    strcmp(bench_json_str(o, "side", ""), side)) {
		problem(r, "the %s's last line is not its final JSON line: %.120s", p->name, line);
		json_object_put(o);
		o = NULL;
	}
	free(line);
	return o;
}

/*
 * Whether @p, reaped, failed: a non-zero exit, a signal, or a final line
 * whose status is not "completed" (@skip_first: its first line is the
 * listening event). @ret_why gets its error: the final line's, or how it
 * ended when it printed none.
 */
static bool side_failed(struct bench_proc *p, bool skip_first, char *ret_why, size_t len)
{
	char *line, how[64];
	json_object *o = NULL;
	const char *st = "", *err = "";
	bool failed;

	/* It printed its final line before it exited: read what is left of the pipe. */
	bench_proc_pump((struct bench_proc *const[]){p}, 1, bench_now_ns() + DRAIN_MS * 1000000ull);
	line = bench_proc_last_object(p, skip_first);
	if (line)
		o = json_tokener_parse(line);
	free(line);
	if (o && json_object_is_type(o, json_type_object)) {
		st = bench_json_str(o, "status", "");
		err = bench_json_str(o, "error", "");
	}
	failed = bench_proc_exit_code(p) != 0 || strcmp(st, "completed");
	if (failed) {
		bench_proc_describe(p, how, sizeof(how));
		if (*err)
			snprintf(ret_why, len, "%s", err);
		else
			snprintf(ret_why, len, "%s %s with no error line", *st ? st : "ended", how);
	}
	json_object_put(o);
	return failed;
}

/*
 * One side is gone while the other runs: if it failed, stop the other at
 * once (true) and keep its error as the run's.
 */
static bool stop_after_failure(const struct bench_opts *o, struct bench_proc *src,
			       struct bench_proc *dst, struct bench_run *r)
{
	bool src_gone = !bench_proc_running(src), dst_gone = !bench_proc_running(dst);
	struct bench_proc *gone, *other;
	char why[sizeof(r->first_error) - 16], how[64];

	if (src_gone == dst_gone)
		return false;
	gone = src_gone ? src : dst;
	other = src_gone ? dst : src;
	if (!side_failed(gone, !src_gone && o->guest == GUEST_KVM, why, sizeof(why)))
		return false;
	bench_proc_describe(gone, how, sizeof(how));
	if (src_gone)
		snprintf(r->first_error, sizeof(r->first_error), "%s", why);
	else
		snprintf(r->first_error, sizeof(r->first_error), "destination: %s", why);
	problem(r, "the %s failed first (%s): sent SIGTERM to the %s at once", gone->name, how,
		other->name);
	bench_proc_signal(other, SIGTERM);
	return true;
}

/*
 * Wait for both. A side that fails stops the other at once; a destination
 * that outlives a completed source gets SIGTERM after a grace; all are killed
 * at @deadline.
 */
static void wait_both(const struct bench_opts *o, struct bench_proc *src, struct bench_proc *dst,
		      uint64_t deadline, struct bench_run *r)
{
	struct bench_proc *const both[2] = {src, dst};
	/* tern-vm watches its guest this long after a resume, before its final line. */
	uint64_t watch = o->guest == GUEST_KVM
			     ? (uint64_t)(o->watch_ms ? o->watch_ms : TV_WATCH_MS) * 1000000u
			     : 0;
	uint64_t dest_grace = watch + DEST_GRACE_S * NS_PER_S;
	uint64_t term_at = 0, kill_at = 0;
	bool term_sent = false, judged = false;

	for (;;) {
		uint64_t now = bench_now_ns();

		if (bench_proc_pump(
			both, 2, now + 100 * 1000000u < deadline ? now + 100 * 1000000u : deadline))
			return;
		now = bench_now_ns();
		if (now >= deadline) {
			r->timed_out = true;
			problem(r, "timeout: still running %u s after the start, killed",
				o->kill_after_s);
			bench_proc_signal(src, SIGKILL);
			bench_proc_signal(dst, SIGKILL);
			/* Killed processes close their pipes: collect the rest. */
			bench_proc_pump(both, 2, bench_now_ns() + 5 * NS_PER_S);
			return;
		}
		if (bench_interrupted && !term_sent) {
			/* tern-vm cancels its migration on SIGTERM and still reports. */
			r->interrupted = true;
			problem(r, "interrupted: sent SIGTERM to both");
			bench_proc_signal(src, SIGTERM);
			bench_proc_signal(dst, SIGTERM);
			term_sent = true;
			kill_at = now + TERM_GRACE_S * NS_PER_S + watch;
		}
		/* Judged once, when the first side is gone: its line does not change. */
		if (!term_sent && !judged && bench_proc_running(src) != bench_proc_running(dst)) {
			judged = true;
			if (stop_after_failure(o, src, dst, r)) {
				term_sent = true;
				kill_at = bench_now_ns() + TERM_GRACE_S * NS_PER_S;
			}
		}
		if (!bench_proc_running(src) && bench_proc_running(dst) && !term_at && !term_sent)
			term_at = now + dest_grace;
		if (term_at && now >= term_at && !term_sent) {
			problem(r,
				"the destination was still running %llu s after the source ended: "
				"sent SIGTERM",
				(unsigned long long)(dest_grace / NS_PER_S));
			bench_proc_signal(dst, SIGTERM);
			term_sent = true;
			kill_at = now + TERM_GRACE_S * NS_PER_S;
		}
		if (kill_at && bench_now_ns() >= kill_at) {
			if (bench_proc_running(src) || bench_proc_running(dst))
				problem(r, "still running %d s after SIGTERM: killed",
					TERM_GRACE_S);
			bench_proc_signal(src, SIGKILL);
			bench_proc_signal(dst, SIGKILL);
			kill_at = 0;
		}
	}
}

/*
 * The verdict: both completed, verified when asked, and with a KVM guest the
 * guest kept running on the destination (tern-loopback has no guest to
 * watch: its destination's completed means its resume callback ran).
 */
static void judge(const struct bench_opts *o, struct bench_run *r)
{
	const char *st = bench_json_str(r->src, "status", "");
	const char *dst_st = bench_json_str(r->dst, "status", "");
	bool verified = false, rising = false;

	bench_json_bool(r->src, "verified", &verified);
	bench_json_bool(r->dst, "progress_rising", &rising);

	r->ok = r->src && r->dst && !r->timed_out && !strcmp(st, "completed") &&
		!strcmp(dst_st, "completed") && (!r->sc->v[AX_VERIFY].num || verified) &&
		(o->guest != GUEST_KVM || rising);
	if (!r->ok)
		return;
	/* The contract ties the exit codes to the lines: a mismatch is a program bug. */
	if (r->src_code != 0) {
		problem(r, "the source reported completed but ended with %s", r->src_exit);
		r->ok = false;
	}
	if (r->dst_code != 0) {
		problem(r, "the destination reported completed but ended with %s", r->dst_exit);
		r->ok = false;
	}
}

/* Start the destination and learn its address; false (with a problem noted) if it failed. */
static bool start_destination(const struct bench_opts *o, const struct bench_scenario *sc,
			      struct bench_proc *dst, const char *listen_uri, uint64_t deadline,
			      char *uri, size_t len, struct bench_run *r)
{
	const char *transport = sc->v[AX_TRANSPORT].text;
	struct argv_buf args = {0};
	bool kvm = o->guest == GUEST_KVM;
	char *line;
	int ret;

	args_side(&args, o, sc, false, listen_uri);
	ret = kvm ? bench_proc_spawn(dst, "destination", args.v)
		  : bench_proc_spawn_err(dst, "destination", args.v);
	if (ret) {
		problem(r, "cannot start %s: %s", args.v[0], strerror(-ret));
		return false;
	}
	/* tern-bench reads it; a person need not see it every run */
	dst->tee_skip = "listening on ";
	line = kvm ? bench_proc_first_line(dst, deadline)
		   : bench_proc_find_line(dst, true, "listening on ", deadline);
	if (line) {
		ret = kvm ? parse_listening(line, transport, uri, len)
			  : parse_listening_err(line, transport, uri, len);
		if (!ret) {
			free(line);
			return true;
		}
	}
	if (!kvm) {
		/* tern-loopback's early failure line is on stdout, not where we looked */
		char *obj;
		bool early;

		if (!line)
			bench_proc_pump((struct bench_proc *const[]){dst}, 1,
					bench_now_ns() + NS_PER_S);
		obj = bench_proc_last_object(dst, false);
		early = early_report(dst, obj, r);
		free(obj);
		if (early) {
			free(line);
			return false;
		}
	} else if (line && early_report(dst, line, r)) {
		free(line);
		return false;
	}
	if (!line) {
		bench_proc_pump((struct bench_proc *const[]){dst}, 1, bench_now_ns() + NS_PER_S);
		bench_proc_describe(dst, r->dst_exit, sizeof(r->dst_exit));
		r->timed_out = bench_proc_running(dst);
		problem(r, "the destination did not say where it listens (%s)", r->dst_exit);
	} else {
		problem(r, "the destination's listening line is not about a %s address: %.120s",
			transport, line);
	}
	free(line);
	return false;
}

void bench_run_one(const struct bench_opts *o, const struct bench_scenario *sc, unsigned int seq,
		   unsigned int rep, struct bench_run *r)
{
	struct bench_proc src = {0}, dst = {0};
	struct argv_buf sargs = {0};
	char listen_uri[128], uri[256], sock[96] = "";
	uint64_t start = bench_now_ns(), deadline;
	int ret;

	memset(r, 0, sizeof(*r));
	r->sc = sc;
	r->seq = seq;
	r->rep = rep;
	r->src_code = r->dst_code = -1;
	src.out_fd = dst.out_fd = -1;
	snprintf(r->src_exit, sizeof(r->src_exit), "not started");
	snprintf(r->dst_exit, sizeof(r->dst_exit), "not started");
	deadline = start + (uint64_t)o->kill_after_s * NS_PER_S;

	if (!strcmp(sc->v[AX_TRANSPORT].text, "unix")) {
		snprintf(sock, sizeof(sock), "/tmp/tern-bench-%d-%u.sock", (int)getpid(), seq);
		unlink(sock);
		snprintf(listen_uri, sizeof(listen_uri), "unix:%s", sock);
	} else if (!strcmp(sc->v[AX_TRANSPORT].text, "rdma")) {
		snprintf(listen_uri, sizeof(listen_uri),
			 strchr(o->rdma_addr, ':') ? "rdma:[%s]:0" : "rdma:%s:0", o->rdma_addr);
	} else {
		snprintf(listen_uri, sizeof(listen_uri), "tcp:%s:0",
			 sc->link ? sc->link->addr_dst : "127.0.0.1");
	}

	if (!start_destination(o, sc, &dst, listen_uri, deadline, uri, sizeof(uri), r))
		goto out;
	if (bench_interrupted) {
		r->interrupted = true;
		problem(r, "interrupted before the source started");
		goto out;
	}
	args_side(&sargs, o, sc, true, uri);
	ret = bench_proc_spawn(&src, "source", sargs.v);
	if (ret) {
		problem(r, "cannot start %s: %s", sargs.v[0], strerror(-ret));
		goto out;
	}
	wait_both(o, &src, &dst, deadline, r);
	/* After a timeout one side may still have reported: keep what there is. */
	r->src = final_line(&src, false, "source", r);
	/* tern-vm's first line is the listening event */
	r->dst = final_line(&dst, o->guest == GUEST_KVM, "destination", r);
out:
	/* A process still running here is killed by fini: describe it first. */
	if (bench_proc_running(&src) || bench_proc_running(&dst))
		problem(r, "killed what was still running");
	if (bench_interrupted && !r->interrupted) {
		/* a Ctrl-C reaches the whole process group: both may be gone already */
		r->interrupted = true;
		problem(r, "interrupted");
	}
	bench_proc_fini(&src);
	bench_proc_fini(&dst);
	if (src.pid)
		bench_proc_describe(&src, r->src_exit, sizeof(r->src_exit));
	if (dst.pid)
		bench_proc_describe(&dst, r->dst_exit, sizeof(r->dst_exit));
	r->src_code = src.pid ? bench_proc_exit_code(&src) : -1;
	r->dst_code = dst.pid ? bench_proc_exit_code(&dst) : -1;
	if (sock[0])
		unlink(sock);
	r->wall_ms = (double)(bench_now_ns() - start) / 1e6;
	judge(o, r);
}

void bench_run_fini(struct bench_run *r)
{
	json_object_put(r->src);
	json_object_put(r->dst);
	r->src = r->dst = NULL;
}
