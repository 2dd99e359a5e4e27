/* SPDX-License-Identifier: MIT */
/*
 * tern-bench's output while it runs: the plan (guest, matrix, what is fixed
 * and what varies), then per run a line for a person and a JSON record (the
 * line of the results file).
 *
 * Every figure in a record is the source program's own (the library's
 * stats), copied under the same name; a field the program did not report is
 * null, so a record from an older tern-vm or tern-loopback still reads. The
 * destination contributes its status (and, with tern-vm, whether its guest
 * kept making progress after resume). The destination's memory is always
 * fresh anonymous memory (neither program pre-touches it), and the output
 * says so: landing pages there costs page faults a pre-touched run would hide.
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEST_MEMORY "fresh (not pre-touched)"

/* The source's figures copied into every record and summarised per scenario. */
const char *const bench_fig_names[] = {
    "total_ms",
    "setup_ms",
    "downtime_ms",
    "expected_downtime_ms",
    "transferred_bytes",
    "normal_pages",
    "zero_pages",
    "rounds",
    "dirty_rate_bps",
    "dirty_rate_window_ms",
    "throughput_bps",
    "bandwidth_bps",
    "verify_ms",
    "dirty_sync_us",
    "dirty_clear_us",
    "kvm_sync_ns",
    "kvm_clear_ns",
    "fill_ms",
    /* the library's newer stats: null until the programs print them */
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
    /* the programs' own: the highest throttle auto-converge asked for (the
     * library's cpu_throttle_percent is 0 again once the migration ended) */
    "throttle_max_percent",
    "throttle_held_ms",
};
const unsigned int bench_fig_count = sizeof(bench_fig_names) / sizeof(bench_fig_names[0]);

const char *const bench_cpu_classes[] = {"migration", "send", "recv", "prefault",
					 "digest",    "mgmt", "other"};
const unsigned int bench_cpu_class_count = sizeof(bench_cpu_classes) / sizeof(bench_cpu_classes[0]);

bool bench_cpu_class_serial(const char *cls)
{
	/* prefault runs on one thread per two channels (core/hint.c) */
	return !strcmp(cls, "migration") || !strcmp(cls, "mgmt");
}

void bench_cpu_key(char *buf, size_t len, bool dest, const char *cls, const char *what)
{
	const char *pre = dest ? "dest_" : "";

	if (cls)
		snprintf(buf, len, "%scpu_%s_%s", pre, cls, what);
	else if (!strcmp(what, "s_per_gib"))
		snprintf(buf, len, "%scpu_s_per_gib", pre);
	else
		snprintf(buf, len, "%scpu_lib_%s", pre, what);
}

/* Other fields of the source's line worth a column in the results file. */
static const char *const src_extra[] = {
    "xbzrle_cache_hits", "xbzrle_cache_misses", "xbzrle_overflows",  "xbzrle_cache_hit_rate",
    "ram_transferred",	 "kvm_manual_protect",	"kvm_initially_set", "auto_reason",
};

void bench_fmt_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	unsigned int u = 0;
	double v = (double)bytes;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (v == floor(v))
		snprintf(buf, len, "%.0f %s", v, unit[u]);
	else
		snprintf(buf, len, "%.2f %s", v, unit[u]);
}

void bench_fmt_rate(uint64_t bps, char *buf, size_t len)
{
	if (bps >= 1000000000u)
		snprintf(buf, len, "%.2f GB/s", bps / 1e9);
	else if (bps >= 1000000u)
		snprintf(buf, len, "%.1f MB/s", bps / 1e6);
	else if (bps >= 1000u)
		snprintf(buf, len, "%.1f kB/s", bps / 1e3);
	else
		snprintf(buf, len, "%llu B/s", (unsigned long long)bps);
}

const char *bench_guest_name(enum bench_guest g)
{
	return g == GUEST_KVM ? "kvm" : "process";
}

/* ---- the plan ---------------------------------------------------------------- */

void bench_print_plan(const struct bench_opts *o, FILE *f)
{
	char bw[32];
	unsigned int a, i;
	bool any = false;

	fprintf(
	    f,
	    "tern-bench: guest %s (%s on both sides: %s); %u scenario%s x %u rep%s = %u runs%s\n",
	    bench_guest_name(o->guest), o->guest == GUEST_KVM ? "tern-vm" : "tern-loopback",
	    o->prog, o->n_sc, o->n_sc == 1 ? "" : "s", o->reps, o->reps == 1 ? "" : "s",
	    o->n_sc * o->reps,
	    o->n_sc > 1 && o->reps > 1 ? ", interleaved (A B, then B A, ...)" : "");
	fprintf(f, "tern-bench: fixed:");
	for (a = 0; a < AX_MAX; a++) {
		if (o->ax[a].n != 1 || (o->guest == GUEST_PROCESS && bench_axes[a].kvm_only))
			continue;
		fprintf(f, " %s=%s", bench_axes[a].name, o->ax[a].v[0].text);
	}
	if (o->max_bandwidth)
		bench_fmt_rate(o->max_bandwidth, bw, sizeof(bw));
	else
		snprintf(bw, sizeof(bw), "unlimited");
	fprintf(f, "; max-bandwidth %s, zero-pct %u (fill=zero: %u), timeout %u s", bw, o->zero_pct,
		ZERO_HEAVY_PCT, o->timeout_s);
	if (o->migration_timeout_set)
		fprintf(f, ", migration-timeout %u s", o->migration_timeout_s);
	if (o->timeout_policy)
		fprintf(f, ", timeout-policy %s", o->timeout_policy);
	if (o->guest == GUEST_KVM)
		fprintf(f, ", clear-bitmap-shift %u", o->clear_bitmap_shift);
	fputc('\n', f);
	for (a = 0; a < AX_MAX; a++) {
		if (o->ax[a].n < 2)
			continue;
		fprintf(f, "%s %s=", any ? "," : "tern-bench: varying:", bench_axes[a].name);
		for (i = 0; i < o->ax[a].n; i++)
			fprintf(f, "%s%s", i ? "," : "", o->ax[a].v[i].text);
		any = true;
	}
	if (any)
		fputc('\n', f);
	fprintf(f, "tern-bench: destination memory is %s, as it always is with %s\n", DEST_MEMORY,
		o->guest == GUEST_KVM ? "tern-vm" : "tern-loopback");
}

/* ---- one run ----------------------------------------------------------------- */

static const char *run_status(const struct bench_run *r)
{
	if (r->src)
		return bench_json_str(r->src, "status", "?");
	return r->timed_out ? "timeout" : "no-report";
}

static void fmt_ms(json_object *src, const char *key, char *buf, size_t len)
{
	double v;

	if (!bench_json_num(src, key, &v))
		snprintf(buf, len, "? ms");
	else if (v < 100)
		snprintf(buf, len, "%.1f ms", v);
	else
		snprintf(buf, len, "%.0f ms", v);
}

void bench_print_run(const struct bench_opts *o, const struct bench_run *r, FILE *f)
{
	const char *err = bench_json_str(r->src, "error", "");
	const char *derr = bench_json_str(r->dst, "error", "");
	bool verified = false, rising = false;
	bool have_verified = bench_json_bool(r->src, "verified", &verified);
	bool have_rising = bench_json_bool(r->dst, "progress_rising", &rising);
	char total[32], setup[32], down[32], exp[32], rate[32], thr[32];
	double v;

	fmt_ms(r->src, "total_ms", total, sizeof(total));
	fmt_ms(r->src, "setup_ms", setup, sizeof(setup));
	fmt_ms(r->src, "downtime_ms", down, sizeof(down));
	fmt_ms(r->src, "expected_downtime_ms", exp, sizeof(exp));
	if (bench_json_num(r->src, "dirty_rate_window_ms", &v) && v == 0)
		/* no window of >= 1 s of guest run time closed after the bulk
		 * round (a short migration): unknown, not 0 */
		snprintf(rate, sizeof(rate), "not measured (no 1 s window)");
	else if (bench_json_num(r->src, "dirty_rate_bps", &v))
		bench_fmt_rate((uint64_t)v, rate, sizeof(rate));
	else
		snprintf(rate, sizeof(rate), "?");

	fprintf(f, "run %u/%u", r->seq, o->n_sc * o->reps);
	if (o->n_sc > 1)
		fprintf(f, " [%s]", r->sc->label);
	if (o->reps > 1)
		fprintf(f, " rep %u/%u", r->rep, o->reps);
	fprintf(f, " %s: %s", r->ok ? "OK" : "FAIL", run_status(r));
	/* The side that failed first says why; the other was stopped for it. */
	if (r->first_error[0])
		fprintf(f, " (%s)", r->first_error);
	else if (*err)
		fprintf(f, " (%s)", err);
	if (!r->src) {
		/* Nothing to show but what became of both processes. */
		if (r->dst) {
			fprintf(f, "; destination %s", bench_json_str(r->dst, "status", "?"));
			if (*derr)
				fprintf(f, " (%s)", derr);
		}
		fprintf(f, "; source %s, destination %s; tern-bench: %s\n", r->src_exit,
			r->dst_exit, r->problem);
		fflush(f);
		return;
	}
	fprintf(f, ", %s",
		!r->sc->v[AX_VERIFY].num ? "verify off"
		: !have_verified	 ? "verified ?"
		: verified		 ? "verified"
					 : "NOT verified");
	if (bench_json_num(r->src, "throughput_bps", &v)) {
		bench_fmt_rate((uint64_t)v, thr, sizeof(thr));
		fprintf(f, ", %s", thr);
	}
	fprintf(f, "; total %s (setup %s, downtime %s vs %s expected)", total, setup, down, exp);
	if (bench_json_num(r->src, "rounds", &v))
		fprintf(f, "; %.0f rounds", v);
	if (bench_json_num(r->src, "transferred_bytes", &v))
		fprintf(f, "; %.3f GB on the wire", v / 1e9);
	if (bench_json_num(r->src, "cpu_s_per_gib", &v)) {
		double d;

		fprintf(f, "; CPU %.3f", v);
		if (bench_json_num(r->dst, "cpu_s_per_gib", &d))
			fprintf(f, " / %.3f s per GiB (source / destination)", d);
		else
			fprintf(f, " s per GiB (source)");
	}
	fprintf(f, "; dirty rate %s", rate);
	if (bench_json_num(r->src, "throttle_max_percent", &v) && v > 0)
		fprintf(f, "; throttled up to %.0f%%", v);
	if (bench_json_num(r->src, "channels", &v))
		fprintf(f, "; %.0f channels", v);
	else
		fprintf(f, "; ? channels");
	fprintf(f, " over %s%s%s, codec %s", bench_json_str(r->src, "transport", "?"),
		r->sc->link ? " on a shaped link at " : "", r->sc->link ? r->sc->link->rate : "",
		bench_json_str(r->src, "codec", "?"));
	fprintf(f, "; destination %s", bench_json_str(r->dst, "status", "no report"));
	if (*derr)
		fprintf(f, " (%s)", derr);
	if (o->guest == GUEST_KVM)
		fprintf(f, ", progress %s", !have_rising ? "?" : rising ? "rising" : "NOT rising");
	if (!r->ok)
		fprintf(f, "; source %s, destination %s", r->src_exit, r->dst_exit);
	if (r->problem[0])
		fprintf(f, "; tern-bench: %s", r->problem);
	fputc('\n', f);
	fflush(f);
}

/* Copy @key from @from into @to, or null when the program did not report it. */
static void copy_key(json_object *to, const char *as, json_object *from, const char *key)
{
	json_object *v = NULL;

	if (from && json_object_object_get_ex(from, key, &v))
		json_object_object_add(to, as, json_object_get(v));
	else
		json_object_object_add(to, as, NULL);
}

/* Every CPU figure of both sides' lines into the record (null when absent). */
static void copy_cpu(json_object *j, const struct bench_run *r)
{
	static const char *const what[] = {"s_per_gib", "user_us", "sys_us"};
	char as[96], key[96];
	unsigned int side, c, w;

	for (side = 0; side < 2; side++)
		for (c = 0; c <= bench_cpu_class_count; c++)
			for (w = 0; w < 3; w++) {
				const char *cls = c ? bench_cpu_classes[c - 1] : NULL;

				bench_cpu_key(key, sizeof(key), false, cls, what[w]);
				bench_cpu_key(as, sizeof(as), side, cls, what[w]);
				copy_key(j, as, side ? r->dst : r->src, key);
			}
}

/* Every knob of the run, axes and single values alike. */
static json_object *settings_json(const struct bench_opts *o, const struct bench_scenario *sc)
{
	json_object *j = json_object_new_object();
	unsigned int a;

	for (a = 0; a < AX_MAX; a++)
		json_object_object_add(j, bench_axes[a].json, bench_axis_json(a, &sc->v[a]));
	json_object_object_add(j, "zero_pct",
			       json_object_new_int64(bench_fill_zero_pct(o, &sc->v[AX_FILL])));
	json_object_object_add(j, "max_bandwidth_bps", json_object_new_uint64(o->max_bandwidth));
	json_object_object_add(j, "timeout_s", json_object_new_int64(o->timeout_s));
	json_object_object_add(
	    j, "migration_timeout_s",
	    o->migration_timeout_set ? json_object_new_int64(o->migration_timeout_s) : NULL);
	json_object_object_add(j, "timeout_policy",
			       o->timeout_policy ? json_object_new_string(o->timeout_policy)
						 : NULL);
	if (o->guest == GUEST_KVM) {
		json_object_object_add(j, "clear_bitmap_shift",
				       json_object_new_int64(o->clear_bitmap_shift));
		json_object_object_add(j, "dirty_pages", json_object_new_uint64(o->dirty_pages));
		json_object_object_add(j, "watch_ms",
				       o->watch_ms ? json_object_new_int64(o->watch_ms) : NULL);
	}
	if (sc->link) {
		json_object_object_add(j, "link_bps", json_object_new_uint64(sc->link->rate_bps));
		json_object_object_add(j, "tbf_burst", json_object_new_string(sc->link->burst));
		json_object_object_add(j, "tbf_latency", json_object_new_string(sc->link->latency));
	}
	json_object_object_add(j, "reps", json_object_new_int64(o->reps));
	json_object_object_add(j, "dest_memory", json_object_new_string(DEST_MEMORY));
	return j;
}

json_object *bench_run_json(const struct bench_opts *o, const struct bench_run *r)
{
	const struct bench_scenario *sc = r->sc;
	json_object *j = json_object_new_object(), *axes = json_object_new_object();
	unsigned int i;
	double win;

	json_object_object_add(j, "seq", json_object_new_int64(r->seq));
	json_object_object_add(j, "runs", json_object_new_int64(o->n_sc * o->reps));
	json_object_object_add(j, "rep", json_object_new_int64(r->rep));
	json_object_object_add(j, "reps", json_object_new_int64(o->reps));
	json_object_object_add(j, "scenario_index", json_object_new_int64(sc->index));
	json_object_object_add(j, "scenario_label", json_object_new_string(sc->label));
	json_object_object_add(j, "guest", json_object_new_string(bench_guest_name(o->guest)));
	for (i = 0; i < AX_MAX; i++)
		json_object_object_add(axes, bench_axes[i].json, bench_axis_json(i, &sc->v[i]));
	json_object_object_add(j, "axes", axes);
	json_object_object_add(j, "ok", json_object_new_boolean(r->ok));
	json_object_object_add(j, "status", json_object_new_string(run_status(r)));
	copy_key(j, "error", r->src, "error");
	copy_key(j, "verified", r->src, "verified");
	copy_key(j, "ram_bytes", r->src, "ram_bytes");
	copy_key(j, "vcpus", r->src, "vcpus");
	copy_key(j, "channels", r->src, "channels");
	copy_key(j, "transport", r->src, "transport");
	copy_key(j, "codec", r->src, "codec");
	for (i = 0; i < bench_fig_count; i++)
		copy_key(j, bench_fig_names[i], r->src, bench_fig_names[i]);
	/* no closed window: the rate is unknown (null, out of the medians), not 0 */
	if (bench_json_num(r->src, "dirty_rate_window_ms", &win) && win == 0)
		json_object_object_add(j, "dirty_rate_bps", NULL);
	for (i = 0; i < sizeof(src_extra) / sizeof(src_extra[0]); i++)
		copy_key(j, src_extra[i], r->src, src_extra[i]);
	copy_key(j, "source_progress_rising", r->src, "progress_rising");
	copy_key(j, "dest_status", r->dst, "status");
	copy_key(j, "dest_error", r->dst, "error");
	copy_key(j, "dest_verified", r->dst, "verified");
	copy_key(j, "progress_rising", r->dst, "progress_rising");
	copy_key(j, "dest_progress_at_resume", r->dst, "progress_at_resume");
	copy_key(j, "dest_progress_after", r->dst, "progress_after");
	copy_cpu(j, r);
	json_object_object_add(j, "dest_memory", json_object_new_string(DEST_MEMORY));
	json_object_object_add(j, "source_exit", json_object_new_string(r->src_exit));
	json_object_object_add(j, "dest_exit", json_object_new_string(r->dst_exit));
	json_object_object_add(j, "timed_out", json_object_new_boolean(r->timed_out));
	json_object_object_add(j, "interrupted", json_object_new_boolean(r->interrupted));
	json_object_object_add(j, "problem", json_object_new_string(r->problem));
	json_object_object_add(j, "first_error", json_object_new_string(r->first_error));
	json_object_object_add(j, "wall_ms", json_object_new_double(round(r->wall_ms * 10) / 10));
	json_object_object_add(j, "scenario", settings_json(o, sc));
	/* both lines as the programs printed them: every field, even those named above */
	json_object_object_add(j, "source_report", r->src ? json_object_get(r->src) : NULL);
	json_object_object_add(j, "dest_report", r->dst ? json_object_get(r->dst) : NULL);
	return j;
}
