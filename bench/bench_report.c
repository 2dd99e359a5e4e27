/* SPDX-License-Identifier: MIT */
/*
 * tern-bench's output: the scenario, a line for a person or a JSON object per
 * run, and with several reps the median, min and max of every figure.
 *
 * Every figure is the source tern-vm's own (the library's stats); the
 * destination contributes its status and whether its guest kept making
 * progress after resume. The destination's memory is always fresh anonymous
 * memory (tern-vm never pre-touches it), and the output says so: landing
 * pages there costs page faults that a pre-touched run would hide.
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEST_MEMORY "fresh (not pre-touched)"

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

/* ---- the scenario ------------------------------------------------------------ */

void bench_print_scenario(const struct bench_opts *o, FILE *f)
{
	const struct bench_scenario *sc = &o->sc;
	char ram[32], ws[32], rate[32], bw[32];

	bench_fmt_size(sc->ram, ram, sizeof(ram));
	bench_fmt_size(sc->dirty_ws, ws, sizeof(ws));
	bench_fmt_rate(sc->dirty_rate, rate, sizeof(rate));
	if (sc->max_bandwidth)
		bench_fmt_rate(sc->max_bandwidth, bw, sizeof(bw));
	else
		snprintf(bw, sizeof(bw), "unlimited");
	fprintf(f, "tern-bench: %s guest, %u vCPU%s, fill %s, %u%% zero pages, ", ram, sc->vcpus,
		sc->vcpus == 1 ? "" : "s", sc->fill, sc->zero_pct);
	if (sc->dirty_rate)
		fprintf(f, "dirtying a %s working set at %s (%s)", ws, rate, sc->pattern);
	else
		fprintf(f, "idle after the fill");
	fprintf(f,
		"; %u channel%s over %s, codec %s, downtime-limit %u ms, max-bandwidth %s, "
		"clear-bitmap-shift %u, verify %s; %u rep%s\n",
		sc->channels, sc->channels == 1 ? "" : "s", sc->transport, sc->codec,
		sc->downtime_limit, bw, sc->clear_bitmap_shift, sc->verify ? "on" : "off", o->reps,
		o->reps == 1 ? "" : "s");
	fprintf(f, "tern-bench: destination memory is %s, as it always is with tern-vm\n",
		DEST_MEMORY);
}

json_object *bench_scenario_json(const struct bench_opts *o)
{
	const struct bench_scenario *sc = &o->sc;
	json_object *j = json_object_new_object();

	json_object_object_add(j, "ram_bytes", json_object_new_uint64(sc->ram));
	json_object_object_add(j, "vcpus", json_object_new_int64(sc->vcpus));
	json_object_object_add(j, "channels", json_object_new_int64(sc->channels));
	json_object_object_add(j, "transport", json_object_new_string(sc->transport));
	json_object_object_add(j, "codec", json_object_new_string(sc->codec));
	json_object_object_add(j, "fill", json_object_new_string(sc->fill));
	json_object_object_add(j, "zero_pct", json_object_new_int64(sc->zero_pct));
	json_object_object_add(j, "dirty_rate_bps", json_object_new_uint64(sc->dirty_rate));
	json_object_object_add(j, "dirty_ws_bytes", json_object_new_uint64(sc->dirty_ws));
	json_object_object_add(j, "pattern", json_object_new_string(sc->pattern));
	json_object_object_add(j, "downtime_limit_ms", json_object_new_int64(sc->downtime_limit));
	json_object_object_add(j, "max_bandwidth_bps", json_object_new_uint64(sc->max_bandwidth));
	json_object_object_add(j, "clear_bitmap_shift",
			       json_object_new_int64(sc->clear_bitmap_shift));
	json_object_object_add(j, "verify", json_object_new_boolean(sc->verify));
	json_object_object_add(j, "reps", json_object_new_int64(o->reps));
	json_object_object_add(j, "dest_memory", json_object_new_string(DEST_MEMORY));
	return j;
}

/* ---- one run ----------------------------------------------------------------- */

static const char *run_status(const struct bench_run *r)
{
	if (r->src)
		return bench_json_str(r->src, "status", "?");
	return r->timed_out ? "timeout" : "no-report";
}

static void fmt_ms(const struct bench_run *r, enum bench_fig f, char *buf, size_t len)
{
	if (!r->have_fig[f])
		snprintf(buf, len, "? ms");
	else if (r->fig[f] < 100)
		snprintf(buf, len, "%.1f ms", r->fig[f]);
	else
		snprintf(buf, len, "%.0f ms", r->fig[f]);
}

void bench_print_run(const struct bench_opts *o, const struct bench_run *r, FILE *f)
{
	const char *err = bench_json_str(r->src, "error", "");
	const char *derr = bench_json_str(r->dst, "error", "");
	bool verified = false, rising = false;
	bool have_verified = bench_json_bool(r->src, "verified", &verified);
	bool have_rising = bench_json_bool(r->dst, "progress_rising", &rising);
	char total[32], setup[32], down[32], exp[32], rate[32];
	double chans;

	fmt_ms(r, FIG_TOTAL_MS, total, sizeof(total));
	fmt_ms(r, FIG_SETUP_MS, setup, sizeof(setup));
	fmt_ms(r, FIG_DOWNTIME_MS, down, sizeof(down));
	fmt_ms(r, FIG_EXPECTED_DOWNTIME_MS, exp, sizeof(exp));
	if (r->have_fig[FIG_DIRTY_RATE_BPS])
		bench_fmt_rate((uint64_t)r->fig[FIG_DIRTY_RATE_BPS], rate, sizeof(rate));
	else
		snprintf(rate, sizeof(rate), "?");

	fprintf(f, "run %u/%u %s: %s", r->index, o->reps, r->ok ? "OK" : "FAIL", run_status(r));
	if (*err)
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
		!o->sc.verify	 ? "verify off"
		: !have_verified ? "verified ?"
		: verified	 ? "verified"
				 : "NOT verified");
	if (r->have_fig[FIG_THROUGHPUT_BPS])
		fprintf(f, ", %.2f GB/s", r->fig[FIG_THROUGHPUT_BPS] / 1e9);
	fprintf(f, "; total %s (setup %s, downtime %s vs %s expected)", total, setup, down, exp);
	if (r->have_fig[FIG_ROUNDS])
		fprintf(f, "; %.0f rounds", r->fig[FIG_ROUNDS]);
	if (r->have_fig[FIG_TRANSFERRED_BYTES])
		fprintf(f, "; %.3f GB on the wire", r->fig[FIG_TRANSFERRED_BYTES] / 1e9);
	fprintf(f, "; dirty rate %s", rate);
	if (bench_json_num(r->src, "channels", &chans))
		fprintf(f, "; %.0f channels", chans);
	else
		fprintf(f, "; ? channels");
	fprintf(f, " over %s, codec %s", bench_json_str(r->src, "transport", "?"),
		bench_json_str(r->src, "codec", "?"));
	fprintf(f, "; destination %s", bench_json_str(r->dst, "status", "no report"));
	if (*derr)
		fprintf(f, " (%s)", derr);
	fprintf(f, ", progress %s", !have_rising ? "?" : rising ? "rising" : "NOT rising");
	if (!r->ok)
		fprintf(f, "; source %s, destination %s", r->src_exit, r->dst_exit);
	if (r->problem[0])
		fprintf(f, "; tern-bench: %s", r->problem);
	fputc('\n', f);
	fflush(f);
}

/* Copy @key from @from into @to, or null when the child did not report it. */
static void copy_key(json_object *to, const char *as, json_object *from, const char *key)
{
	json_object *v = NULL;

	if (from && json_object_object_get_ex(from, key, &v))
		json_object_object_add(to, as, json_object_get(v));
	else
		json_object_object_add(to, as, NULL);
}

json_object *bench_run_json(const struct bench_opts *o, const struct bench_run *r)
{
	json_object *j = json_object_new_object();
	unsigned int i;

	json_object_object_add(j, "run", json_object_new_int64(r->index));
	json_object_object_add(j, "reps", json_object_new_int64(o->reps));
	json_object_object_add(j, "ok", json_object_new_boolean(r->ok));
	json_object_object_add(j, "status", json_object_new_string(run_status(r)));
	copy_key(j, "error", r->src, "error");
	copy_key(j, "verified", r->src, "verified");
	copy_key(j, "ram_bytes", r->src, "ram_bytes");
	copy_key(j, "vcpus", r->src, "vcpus");
	copy_key(j, "channels", r->src, "channels");
	copy_key(j, "transport", r->src, "transport");
	copy_key(j, "codec", r->src, "codec");
	for (i = 0; i < FIG_MAX; i++)
		copy_key(j, bench_fig_names[i], r->src, bench_fig_names[i]);
	copy_key(j, "xbzrle_cache_hits", r->src, "xbzrle_cache_hits");
	copy_key(j, "xbzrle_cache_misses", r->src, "xbzrle_cache_misses");
	copy_key(j, "xbzrle_overflows", r->src, "xbzrle_overflows");
	copy_key(j, "xbzrle_cache_hit_rate", r->src, "xbzrle_cache_hit_rate");
	copy_key(j, "ram_transferred", r->src, "ram_transferred");
	copy_key(j, "kvm_manual_protect", r->src, "kvm_manual_protect");
	copy_key(j, "kvm_initially_set", r->src, "kvm_initially_set");
	copy_key(j, "source_progress_rising", r->src, "progress_rising");
	copy_key(j, "dest_status", r->dst, "status");
	copy_key(j, "dest_error", r->dst, "error");
	copy_key(j, "dest_verified", r->dst, "verified");
	copy_key(j, "progress_rising", r->dst, "progress_rising");
	copy_key(j, "dest_progress_at_resume", r->dst, "progress_at_resume");
	copy_key(j, "dest_progress_after", r->dst, "progress_after");
	json_object_object_add(j, "dest_memory", json_object_new_string(DEST_MEMORY));
	json_object_object_add(j, "source_exit", json_object_new_string(r->src_exit));
	json_object_object_add(j, "dest_exit", json_object_new_string(r->dst_exit));
	json_object_object_add(j, "timed_out", json_object_new_boolean(r->timed_out));
	json_object_object_add(j, "problem", json_object_new_string(r->problem));
	json_object_object_add(j, "scenario", bench_scenario_json(o));
	return j;
}

/* ---- summary over reps ------------------------------------------------------------ */

struct fig_stat {
	unsigned int n;
	double median, min, max;
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Over the runs that completed: a failed run's figures describe another migration. */
static void fig_stats(const struct bench_run *runs, unsigned int n, enum bench_fig f,
		      struct fig_stat *st)
{
	double *v = calloc(n ? n : 1, sizeof(*v));
	unsigned int i, k = 0;

	memset(st, 0, sizeof(*st));
	if (!v)
		return;
	for (i = 0; i < n; i++)
		if (runs[i].have_fig[f] && !strcmp(run_status(&runs[i]), "completed"))
			v[k++] = runs[i].fig[f];
	if (k) {
		qsort(v, k, sizeof(*v), cmp_double);
		st->n = k;
		st->min = v[0];
		st->max = v[k - 1];
		st->median = k % 2 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2;
	}
	free(v);
}

static unsigned int count(const struct bench_run *runs, unsigned int n, bool ok_only)
{
	unsigned int i, c = 0;

	for (i = 0; i < n; i++)
		if (ok_only ? runs[i].ok : !strcmp(run_status(&runs[i]), "completed"))
			c++;
	return c;
}

/* Integral values print as integers: 3 rounds, not 3.0. */
static json_object *num_json(double v)
{
	if (v == floor(v) && fabs(v) < 9007199254740992.0)
		return json_object_new_int64((int64_t)v);
	return json_object_new_double(v);
}

void bench_print_summary(const struct bench_opts *o, const struct bench_run *runs, unsigned int n,
			 FILE *f)
{
	static const struct {
		enum bench_fig fig;
		const char *label;
		double scale;
		const char *unit;
		const char *fmt;
	} show[] = {
	    {FIG_THROUGHPUT_BPS, "throughput", 1e9, "GB/s", "%.2f"},
	    {FIG_TOTAL_MS, "total", 1, "ms", "%.0f"},
	    {FIG_SETUP_MS, "setup", 1, "ms", "%.1f"},
	    {FIG_DOWNTIME_MS, "downtime", 1, "ms", "%.1f"},
	    {FIG_EXPECTED_DOWNTIME_MS, "expected downtime", 1, "ms", "%.1f"},
	    {FIG_ROUNDS, "rounds", 1, "", "%.1f"},
	    {FIG_TRANSFERRED_BYTES, "wire", 1e9, "GB", "%.3f"},
	    {FIG_DIRTY_RATE_BPS, "dirty rate", 1e6, "MB/s", "%.1f"},
	    {FIG_FILL_MS, "fill", 1, "ms", "%.0f"},
	};
	bool first = true;
	unsigned int i;

	fprintf(f,
		"summary: %u runs, %u completed, %u ok; median (min..max) over completed runs:", n,
		count(runs, n, false), count(runs, n, true));
	for (i = 0; i < sizeof(show) / sizeof(show[0]); i++) {
		struct fig_stat st;

		fig_stats(runs, n, show[i].fig, &st);
		if (!st.n)
			continue;
		fprintf(f, "%s %s ", first ? "" : ",", show[i].label);
		first = false;
		fprintf(f, show[i].fmt, st.median / show[i].scale);
		fputs(" (", f);
		fprintf(f, show[i].fmt, st.min / show[i].scale);
		fputs("..", f);
		fprintf(f, show[i].fmt, st.max / show[i].scale);
		fprintf(f, ")%s%s", *show[i].unit ? " " : "", show[i].unit);
	}
	fputc('\n', f);
	fflush(f);
}

json_object *bench_summary_json(const struct bench_opts *o, const struct bench_run *runs,
				unsigned int n)
{
	json_object *j = json_object_new_object();
	unsigned int i;

	json_object_object_add(j, "summary", json_object_new_boolean(true));
	json_object_object_add(j, "runs", json_object_new_int64(n));
	json_object_object_add(j, "completed", json_object_new_int64(count(runs, n, false)));
	json_object_object_add(j, "ok", json_object_new_int64(count(runs, n, true)));
	for (i = 0; i < FIG_MAX; i++) {
		struct fig_stat st;
		json_object *s;

		fig_stats(runs, n, i, &st);
		if (!st.n) {
			json_object_object_add(j, bench_fig_names[i], NULL);
			continue;
		}
		s = json_object_new_object();
		json_object_object_add(s, "median", num_json(st.median));
		json_object_object_add(s, "min", num_json(st.min));
		json_object_object_add(s, "max", num_json(st.max));
		json_object_object_add(s, "n", json_object_new_int64(st.n));
		json_object_object_add(j, bench_fig_names[i], s);
	}
	json_object_object_add(j, "scenario", bench_scenario_json(o));
	return j;
}
