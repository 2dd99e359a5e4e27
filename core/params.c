/* SPDX-License-Identifier: MIT */
/*
 * Parameters and capabilities, by the names operators know from QEMU. Each
 * has a range and a default; a value outside the range is refused with a
 * message that names the parameter and the range. Values are atomics so the
 * management server can change max-bandwidth or downtime-limit while the
 * migration thread reads them; the others are fixed once a migration starts.
 */
#include "core_priv.h"

struct param_desc {
	const char *name;
	uint64_t min, max, def;
	bool live; /* may change during a migration */
	const char *unit;
};

static const struct param_desc param_table[PARAM_MAX] = {
    [PARAM_MULTIFD_CHANNELS] = {"multifd-channels", 1, TERN_MAX_CHANNELS, 2, false, ""},
    [PARAM_MAX_BANDWIDTH] = {"max-bandwidth", 0, UINT64_MAX / 2, 0, true, " bytes/s"},
    [PARAM_DOWNTIME_LIMIT] = {"downtime-limit", 1, 2000000, 300, true, " ms"},
    [PARAM_CLEAR_BITMAP_SHIFT] = {"clear-bitmap-shift", 6, 31, 18, false, ""},
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
	if (v < d->min || v > d->max)
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
	return params_set(&s->params, id, value, session_running(s), err);
}

TERN_EXPORT int tern_param_get(struct tern_session *s, const char *name, uint64_t *ret_value,
			       struct tern_error *err)
{
	enum param_id id;

	if (params_lookup(name, &id))
		return tern_error_set(err, -ENOENT, "unknown parameter '%s'", name ? name : "");
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
