/* SPDX-License-Identifier: MIT */
/*
 * The settings every e2e_kvm program reads (TERN_KVM_TEST_RAM,
 * TERN_KVM_TEST_TIMEOUT_SCALE), the scaling for slow hosts, die() and the
 * JSON field readers: one copy for e2e_kvm and e2e_kvm_standby.
 */
#include "e2e_kvm.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *vm_path;
const char *bench_path;
int failures;
uint64_t test_ram = BASE_RAM;
double time_scale = 1;
char vm_timeout[24];

void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", program_invocation_short_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* ---- scaling for slow hosts ------------------------------------------------------ */

void e2e_read_env(void)
{
	const char *r = getenv("TERN_KVM_TEST_RAM");
	const char *t = getenv("TERN_KVM_TEST_TIMEOUT_SCALE");
	char *end;

	if (r && *r) {
		unsigned long long v;
		unsigned int shift = 0;

		errno = 0;
		v = strtoull(r, &end, 10);
		if (*end == 'K' || *end == 'k')
			shift = 10;
		else if (*end == 'M' || *end == 'm')
			shift = 20;
		else if (*end == 'G' || *end == 'g')
			shift = 30;
		if (shift)
			end++;
		if (errno || end == r || *end || v > (64ull << 30) >> shift)
			die("TERN_KVM_TEST_RAM: not a size: '%s'", r);
		test_ram = (uint64_t)v << shift;
		/* Half of it (the mismatched and the cancel guests) must still be a tern-vm size.
		 */
		if (test_ram % (4u << 20) || test_ram < (8u << 20))
			die("TERN_KVM_TEST_RAM: want a multiple of 4M, 8M..64G, not '%s'", r);
	}
	if (t && *t) {
		errno = 0;
		time_scale = strtod(t, &end);
		if (errno || end == t || *end || !isfinite(time_scale) || time_scale <= 0 ||
		    time_scale > 100)
			die("TERN_KVM_TEST_TIMEOUT_SCALE: want a number in (0, 100], not '%s'", t);
	}
	/* Rounded up, and never 0 (tern-vm reads 0 as "no timeout"). */
	snprintf(vm_timeout, sizeof(vm_timeout), "%u",
		 (unsigned int)(VM_TIMEOUT_S * time_scale + 0.999));
}

/* A size or rate written for a BASE_RAM guest, scaled to test_ram; sizes stay whole pages. */
uint64_t scaled(uint64_t at_base, bool pages)
{
	uint64_t v = (uint64_t)((double)at_base * (double)test_ram / (double)BASE_RAM);

	if (pages)
		v = v / 4096 ? v / 4096 * 4096 : 4096;
	return v ? v : 1;
}

/* scaled() as a decimal string for a tern-vm or tern-bench argument; s holds 24 bytes. */
const char *scaled_arg(char *s, uint64_t at_base, bool pages)
{
	snprintf(s, 24, "%" PRIu64, scaled(at_base, pages));
	return s;
}

uint64_t deadline_in(unsigned int seconds)
{
	return bench_now_ns() + (uint64_t)(seconds * time_scale * NS_PER_S);
}

/* ---- JSON fields ---------------------------------------------------------------- */

const char *jstr(json_object *o, const char *key)
{
	json_object *v;

	if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return NULL;
}

/* -1 when missing or not a bool. */
int jbool(json_object *o, const char *key)
{
	json_object *v;

	if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_boolean))
		return json_object_get_boolean(v);
	return -1;
}

/* -1 when missing or not a number >= 0. */
double jnum(json_object *o, const char *key)
{
	json_object *v;
	double d;

	if (!o || !json_object_object_get_ex(o, key, &v))
		return -1;
	if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
		return -1;
	d = json_object_get_double(v);
	return d >= 0 ? d : -1;
}

bool streq(const char *a, const char *b)
{
	return a && b && !strcmp(a, b);
}
