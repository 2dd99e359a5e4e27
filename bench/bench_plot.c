/* SPDX-License-Identifier: MIT */
/*
 * Plots of a result set, through gnuplot:
 *
 *   throughput-channels  RAM throughput against channels, a line per codec
 *                        (and per value of any other varying axis)
 *   downtime-dirty-rate  downtime against the dirty rate: measured (bars:
 *                        min..max) and expected (dashed), a pair per series
 *   wire-codec           wire bytes per codec, bars clustered by the other
 *                        varying axes
 *
 * A plot is made only when its axis varies in the result set; otherwise it
 * is skipped with the reason. Each one is a .dat file (medians, min, max:
 * the numbers, readable on their own) and a .gp script beside it that makes
 * a PNG (SVG where gnuplot has no pngcairo) when run in that directory. The
 * data and scripts are written even when gnuplot is not on PATH, so the
 * images can be made later; tern-bench then says so in one line.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PLOT_NAME_MAX 64

struct series {
	char name[BENCH_LABEL_MAX]; /* the varying axes but the plot's own */
	unsigned int *g;	    /* indices of its groups, sorted by the x axis */
	unsigned int n;
};

struct series_set {
	struct series *s;
	unsigned int n;
};

static void series_free(struct series_set *ss)
{
	unsigned int i;

	for (i = 0; i < ss->n; i++)
		free(ss->s[i].g);
	free(ss->s);
	ss->s = NULL;
	ss->n = 0;
}

/* Group the groups by every varying axis but @x; each series sorted by @x's number. */
static int series_build(const struct bench_results *res, enum bench_axis x, struct series_set *ss)
{
	unsigned int i, k, a;

	ss->s = calloc(res->n ? res->n : 1, sizeof(*ss->s));
	ss->n = 0;
	if (!ss->s)
		return -ENOMEM;
	for (i = 0; i < res->n; i++) {
		const struct bench_group *g = &res->g[i];
		char name[BENCH_LABEL_MAX] = "";
		size_t used = 0;
		struct series *s = NULL;

		for (a = 0; a < AX_MAX; a++)
			if (a != x && res->varies[a] && used < sizeof(name))
				used += (size_t)snprintf(name + used, sizeof(name) - used,
							 "%s%s=%s", used ? " " : "",
							 bench_axes[a].name, g->v[a].text);
		for (k = 0; k < ss->n && !s; k++)
			if (!strcmp(ss->s[k].name, name))
				s = &ss->s[k];
		if (!s) {
			s = &ss->s[ss->n++];
			snprintf(s->name, sizeof(s->name), "%s", name);
			s->g = calloc(res->n, sizeof(*s->g));
			if (!s->g)
				return -ENOMEM;
		}
		/* insertion by the x value: a handful of points */
		for (k = s->n; k > 0 && res->g[s->g[k - 1]].v[x].num > g->v[x].num; k--)
			s->g[k] = s->g[k - 1];
		s->g[k] = i;
		s->n++;
	}
	return 0;
}

static bool gnuplot_on_path(void)
{
	const char *path = getenv("PATH");
	char buf[4096];

	while (path && *path) {
		size_t n = strcspn(path, ":");

		if (n && n + 10 < sizeof(buf)) {
			snprintf(buf, sizeof(buf), "%.*s/gnuplot", (int)n, path);
			if (!access(buf, X_OK))
				return true;
		}
		path += n;
		if (*path == ':')
			path++;
	}
	return false;
}

int bench_mkdir_p(const char *path)
{
	char buf[4096];
	size_t i, len = strlen(path);

	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0777) && errno != EEXIST)
			return -errno;
		buf[i] = path[i];
	}
	return 0;
}

static FILE *open_in(const char *dir, const char *name, const char *ext)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s.%s", dir, name, ext);
	return fopen(path, "we");
}

/* The header every script starts with: PNG when gnuplot can, else SVG. */
static void gp_head(FILE *gp, const char *name, const char *title)
{
	fprintf(gp,
		"# made by tern-bench; run `gnuplot %s.gp` in this directory to make it again\n"
		"if (strstrt(GPVAL_TERMINALS, \"pngcairo\") > 0) {\n"
		"\tset terminal pngcairo size 1000,620 noenhanced font \",11\"\n"
		"\tset output \"%s.png\"\n"
		"} else {\n"
		"\tset terminal svg size 1000,620 noenhanced\n"
		"\tset output \"%s.svg\"\n"
		"}\n"
		"set title \"%s\"\n"
		"set grid\n"
		"set key outside right top\n"
		"set yrange [0:*]\n",
		name, name, name, title);
}

/* The x values every series shares, as explicit tics (channels 1 2 4, not 1 1.5 2 ...). */
static void gp_xtics(FILE *gp, const struct bench_results *res, enum bench_axis x, double scale)
{
	unsigned int i, k;
	bool first = true;

	fputs("set xtics (", gp);
	for (i = 0; i < res->n; i++) {
		bool seen = false;

		for (k = 0; k < i && !seen; k++)
			seen = res->g[k].v[x].num == res->g[i].v[x].num;
		if (seen)
			continue;
		fprintf(gp, "%s\"%s\" %g", first ? "" : ", ", res->g[i].v[x].text,
			(double)res->g[i].v[x].num / scale);
		first = false;
	}
	fputs(")\n", gp);
}

static void dat_stat(FILE *dat, const struct bench_group *g, const char *field, double scale)
{
	struct bench_stat st;

	if (bench_group_stat(g, field, &st))
		fprintf(dat, " %.6g %.6g %.6g", st.median / scale, st.min / scale, st.max / scale);
	else
		fputs(" NaN NaN NaN", dat);
}

static const char *series_title(const struct series *s, const char *def)
{
	return s->name[0] ? s->name : def;
}

/* throughput-channels and downtime-dirty-rate: one block of points per series. */
static int plot_lines(const struct bench_results *res, const char *dir, const char *name,
		      enum bench_axis x, bool downtime)
{
	double scale = downtime ? 1e6 : 1;
	struct series_set ss;
	char title[200];
	FILE *dat, *gp;
	unsigned int i, k;
	int ret = series_build(res, x, &ss);

	if (ret)
		return ret;
	dat = open_in(dir, name, "dat");
	gp = open_in(dir, name, "gp");
	if (!dat || !gp) {
		ret = -errno;
		goto out;
	}
	fprintf(dat, "# %s\n# x: %s; columns: x, median, min, max%s\n", name,
		downtime ? "dirty rate set, MB/s" : "channels",
		downtime ? " of the measured downtime in ms, then the median expected downtime"
			 : " of the RAM throughput in MB/s");
	for (i = 0; i < ss.n; i++) {
		fprintf(dat, "%s# series %u: %s\n", i ? "\n\n" : "", i,
			series_title(&ss.s[i], "all"));
		for (k = 0; k < ss.s[i].n; k++) {
			const struct bench_group *g = &res->g[ss.s[i].g[k]];
			struct bench_stat st;

			fprintf(dat, "%g", (double)g->v[x].num / scale);
			dat_stat(dat, g, downtime ? "downtime_ms" : "throughput_bps",
				 downtime ? 1 : 1e6);
			if (downtime) {
				if (bench_group_stat(g, "expected_downtime_ms", &st))
					fprintf(dat, " %.6g", st.median);
				else
					fputs(" NaN", dat);
			}
			fputc('\n', dat);
		}
	}
	snprintf(title, sizeof(title), "%s (%s)",
		 downtime ? "downtime against dirty rate: measured (bars: min..max) and "
			    "expected (dashed)"
			  : "RAM throughput against channels (bars: min..max)",
		 bench_verify_caption(res));
	gp_head(gp, name, title);
	fprintf(gp, "set xlabel \"%s\"\nset ylabel \"%s\"\n",
		downtime ? "dirty rate set, MB/s" : "channels",
		downtime ? "downtime, ms (median)" : "RAM throughput, MB/s (median)");
	gp_xtics(gp, res, x, scale);
	fputs("set offsets graph 0.03, graph 0.03, 0, 0\nplot ", gp);
	for (i = 0; i < ss.n; i++) {
		const char *t = series_title(&ss.s[i], downtime ? "measured" : "throughput");

		fprintf(gp,
			"%s\"%s.dat\" index %u using 1:2:3:4 with yerrorlines lc %u pt 7 "
			"title \"%s%s\"",
			i ? ", \\\n     " : "", name, i, i + 1, t,
			downtime && ss.s[i].name[0] ? ", measured" : "");
		if (downtime)
			fprintf(gp,
				", \\\n     \"%s.dat\" index %u using 1:5 with linespoints lc %u "
				"dt 2 pt 6 title \"%s%s\"",
				name, i, i + 1, ss.s[i].name[0] ? ss.s[i].name : "expected",
				ss.s[i].name[0] ? ", expected" : "");
	}
	fputc('\n', gp);
out:
	if (dat && fclose(dat) && !ret)
		ret = -errno;
	if (gp && fclose(gp) && !ret)
		ret = -errno;
	series_free(&ss);
	return ret;
}

/* wire-codec: rows are the codecs, columns the series (clustered bars). */
static int plot_wire(const struct bench_results *res, const char *dir, const char *name)
{
	struct series_set ss;
	uint64_t codec_seen = 0;
	char title[100];
	FILE *dat, *gp;
	unsigned int i, k, c;
	int ret = series_build(res, AX_CODEC, &ss);

	if (ret)
		return ret;
	dat = open_in(dir, name, "dat");
	gp = open_in(dir, name, "gp");
	if (!dat || !gp) {
		ret = -errno;
		goto out;
	}
	for (i = 0; i < res->n; i++)
		codec_seen |= 1ull << (res->g[i].v[AX_CODEC].num & 63);
	fprintf(dat, "# %s: median wire bytes in MB (10^6), a row per codec; columns:", name);
	for (i = 0; i < ss.n; i++)
		fprintf(dat, " [%u] %s", i + 2, series_title(&ss.s[i], "wire"));
	fputc('\n', dat);
	for (c = 0; c < 64; c++) {
		if (!(codec_seen & (1ull << c)))
			continue;
		for (i = 0; i < res->n; i++)
			if (res->g[i].v[AX_CODEC].num == c) {
				fprintf(dat, "%s", res->g[i].v[AX_CODEC].text);
				break;
			}
		for (i = 0; i < ss.n; i++) {
			const struct bench_group *g = NULL;
			struct bench_stat st;

			for (k = 0; k < ss.s[i].n && !g; k++)
				if (res->g[ss.s[i].g[k]].v[AX_CODEC].num == c)
					g = &res->g[ss.s[i].g[k]];
			if (g && bench_group_stat(g, "transferred_bytes", &st))
				fprintf(dat, " %.6g", st.median / 1e6);
			else
				fputs(" -", dat);
		}
		fputc('\n', dat);
	}
	snprintf(title, sizeof(title), "wire bytes per codec (median; %s)",
		 bench_verify_caption(res));
	gp_head(gp, name, title);
	fputs("set datafile missing \"-\"\n"
	      "set style data histograms\n"
	      "set style histogram clustered gap 1\n"
	      "set style fill solid 0.8 border -1\n"
	      "set xlabel \"codec\"\n"
	      "set ylabel \"bytes on the wire, MB (median)\"\n"
	      "plot ",
	      gp);
	for (i = 0; i < ss.n; i++)
		fprintf(gp, "%s\"%s.dat\" using %u%s title \"%s\"", i ? ", \\\n     " : "", name,
			i + 2, i ? "" : ":xtic(1)", series_title(&ss.s[i], "wire bytes"));
	fputc('\n', gp);
out:
	if (dat && fclose(dat) && !ret)
		ret = -errno;
	if (gp && fclose(gp) && !ret)
		ret = -errno;
	series_free(&ss);
	return ret;
}

/* `cd @dir && gnuplot @name.gp`; the image it made, or NULL. */
static const char *run_gnuplot(const char *dir, const char *name, char *img, size_t len)
{
	char script[PLOT_NAME_MAX + 4];
	int st = 0;
	pid_t pid;

	snprintf(script, sizeof(script), "%s.gp", name);
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return NULL;
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		if (null >= 0)
			dup2(null, STDOUT_FILENO);
		if (chdir(dir))
			_exit(127);
		execlp("gnuplot", "gnuplot", script, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return NULL;
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		return NULL;
	snprintf(img, len, "%s/%s.png", dir, name);
	if (!access(img, F_OK))
		return img;
	snprintf(img, len, "%s/%s.svg", dir, name);
	return access(img, F_OK) ? NULL : img;
}

static bool any_completed(const struct bench_results *res)
{
	unsigned int i;

	for (i = 0; i < res->n; i++)
		if (res->g[i].completed)
			return true;
	return false;
}

void bench_plots(const struct bench_results *res, const char *dir, FILE *f)
{
	static const struct {
		const char *name;
		enum bench_axis axis;
		const char *what;
	} plots[] = {
	    {"throughput-channels", AX_CHANNELS, "throughput against channels, per codec"},
	    {"downtime-dirty-rate", AX_DIRTY_RATE,
	     "downtime, measured and expected, against dirty rate"},
	    {"wire-codec", AX_CODEC, "wire bytes per codec"},
	};
	bool have_gnuplot = gnuplot_on_path(), made_dir = false;
	char names[256] = "";
	unsigned int i, written = 0;

	fprintf(f, "\nplots (in %s):\n", dir);
	for (i = 0; i < sizeof(plots) / sizeof(plots[0]); i++) {
		enum bench_axis a = plots[i].axis;
		char img[4096];
		int ret;

		if (!res->varies[a]) {
			fprintf(f, "  %s: skipped, %s does not vary (%s only)\n", plots[i].name,
				bench_axes[a].name, res->n ? res->g[0].v[a].text : "no runs");
			continue;
		}
		if (!any_completed(res)) {
			fprintf(f, "  %s: skipped, no run completed\n", plots[i].name);
			continue;
		}
		if (!made_dir) {
			ret = bench_mkdir_p(dir);
			if (ret) {
				fprintf(f, "  cannot make %s: %s: no plots\n", dir, strerror(-ret));
				return;
			}
			made_dir = true;
		}
		ret = a == AX_CODEC ? plot_wire(res, dir, plots[i].name)
				    : plot_lines(res, dir, plots[i].name, a, a == AX_DIRTY_RATE);
		if (ret) {
			fprintf(f, "  %s: cannot write its files: %s\n", plots[i].name,
				strerror(-ret));
			continue;
		}
		snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
			 written++ ? ", " : "", plots[i].name);
		if (!have_gnuplot)
			continue;
		if (run_gnuplot(dir, plots[i].name, img, sizeof(img)))
			fprintf(f, "  %s: %s (%s)\n", plots[i].name, img, plots[i].what);
		else
			fprintf(f, "  %s: gnuplot failed on %s.gp (its message is above)\n",
				plots[i].name, plots[i].name);
	}
	if (written && !have_gnuplot)
		fprintf(
		    f,
		    "  no images: gnuplot is not on PATH (Debian: apt-get install gnuplot-nox); "
		    "wrote the .dat and .gp of %s: `cd %s && gnuplot *.gp` makes them\n",
		    names, dir);
}
