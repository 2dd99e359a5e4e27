/* SPDX-License-Identifier: MIT */
/*
 * The scenario matrix: every axis takes a list of values, from a flag
 * (`--channels 1,2,4`) or a line of a matrix file (`channels = 1, 2, 4`);
 * the scenarios are their cartesian product.
 *
 * Each value keeps its number and a canonical text ("256M", "50M", "1gbit"),
 * so that "268435456" and "256M" are the same scenario, and a results file
 * read back by --baseline or --report groups runs exactly as they were made.
 * A label names only the axes that vary ("codec=zstd channels=2"); the key
 * that matches a scenario across files names all of them, and the guest.
 */
#include "bench.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const transports[] = {"tcp", "unix", "rdma", NULL};
static const char *const codecs[] = {"none", "zlib", "zstd", "xbzrle", "auto", NULL};
/* zero: zero-heavy, ZERO_HEAVY_PCT % zero pages and random data in the rest */
static const char *const fills[] = {"random", "text", "zero", NULL};
static const char *const patterns[] = {"sequential", "random", "hot-cold", NULL};

const struct bench_axis_def bench_axes[AX_MAX] = {
    [AX_LINK] = {"link", "link", AK_LINK, NULL, 0, 0, "loopback", false},
    [AX_TRANSPORT] = {"transport", "transport", AK_WORD, transports, 0, 0, "tcp", false},
    [AX_CODEC] = {"codec", "codec", AK_WORD, codecs, 0, 0, "none", false},
    [AX_CHANNELS] = {"channels", "channels", AK_UINT, NULL, 1, 64, "2", false},
    [AX_RAM] = {"ram", "ram_bytes", AK_SIZE, NULL, 1ull << 20, 1ull << 40, "1G", false},
    [AX_VCPUS] = {"vcpus", "vcpus", AK_UINT, NULL, 1, 64, "1", true},
    [AX_FILL] = {"fill", "fill", AK_WORD, fills, 0, 0, "random", false},
    [AX_DIRTY_RATE] = {"dirty-rate", "dirty_rate_bps", AK_RATE, NULL, 0, 1ull << 40, "50M", false},
    [AX_DIRTY_WS] = {"dirty-ws", "dirty_ws_bytes", AK_SIZE, NULL, 0, 1ull << 40, "64M", false},
    [AX_PATTERN] = {"pattern", "pattern", AK_WORD, patterns, 0, 0, "sequential", true},
    [AX_DOWNTIME] = {"downtime-limit", "downtime_limit_ms", AK_UINT, NULL, 1, 2000000, "300",
		     false},
    [AX_AUTO_CONVERGE] = {"auto-converge", "auto_converge", AK_BOOL, NULL, 0, 1, "off", false},
    /* verify-ram: an axis, so that every table says which and --baseline
     * never pairs a run that digests RAM with one that does not */
    [AX_VERIFY] = {"verify", "verify", AK_BOOL, NULL, 0, 1, "on", false},
};

static int fail(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int bench_axis_by_name(const char *name)
{
	unsigned int i;

	for (i = 0; i < AX_MAX; i++)
		if (!strcmp(name, bench_axes[i].name))
			return (int)i;
	return -1;
}

/* "256M" for 256 MiB, "1536K", "4097": the largest unit that divides exactly. */
static void canon_num(uint64_t v, bool binary, char *buf, size_t len)
{
	static const char suffix[] = "KMGT";
	uint64_t unit = binary ? 1024 : 1000, mul = 1;
	int i, best = -1;

	for (i = 0; i < 4; i++) {
		mul *= unit;
		if (v && v % mul == 0)
			best = i;
	}
	if (best < 0) {
		snprintf(buf, len, "%llu", (unsigned long long)v);
		return;
	}
	for (mul = 1, i = 0; i <= best; i++)
		mul *= unit;
	snprintf(buf, len, "%llu%c", (unsigned long long)(v / mul), suffix[best]);
}

/* "1gbit" for 10^9 bits/s, "500mbit", "1500kbit". */
static void canon_link(uint64_t bps, char *buf, size_t len)
{
	static const char *const unit[] = {"bit", "kbit", "mbit", "gbit", "tbit"};
	unsigned int u = 0;

	if (!bps) {
		snprintf(buf, len, "loopback");
		return;
	}
	while (u < 4 && bps % 1000 == 0) {
		bps /= 1000;
		u++;
	}
	snprintf(buf, len, "%llu%s", (unsigned long long)bps, unit[u]);
}

/*
 * @binary: sizes, K M G T are powers of 1024 ("64M", "1GiB", "1G");
 * otherwise rates, powers of 1000 ("50M", "50MB/s").
 */
static int parse_bytes(const char *s, bool binary, uint64_t *ret)
{
	unsigned long long v;
	uint64_t mul = 1;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	switch (tolower((unsigned char)*end)) {
	case 't':
		mul *= binary ? 1024 : 1000;
		/* fall through */
	case 'g':
		mul *= binary ? 1024 : 1000;
		/* fall through */
	case 'm':
		mul *= binary ? 1024 : 1000;
		/* fall through */
	case 'k':
		mul *= binary ? 1024 : 1000;
		end++;
		if (binary && *end == 'i')
			end++;
		break;
	default:
		break;
	}
	if (*end == 'b' || *end == 'B')
		end++;
	if (!binary && !strcmp(end, "/s"))
		end += 2;
	if (*end || v > UINT64_MAX / mul)
		return -EINVAL;
	*ret = (uint64_t)v * mul;
	return 0;
}

/* tc's rate units: bit, kbit, mbit, gbit, tbit (powers of 1000, bits per second). */
static int parse_link(const char *s, uint64_t *ret)
{
	static const char *const unit[] = {"bit", "kbit", "mbit", "gbit", "tbit"};
	unsigned long long v;
	uint64_t mul = 1;
	unsigned int u;
	char *end;

	if (!strcmp(s, "loopback")) {
		*ret = 0;
		return 0;
	}
	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || !v)
		return -EINVAL;
	for (u = 0; u < 5; u++, mul *= 1000)
		if (!strcasecmp(end, unit[u]))
			break;
	if (u == 5 || v > UINT64_MAX / mul)
		return -EINVAL;
	*ret = (uint64_t)v * mul;
	return 0;
}

int bench_axis_parse(enum bench_axis a, const char *s, struct bench_val *v, char *err, size_t len)
{
	const struct bench_axis_def *d = &bench_axes[a];
	unsigned int i;

	memset(v, 0, sizeof(*v));
	switch (d->kind) {
	case AK_SIZE:
	case AK_RATE:
		if (parse_bytes(s, d->kind == AK_SIZE, &v->num))
			return fail(err, len, "--%s: bad value '%s' (e.g. %s)", d->name, s,
				    d->kind == AK_SIZE ? "4096, 64M, 1G, 1GiB"
						       : "0, 50M, 1G, 50MB/s");
		break;
	case AK_UINT: {
		char *end;

		errno = 0;
		v->num = strtoull(s, &end, 10);
		if (errno || !isdigit((unsigned char)*s) || *end)
			return fail(err, len, "--%s: bad value '%s' (a number)", d->name, s);
		break;
	}
	case AK_WORD:
		for (i = 0; d->words[i]; i++)
			if (!strcmp(s, d->words[i]))
				break;
		if (!d->words[i]) {
			char all[128] = "";

			for (i = 0; d->words[i]; i++)
				snprintf(all + strlen(all), sizeof(all) - strlen(all), "%s%s",
					 i ? ", " : "", d->words[i]);
			return fail(err, len, "--%s: '%s' is not one of %s", d->name, s, all);
		}
		snprintf(v->text, sizeof(v->text), "%s", d->words[i]);
		v->num = i;
		return 0;
	case AK_BOOL:
		if (!strcmp(s, "on") || !strcmp(s, "yes") || !strcmp(s, "true") || !strcmp(s, "1"))
			v->num = 1;
		else if (strcmp(s, "off") && strcmp(s, "no") && strcmp(s, "false") &&
			 strcmp(s, "0"))
			return fail(err, len, "--%s: '%s' is not on or off", d->name, s);
		snprintf(v->text, sizeof(v->text), "%s", v->num ? "on" : "off");
		return 0;
	case AK_LINK:
		if (parse_link(s, &v->num))
			return fail(err, len,
				    "--%s: '%s' is neither loopback nor a rate such as 1gbit, "
				    "10gbit, 500mbit",
				    d->name, s);
		if (v->num && (v->num < 1000000 || v->num > 400000000000ull))
			return fail(err, len, "--%s: '%s' is outside 1mbit..400gbit", d->name, s);
		canon_link(v->num, v->text, sizeof(v->text));
		return 0;
	}
	if (v->num < d->min || v->num > d->max)
		return fail(err, len, "--%s: '%s' is outside %llu..%llu", d->name, s,
			    (unsigned long long)d->min, (unsigned long long)d->max);
	if (d->kind == AK_UINT)
		snprintf(v->text, sizeof(v->text), "%llu", (unsigned long long)v->num);
	else
		canon_num(v->num, d->kind == AK_SIZE, v->text, sizeof(v->text));
	return 0;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int bench_axis_parse_list(enum bench_axis a, const char *list, struct bench_axis_vals *vals,
			  char *err, size_t len)
{
	char *copy = strdup(list), *save = NULL, *tok;
	int ret = 0;

	if (!copy)
		return fail(err, len, "out of memory");
	vals->n = 0;
	vals->given = true;
	for (tok = strtok_r(copy, ",", &save); tok && !ret; tok = strtok_r(NULL, ",", &save)) {
		struct bench_val v;
		unsigned int i;

		tok = trim(tok);
		ret = bench_axis_parse(a, tok, &v, err, len);
		if (ret)
			break;
		for (i = 0; i < vals->n; i++)
			if (!strcmp(vals->v[i].text, v.text))
				ret = fail(err, len, "--%s: %s given twice", bench_axes[a].name,
					   v.text);
		if (!ret && vals->n == BENCH_AXIS_VALS_MAX)
			ret = fail(err, len, "--%s: more than %d values", bench_axes[a].name,
				   BENCH_AXIS_VALS_MAX);
		if (!ret)
			vals->v[vals->n++] = v;
	}
	if (!ret && !vals->n)
		ret = fail(err, len, "--%s: no value in '%s'", bench_axes[a].name, list);
	free(copy);
	return ret;
}

/*
 * The matrix file: one `key = v1, v2, ...` per line, keys as the options
 * without "--" (the axes, and reps), `#` starts a comment, blank lines are
 * ignored. Axes already given (by a flag) are left alone: the command line
 * wins.
 */
int bench_matrix_read(const char *path, struct bench_axis_vals ax[AX_MAX], unsigned int *reps,
		      bool *reps_given, char *err, size_t len)
{
	bool seen[AX_MAX] = {false}, seen_reps = false;
	char line[1024], msg[256];
	unsigned int lineno = 0;
	FILE *f = fopen(path, "re");
	int ret = 0;

	if (!f)
		return fail(err, len, "--matrix %s: %s", path, strerror(errno));
	while (!ret && fgets(line, sizeof(line), f)) {
		char *hash, *eq, *key, *val;
		int a;

		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			ret = fail(err, len, "%s:%u: line too long", path, lineno);
			break;
		}
		hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		key = trim(line);
		if (!*key)
			continue;
		eq = strchr(key, '=');
		if (!eq) {
			ret = fail(err, len, "%s:%u: not 'key = value, value, ...': %s", path,
				   lineno, key);
			break;
		}
		*eq = '\0';
		key = trim(key);
		val = trim(eq + 1);
		if (!strcmp(key, "reps")) {
			char *end;
			unsigned long v;

			errno = 0;
			v = strtoul(val, &end, 10);
			if (seen_reps || errno || end == val || *end || !v || v > 1000)
				ret = fail(err, len, "%s:%u: reps: %s", path, lineno,
					   seen_reps ? "given twice" : "a number 1..1000");
			seen_reps = true;
			if (!ret && !*reps_given) {
				*reps = (unsigned int)v;
				*reps_given = true;
			}
			continue;
		}
		a = bench_axis_by_name(key);
		if (a < 0) {
			ret = fail(err, len,
				   "%s:%u: unknown key '%s' (tern-bench --help lists the axes)",
				   path, lineno, key);
			break;
		}
		if (seen[a]) {
			ret = fail(err, len, "%s:%u: %s given twice", path, lineno, key);
			break;
		}
		seen[a] = true;
		if (ax[a].given)
			continue;
		if (bench_axis_parse_list((enum bench_axis)a, val, &ax[a], msg, sizeof(msg)))
			ret = fail(err, len, "%s:%u: %s", path, lineno, msg);
	}
	if (!ret && ferror(f))
		ret = fail(err, len, "--matrix %s: read error", path);
	fclose(f);
	return ret;
}

const char *bench_fill_word(const struct bench_val *fill)
{
	return !strcmp(fill->text, "text") ? "text" : "random";
}

unsigned int bench_fill_zero_pct(const struct bench_opts *o, const struct bench_val *fill)
{
	return !strcmp(fill->text, "zero") ? ZERO_HEAVY_PCT : o->zero_pct;
}

/* A combination that cannot run, or NULL. */
static const char *scenario_invalid(const struct bench_opts *o, const struct bench_scenario *s)
{
	if (s->v[AX_LINK].num && !strcmp(s->v[AX_TRANSPORT].text, "unix"))
		return "the unix transport on a shaped link makes no sense (a Unix socket never "
		       "crosses the veth pair): use --transport tcp there";
	if (!strcmp(s->v[AX_TRANSPORT].text, "rdma") && s->v[AX_LINK].num)
		return "the rdma transport on a shaped link: a tbf qdisc shapes IP, not the "
		       "RDMA device (use max-bandwidth instead)";
	if (!strcmp(s->v[AX_TRANSPORT].text, "rdma") && !o->rdma_addr)
		return "--transport rdma needs --rdma-addr ADDR (or TERN_RDMA_ADDR): an address "
		       "on the RDMA device's netdev";
	if (s->v[AX_DIRTY_RATE].num && !s->v[AX_DIRTY_WS].num)
		return "a dirty rate with a working set of 0";
	if (s->v[AX_DIRTY_WS].num > s->v[AX_RAM].num)
		return "a working set (--dirty-ws) larger than --ram";
	if (o->guest == GUEST_KVM && s->v[AX_RAM].num % (2u << 20))
		return "--ram that is not a multiple of 2 MiB (tern-vm wants one)";
	if (o->guest == GUEST_PROCESS && s->v[AX_RAM].num % 4096)
		return "--ram that is not a multiple of 4 KiB";
	return NULL;
}

/*
 * The cartesian product, first axis slowest. A combination that cannot run
 * (the unix transport on a shaped link, a working set larger than RAM, ...)
 * is left out with a note on @note; none left is an error.
 */
int bench_matrix_build(struct bench_opts *o, FILE *note, char *err, size_t len)
{
	unsigned int idx[AX_MAX] = {0};
	unsigned long long total = 1;
	unsigned int i, a;

	for (a = 0; a < AX_MAX; a++) {
		if (!o->ax[a].n) {
			if (bench_axis_parse(a, bench_axes[a].def, &o->ax[a].v[0], err, len))
				return -EINVAL;
			o->ax[a].n = 1;
		}
		total *= o->ax[a].n;
		if (total > BENCH_SCENARIOS_MAX)
			return fail(err, len, "more than %d scenarios in the matrix",
				    BENCH_SCENARIOS_MAX);
	}
	o->n_sc = 0;
	o->sc = calloc((size_t)total, sizeof(*o->sc));
	if (!o->sc)
		return fail(err, len, "out of memory");
	for (i = 0; i < total; i++) {
		struct bench_scenario *s = &o->sc[o->n_sc];
		const char *bad;
		size_t used = 0;

		memset(s, 0, sizeof(*s));
		for (a = 0; a < AX_MAX; a++) {
			s->v[a] = o->ax[a].v[idx[a]];
			if (o->ax[a].n > 1 && used < sizeof(s->label))
				used += (size_t)snprintf(s->label + used, sizeof(s->label) - used,
							 "%s%s=%s", used ? " " : "",
							 bench_axes[a].name, s->v[a].text);
		}
		if (!used)
			snprintf(s->label, sizeof(s->label), "default");
		bad = scenario_invalid(o, s);
		if (bad && total == 1)
			return fail(err, len, "%s", bad);
		if (bad) {
			fprintf(note, "tern-bench: leaving out %s: %s\n", s->label, bad);
			if (!o->n_sc && i + 1 == total)
				return fail(err, len, "no scenario of the matrix can run");
		} else {
			s->index = ++o->n_sc;
		}
		/* the next combination: the last axis changes fastest */
		for (a = AX_MAX; a-- > 0;) {
			if (++idx[a] < o->ax[a].n)
				break;
			idx[a] = 0;
		}
	}
	return 0;
}

void bench_matrix_free(struct bench_opts *o)
{
	free(o->sc);
	o->sc = NULL;
	o->n_sc = 0;
}

json_object *bench_axis_json(enum bench_axis a, const struct bench_val *v)
{
	switch (bench_axes[a].kind) {
	case AK_SIZE:
	case AK_RATE:
	case AK_UINT:
		return json_object_new_uint64(v->num);
	case AK_BOOL:
		return json_object_new_boolean(v->num != 0);
	case AK_WORD:
	case AK_LINK:
		break;
	}
	return json_object_new_string(v->text);
}

/*
 * The value of @a in a record's "axes" object. A record written before the
 * axis existed reads as the default; a mistyped or unknown value is false.
 */
bool bench_axis_from_json(enum bench_axis a, json_object *axes, struct bench_val *v)
{
	const struct bench_axis_def *d = &bench_axes[a];
	json_object *j;
	char buf[32], err[160];

	if (!axes || !json_object_object_get_ex(axes, d->json, &j) || !j)
		return !bench_axis_parse(a, d->def, v, err, sizeof(err));
	switch (d->kind) {
	case AK_SIZE:
	case AK_RATE:
	case AK_UINT:
		if (!json_object_is_type(j, json_type_int) || json_object_get_int64(j) < 0)
			return false;
		snprintf(buf, sizeof(buf), "%llu", (unsigned long long)json_object_get_uint64(j));
		break;
	case AK_BOOL:
		if (!json_object_is_type(j, json_type_boolean))
			return false;
		snprintf(buf, sizeof(buf), "%s", json_object_get_boolean(j) ? "on" : "off");
		break;
	case AK_WORD:
	case AK_LINK:
		if (!json_object_is_type(j, json_type_string) ||
		    json_object_get_string_len(j) >= (int)sizeof(buf))
			return false;
		snprintf(buf, sizeof(buf), "%s", json_object_get_string(j));
		break;
	}
	return !bench_axis_parse(a, buf, v, err, sizeof(err));
}
