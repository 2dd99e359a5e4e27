/* SPDX-License-Identifier: MIT */
/*
 * The management protocol (docs/MGMT.md): one request line in, one reply
 * line out. This file knows JSON and the session's public entry points, and
 * nothing of sockets, clients or threads (mgmt.c). It runs on the server
 * thread, which holds none of its locks while it calls in here.
 *
 * Every field of a request is checked for presence and type before use, and
 * the error names the command and the field; values are range-checked by
 * the parameter code itself, whose message names the parameter and range.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core_priv.h"
#include "mgmt.h"

/* ---- UTF-8 ---------------------------------------------------------------
 *
 * Replies are UTF-8 (RFC 8259 section 8.1), and json-c copies string bytes
 * as they are: it neither checks a request's bytes nor the strings we put in
 * a reply. So requests are checked before they are parsed, a message cut to
 * fit is cut between characters, and every reply line is scrubbed last, for
 * the strings that come from elsewhere (a VMM's error message, a path).
 */

/*
 * Bytes in the well-formed sequence at @p (@n > 0 left), or 0: RFC 3629's
 * table, so no overlong form, no surrogate, nothing above U+10FFFF. Sets
 * *@ret_cut (may be NULL) when @p is a well-formed start that @n cuts short.
 */
static size_t utf8_seq_len(const unsigned char *p, size_t n, bool *ret_cut)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len, i;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4;
	else
		return 0;
	if (p[0] == 0xe0)
		lo = 0xa0;
	else if (p[0] == 0xed)
		hi = 0x9f;
	else if (p[0] == 0xf0)
		lo = 0x90;
	else if (p[0] == 0xf4)
		hi = 0x8f;
	for (i = 1; i < len; i++) {
		if (i == n) {
			if (ret_cut)
				*ret_cut = true;
			return 0;
		}
		if (p[i] < (i == 1 ? lo : 0x80) || p[i] > (i == 1 ? hi : 0xbf))
			return 0;
	}
	return len;
}

/* The offset of the first byte of @s (@len) that is not well-formed UTF-8, or @len. */
static size_t utf8_check(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t off = 0, n;

	while (off < len && (n = utf8_seq_len(p + off, len - off, NULL)))
		off += n;
	return off;
}

/* The longest prefix of @s, at most @max bytes, that ends between characters. */
static size_t utf8_cut(const char *s, size_t max)
{
	return utf8_check(s, strnlen(s, max));
}

/* Make @s well-formed in place: a character cut short at the end goes, any
 * other ill-formed byte becomes '?' (same length, and not special in JSON). */
static void utf8_scrub(char *s)
{
	unsigned char *p = (unsigned char *)s;
	size_t len = strlen(s), off = 0, n;
	bool cut = false;

	while (off < len) {
		n = utf8_seq_len(p + off, len - off, &cut);
		if (n) {
			off += n;
		} else if (cut) {
			p[off] = '\0';
			return;
		} else {
			p[off++] = '?';
		}
	}
}

/* The reply as one line, newline included (malloc'ed); consumes @reply. */
static char *reply_line(struct json_object *reply)
{
	const char *txt;
	char *line = NULL;

	if (!reply)
		return NULL;
	txt = json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PLAIN |
							JSON_C_TO_STRING_NOSLASHESCAPE);
	if (txt && asprintf(&line, "%s\n", txt) < 0)
		line = NULL;
	json_object_put(reply);
	/* Ill-formed bytes are inside strings only: the structure is ASCII. */
	if (line)
		utf8_scrub(line);
	return line;
}

static struct json_object *reply_ok(struct json_object *id, struct json_object *ret)
{
	struct json_object *r = json_object_new_object();

	if (!r) {
		json_object_put(ret);
		return NULL;
	}
	json_object_object_add(r, "ok", json_object_new_boolean(1));
	json_object_object_add(r, "return", ret ? ret : json_object_new_object());
	if (id)
		json_object_object_add(r, "id", json_object_get(id));
	return r;
}

static struct json_object *reply_err(struct json_object *id, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static struct json_object *reply_err(struct json_object *id, const char *fmt, ...)
{
	struct json_object *r = json_object_new_object();
	char msg[512];
	va_list ap;

	if (!r)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	utf8_scrub(msg); /* cut to fit: maybe inside a character */
	json_object_object_add(r, "ok", json_object_new_boolean(0));
	json_object_object_add(r, "error", json_object_new_string(msg));
	if (id)
		json_object_object_add(r, "id", json_object_get(id));
	return r;
}

/* ---- commands --------------------------------------------------------------- */

static const char *const codec_names[TERN_STATS_CODECS] = {
    [TERN_STATS_CODEC_NONE] = "none",
    [TERN_STATS_CODEC_ZLIB] = "zlib",
    [TERN_STATS_CODEC_ZSTD] = "zstd",
    [TERN_STATS_CODEC_XBZRLE] = "xbzrle",
};

static void add_u64(struct json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_uint64(v));
}

/* The CPU arrays as an object keyed by class name (slot 0 is unused). */
static struct json_object *cpu_json(const struct tern_stats *st)
{
	struct json_object *o = json_object_new_object();
	uint32_t i;

	for (i = TERN_CPU_INVALID + 1; o && i < TERN_CPU_CLASSES; i++) {
		struct json_object *c = json_object_new_object();

		if (!c)
			break;
		add_u64(c, "user_us", st->cpu_user_us[i]);
		add_u64(c, "sys_us", st->cpu_sys_us[i]);
		json_object_object_add(o, tern_cpu_class_name(i), c);
	}
	return o;
}

static struct json_object *stats_json(const struct tern_stats *st)
{
	struct json_object *o = json_object_new_object(), *a, *codecs;
	uint32_t i;

	if (!o)
		return NULL;
	json_object_object_add(o, "status", json_object_new_string(tern_status_name(st->status)));
	json_object_object_add(o, "is_source", json_object_new_boolean(st->is_source));
	json_object_object_add(o, "verified", json_object_new_boolean(st->verified));
	add_u64(o, "channels", st->channels);
	add_u64(o, "page_size", st->page_size);
	add_u64(o, "setup_ms", st->setup_ms);
	add_u64(o, "total_ms", st->total_ms);
	add_u64(o, "downtime_ms", st->downtime_ms);
	add_u64(o, "expected_downtime_ms", st->expected_downtime_ms);
	add_u64(o, "verify_ms", st->verify_ms);
	add_u64(o, "ram_total", st->ram_total);
	add_u64(o, "ram_transferred", st->ram_transferred);
	add_u64(o, "ram_remaining", st->ram_remaining);
	add_u64(o, "normal_pages", st->normal_pages);
	add_u64(o, "zero_pages", st->zero_pages);
	add_u64(o, "wire_bytes", st->wire_bytes);
	a = json_object_new_array();
	for (i = 0; a && i < st->channels && i < TERN_MAX_CHANNELS; i++)
		json_object_array_add(a, json_object_new_uint64(st->channel_wire_bytes[i]));
	json_object_object_add(o, "channel_wire_bytes", a);
	add_u64(o, "rounds", st->rounds);
	add_u64(o, "dirty_pages_rate", st->dirty_pages_rate);
	add_u64(o, "dirty_rate_window_ms", st->dirty_rate_window_ms);
	add_u64(o, "dirty_sync_us", st->dirty_sync_us);
	add_u64(o, "dirty_clear_us", st->dirty_clear_us);
	add_u64(o, "rdma_pinned_bytes", st->rdma_pinned_bytes);
	add_u64(o, "rdma_pinned_peak", st->rdma_pinned_peak);
	add_u64(o, "rdma_reg_us", st->rdma_reg_us);
	add_u64(o, "rdma_chunks_registered", st->rdma_chunks_registered);
	add_u64(o, "rdma_placed_bytes", st->rdma_placed_bytes);
	add_u64(o, "rdma_staged_bytes", st->rdma_staged_bytes);
	add_u64(o, "zero_copy_sends", st->zero_copy_sends);
	add_u64(o, "zero_copy_bytes", st->zero_copy_bytes);
	add_u64(o, "zero_copy_copied", st->zero_copy_copied);
	add_u64(o, "zero_copy_fallbacks", st->zero_copy_fallbacks);
	json_object_object_add(o, "postcopy", json_object_new_boolean(st->postcopy));
	add_u64(o, "postcopy_missing_pages", st->postcopy_missing_pages);
	add_u64(o, "postcopy_remaining_pages", st->postcopy_remaining_pages);
	add_u64(o, "postcopy_faults", st->postcopy_faults);
	add_u64(o, "postcopy_requests", st->postcopy_requests);
	add_u64(o, "postcopy_latency_p50_us", st->postcopy_latency_p50_us);
	add_u64(o, "postcopy_latency_p99_us", st->postcopy_latency_p99_us);
	add_u64(o, "postcopy_latency_max_us", st->postcopy_latency_max_us);
	add_u64(o, "postcopy_urgent_pages", st->postcopy_urgent_pages);
	add_u64(o, "postcopy_bad_requests", st->postcopy_bad_requests);
	add_u64(o, "postcopy_bytes", st->postcopy_bytes);
	add_u64(o, "postcopy_ms", st->postcopy_ms);
	add_u64(o, "postcopy_paused_ms", st->postcopy_paused_ms);
	add_u64(o, "postcopy_pauses", st->postcopy_pauses);
	add_u64(o, "postcopy_recoveries", st->postcopy_recoveries);
	add_u64(o, "throughput_bps", st->throughput_bps);
	add_u64(o, "bandwidth_bps", st->bandwidth_bps);
	add_u64(o, "round_bytes", st->round_bytes);
	add_u64(o, "round_sent_bytes", st->round_sent_bytes);
	add_u64(o, "cpu_throttle_percent", st->cpu_throttle_percent);
	add_u64(o, "expected_sync_us", st->expected_sync_us);
	add_u64(o, "expected_ram_us", st->expected_ram_us);
	add_u64(o, "expected_device_us", st->expected_device_us);
	add_u64(o, "expected_resume_us", st->expected_resume_us);
	add_u64(o, "downtime_pause_us", st->downtime_pause_us);
	add_u64(o, "downtime_wait_us", st->downtime_wait_us);
	add_u64(o, "downtime_sync_us", st->downtime_sync_us);
	add_u64(o, "downtime_ram_us", st->downtime_ram_us);
	add_u64(o, "downtime_device_us", st->downtime_device_us);
	add_u64(o, "downtime_verify_us", st->downtime_verify_us);
	add_u64(o, "downtime_resume_us", st->downtime_resume_us);
	json_object_object_add(o, "error", json_object_new_string(st->error));
	json_object_object_add(o, "multifd_compression",
			       json_object_new_string(st->multifd_compression));
	/* An object keyed by codec name: the array's slot 0 is unused. */
	codecs = json_object_new_object();
	for (i = TERN_STATS_CODEC_NONE; codecs && i < TERN_STATS_CODECS; i++) {
		const struct tern_codec_stats *cs = &st->codec[i];
		struct json_object *c = json_object_new_object();

		if (!c)
			break;
		add_u64(c, "pages", cs->pages);
		add_u64(c, "bytes_in", cs->bytes_in);
		add_u64(c, "bytes_out", cs->bytes_out);
		json_object_object_add(c, "compression_rate",
				       json_object_new_double(cs->compression_rate));
		add_u64(c, "time_ms", cs->time_ms);
		add_u64(c, "auto_packets", cs->auto_packets);
		json_object_object_add(codecs, codec_names[i], c);
	}
	json_object_object_add(o, "codec", codecs);
	add_u64(o, "xbzrle_cache_size", st->xbzrle_cache_size);
	add_u64(o, "xbzrle_cache_hits", st->xbzrle_cache_hits);
	add_u64(o, "xbzrle_cache_misses", st->xbzrle_cache_misses);
	add_u64(o, "xbzrle_overflows", st->xbzrle_overflows);
	add_u64(o, "xbzrle_bytes", st->xbzrle_bytes);
	json_object_object_add(o, "xbzrle_cache_hit_rate",
			       json_object_new_double(st->xbzrle_cache_hit_rate));
	json_object_object_add(o, "xbzrle_encoding_rate",
			       json_object_new_double(st->xbzrle_encoding_rate));
	json_object_object_add(o, "auto_reason", json_object_new_string(st->auto_reason));
	json_object_object_add(o, "cpu", cpu_json(st));
	add_u64(o, "cpu_total_user_us", st->cpu_total_user_us);
	add_u64(o, "cpu_total_sys_us", st->cpu_total_sys_us);
	return o;
}

/* A required string field; NULL with *@ret_reply set when absent or not a string. */
static const char *req_string(struct json_object *req, struct json_object *id, const char *cmd,
			      const char *field, struct json_object **ret_reply)
{
	struct json_object *v;

	if (!json_object_object_get_ex(req, field, &v)) {
		*ret_reply = reply_err(id, "%s: missing field '%s' (a string)", cmd, field);
		return NULL;
	}
	if (!json_object_is_type(v, json_type_string)) {
		*ret_reply = reply_err(id, "%s: field '%s' must be a string, not %s", cmd, field,
				       json_type_to_name(json_object_get_type(v)));
		return NULL;
	}
	return json_object_get_string(v);
}

static struct json_object *cmd_query(struct tern_session *s, struct json_object *req,
				     struct json_object *id)
{
	struct tern_stats st;

	tern_stats_get(s, &st);
	return reply_ok(id, stats_json(&st));
}

/* The value as a JSON number, or a string for the named parameters. */
static struct json_object *param_json(struct tern_session *s, const char *name, enum param_id pid)
{
	char buf[64] = "";

	if (param_is_enum(pid)) {
		tern_param_get_str(s, name, buf, sizeof(buf), NULL);
		return json_object_new_string(buf);
	}
	return json_object_new_uint64(params_get(&s->params, pid));
}

static struct json_object *cmd_set(struct tern_session *s, struct json_object *req,
				   struct json_object *id)
{
	struct json_object *reply = NULL, *v, *ret, *old;
	struct tern_error err = {0};
	enum param_id pid;
	const char *name;
	int rc;

	name = req_string(req, id, "set", "name", &reply);
	if (!name)
		return reply;
	if (params_lookup(name, &pid))
		return reply_err(id, "set: field 'name': unknown parameter '%s'", name);
	if (!json_object_object_get_ex(req, "value", &v))
		return reply_err(id, "set: missing field 'value' (%s)",
				 param_is_enum(pid) ? "a string" : "a number");
	if (param_is_enum(pid)) {
		if (!json_object_is_type(v, json_type_string))
			return reply_err(id, "set: field 'value' must be a string for %s, not %s",
					 name, json_type_to_name(json_object_get_type(v)));
	} else {
		if (!json_object_is_type(v, json_type_int))
			return reply_err(id, "set: field 'value' must be an integer for %s, not %s",
					 name, json_type_to_name(json_object_get_type(v)));
		if (json_object_get_int64(v) < 0)
			return reply_err(id, "set: field 'value' must not be negative for %s",
					 name);
	}

	old = param_json(s, name, pid);
	if (param_is_enum(pid))
		rc = tern_param_set_str(s, name, json_object_get_string(v), &err);
	else
		rc = tern_param_set(s, name, json_object_get_uint64(v), &err);
	if (rc) {
		json_object_put(old);
		/* -EBUSY (start-only while migrating) is not the value's fault */
		return reply_err(id, "set: %s%s", rc == -EBUSY ? "" : "field 'value': ", err.msg);
	}
	ret = json_object_new_object();
	if (!ret) {
		json_object_put(old);
		return NULL;
	}
	json_object_object_add(ret, "name", json_object_new_string(name));
	json_object_object_add(ret, "old", old);
	json_object_object_add(ret, "new", param_json(s, name, pid));
	return reply_ok(id, ret);
}

/* `params`: every parameter, by name. */
static struct json_object *cmd_params(struct tern_session *s, struct json_object *id)
{
	struct json_object *ret = json_object_new_object();
	int i;

	if (!ret)
		return NULL;
	for (i = PARAM_INVALID + 1; i < PARAM_MAX; i++)
		json_object_object_add(
		    ret, param_name((enum param_id)i),
		    param_json(s, param_name((enum param_id)i), (enum param_id)i));
	return reply_ok(id, ret);
}

/* `caps` without a name: every capability, on or off. */
static struct json_object *caps_list(struct tern_session *s, struct json_object *id)
{
	struct json_object *ret = json_object_new_object();
	int i;

	if (!ret)
		return NULL;
	for (i = CAP_INVALID + 1; i < CAP_MAX; i++)
		json_object_object_add(
		    ret, cap_name((enum cap_id)i),
		    json_object_new_boolean(caps_get(&s->params, (enum cap_id)i)));
	return reply_ok(id, ret);
}

static struct json_object *cmd_caps(struct tern_session *s, struct json_object *req,
				    struct json_object *id)
{
	struct json_object *reply = NULL, *v, *ret;
	struct tern_error err = {0};
	bool old = false;
	const char *name;

	if (!json_object_object_get_ex(req, "name", NULL) &&
	    !json_object_object_get_ex(req, "on", NULL))
		return caps_list(s, id);
	name = req_string(req, id, "caps", "name", &reply);
	if (!name)
		return reply;
	if (tern_cap_get(s, name, &old, &err))
		return reply_err(id, "caps: field 'name': %s", err.msg);
	if (!json_object_object_get_ex(req, "on", &v))
		return reply_err(id, "caps: missing field 'on' (a boolean)");
	if (!json_object_is_type(v, json_type_boolean))
		return reply_err(id, "caps: field 'on' must be a boolean, not %s",
				 json_type_to_name(json_object_get_type(v)));
	if (tern_cap_set(s, name, json_object_get_boolean(v), &err))
		return reply_err(id, "caps: %s", err.msg);
	ret = json_object_new_object();
	if (!ret)
		return NULL;
	json_object_object_add(ret, "name", json_object_new_string(name));
	json_object_object_add(ret, "old", json_object_new_boolean(old));
	json_object_object_add(ret, "new", json_object_new_boolean(json_object_get_boolean(v)));
	return reply_ok(id, ret);
}

static struct json_object *cmd_cancel(struct tern_session *s, struct json_object *req,
				      struct json_object *id)
{
	int ret = tern_cancel(s);

	if (ret == -EALREADY)
		return reply_err(id, "cancel: no migration is running");
	if (ret == -EBUSY)
		return reply_err(id, "cancel: refused in postcopy: the guest runs on the "
				     "destination and pages it needs are only on the source");
	return reply_ok(id, NULL);
}

static struct json_object *cmd_continue(struct tern_session *s, struct json_object *req,
					struct json_object *id)
{
	struct tern_error err = {0};

	if (tern_continue(s, &err))
		return reply_err(id, "%s", err.msg);
	return reply_ok(id, NULL);
}

static struct json_object *cmd_postcopy(struct tern_session *s, struct json_object *req,
					struct json_object *id)
{
	struct tern_error err = {0};
	int ret = tern_postcopy_start(s, &err);

	if (ret == -EALREADY)
		return reply_err(id, "postcopy: asked for already");
	if (ret)
		return reply_err(id, "%s", err.msg);
	return reply_ok(id, NULL);
}

/*
 * The commands that take a URI: migrate and incoming start a migration;
 * resume (source) and recover (destination) reconnect one paused in
 * postcopy. A destination's reply carries the URI it bound.
 */
static const struct uri_cmd {
	const char *name;
	int (*fn)(struct tern_session *s, const char *uri, struct tern_error *err);
	bool dest;
	const char *already; /* -EALREADY's message; NULL: not expected */
} uri_cmds[] = {
    {"migrate", tern_migrate, false, NULL},
    {"incoming", tern_incoming, true, NULL},
    {"resume", tern_postcopy_resume, false, "a resume is under way already"},
    {"recover", tern_postcopy_recover, true, "a recovery is listening already"},
};

static struct json_object *cmd_uri(struct tern_session *s, struct json_object *req,
				   struct json_object *id, const struct uri_cmd *c)
{
	struct json_object *reply = NULL, *ret;
	struct tern_error err = {0};
	const char *uri;
	char bound[300];
	int rc;

	uri = req_string(req, id, c->name, "uri", &reply);
	if (!uri)
		return reply;
	rc = c->fn(s, uri, &err);
	if (rc == -EALREADY && c->already)
		return reply_err(id, "%s: %s", c->name, c->already);
	if (rc && c->already) /* the postcopy calls name themselves */
		return reply_err(id, "%s", err.msg);
	if (rc)
		/* -EBUSY (one running, or the session may not start again) is
		 * not the URI's fault */
		return reply_err(id, "%s: %s%s", c->name,
				 rc == -EBUSY ? "" : "field 'uri': ", err.msg);
	ret = json_object_new_object();
	if (!ret)
		return NULL;
	if (c->dest && !tern_incoming_uri(s, bound, sizeof(bound)))
		json_object_object_add(ret, "uri", json_object_new_string(bound));
	return reply_ok(id, ret);
}

static struct json_object *cmd_subscribe(struct json_object *id, bool on, enum mgmt_action *ret_act)
{
	/* The server flips the client's flag before it queues this reply. */
	*ret_act = on ? MGMT_ACT_SUBSCRIBE : MGMT_ACT_UNSUBSCRIBE;
	return reply_ok(id, NULL);
}

static struct json_object *handle_request(struct tern_session *s, const char *line, size_t len,
					  enum mgmt_action *ret_act)
{
	struct json_object *req, *id = NULL, *reply;
	struct json_tokener *tok;
	enum json_tokener_error jerr;
	const char *cmd;
	size_t end;

	if (memchr(line, '\0', len))
		return reply_err(NULL, "malformed request: a NUL byte in the line");
	end = utf8_check(line, len);
	if (end < len)
		return reply_err(NULL, "request is not valid UTF-8 (byte %zu)", end);
	tok = json_tokener_new();
	if (!tok)
		return NULL;
	req = json_tokener_parse_ex(tok, line, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!req || jerr != json_tokener_success) {
		json_object_put(req);
		return reply_err(NULL, "malformed JSON at byte %zu: %s", end,
				 jerr == json_tokener_continue ? "unexpected end of line"
							       : json_tokener_error_desc(jerr));
	}
	while (end < len && (line[end] == ' ' || line[end] == '\t' || line[end] == '\r'))
		end++;
	if (end < len) {
		json_object_put(req);
		return reply_err(NULL, "malformed JSON: trailing bytes at byte %zu", end);
	}
	if (!json_object_is_type(req, json_type_object)) {
		reply = reply_err(NULL, "a request must be a JSON object, not %s",
				  json_type_to_name(json_object_get_type(req)));
		json_object_put(req);
		return reply;
	}
	json_object_object_get_ex(req, "id", &id);

	reply = NULL;
	cmd = req_string(req, id, "request", "cmd", &reply);
	if (!cmd)
		;
	else if (!strcmp(cmd, "query"))
		reply = cmd_query(s, req, id);
	else if (!strcmp(cmd, "set"))
		reply = cmd_set(s, req, id);
	else if (!strcmp(cmd, "params"))
		reply = cmd_params(s, id);
	else if (!strcmp(cmd, "caps"))
		reply = cmd_caps(s, req, id);
	else if (!strcmp(cmd, "cancel"))
		reply = cmd_cancel(s, req, id);
	else if (!strcmp(cmd, "continue"))
		reply = cmd_continue(s, req, id);
	else if (!strcmp(cmd, "postcopy") || !strcmp(cmd, "migrate-start-postcopy"))
		reply = cmd_postcopy(s, req, id);
	else if (!strcmp(cmd, "migrate"))
		reply = cmd_uri(s, req, id, &uri_cmds[0]);
	else if (!strcmp(cmd, "incoming"))
		reply = cmd_uri(s, req, id, &uri_cmds[1]);
	else if (!strcmp(cmd, "resume"))
		reply = cmd_uri(s, req, id, &uri_cmds[2]);
	else if (!strcmp(cmd, "recover") || !strcmp(cmd, "migrate-recover"))
		reply = cmd_uri(s, req, id, &uri_cmds[3]);
	else if (!strcmp(cmd, "subscribe"))
		reply = cmd_subscribe(id, true, ret_act);
	else if (!strcmp(cmd, "unsubscribe"))
		reply = cmd_subscribe(id, false, ret_act);
	else
		reply = reply_err(id, "field 'cmd': unknown command '%.*s'", (int)utf8_cut(cmd, 64),
				  cmd);
	json_object_put(req);
	return reply;
}

char *mgmt_request(struct tern_session *s, const char *line, size_t len, enum mgmt_action *ret_act)
{
	*ret_act = MGMT_ACT_NONE;
	return reply_line(handle_request(s, line, len, ret_act));
}
