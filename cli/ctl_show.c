/* SPDX-License-Identifier: MIT */
/*
 * ternctl's human output: the query block, parameters, capabilities, the
 * watch line and the final summary. Every field is read with a default, so
 * that an older server (fewer fields) shows what it has and a newer one
 * (more fields) shows what ternctl knows; --json is the way to see all.
 */
#include <string.h>

#include "ctl.h"
#include "units.h"

#define LABEL "%-20s"

static const struct {
	const char *name;
	enum ctl_kind kind;
} param_kinds[] = {
    {"max-bandwidth", CTL_KIND_RATE},
    {"avail-switchover-bandwidth", CTL_KIND_RATE},
    {"downtime-limit", CTL_KIND_MS},
    {"multifd-channels", CTL_KIND_INT},
    {"clear-bitmap-shift", CTL_KIND_INT},
    {"multifd-compression", CTL_KIND_NAME},
    {"multifd-zlib-level", CTL_KIND_INT},
    {"multifd-zstd-level", CTL_KIND_INT},
    {"xbzrle-cache-size", CTL_KIND_SIZE},
    {"cpu-throttle-initial", CTL_KIND_PERCENT},
    {"cpu-throttle-increment", CTL_KIND_PERCENT},
    {"max-cpu-throttle", CTL_KIND_PERCENT},
    {"migration-timeout", CTL_KIND_S},
    {"migration-timeout-policy", CTL_KIND_NAME},
    {"handshake-timeout", CTL_KIND_MS},
    {"io-timeout", CTL_KIND_MS},
    {"rdma-pin-limit", CTL_KIND_SIZE},
};

enum ctl_kind ctl_param_kind(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(param_kinds) / sizeof(param_kinds[0]); i++)
		if (!strcmp(name, param_kinds[i].name))
			return param_kinds[i].kind;
	return CTL_KIND_INVALID;
}

static struct json_object *field(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	if (!o || !json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, key, &v))
		return NULL;
	return v;
}

uint64_t ctl_u64(struct json_object *o, const char *key)
{
	struct json_object *v = field(o, key);

	if (!v ||
	    !(json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)))
		return 0;
	if (json_object_is_type(v, json_type_double))
		return json_object_get_double(v) > 0 ? (uint64_t)json_object_get_double(v) : 0;
	/* json-c keeps numbers over INT64_MAX as unsigned; negative ones read 0 */
	return json_object_get_int64(v) < 0 ? 0 : json_object_get_uint64(v);
}

double ctl_double(struct json_object *o, const char *key)
{
	struct json_object *v = field(o, key);

	if (!v ||
	    !(json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)))
		return 0;
	return json_object_get_double(v);
}

const char *ctl_str(struct json_object *o, const char *key)
{
	struct json_object *v = field(o, key);

	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
}

bool ctl_bool(struct json_object *o, const char *key)
{
	struct json_object *v = field(o, key);

	return v && json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
}

bool ctl_status_final(const char *status)
{
	return !strcmp(status, "completed") || !strcmp(status, "failed") ||
	       !strcmp(status, "cancelled");
}

void ctl_print_json(FILE *out, struct json_object *o)
{
	fprintf(out, "%s\n",
		json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
						      JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* ---- shared pieces ----------------------------------------------------------- */

/* "117.2 MB/s (938 Mbit/s)" */
static char *rate_pair(uint64_t bps, char *buf, size_t len)
{
	char r[UNITS_BUF], b[UNITS_BUF];

	snprintf(buf, len, "%s (%s)", units_fmt_rate(bps, r, sizeof(r)),
		 units_fmt_bits(bps, b, sizeof(b)));
	return buf;
}

/*
 * @total_ms ("41 ms") and the parts the server sent (": sync 1.2 ms, RAM
 * ..."). The parts are in microseconds: when they add up to something the
 * millisecond total rounds to 0, the total says "< 1 ms", not "0 ms".
 */
static void breakdown(FILE *out, uint64_t total_ms, struct json_object *st, const char *prefix,
		      const char *const *parts, const char *const *labels, size_t n)
{
	char t[UNITS_BUF], line[512] = "";
	uint64_t sum_us = 0;
	size_t i, used = 0;

	for (i = 0; i < n && used < sizeof(line); i++) {
		char key[64];

		snprintf(key, sizeof(key), "%s%s_us", prefix, parts[i]);
		if (!field(st, key))
			continue;
		sum_us += ctl_u64(st, key);
		used += (size_t)snprintf(line + used, sizeof(line) - used, "%s%s %s",
					 used ? ", " : ": ", labels[i],
					 units_fmt_us(ctl_u64(st, key), t, sizeof(t)));
	}
	fprintf(out, "%s%s\n",
		!total_ms && sum_us ? "< 1 ms" : units_fmt_ms(total_ms, t, sizeof(t)), line);
}

static const char *const downtime_parts[] = {"pause",  "wait",	 "sync",  "ram",
					     "device", "verify", "resume"};
static const char *const downtime_labels[] = {"pause",	"wait",	  "sync",  "RAM",
					      "device", "verify", "resume"};
static const char *const expected_parts[] = {"sync", "ram", "device", "resume"};
static const char *const expected_labels[] = {"sync", "RAM", "device", "pause+resume"};

static void show_downtime(FILE *out, struct json_object *st)
{
	fprintf(out, LABEL, "downtime");
	breakdown(out, ctl_u64(st, "downtime_ms"), st, "downtime_", downtime_parts, downtime_labels,
		  7);
}

static void show_expected(FILE *out, struct json_object *st)
{
	fprintf(out, LABEL, "expected downtime");
	breakdown(out, ctl_u64(st, "expected_downtime_ms"), st, "expected_", expected_parts,
		  expected_labels, 4);
}

/* ---- query ------------------------------------------------------------------- */

static void show_codecs(FILE *out, struct json_object *st)
{
	struct json_object *codecs = field(st, "codec");
	bool any = false;

	if (!codecs || !json_object_is_type(codecs, json_type_object))
		return;
	json_object_object_foreach(codecs, name, c)
	{
		if (!ctl_u64(c, "pages"))
			continue;
		if (!any)
			fprintf(out, "  %-8s %12s %12s %12s %7s %10s %8s\n", "codec", "pages", "in",
				"out", "ratio", "time", "auto");
		any = true;
		{
			char in[UNITS_BUF], o[UNITS_BUF], t[UNITS_BUF];

			fprintf(out, "  %-8s %12llu %12s %12s %6.2fx %10s %8llu\n", name,
				(unsigned long long)ctl_u64(c, "pages"),
				units_fmt_bytes(ctl_u64(c, "bytes_in"), in, sizeof(in)),
				units_fmt_bytes(ctl_u64(c, "bytes_out"), o, sizeof(o)),
				ctl_double(c, "compression_rate"),
				units_fmt_ms(ctl_u64(c, "time_ms"), t, sizeof(t)),
				(unsigned long long)ctl_u64(c, "auto_packets"));
		}
	}
}

static void show_xbzrle(FILE *out, struct json_object *st)
{
	uint64_t hits = ctl_u64(st, "xbzrle_cache_hits"),
		 misses = ctl_u64(st, "xbzrle_cache_misses");
	char a[UNITS_BUF], b[UNITS_BUF];

	if (!hits && !misses)
		return;
	fprintf(out, LABEL "%s cache, %llu hits, %llu misses (%.1f%% hit), %llu overflows\n",
		"xbzrle", units_fmt_bytes(ctl_u64(st, "xbzrle_cache_size"), a, sizeof(a)),
		(unsigned long long)hits, (unsigned long long)misses,
		100 * ctl_double(st, "xbzrle_cache_hit_rate"),
		(unsigned long long)ctl_u64(st, "xbzrle_overflows"));
	fprintf(out, LABEL "%s of deltas, encoding rate %.2fx\n", "",
		units_fmt_bytes(ctl_u64(st, "xbzrle_bytes"), b, sizeof(b)),
		ctl_double(st, "xbzrle_encoding_rate"));
}

static void show_wire(FILE *out, struct json_object *st)
{
	struct json_object *ch = field(st, "channel_wire_bytes");
	char b[UNITS_BUF];
	size_t i, n;

	fprintf(out, LABEL "%s", "wire", units_fmt_bytes(ctl_u64(st, "wire_bytes"), b, sizeof(b)));
	n = ch && json_object_is_type(ch, json_type_array) ? json_object_array_length(ch) : 0;
	for (i = 0; n > 1 && i < n; i++) {
		struct json_object *v = json_object_array_get_idx(ch, i);
		int64_t x =
		    v && json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : 0;

		fprintf(out, "%s%s", i ? ", " : " (per channel: ",
			units_fmt_bytes(x > 0 ? (uint64_t)x : 0, b, sizeof(b)));
	}
	fprintf(out, "%s\n", n > 1 ? ")" : "");
}

/*
 * What the migration cost this side in CPU, per thread class, and per GiB
 * of RAM moved (ram_transferred); a class's ceiling is 1 / its CPU-seconds
 * per GiB: the GiB/s one core could move if that class were all it ran.
 * Threads add their time as they end: the figures are final once the
 * migration is.
 */
/* CPU time: "850 us", "41.3 ms", then seconds from 1 s on ("1.35 s"). */
static char *fmt_cpu(uint64_t us, char *buf, size_t len)
{
	return us < 1000000 ? units_fmt_us(us, buf, len) : units_fmt_ms(us / 1000, buf, len);
}

static void show_cpu(FILE *out, struct json_object *st)
{
	uint64_t user = ctl_u64(st, "cpu_total_user_us"), sys = ctl_u64(st, "cpu_total_sys_us");
	double gib = (double)ctl_u64(st, "ram_transferred") / (1024.0 * 1024.0 * 1024.0);
	struct json_object *cpu = field(st, "cpu");
	char a[UNITS_BUF], b[UNITS_BUF], c[UNITS_BUF];

	fprintf(out, LABEL "%s (user %s, system %s)", "cpu", fmt_cpu(user + sys, a, sizeof(a)),
		fmt_cpu(user, b, sizeof(b)), fmt_cpu(sys, c, sizeof(c)));
	if (gib > 0)
		fprintf(out, ", %.3f s per GiB moved", (double)(user + sys) / 1e6 / gib);
	fputc('\n', out);
	if (!cpu || !json_object_is_type(cpu, json_type_object))
		return;
	fprintf(out, "  %-10s %10s %10s %10s %14s\n", "class", "user", "system", "s/GiB",
		"ceiling");
	json_object_object_foreach(cpu, name, v)
	{
		uint64_t u = ctl_u64(v, "user_us"), y = ctl_u64(v, "sys_us");
		double s = (double)(u + y) / 1e6;

		if (!u && !y)
			continue;
		fprintf(out, "  %-10s %10s %10s", name, fmt_cpu(u, a, sizeof(a)),
			fmt_cpu(y, b, sizeof(b)));
		if (gib > 0)
			fprintf(out, " %10.3f %9.2f GiB/s", s / gib, gib / s);
		fputc('\n', out);
	}
}

/* rdma: what is registered, what it cost, how the pages travelled. */
static void show_rdma(FILE *out, struct json_object *st)
{
	char a[32], b[32], c[32], d[32], e[32];

	fprintf(out,
		LABEL "%s pinned (peak %s) in %llu registrations, %s registering; %s "
		      "written in place, %s staged\n",
		"rdma", units_fmt_bytes(ctl_u64(st, "rdma_pinned_bytes"), a, sizeof(a)),
		units_fmt_bytes(ctl_u64(st, "rdma_pinned_peak"), b, sizeof(b)),
		(unsigned long long)ctl_u64(st, "rdma_chunks_registered"),
		units_fmt_us(ctl_u64(st, "rdma_reg_us"), c, sizeof(c)),
		units_fmt_bytes(ctl_u64(st, "rdma_placed_bytes"), d, sizeof(d)),
		units_fmt_bytes(ctl_u64(st, "rdma_staged_bytes"), e, sizeof(e)));
}

/* zero-copy-send: what went without a copy, and what the kernel copied anyway. */
static void show_zero_copy(FILE *out, struct json_object *st)
{
	char a[32];

	fprintf(out, LABEL "%llu sends, %s; %llu copied by the kernel, %llu packets by copy\n",
		"zero-copy", (unsigned long long)ctl_u64(st, "zero_copy_sends"),
		units_fmt_bytes(ctl_u64(st, "zero_copy_bytes"), a, sizeof(a)),
		(unsigned long long)ctl_u64(st, "zero_copy_copied"),
		(unsigned long long)ctl_u64(st, "zero_copy_fallbacks"));
}

/* postcopy: what the destination lacked and fetched, and how fast. */
static void show_postcopy(FILE *out, struct json_object *st)
{
	char a[32], b[32];

	fprintf(out, LABEL "%llu of %llu pages still missing, %s moved in %s\n", "postcopy",
		(unsigned long long)ctl_u64(st, "postcopy_remaining_pages"),
		(unsigned long long)ctl_u64(st, "postcopy_missing_pages"),
		units_fmt_bytes(ctl_u64(st, "postcopy_bytes"), a, sizeof(a)),
		units_fmt_ms(ctl_u64(st, "postcopy_ms"), b, sizeof(b)));
	if (ctl_bool(st, "is_source"))
		fprintf(out, LABEL "%llu pages sent urgently, %llu bad requests\n", "page requests",
			(unsigned long long)ctl_u64(st, "postcopy_urgent_pages"),
			(unsigned long long)ctl_u64(st, "postcopy_bad_requests"));
	else
		fprintf(out,
			LABEL "%llu faults, %llu pages requested; placed after p50 %llu us, "
			      "p99 %llu us, max %llu us\n",
			"page faults", (unsigned long long)ctl_u64(st, "postcopy_faults"),
			(unsigned long long)ctl_u64(st, "postcopy_requests"),
			(unsigned long long)ctl_u64(st, "postcopy_latency_p50_us"),
			(unsigned long long)ctl_u64(st, "postcopy_latency_p99_us"),
			(unsigned long long)ctl_u64(st, "postcopy_latency_max_us"));
	if (ctl_u64(st, "postcopy_pauses"))
		fprintf(out, LABEL "%llu times for %s in all, %llu recovered\n", "paused",
			(unsigned long long)ctl_u64(st, "postcopy_pauses"),
			units_fmt_ms(ctl_u64(st, "postcopy_paused_ms"), a, sizeof(a)),
			(unsigned long long)ctl_u64(st, "postcopy_recoveries"));
}

void ctl_show_query(FILE *out, struct json_object *st)
{
	const char *status = ctl_str(st, "status");
	bool src = ctl_bool(st, "is_source");
	uint64_t round_bytes = ctl_u64(st, "round_bytes");
	const char *moved = !strcmp(status, "none") ? "transferred" : src ? "sent" : "received";
	char a[UNITS_BUF], b[UNITS_BUF], c[UNITS_BUF], r[2 * UNITS_BUF + 4];

	fprintf(out, LABEL "%s", "status", status);
	if (strcmp(status, "none"))
		fprintf(out, " (%s)", src ? "source" : "destination");
	fputc('\n', out);
	if (strcmp(status, "none"))
		fprintf(out, LABEL "%s (setup %s)\n", "time",
			units_fmt_ms(ctl_u64(st, "total_ms"), a, sizeof(a)),
			units_fmt_ms(ctl_u64(st, "setup_ms"), b, sizeof(b)));
	fprintf(out, LABEL "%llu, page size %llu\n", "channels",
		(unsigned long long)ctl_u64(st, "channels"),
		(unsigned long long)ctl_u64(st, "page_size"));
	fprintf(out, LABEL "%s total, %s %s, %s remaining\n", "RAM",
		units_fmt_bytes(ctl_u64(st, "ram_total"), a, sizeof(a)),
		units_fmt_bytes(ctl_u64(st, "ram_transferred"), b, sizeof(b)), moved,
		units_fmt_bytes(ctl_u64(st, "ram_remaining"), c, sizeof(c)));
	fprintf(out, LABEL "%llu normal, %llu zero\n", "pages",
		(unsigned long long)ctl_u64(st, "normal_pages"),
		(unsigned long long)ctl_u64(st, "zero_pages"));
	fprintf(out, LABEL "%llu", "rounds", (unsigned long long)ctl_u64(st, "rounds"));
	if (src && round_bytes)
		fprintf(out, "; this one %.1f%% sent (%s of %s)",
			100.0 * (double)ctl_u64(st, "round_sent_bytes") / (double)round_bytes,
			units_fmt_bytes(ctl_u64(st, "round_sent_bytes"), a, sizeof(a)),
			units_fmt_bytes(round_bytes, b, sizeof(b)));
	fputc('\n', out);
	show_wire(out, st);
	fprintf(out, LABEL "%s\n", "throughput",
		rate_pair(ctl_u64(st, "throughput_bps"), r, sizeof(r)));
	if (ctl_u64(st, "bandwidth_bps"))
		fprintf(out, LABEL "%s\n", "link bandwidth",
			rate_pair(ctl_u64(st, "bandwidth_bps"), r, sizeof(r)));
	if (src && ctl_u64(st, "dirty_rate_window_ms"))
		fprintf(out, LABEL "%s (%llu pages/s over %s); last sync %s, clear %s\n",
			"dirty rate",
			units_fmt_rate(ctl_u64(st, "dirty_pages_rate") * ctl_u64(st, "page_size"),
				       a, sizeof(a)),
			(unsigned long long)ctl_u64(st, "dirty_pages_rate"),
			units_fmt_ms(ctl_u64(st, "dirty_rate_window_ms"), r, sizeof(r)),
			units_fmt_us(ctl_u64(st, "dirty_sync_us"), b, sizeof(b)),
			units_fmt_us(ctl_u64(st, "dirty_clear_us"), c, sizeof(c)));
	else if (src && ctl_u64(st, "dirty_sync_us"))
		/* no window has closed: 0 would read as an idle guest */
		fprintf(out, LABEL "not measured yet; last sync %s, clear %s\n", "dirty rate",
			units_fmt_us(ctl_u64(st, "dirty_sync_us"), b, sizeof(b)),
			units_fmt_us(ctl_u64(st, "dirty_clear_us"), c, sizeof(c)));
	if (ctl_u64(st, "rdma_pinned_peak"))
		show_rdma(out, st);
	if (ctl_u64(st, "zero_copy_sends") || ctl_u64(st, "zero_copy_fallbacks"))
		show_zero_copy(out, st);
	if (ctl_bool(st, "postcopy"))
		show_postcopy(out, st);
	if (ctl_u64(st, "cpu_throttle_percent"))
		fprintf(out, LABEL "%llu%%\n", "cpu throttle",
			(unsigned long long)ctl_u64(st, "cpu_throttle_percent"));
	if (src && strcmp(status, "none"))
		show_expected(out, st);
	if (ctl_u64(st, "downtime_ms") || (src && !strcmp(status, "completed")))
		show_downtime(out, st);
	if (ctl_u64(st, "cpu_total_user_us") || ctl_u64(st, "cpu_total_sys_us"))
		show_cpu(out, st);
	if (ctl_u64(st, "verify_ms") || ctl_bool(st, "verified"))
		fprintf(out, LABEL "%s, took %s\n", "verified",
			ctl_bool(st, "verified") ? "yes" : "no",
			units_fmt_ms(ctl_u64(st, "verify_ms"), a, sizeof(a)));
	fprintf(out, LABEL "%s", "compression", ctl_str(st, "multifd_compression"));
	if (*ctl_str(st, "auto_reason"))
		fprintf(out, " (%s)", ctl_str(st, "auto_reason"));
	fputc('\n', out);
	show_codecs(out, st);
	show_xbzrle(out, st);
	if (*ctl_str(st, "error"))
		fprintf(out, LABEL "%s\n", "error", ctl_str(st, "error"));
}

/* ---- parameters and capabilities --------------------------------------------- */

static void param_value(struct json_object *v, enum ctl_kind kind, char *buf, size_t len)
{
	char a[UNITS_BUF], b[UNITS_BUF];
	uint64_t x;

	if (!v) {
		snprintf(buf, len, "?");
		return;
	}
	if (!json_object_is_type(v, json_type_int)) {
		snprintf(buf, len, "%s", json_object_get_string(v));
		return;
	}
	x = json_object_get_int64(v) < 0 ? 0 : json_object_get_uint64(v);
	switch (kind) {
	case CTL_KIND_RATE:
		if (!x)
			snprintf(buf, len, "unlimited (0)");
		else
			snprintf(buf, len, "%s, %s (%llu)", units_fmt_rate(x, a, sizeof(a)),
				 units_fmt_bits(x, b, sizeof(b)), (unsigned long long)x);
		break;
	case CTL_KIND_SIZE:
		snprintf(buf, len, "%s (%llu)", units_fmt_bytes(x, a, sizeof(a)),
			 (unsigned long long)x);
		break;
	case CTL_KIND_MS:
		snprintf(buf, len, "%s", units_fmt_ms(x, a, sizeof(a)));
		if (x >= 1000)
			snprintf(buf + strlen(buf), len - strlen(buf), " (%llu ms)",
				 (unsigned long long)x);
		break;
	case CTL_KIND_S:
		if (!x)
			snprintf(buf, len, "none (0)");
		else if (x > UINT64_MAX / 1000 || x < 60)
			snprintf(buf, len, "%llu s", (unsigned long long)x);
		else
			snprintf(buf, len, "%s (%llu s)", units_fmt_ms(x * 1000, a, sizeof(a)),
				 (unsigned long long)x);
		break;
	case CTL_KIND_PERCENT:
		snprintf(buf, len, "%llu%%", (unsigned long long)x);
		break;
	default:
		snprintf(buf, len, "%llu", (unsigned long long)x);
		break;
	}
}

void ctl_show_params(FILE *out, struct json_object *params)
{
	char v[128];

	json_object_object_foreach(params, name, val)
	{
		param_value(val, ctl_param_kind(name), v, sizeof(v));
		fprintf(out, "%-26s %s\n", name, v);
	}
}

void ctl_show_param_change(FILE *out, struct json_object *ret)
{
	const char *name = ctl_str(ret, "name");
	char o[128], n[128];

	param_value(field(ret, "old"), ctl_param_kind(name), o, sizeof(o));
	param_value(field(ret, "new"), ctl_param_kind(name), n, sizeof(n));
	fprintf(out, "%s: %s -> %s\n", name, o, n);
}

void ctl_show_caps(FILE *out, struct json_object *caps)
{
	json_object_object_foreach(caps, name, val)
	{
		fprintf(out, "%-26s %s\n", name, json_object_get_boolean(val) ? "on" : "off");
	}
}

void ctl_show_cap_change(FILE *out, struct json_object *ret)
{
	fprintf(out, "%s: %s -> %s\n", ctl_str(ret, "name"), ctl_bool(ret, "old") ? "on" : "off",
		ctl_bool(ret, "new") ? "on" : "off");
}

/* ---- watch ------------------------------------------------------------------- */

#define APPEND(...)                                                                                \
	do {                                                                                       \
		size_t _n = strlen(buf);                                                           \
		if (_n < len)                                                                      \
			snprintf(buf + _n, len - _n, __VA_ARGS__);                                 \
	} while (0)

void ctl_progress_line(struct json_object *st, char *buf, size_t len)
{
	const char *status = ctl_str(st, "status");
	uint64_t round_bytes = ctl_u64(st, "round_bytes");
	uint64_t throttle = ctl_u64(st, "cpu_throttle_percent");
	char a[UNITS_BUF], r[2 * UNITS_BUF + 4];

	snprintf(buf, len, "%-9s %s", status, units_fmt_ms(ctl_u64(st, "total_ms"), a, sizeof(a)));
	if (!strcmp(status, "none")) {
		APPEND("  waiting for a migration");
		return;
	}
	APPEND("  round %llu", (unsigned long long)ctl_u64(st, "rounds"));
	if (ctl_bool(st, "is_source")) {
		if (round_bytes)
			APPEND(" %5.1f%%", 100.0 * (double)ctl_u64(st, "round_sent_bytes") /
					       (double)round_bytes);
		APPEND("  %s", rate_pair(ctl_u64(st, "throughput_bps"), r, sizeof(r)));
		APPEND("  remaining %s",
		       units_fmt_bytes(ctl_u64(st, "ram_remaining"), a, sizeof(a)));
		if (ctl_u64(st, "dirty_rate_window_ms"))
			APPEND("  dirty %s", units_fmt_rate(ctl_u64(st, "dirty_pages_rate") *
								ctl_u64(st, "page_size"),
							    a, sizeof(a)));
		else
			APPEND("  dirty -"); /* not measured yet */
		APPEND("  downtime ~%s",
		       units_fmt_ms(ctl_u64(st, "expected_downtime_ms"), a, sizeof(a)));
		/* which rate priced it, when it is not simply the rounds' */
		if (strcmp(ctl_str(st, "switchover_rate"), "measured") &&
		    strcmp(ctl_str(st, "switchover_rate"), "none") &&
		    *ctl_str(st, "switchover_rate"))
			APPEND(
			    " at %s %s",
			    units_fmt_rate(ctl_u64(st, "switchover_bandwidth_bps"), a, sizeof(a)),
			    ctl_str(st, "switchover_rate"));
	} else {
		APPEND("  received %s",
		       units_fmt_bytes(ctl_u64(st, "ram_transferred"), a, sizeof(a)));
		APPEND("  %s", rate_pair(ctl_u64(st, "throughput_bps"), r, sizeof(r)));
	}
	if (ctl_bool(st, "postcopy"))
		APPEND("  postcopy: %llu pages missing, %llu requested, p99 %llu us",
		       (unsigned long long)ctl_u64(st, "postcopy_remaining_pages"),
		       (unsigned long long)ctl_u64(st, "postcopy_requests"),
		       (unsigned long long)ctl_u64(st, "postcopy_latency_p99_us"));
	if (ctl_u64(st, "postcopy_pauses"))
		APPEND("  paused %llux, %llu recovered",
		       (unsigned long long)ctl_u64(st, "postcopy_pauses"),
		       (unsigned long long)ctl_u64(st, "postcopy_recoveries"));
	APPEND("  %llu ch", (unsigned long long)ctl_u64(st, "channels"));
	if (throttle)
		APPEND("  throttle %llu%%", (unsigned long long)throttle);
}

void ctl_show_summary(FILE *out, struct json_object *st)
{
	char a[UNITS_BUF], b[UNITS_BUF], r[2 * UNITS_BUF + 4];
	bool src = ctl_bool(st, "is_source");

	fprintf(out, "migration %s after %s (setup %s)\n", ctl_str(st, "status"),
		units_fmt_ms(ctl_u64(st, "total_ms"), a, sizeof(a)),
		units_fmt_ms(ctl_u64(st, "setup_ms"), b, sizeof(b)));
	if (src) {
		show_downtime(out, st);
		show_expected(out, st);
	}
	fprintf(out, LABEL "%s in %llu rounds (%llu normal, %llu zero pages)\n", "RAM",
		units_fmt_bytes(ctl_u64(st, "ram_transferred"), a, sizeof(a)),
		(unsigned long long)ctl_u64(st, "rounds"),
		(unsigned long long)ctl_u64(st, "normal_pages"),
		(unsigned long long)ctl_u64(st, "zero_pages"));
	show_wire(out, st);
	fprintf(out, LABEL "%s\n", "throughput",
		rate_pair(ctl_u64(st, "throughput_bps"), r, sizeof(r)));
	if (ctl_u64(st, "cpu_total_user_us") || ctl_u64(st, "cpu_total_sys_us"))
		show_cpu(out, st);
	fprintf(out, LABEL "%s\n", "verified", ctl_bool(st, "verified") ? "yes" : "no");
	if (*ctl_str(st, "error"))
		fprintf(out, LABEL "%s\n", "error", ctl_str(st, "error"));
}

/* ---- replies ----------------------------------------------------------------- */

int ctl_reply(struct json_object *reply, struct json_object **ret_return)
{
	struct json_object *ok = field(reply, "ok"), *ret = field(reply, "return");

	if (!ok || !json_object_is_type(ok, json_type_boolean)) {
		fprintf(stderr, "ternctl: a reply without \"ok\": %s\n",
			json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PLAIN));
		return CTL_EXIT_USAGE;
	}
	if (!json_object_get_boolean(ok)) {
		const char *msg = ctl_str(reply, "error");

		fprintf(stderr, "ternctl: %s\n", *msg ? msg : "the server refused, saying nothing");
		return CTL_EXIT_ERROR;
	}
	if (!ret || !json_object_is_type(ret, json_type_object)) {
		fprintf(stderr, "ternctl: a reply without a \"return\" object: %s\n",
			json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PLAIN));
		return CTL_EXIT_USAGE;
	}
	*ret_return = ret;
	return CTL_EXIT_OK;
}
