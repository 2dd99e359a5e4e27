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

/* A parameter that takes a name: its values and their names. */
struct param_names {
	uint32_t (*by_name)(const char *name); /* 0 when unknown */
	const char *(*name)(uint32_t v);
	bool (*valid)(uint32_t v);
	const char *list; /* for messages */
};

struct param_desc {
	const char *name;
	uint64_t min, max, def;
	bool live; /* may change during a migration */
	const char *unit;
	const struct param_names *names; /* set: the parameter takes a name */
};

#define METHOD_NAMES "none, zlib, zstd, xbzrle, auto"

static bool method_valid(uint32_t v)
{
	return mf_method_codecs(v) != 0;
}

static const struct param_names method_names = {mf_method_by_name, mf_method_name, method_valid,
						METHOD_NAMES};

static const char *const policy_names[] = {
    [TIMEOUT_POLICY_CANCEL] = "cancel",
    [TIMEOUT_POLICY_FORCE] = "force",
    [TIMEOUT_POLICY_POSTCOPY] = "postcopy",
};

/* Names map to value + 1 so that 0 can say "unknown", as for methods. */
static uint32_t policy_by_name(const char *name)
{
	uint32_t i;

	for (i = 0; i < ARRAY_SIZE(policy_names); i++)
		if (name && !strcmp(name, policy_names[i]))
			return i + 1;
	return 0;
}

static const char *policy_name(uint32_t v)
{
	return v >= 1 && v <= ARRAY_SIZE(policy_names) ? policy_names[v - 1] : "invalid";
}

static bool policy_valid(uint32_t v)
{
	return v >= 1 && v <= ARRAY_SIZE(policy_names);
}

static const struct param_names timeout_policy_names = {policy_by_name, policy_name, policy_valid,
							"cancel, force, postcopy"};

static const struct param_desc param_table[PARAM_MAX] = {
    [PARAM_MULTIFD_CHANNELS] = {"multifd-channels", 1, TERN_MAX_CHANNELS, 2, false, ""},
    [PARAM_MAX_BANDWIDTH] = {"max-bandwidth", 0, UINT64_MAX / 2, 0, true, " bytes/s"},
    /* what the switchover may use (QEMU 8.2's name); 0: not declared */
    [PARAM_AVAIL_SWITCHOVER_BANDWIDTH] = {"avail-switchover-bandwidth", 0, UINT64_MAX / 2, 0, true,
					  " bytes/s"},
    [PARAM_DOWNTIME_LIMIT] = {"downtime-limit", 1, 2000000, 300, true, " ms"},
    [PARAM_CLEAR_BITMAP_SHIFT] = {"clear-bitmap-shift", 6, 31, 18, false, ""},
    [PARAM_MULTIFD_COMPRESSION] = {"multifd-compression", 0, 0, TERN_CODEC_NONE, false, "",
				   &method_names},
    [PARAM_MULTIFD_ZLIB_LEVEL] = {"multifd-zlib-level", 1, 9, 1, false, ""},
    [PARAM_MULTIFD_ZSTD_LEVEL] = {"multifd-zstd-level", 1, 20, 1, false, ""},
    /* at least one page of the smallest page size; the source also checks
     * its own page size when it starts */
    [PARAM_XBZRLE_CACHE_SIZE] = {"xbzrle-cache-size", 4096, 1ull << 40, 64ull << 20, true,
				 " bytes"},
    [PARAM_CPU_THROTTLE_INITIAL] = {"cpu-throttle-initial", 1, 99, 20, true, "%"},
    [PARAM_CPU_THROTTLE_INCREMENT] = {"cpu-throttle-increment", 1, 99, 10, true, "%"},
    [PARAM_MAX_CPU_THROTTLE] = {"max-cpu-throttle", 1, 99, 99, true, "%"},
    [PARAM_MIGRATION_TIMEOUT] = {"migration-timeout", 0, 31536000, 0, true, " s"},
    /* stored as enum timeout_policy + 1 (see policy_by_name) */
    [PARAM_MIGRATION_TIMEOUT_POLICY] = {"migration-timeout-policy", 0, 0, TIMEOUT_POLICY_CANCEL + 1,
					true, "", &timeout_policy_names},
    /* bounds on waiting for a peer: see tern.h */
    [PARAM_HANDSHAKE_TIMEOUT] = {"handshake-timeout", 100, 600000, 10000, false, " ms"},
    [PARAM_IO_TIMEOUT] = {"io-timeout", 1000, 3600000, 30000, false, " ms"},
    /* rdma, rdma-pin-all off: shared by the channels, each keeps at least
     * 4 MiB (rdma/rdma_regcache.h) */
    [PARAM_POSTCOPY_RECOVER_TIMEOUT] = {"postcopy-recover-timeout", 0, 31536000000ull, 0, true,
					" ms"},
    [PARAM_RDMA_PIN_LIMIT] = {"rdma-pin-limit", 4ull << 20, 1ull << 50, 1ull << 30, false,
			      " bytes"},
};

static const char *const cap_names[CAP_MAX] = {
    [CAP_VERIFY_RAM] = "verify-ram",
    [CAP_AUTO_CONVERGE] = "auto-converge",
    [CAP_PAUSE_BEFORE_SWITCHOVER] = "pause-before-switchover",
    [CAP_RDMA_PIN_ALL] = "rdma-pin-all",
    [CAP_ZERO_COPY_SEND] = "zero-copy-send",
    [CAP_POSTCOPY_RAM] = "postcopy-ram",
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
	if (d->names) {
		int ret = 0;

		if (v > UINT32_MAX || !d->names->valid((uint32_t)v))
			return tern_error_set(err, -EINVAL,
					      "%s: unknown value %" PRIu64 " (one of %s)", d->name,
					      v, d->names->list);
		if (d->names == &method_names)
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
	/* before a start, caps_check_source() says it */
	if (running && id == PARAM_MIGRATION_TIMEOUT_POLICY && v == TIMEOUT_POLICY_POSTCOPY + 1 &&
	    !caps_get(p, CAP_POSTCOPY_RAM))
		return tern_error_set(err, -EINVAL,
				      "%s: postcopy needs the postcopy-ram capability, which this "
				      "migration runs without",
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
	return id > PARAM_INVALID && id < PARAM_MAX && param_table[id].names;
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
	if (d->names) {
		uint32_t m = d->names->by_name(value);

		if (!m)
			return tern_error_set(err, -EINVAL, "%s: unknown value '%s' (one of %s)",
					      d->name, value, d->names->list);
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
	if (param_table[id].names)
		n = snprintf(buf, len, "%s", param_table[id].names->name((uint32_t)v));
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

const char *cap_name(enum cap_id id)
{
	return id > CAP_INVALID && id < CAP_MAX ? cap_names[id] : "invalid";
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

/*
 * zero-copy-send: tcp: only, for the packets that carry raw pages. Unix
 * sockets have no SO_ZEROCOPY; rdma: writes pages from registered guest RAM
 * with RDMA WRITE, without a copy already. A codec that encodes every page
 * (zlib, zstd, xbzrle) sends its own buffers, which are reused at once and
 * so always copied: nothing would go zero-copy, and saying so beats a
 * capability that silently does nothing. none and auto (whose raw packets
 * go zero-copy, its encoded ones by copy) are accepted.
 */
/*
 * postcopy-ram places every page that arrives after the switch with
 * userfaultfd, from a buffer: rdma writes pages into registered (pinned)
 * guest RAM behind the destination's back, and pinned pages cannot be
 * dropped to fault. The urgent channel is one worker connection more.
 */
static int caps_check_postcopy(const struct params *p, const char *scheme, struct tern_error *err)
{
	uint64_t nch = params_get(p, PARAM_MULTIFD_CHANNELS);

	if (!caps_get(p, CAP_POSTCOPY_RAM)) {
		if (params_get(p, PARAM_MIGRATION_TIMEOUT_POLICY) == TIMEOUT_POLICY_POSTCOPY + 1)
			return tern_error_set(err, -EINVAL,
					      "migration-timeout-policy postcopy needs the "
					      "postcopy-ram capability");
		return 0;
	}
	if (!strcmp(scheme, "rdma"))
		return tern_error_set(err, -EOPNOTSUPP,
				      "postcopy-ram: tcp: and unix: only (rdma: writes pages into "
				      "pinned guest RAM, where a page cannot fault)");
	if (nch >= TERN_MAX_CHANNELS)
		return tern_error_set(err, -EOPNOTSUPP,
				      "postcopy-ram: at most %u multifd-channels (one more "
				      "connection carries the urgent pages)",
				      TERN_MAX_CHANNELS - 1);
	return 0;
}

int caps_check_source(const struct params *p, const char *scheme, uint32_t method,
		      struct tern_error *err)
{
	int ret = caps_check_postcopy(p, scheme, err);

	if (ret || !caps_get(p, CAP_ZERO_COPY_SEND))
		return ret;
	if (!strcmp(scheme, "rdma"))
		return tern_error_set(
		    err, -EOPNOTSUPP,
		    "zero-copy-send: not applicable to rdma: (it writes pages "
		    "straight from registered guest RAM, without a copy already)");
	if (strcmp(scheme, "tcp"))
		return tern_error_set(err, -EOPNOTSUPP,
				      "zero-copy-send: tcp: only (%s: sockets have no SO_ZEROCOPY)",
				      scheme);
	if (method != TERN_CODEC_NONE && method != MF_METHOD_AUTO)
		return tern_error_set(err, -EOPNOTSUPP,
				      "zero-copy-send: multifd-compression %s encodes every page "
				      "into buffers that are sent by copy, so nothing would go "
				      "zero-copy (use none or auto)",
				      mf_method_name(method));
	return 0;
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
				      name, param_table[id].names->list);
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
				      param_table[id].names->list);
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
