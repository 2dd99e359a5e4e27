/* SPDX-License-Identifier: MIT */
/*
 * Parameters and capabilities, by the names operators know from QEMU. Each
 * has a range and a default; a value outside the range is refused with a
 * message that names the parameter and the range. Values are atomics so the
 * management server can change max-bandwidth or downtime-limit while the
 * migration thread reads them; the others are fixed once a migration starts.
 *
 * multifd-compression takes a name (none, zlib, zstd, xbzrle, auto), set
 * through tern_param_set_str(); it is stored as the method's wire id. A
 * method this build cannot encode and decode is refused when it is set.
 */
#include <stdio.h>
#include <stdlib.h>

#include "core_priv.h"

struct param_desc {
	const char *name;
	uint64_t min, max, def;
	bool live; /* may change during a migration */
	const char *unit;
	bool is_enum; /* a name: the values of mf_method_by_name() */
};

#define METHOD_NAMES "none, zlib, zstd, xbzrle, auto"

static const struct param_desc param_table[PARAM_MAX] = {
    [PARAM_MULTIFD_CHANNELS] = {"multifd-channels", 1, TERN_MAX_CHANNELS, 2, false, ""},
    [PARAM_MAX_BANDWIDTH] = {"max-bandwidth", 0, UINT64_MAX / 2, 0, true, " bytes/s"},
    [PARAM_DOWNTIME_LIMIT] = {"downtime-limit", 1, 2000000, 300, true, " ms"},
    [PARAM_CLEAR_BITMAP_SHIFT] = {"clear-bitmap-shift", 6, 31, 18, false, ""},
    [PARAM_MULTIFD_COMPRESSION] = {"multifd-compression", 0, 0, TERN_CODEC_NONE, false, "", true},
    [PARAM_MULTIFD_ZLIB_LEVEL] = {"multifd-zlib-level", 1, 9, 1, false, ""},
    [PARAM_MULTIFD_ZSTD_LEVEL] = {"multifd-zstd-level", 1, 20, 1, false, ""},
    /* at least one page of the smallest page size; the source also checks
     * its own page size when it starts */
    [PARAM_XBZRLE_CACHE_SIZE] = {"xbzrle-cache-size", 4096, 1ull << 40, 64ull << 20, true,
				 " bytes"},
};

static const char *const cap_names[CAP_MAX] = {
    [CAP_VERIFY_RAM] = "verify-ram",
};

void params_init(struct params *p)
{
	int i;

	memset(p, 0, sizeof(*p));
	for (i = 1; i < PARAM_MAX; i++)
		p->val[i] = param_table[i].def;
}

int params_lookup(const char *name, enum param_id *ret_id)
{
	int i;

	for (i = 1; i < PARAM_MAX; i++) {
		if (name && !strcmp(name, param_table[i].name)) {
			*ret_id = (enum param_id)i;
			return 0;
		}
	}
	return -ENOENT;
}

const char *param_name(enum param_id id)
{
	return id > PARAM_INVALID && id < PARAM_MAX ? param_table[id].name : "invalid";
}

int params_set(struct params *p, enum param_id id, uint64_t v, bool running, struct tern_error *err)
{
	const struct param_desc *d;

	if (id <= PARAM_INVALID || id >= PARAM_MAX)
		return tern_error_set(err, -EINVAL, "unknown parameter id %d", (int)id);
	d = &param_table[id];
	if (d->is_enum) {
		int ret;

		if (!mf_method_codecs((uint32_t)v) || v > UINT32_MAX)
			return tern_error_set(err, -EINVAL,
					      "%s: unknown value %" PRIu64 " (one of %s)", d->name,
					      v, METHOD_NAMES);
		ret = mf_method_check((uint32_t)v, d->name, err);
		if (ret)
			return ret;
	} else if (v < d->min || v > d->max)
		return tern_error_set(err, -ERANGE,
				      "%s: %" PRIu64 "%s is outside %" PRIu64 "..%" PRIu64 "%s",
				      d->name, v, d->unit, d->min, d->max, d->unit);
	if (running && !d->live)
		return tern_error_set(err, -EBUSY, "%s: cannot change while a migration is running",
				      d->name);
	__atomic_store_n(&p->val[id], v, __ATOMIC_RELAXED);
	return 0;
}

uint64_t params_get(const struct params *p, enum param_id id)
{
	return __atomic_load_n(&p->val[id], __ATOMIC_RELAXED);
}

bool param_is_enum(enum param_id id)
{
	return id > PARAM_INVALID && id < PARAM_MAX && param_table[id].is_enum;
}

int params_set_str(struct params *p, enum param_id id, const char *value, bool running,
		   struct tern_error *err)
{
	const struct param_desc *d;
	unsigned long long v;
	char *end;

	if (id <= PARAM_INVALID || id >= PARAM_MAX)
		return tern_error_set(err, -EINVAL, "unknown parameter id %d", (int)id);
	d = &param_table[id];
	if (!value)
		value = "";
	if (d->is_enum) {
		uint32_t m = mf_method_by_name(value);

		if (!m)
			return tern_error_set(err, -EINVAL, "%s: unknown value '%s' (one of %s)",
					      d->name, value, METHOD_NAMES);
		return params_set(p, id, m, running, err);
	}
	errno = 0;
	v = strtoull(value, &end, 10);
	if (errno || end == value || *end || *value == '-' || *value == '+')
		return tern_error_set(err, -EINVAL, "%s: '%s' is not a number", d->name, value);
	return params_set(p, id, v, running, err);
}

int params_get_str(const struct params *p, enum param_id id, char *buf, size_t len)
{
	uint64_t v;
	int n;

	if (id <= PARAM_INVALID || id >= PARAM_MAX)
		return -EINVAL;
	v = params_get(p, id);
	if (param_table[id].is_enum)
		n = snprintf(buf, len, "%s", mf_method_name((uint32_t)v));
	else
		n = snprintf(buf, len, "%" PRIu64, v);
	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

int caps_lookup(const char *name, enum cap_id *ret_id)
{
	int i;

	for (i = 1; i < CAP_MAX; i++) {
		if (name && !strcmp(name, cap_names[i])) {
			*ret_id = (enum cap_id)i;
			return 0;
		}
	}
	return -ENOENT;
}

bool caps_get(const struct params *p, enum cap_id id)
{
	return __atomic_load_n(&p->cap[id], __ATOMIC_RELAXED);
}

uint64_t caps_bits(const struct params *p)
{
	uint64_t bits = 0;
	int i;

	for (i = 1; i < CAP_MAX; i++)
		if (caps_get(p, (enum cap_id)i))
			bits |= CAP_BIT(i);
	return bits;
}

/* ---- public API -------------------------------------------------------- */

static bool session_running(struct tern_session *s)
{
	return s->started && !status_is_final(session_status(s));
}

TERN_EXPORT int tern_param_set(struct tern_session *s, const char *name, uint64_t value,
			       struct tern_error *err)
{
	enum param_id id;

	if (params_lookup(name, &id))
		return tern_error_set(err, -ENOENT, "unknown parameter '%s'", name ? name : "");
	if (param_is_enum(id))
		return tern_error_set(err, -EINVAL,
				      "%s takes a name (%s): set it with tern_param_set_str()",
				      name, METHOD_NAMES);
	return params_set(&s->params, id, value, session_running(s), err);
}

TERN_EXPORT int tern_param_set_str(struct tern_session *s, const char *name, const char *value,
				   struct tern_error *err)
{
	enum param_id id;

	if (params_lookup(name, &id))
		return tern_error_set(err, -ENOENT, "unknown parameter '%s'", name ? name : "");
	return params_set_str(&s->params, id, value, session_running(s), err);
}

TERN_EXPORT int tern_param_get_str(struct tern_session *s, const char *name, char *buf, size_t len,
				   struct tern_error *err)
{
	enum param_id id;
	int ret;

	if (params_lookup(name, &id))
		return tern_error_set(err, -ENOENT, "unknown parameter '%s'", name ? name : "");
	ret = params_get_str(&s->params, id, buf, len);
	if (ret)
		return tern_error_set(err, ret, "%s: a buffer of %zu bytes is too small", name,
				      len);
	return 0;
}

TERN_EXPORT int tern_param_get(struct tern_session *s, const char *name, uint64_t *ret_value,
			       struct tern_error *err)
{
	enum param_id id;

	if (params_lookup(name, &id))
		return tern_error_set(err, -ENOENT, "unknown parameter '%s'", name ? name : "");
	if (param_is_enum(id))
		return tern_error_set(err, -EINVAL,
				      "%s is a name (%s): read it with tern_param_get_str()", name,
				      METHOD_NAMES);
	*ret_value = params_get(&s->params, id);
	return 0;
}

TERN_EXPORT int tern_cap_set(struct tern_session *s, const char *name, bool on,
			     struct tern_error *err)
{
	enum cap_id id;

	if (caps_lookup(name, &id))
		return tern_error_set(err, -ENOENT, "unknown capability '%s'", name ? name : "");
	if (session_running(s))
		return tern_error_set(err, -EBUSY, "%s: cannot change while a migration is running",
				      name);
	__atomic_store_n(&s->params.cap[id], on, __ATOMIC_RELAXED);
	return 0;
}

TERN_EXPORT int tern_cap_get(struct tern_session *s, const char *name, bool *ret_on,
			     struct tern_error *err)
{
	enum cap_id id;

	if (caps_lookup(name, &id))
		return tern_error_set(err, -ENOENT, "unknown capability '%s'", name ? name : "");
	*ret_on = caps_get(&s->params, id);
	return 0;
}
