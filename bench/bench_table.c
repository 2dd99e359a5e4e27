/* SPDX-License-Identifier: MIT */
/*
 * Records grouped by scenario: the table at the end of a run, the
 * comparison with a baseline, and the groups the plots are drawn from.
 *
 * Everything here works on the JSON records (the lines of a results file),
 * whether they were just made or read back from a file: --baseline and
 * --report read files with the same code that summarises a run. A scenario
 * is its guest and the value of every axis (the key); its label names only
 * the axes that vary within the result set. Figures are summarised over the
 * runs that completed: a failed run's figures describe another migration.
 */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- grouping -------------------------------------------------------------------- */

static int group_push(struct bench_group *g, json_object *rec)
{
	if (g->n == g->cap) {
		unsigned int cap = g->cap ? g->cap * 2 : 8;
		json_object **r = realloc(g->rec, cap * sizeof(*r));

		if (!r)
			return -ENOMEM;
		g->rec = r;
		g->cap = cap;
	}
	g->rec[g->n++] = json_object_get(rec);
	return 0;
}

/* Adds a run record; anything else (a summary, another program's line) is counted and skipped. */
int bench_results_add(struct bench_results *res, json_object *rec)
{
	struct bench_val v[AX_MAX];
	json_object *axes = NULL;
	struct bench_group *g = NULL;
	char key[BENCH_KEY_MAX];
	const char *guest;
	bool flag = false;
	size_t used;
	unsigned int a, i;

	if (!json_object_is_type(rec, json_type_object) ||
	    (bench_json_bool(rec, "summary", &flag) && flag) ||
	    !json_object_object_get_ex(rec, "axes", &axes) ||
	    !json_object_is_type(axes, json_type_object)) {
		res->skipped++;
		return 0;
	}
	guest = bench_json_str(rec, "guest", "kvm");
	used = (size_t)snprintf(key, sizeof(key), "guest=%.15s", guest);
	for (a = 0; a < AX_MAX; a++) {
		if (!bench_axis_from_json(a, axes, &v[a])) {
			res->skipped++;
			return 0;
		}
		/* records from before verify was an axis had it in "scenario" */
		if (a == AX_VERIFY && !json_object_object_get_ex(axes, "verify", NULL) &&
		    bench_json_bool(json_object_object_get(rec, "scenario"), "verify", &flag)) {
			v[a] = (struct bench_val){.num = flag};
			snprintf(v[a].text, sizeof(v[a].text), "%s", flag ? "on" : "off");
		}
		if (used < sizeof(key))
			used += (size_t)snprintf(key + used, sizeof(key) - used, " %s=%s",
						 bench_axes[a].name, v[a].text);
	}
	for (i = 0; i < res->n && !g; i++)
		if (!strcmp(res->g[i].key, key))
			g = &res->g[i];
	if (!g) {
		if (res->n == res->cap) {
			unsigned int cap = res->cap ? res->cap * 2 : 16;
			struct bench_group *n = realloc(res->g, cap * sizeof(*n));

			if (!n)
				return -ENOMEM;
			res->g = n;
			res->cap = cap;
		}
		g = &res->g[res->n++];
		memset(g, 0, sizeof(*g));
		snprintf(g->key, sizeof(g->key), "%s", key);
		snprintf(g->guest, sizeof(g->guest), "%.15s", guest);
		memcpy(g->v, v, sizeof(v));
	}
	if (group_push(g, rec))
		return -ENOMEM;
	if (!strcmp(bench_json_str(rec, "status", ""), "completed"))
		g->completed++;
	if (bench_json_bool(rec, "ok", &flag) && flag)
		g->ok++;
	return 0;
}

int bench_results_load(struct bench_results *res, const char *path, char *err, size_t len)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	unsigned int lineno = 0, before = res->n;
	ssize_t n;
	int ret = 0;

	if (!f) {
		ret = -errno;
		snprintf(err, len, "%s: %s", path, strerror(-ret));
		return ret;
	}
	while (!ret && (n = getline(&line, &cap, f)) >= 0) {
		json_object *rec;

		lineno++;
		while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (!n)
			continue;
		rec = json_tokener_parse(line);
		if (!rec) {
			res->skipped++;
			continue;
		}
		ret = bench_results_add(res, rec);
		json_object_put(rec);
	}
	free(line);
	fclose(f);
	if (ret) {
		snprintf(err, len, "%s:%u: out of memory", path, lineno);
		return ret;
	}
	if (res->n == before) {
		snprintf(err, len, "%s: no tern-bench run records in %u lines", path, lineno);
		return -ENOENT;
	}
	return 0;
}

void bench_results_finish(struct bench_results *res)
{
	unsigned int a, i;

	for (a = 0; a < AX_MAX; a++) {
		res->varies[a] = false;
		for (i = 1; i < res->n; i++)
			if (strcmp(res->g[i].v[a].text, res->g[0].v[a].text))
				res->varies[a] = true;
	}
	for (i = 0; i < res->n; i++) {
		struct bench_group *g = &res->g[i];
		size_t used = 0;

		g->label[0] = '\0';
		for (a = 0; a < AX_MAX; a++)
			if (res->varies[a] && used < sizeof(g->label))
				used += (size_t)snprintf(g->label + used, sizeof(g->label) - used,
							 "%s%s=%s", used ? " " : "",
							 bench_axes[a].name, g->v[a].text);
		if (!used)
			snprintf(g->label, sizeof(g->label), "default");
	}
}

void bench_results_fini(struct bench_results *res)
{
	unsigned int i, k;

	for (i = 0; i < res->n; i++) {
		for (k = 0; k < res->g[i].n; k++)
			json_object_put(res->g[i].rec[k]);
		free(res->g[i].rec);
	}
	free(res->g);
	memset(res, 0, sizeof(*res));
}

/* ---- statistics -------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

bool bench_group_stat(const struct bench_group *g, const char *field, struct bench_stat *st)
{
	double *v = calloc(g->n ? g->n : 1, sizeof(*v));
	unsigned int i, k = 0;

	memset(st, 0, sizeof(*st));
	if (!v)
		return false;
	for (i = 0; i < g->n; i++)
		if (!strcmp(bench_json_str(g->rec[i], "status", ""), "completed") &&
		    bench_json_num(g->rec[i], field, &v[k]))
			k++;
	if (k) {
		qsort(v, k, sizeof(*v), cmp_double);
		st->n = k;
		st->min = v[0];
		st->max = v[k - 1];
		st->median = k % 2 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2;
	}
	free(v);
	return k > 0;
}

/* Integral values print as integers: 3 rounds, not 3.0. */
static json_object *num_json(double v)
{
	if (v == floor(v) && fabs(v) < 9007199254740992.0)
		return json_object_new_int64((int64_t)v);
	return json_object_new_double(v);
}

/* {median, min, max, n} of @field into @j, or null when no completed run has it. */
static void summary_add(json_object *j, const struct bench_group *g, const char *field)
{
	struct bench_stat st;
	json_object *s;

	if (!bench_group_stat(g, field, &st)) {
		json_object_object_add(j, field, NULL);
		return;
	}
	s = json_object_new_object();
	json_object_object_add(s, "median", num_json(st.median));
	json_object_object_add(s, "min", num_json(st.min));
	json_object_object_add(s, "max", num_json(st.max));
	json_object_object_add(s, "n", json_object_new_int64(st.n));
	json_object_object_add(j, field, s);
}

json_object *bench_group_summary_json(const struct bench_group *g)
{
	json_object *j = json_object_new_object(), *axes = json_object_new_object();
	unsigned int i, side;
	char key[96];

	json_object_object_add(j, "summary", json_object_new_boolean(true));
	json_object_object_add(j, "scenario_label", json_object_new_string(g->label));
	json_object_object_add(j, "guest", json_object_new_string(g->guest));
	for (i = 0; i < AX_MAX; i++)
		json_object_object_add(axes, bench_axes[i].json, bench_axis_json(i, &g->v[i]));
	json_object_object_add(j, "axes", axes);
	json_object_object_add(j, "runs", json_object_new_int64(g->n));
	json_object_object_add(j, "completed", json_object_new_int64(g->completed));
	json_object_object_add(j, "ok", json_object_new_int64(g->ok));
	for (i = 0; i < bench_fig_count; i++)
		summary_add(j, g, bench_fig_names[i]);
	/* both sides' CPU per GiB, in total and per class */
	for (side = 0; side < 2; side++)
		for (i = 0; i <= bench_cpu_class_count; i++) {
			bench_cpu_key(key, sizeof(key), side, i ? bench_cpu_classes[i - 1] : NULL,
				      "s_per_gib");
			summary_add(j, g, key);
		}
	return j;
}

/* ---- a text table ------------------------------------------------------------------ */

#define TBL_COLS 14
#define TBL_CELL 64

struct tbl {
	unsigned int ncol, nrow, cap, col;
	char (*cell)[TBL_COLS][TBL_CELL];
};

static void tbl_put(struct tbl *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void tbl_put(struct tbl *t, const char *fmt, ...)
{
	va_list ap;

	if (t->col == 0) {
		if (t->nrow == t->cap) {
			unsigned int cap = t->cap ? t->cap * 2 : 16;
			void *n = realloc(t->cell, cap * sizeof(*t->cell));

			if (!n)
				return;
			t->cell = n;
			t->cap = cap;
		}
		memset(t->cell[t->nrow], 0, sizeof(t->cell[t->nrow]));
		t->nrow++;
	}
	if (t->col < TBL_COLS) {
		va_start(ap, fmt);
		vsnprintf(t->cell[t->nrow - 1][t->col], TBL_CELL, fmt, ap);
		va_end(ap);
	}
	if (++t->col == t->ncol)
		t->col = 0;
}

/* The first row is the header, underlined; cells left-aligned. */
static void tbl_print(struct tbl *t, FILE *f)
{
	size_t w[TBL_COLS] = {0};
	unsigned int r, c;

	for (r = 0; r < t->nrow; r++)
		for (c = 0; c < t->ncol; c++)
			if (strlen(t->cell[r][c]) > w[c])
				w[c] = strlen(t->cell[r][c]);
	for (r = 0; r < t->nrow; r++) {
		fputs(" ", f);
		for (c = 0; c < t->ncol; c++)
			fprintf(f, " %-*s", c + 1 < t->ncol ? (int)w[c] : 0, t->cell[r][c]);
		fputc('\n', f);
		if (r == 0) {
			fputs(" ", f);
			for (c = 0; c < t->ncol; c++) {
				fputc(' ', f);
				for (size_t k = 0; k < w[c]; k++)
					fputc('-', f);
			}
			fputc('\n', f);
		}
	}
	free(t->cell);
	t->cell = NULL;
	t->nrow = t->cap = t->col = 0;
}

/* "median (min..max)" of @field scaled by 1/@scale, or "-". */
static void put_stat(struct tbl *t, const struct bench_group *g, const char *field, double scale,
		     int prec, bool range)
{
	struct bench_stat st;

	if (!bench_group_stat(g, field, &st))
		tbl_put(t, "-");
	else if (!range || st.n == 1)
		tbl_put(t, "%.*f", prec, st.median / scale);
	else
		tbl_put(t, "%.*f (%.*f..%.*f)", prec, st.median / scale, prec, st.min / scale, prec,
			st.max / scale);
}

static void put_ms_of_us(struct tbl *t, const struct bench_group *g, const char *field)
{
	put_stat(t, g, field, 1000, 1, false);
}

/* The median of @field over the completed runs; false without one. */
static bool median_of(const struct bench_group *g, const char *field, double *ret)
{
	struct bench_stat st;

	if (!bench_group_stat(g, field, &st))
		return false;
	*ret = st.median;
	return true;
}

/*
 * The lowest ceiling of a serial class (one thread per side) on @dest's
 * side, from the medians; false when no such class cost anything.
 */
static bool lowest_serial_ceiling(const struct bench_group *g, bool dest, const char **ret_cls,
				  double *ret_ceiling)
{
	unsigned int c;
	char key[96];
	double v, best = 0;
	bool any = false;

	for (c = 0; c < bench_cpu_class_count; c++) {
		if (!bench_cpu_class_serial(bench_cpu_classes[c]))
			continue;
		bench_cpu_key(key, sizeof(key), dest, bench_cpu_classes[c], "s_per_gib");
		if (!median_of(g, key, &v) || v <= 0 || (any && 1 / v >= best))
			continue;
		best = 1 / v;
		*ret_cls = bench_cpu_classes[c];
		any = true;
	}
	*ret_ceiling = best;
	return any;
}

/*
 * CPU-seconds per GiB moved, per side and thread class (medians), each with
 * its ceiling 1 / that in GiB/s, and the lowest ceiling of the serial
 * classes: what one core per serial stage caps the migration at.
 */
static void print_cpu_table(const struct bench_results *res, FILE *f)
{
	struct tbl t = {.ncol = 4 + bench_cpu_class_count};
	unsigned int i, c, side;
	bool any = false;
	char key[96];

	for (i = 0; i < res->n && !any; i++)
		any = median_of(&res->g[i], "cpu_s_per_gib", &(double){0});
	fprintf(f,
		"\nCPU-seconds per GiB moved (medians; the library's threads from the start of "
		"the migration to its end, per GiB of RAM carried; %s), (ceiling GiB/s = 1 / "
		"that):\n",
		bench_verify_caption(res));
	if (!any) {
		fprintf(f, "  (none: the programs do not print cpu_s_per_gib yet)\n");
		return;
	}
	tbl_put(&t, "scenario");
	tbl_put(&t, "side");
	tbl_put(&t, "total");
	for (c = 0; c < bench_cpu_class_count; c++)
		tbl_put(&t, "%s", bench_cpu_classes[c]);
	tbl_put(&t, "lowest serial ceiling");
	for (i = 0; i < res->n; i++) {
		const struct bench_group *g = &res->g[i];

		for (side = 0; side < 2; side++) {
			const char *cls = NULL;
			double v, ceil;

			tbl_put(&t, "%s", g->label);
			tbl_put(&t, "%s", side ? "destination" : "source");
			bench_cpu_key(key, sizeof(key), side, NULL, "s_per_gib");
			if (median_of(g, key, &v))
				tbl_put(&t, "%.3f", v);
			else
				tbl_put(&t, "-");
			for (c = 0; c < bench_cpu_class_count; c++) {
				bench_cpu_key(key, sizeof(key), side, bench_cpu_classes[c],
					      "s_per_gib");
				if (!median_of(g, key, &v) || v <= 0)
					tbl_put(&t, "-");
				else
					tbl_put(&t, "%.3g (%.3g)", v, 1 / v);
			}
			if (lowest_serial_ceiling(g, side, &cls, &ceil))
				tbl_put(&t, "%s %.2f GiB/s", cls, ceil);
			else
				tbl_put(&t, "-");
		}
	}
	tbl_print(&t, f);
	fprintf(f, "  serial: one thread per side (migration, mgmt); send, recv, prefault (one "
		   "thread per two channels) and digest run on several threads, so their ceiling "
		   "grows with the cores they get\n");
}

const char *bench_verify_caption(const struct bench_results *res)
{
	unsigned int i, on = 0;

	for (i = 0; i < res->n; i++)
		on += res->g[i].v[AX_VERIFY].num != 0;
	if (on && on < res->n)
		return "verify on and off: see the scenario";
	return on ? "verify on" : "verify off";
}

void bench_print_table(const struct bench_results *res, FILE *f)
{
	static const char *const meas[] = {
	    "downtime_pause_us",  "downtime_wait_us",	"downtime_sync_us",  "downtime_ram_us",
	    "downtime_device_us", "downtime_verify_us", "downtime_resume_us"};
	static const char *const expd[] = {"expected_sync_us", "expected_ram_us",
					   "expected_device_us", "expected_resume_us"};
	struct tbl t = {.ncol = 8};
	bool parts = false;
	unsigned int i, k;

	fprintf(f, "\nmedian (min..max) per scenario, over the runs that completed (%s):\n",
		bench_verify_caption(res));
	tbl_put(&t, "scenario");
	tbl_put(&t, "ok/runs");
	tbl_put(&t, "throughput MB/s");
	tbl_put(&t, "total ms");
	tbl_put(&t, "downtime ms");
	tbl_put(&t, "expected ms");
	tbl_put(&t, "wire MB");
	tbl_put(&t, "rounds");
	for (i = 0; i < res->n; i++) {
		const struct bench_group *g = &res->g[i];

		tbl_put(&t, "%s", g->label);
		tbl_put(&t, "%u/%u", g->ok, g->n);
		put_stat(&t, g, "throughput_bps", 1e6, 0, true);
		put_stat(&t, g, "total_ms", 1, 0, true);
		put_stat(&t, g, "downtime_ms", 1, 1, true);
		put_stat(&t, g, "expected_downtime_ms", 1, 1, true);
		put_stat(&t, g, "transferred_bytes", 1e6, 1, true);
		put_stat(&t, g, "rounds", 1, 0, true);
		for (k = 0; k < 7; k++) {
			struct bench_stat st;

			parts = parts || bench_group_stat(g, meas[k], &st);
		}
	}
	tbl_print(&t, f);

	fprintf(f, "\ndowntime, measured against expected (medians, ms; %s):\n",
		bench_verify_caption(res));
	if (!parts)
		fprintf(f, "  (no breakdown: the programs do not print downtime_*_us and "
			   "expected_*_us yet)\n");
	t = (struct tbl){.ncol = parts ? 14 : 3};
	tbl_put(&t, "scenario");
	tbl_put(&t, "measured");
	if (parts) {
		tbl_put(&t, "= pause");
		tbl_put(&t, "+ wait");
		tbl_put(&t, "+ sync");
		tbl_put(&t, "+ ram");
		tbl_put(&t, "+ device");
		tbl_put(&t, "+ verify");
		tbl_put(&t, "+ resume");
	}
	tbl_put(&t, "expected");
	if (parts) {
		tbl_put(&t, "= sync");
		tbl_put(&t, "+ ram");
		tbl_put(&t, "+ device");
		tbl_put(&t, "+ resume");
	}
	for (i = 0; i < res->n; i++) {
		const struct bench_group *g = &res->g[i];

		tbl_put(&t, "%s", g->label);
		put_stat(&t, g, "downtime_ms", 1, 1, false);
		for (k = 0; parts && k < 7; k++)
			put_ms_of_us(&t, g, meas[k]);
		put_stat(&t, g, "expected_downtime_ms", 1, 1, false);
		for (k = 0; parts && k < 4; k++)
			put_ms_of_us(&t, g, expd[k]);
	}
	tbl_print(&t, f);
	print_cpu_table(res, f);
}

/* ---- baseline ---------------------------------------------------------------------- */

static void put_ratio(struct tbl *t, const struct bench_group *now, const struct bench_group *base,
		      const char *field)
{
	struct bench_stat a, b;

	if (!bench_group_stat(now, field, &a) || !bench_group_stat(base, field, &b) || !b.median)
		tbl_put(t, "-");
	else
		tbl_put(t, "x%.3f", a.median / b.median);
}

/* The baseline's group of the same scenario, or NULL. */
static const struct bench_group *baseline_group(const struct bench_results *base, const char *key)
{
	unsigned int k;

	for (k = 0; k < base->n; k++)
		if (!strcmp(base->g[k].key, key))
			return &base->g[k];
	return NULL;
}

/*
 * Per side and thread class, the ratio new/baseline of the CPU-seconds per
 * GiB (< 1: cheaper; a class's ceiling moves by the inverse), and of the
 * lowest serial ceiling itself (> 1: a higher cap).
 */
static void print_cpu_baseline(const struct bench_results *now, const struct bench_results *base,
			       FILE *f)
{
	struct tbl t = {.ncol = 4 + bench_cpu_class_count};
	unsigned int i, c, side;
	char key[96];

	fprintf(f,
		"\nCPU-seconds per GiB moved, new/baseline (< 1 is cheaper; a class's ceiling "
		"is the inverse), and the lowest serial ceiling new/baseline (> 1 is higher):\n");
	tbl_put(&t, "scenario");
	tbl_put(&t, "side");
	tbl_put(&t, "total");
	for (c = 0; c < bench_cpu_class_count; c++)
		tbl_put(&t, "%s", bench_cpu_classes[c]);
	tbl_put(&t, "lowest serial ceiling");
	for (i = 0; i < now->n; i++) {
		const struct bench_group *g = &now->g[i], *b = baseline_group(base, g->key);

		if (!b)
			continue;
		for (side = 0; side < 2; side++) {
			const char *cn = NULL, *cb = NULL;
			double vn, vb;

			tbl_put(&t, "%s", g->label);
			tbl_put(&t, "%s", side ? "destination" : "source");
			bench_cpu_key(key, sizeof(key), side, NULL, "s_per_gib");
			put_ratio(&t, g, b, key);
			for (c = 0; c < bench_cpu_class_count; c++) {
				bench_cpu_key(key, sizeof(key), side, bench_cpu_classes[c],
					      "s_per_gib");
				put_ratio(&t, g, b, key);
			}
			if (lowest_serial_ceiling(g, side, &cn, &vn) &&
			    lowest_serial_ceiling(b, side, &cb, &vb) && vb > 0)
				tbl_put(&t, "x%.3f (%s, was %s)", vn / vb, cn, cb);
			else
				tbl_put(&t, "-");
		}
	}
	tbl_print(&t, f);
}

void bench_print_baseline(const struct bench_results *now, const struct bench_results *base,
			  const char *base_path, FILE *f)
{
	struct tbl t = {.ncol = 8};
	unsigned int i, k, both = 0, only_base = 0;

	fprintf(f,
		"\nagainst the baseline %s: ratio of medians new/baseline over completed runs "
		"(throughput > 1 is faster, the others < 1 are better; CPU: CPU-seconds per GiB "
		"moved; %s here, %s there; only scenarios with the same verify setting are "
		"compared):\n",
		base_path, bench_verify_caption(now), bench_verify_caption(base));
	tbl_put(&t, "scenario");
	tbl_put(&t, "completed new/base");
	tbl_put(&t, "throughput");
	tbl_put(&t, "total time");
	tbl_put(&t, "downtime");
	tbl_put(&t, "wire bytes");
	tbl_put(&t, "CPU source");
	tbl_put(&t, "CPU destination");
	for (i = 0; i < now->n; i++) {
		const struct bench_group *g = &now->g[i], *b = baseline_group(base, g->key);

		if (!b)
			continue;
		both++;
		tbl_put(&t, "%s", g->label);
		tbl_put(&t, "%u/%u", g->completed, b->completed);
		put_ratio(&t, g, b, "throughput_bps");
		put_ratio(&t, g, b, "total_ms");
		put_ratio(&t, g, b, "downtime_ms");
		put_ratio(&t, g, b, "transferred_bytes");
		put_ratio(&t, g, b, "cpu_s_per_gib");
		put_ratio(&t, g, b, "dest_cpu_s_per_gib");
	}
	for (k = 0; k < base->n; k++) {
		bool found = false;

		for (i = 0; i < now->n && !found; i++)
			found = !strcmp(base->g[k].key, now->g[i].key);
		only_base += !found;
	}
	if (both)
		tbl_print(&t, f);
	else
		free(t.cell);
	fprintf(f, "  %u scenario%s in both, %u only here, %u only in the baseline%s\n", both,
		both == 1 ? "" : "s", now->n - both, only_base,
		both ? "" : " (a scenario is its guest and every axis' value)");
	if (both)
		print_cpu_baseline(now, base, f);
}
