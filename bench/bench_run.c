/* SPDX-License-Identifier: MIT */
/*
 * One tern-bench run: a destination tern-vm, then a source tern-vm, both
 * waited for under one deadline, and their final JSON lines read back.
 *
 * The order of events, and who may hang where:
 *
 *   1. destination: `tern-vm --incoming tcp:127.0.0.1:0` (or a fresh unix
 *      path). Its first stdout line names the address it really listens on.
 *      It may die first (no /dev/kvm, bad option): we report its exit, and
 *      its own message is on our stderr.
 *   2. source: `tern-vm --migrate-to <that address>` with the scenario.
 *   3. both run to their end. Each tern-vm has its own --timeout and gives up
 *      cleanly. If the source is gone and the destination still waits (the
 *      source died before it connected), the destination gets SIGTERM (which
 *      cancels its side) after its watch window plus a grace, then SIGKILL.
 *      At the hard deadline both are killed and the run is reported as a
 *      timeout.
 *
 * Nothing here measures time: every figure comes from tern-vm's lines (the
 * library's stats); tern-bench only copies and summarises them.
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
/* How long the destination may outlive the source before SIGTERM, beyond its watch window. */
#define DEST_GRACE_S 20
/* From SIGTERM to SIGKILL. */
#define TERM_GRACE_S 5

const char *const bench_fig_names[FIG_MAX] = {
    [FIG_TOTAL_MS] = "total_ms",
    [FIG_SETUP_MS] = "setup_ms",
    [FIG_DOWNTIME_MS] = "downtime_ms",
    [FIG_EXPECTED_DOWNTIME_MS] = "expected_downtime_ms",
    [FIG_TRANSFERRED_BYTES] = "transferred_bytes",
    [FIG_NORMAL_PAGES] = "normal_pages",
    [FIG_ZERO_PAGES] = "zero_pages",
    [FIG_ROUNDS] = "rounds",
    [FIG_DIRTY_RATE_BPS] = "dirty_rate_bps",
    [FIG_THROUGHPUT_BPS] = "throughput_bps",
    [FIG_DIRTY_SYNC_US] = "dirty_sync_us",
    [FIG_DIRTY_CLEAR_US] = "dirty_clear_us",
    [FIG_KVM_SYNC_NS] = "kvm_sync_ns",
    [FIG_KVM_CLEAR_NS] = "kvm_clear_ns",
    [FIG_FILL_MS] = "fill_ms",
};

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
	char *v[64];
	unsigned int n;
	char store[2048];
	size_t used;
};

static void arg(struct argv_buf *a, const char *s)
{
	size_t len = strlen(s) + 1;

	/* 64 slots and 2 KiB hold the longest command line below with room to spare. */
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

/* What both sides need: the guest's shape, the channel count, verify, time limits. */
static void args_common(struct argv_buf *a, const struct bench_opts *o)
{
	const struct bench_scenario *sc = &o->sc;

	arg(a, o->vm);
	arg_u64(a, "--ram", sc->ram);
	arg_u64(a, "--vcpus", sc->vcpus);
	arg_u64(a, "--channels", sc->channels);
	if (sc->verify)
		arg(a, "--verify");
	arg_u64(a, "--timeout", o->timeout_s);
	if (sc->watch_ms)
		arg_u64(a, "--watch-ms", sc->watch_ms);
	if (o->verbosity)
		arg(a, o->verbosity);
}

static void args_source(struct argv_buf *a, const struct bench_opts *o, const char *uri)
{
	const struct bench_scenario *sc = &o->sc;

	args_common(a, o);
	arg(a, "--migrate-to");
	arg(a, uri);
	arg(a, "--fill");
	arg(a, sc->fill);
	arg_u64(a, "--zero-pct", sc->zero_pct);
	arg_u64(a, "--dirty-rate", sc->dirty_rate);
	arg_u64(a, "--dirty-ws", sc->dirty_ws);
	if (sc->dirty_pages)
		arg_u64(a, "--dirty-pages", sc->dirty_pages);
	arg(a, "--pattern");
	arg(a, sc->pattern);
	arg_u64(a, "--downtime-limit", sc->downtime_limit);
	arg_u64(a, "--max-bandwidth", sc->max_bandwidth);
	arg_u64(a, "--clear-bitmap-shift", sc->clear_bitmap_shift);
	/* "none" is tern-vm's default: not passed, so older binaries still run. */
	if (strcmp(sc->codec, "none")) {
		arg(a, "--codec");
		arg(a, sc->codec);
	}
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

/* The destination's first line: {"event":"listening","uri":"tcp:127.0.0.1:41234"}. */
static int parse_listening(const char *line, const char *transport, char *uri, size_t len)
{
	json_object *o = json_tokener_parse(line);
	const char *ev, *u;
	size_t tlen = strlen(transport);
	int ret = -EPROTO;

	if (!o)
		return -EPROTO;
	ev = bench_json_str(o, "event", "");
	u = bench_json_str(o, "uri", "");
	if (!strcmp(ev, "listening") && strlen(u) < len && !strncmp(u, transport, tlen) &&
	    u[tlen] == ':' && u[tlen + 1]) {
		memcpy(uri, u, strlen(u) + 1);
		ret = 0;
	}
	json_object_put(o);
	return ret;
}

/*
 * A destination that fails before it listens (no /dev/kvm, no memory) prints
 * its final line first. Keep it as the destination's report and let it exit.
 */
static bool early_report(struct bench_proc *dst, const char *line, struct bench_run *r)
{
	json_object *o = json_tokener_parse(line);

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

/* Wait for both; SIGTERM a destination that outlives the source; kill all at @deadline. */
static void wait_both(const struct bench_opts *o, struct bench_proc *src, struct bench_proc *dst,
		      uint64_t deadline, struct bench_run *r)
{
	struct bench_proc *const both[2] = {src, dst};
	/* tern-vm watches its guest this long after a resume, before its final line. */
	uint64_t watch = (uint64_t)(o->sc.watch_ms ? o->sc.watch_ms : 1000) * 1000000u;
	uint64_t dest_grace = watch + DEST_GRACE_S * NS_PER_S;
	uint64_t term_at = 0, kill_at = 0;
	bool term_sent = false;

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
		if (kill_at && now >= kill_at) {
			if (bench_proc_running(src) || bench_proc_running(dst))
				problem(r, "still running %d s after SIGTERM: killed",
					TERM_GRACE_S);
			bench_proc_signal(src, SIGKILL);
			bench_proc_signal(dst, SIGKILL);
			kill_at = 0;
		}
	}
}

static bool src_fig(json_object *src, enum bench_fig f, double *v)
{
	return bench_json_num(src, bench_fig_names[f], v);
}

/* The verdict: completed, verified when asked, the guest running on the destination. */
static void judge(const struct bench_opts *o, struct bench_run *r)
{
	const char *st = bench_json_str(r->src, "status", "");
	const char *dst_st = bench_json_str(r->dst, "status", "");
	bool verified = false, rising = false;
	unsigned int i;

	for (i = 0; i < FIG_MAX; i++)
		r->have_fig[i] = src_fig(r->src, i, &r->fig[i]);
	bench_json_bool(r->src, "verified", &verified);
	bench_json_bool(r->dst, "progress_rising", &rising);

	r->ok = r->src && r->dst && !r->timed_out && !strcmp(st, "completed") &&
		!strcmp(dst_st, "completed") && (!o->sc.verify || verified) && rising;
	if (!r->ok)
		return;
	/* The contract ties the exit codes to the lines: a mismatch is a tern-vm bug. */
	if (r->src_code != 0) {
		problem(r, "the source reported completed but ended with %s", r->src_exit);
		r->ok = false;
	}
	if (r->dst_code != 0) {
		problem(r, "the destination reported completed but ended with %s", r->dst_exit);
		r->ok = false;
	}
}

void bench_run_one(const struct bench_opts *o, unsigned int index, struct bench_run *r)
{
	struct bench_proc src = {0}, dst = {0};
	struct argv_buf dargs = {0}, sargs = {0};
	char listen_uri[128], uri[256], sock[96] = "";
	uint64_t deadline;
	char *line;
	int ret;

	memset(r, 0, sizeof(*r));
	r->index = index;
	r->src_code = r->dst_code = -1;
	src.out_fd = dst.out_fd = -1;
	snprintf(r->src_exit, sizeof(r->src_exit), "not started");
	snprintf(r->dst_exit, sizeof(r->dst_exit), "not started");
	deadline = bench_now_ns() + (uint64_t)o->kill_after_s * NS_PER_S;

	if (!strcmp(o->sc.transport, "unix")) {
		snprintf(sock, sizeof(sock), "/tmp/tern-bench-%d-%u.sock", (int)getpid(), index);
		unlink(sock);
		snprintf(listen_uri, sizeof(listen_uri), "unix:%s", sock);
	} else {
		snprintf(listen_uri, sizeof(listen_uri), "tcp:127.0.0.1:0");
	}

	args_common(&dargs, o);
	arg(&dargs, "--incoming");
	arg(&dargs, listen_uri);
	ret = bench_proc_spawn(&dst, "destination", dargs.v);
	if (ret) {
		problem(r, "cannot start %s: %s", o->vm, strerror(-ret));
		goto out;
	}
	line = bench_proc_first_line(&dst, deadline);
	if (!line) {
		bench_proc_pump((struct bench_proc *const[]){&dst}, 1, bench_now_ns() + NS_PER_S);
		bench_proc_describe(&dst, r->dst_exit, sizeof(r->dst_exit));
		r->timed_out = bench_proc_running(&dst);
		problem(r, "the destination printed no listening line (%s)", r->dst_exit);
		goto out;
	}
	ret = parse_listening(line, o->sc.transport, uri, sizeof(uri));
	if (ret && early_report(&dst, line, r)) {
		free(line);
		goto out;
	}
	if (ret)
		problem(r,
			"the destination's first line is not {\"event\":\"listening\",\"uri\":"
			"\"%s:...\"}: %.120s",
			o->sc.transport, line);
	free(line);
	if (ret)
		goto out;

	if (bench_interrupted) {
		r->interrupted = true;
		problem(r, "interrupted before the source started");
		goto out;
	}
	args_source(&sargs, o, uri);
	ret = bench_proc_spawn(&src, "source", sargs.v);
	if (ret) {
		problem(r, "cannot start %s: %s", o->vm, strerror(-ret));
		goto out;
	}
	wait_both(o, &src, &dst, deadline, r);
	/* After a timeout one side may still have reported: keep what there is. */
	r->src = final_line(&src, false, "source", r);
	r->dst = final_line(&dst, true, "destination", r);
out:
	/* A process still running here is killed by fini: describe it first. */
	if (bench_proc_running(&src) || bench_proc_running(&dst))
		problem(r, "killed what was still running");
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
	judge(o, r);
}

void bench_run_fini(struct bench_run *r)
{
	json_object_put(r->src);
	json_object_put(r->dst);
	r->src = r->dst = NULL;
}
