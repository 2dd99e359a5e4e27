/* SPDX-License-Identifier: MIT */
/*
 * Error reports: a negative errno to branch on plus a caller-owned message.
 * The first error recorded wins, because the first failure explains the
 * others (a worker that dies makes its peers fail with -EPIPE next).
 */
#include <stdio.h>

#include "util.h"

int tern_error_set(struct tern_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (!err || err->code)
		return code;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

int tern_error_prefix(struct tern_error *err, const char *fmt, ...)
{
	char prefix[128], old[sizeof(err->msg)];
	va_list ap;

	if (!err || !err->code)
		return err ? err->code : 0;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old);
	return err->code;
}

void tern_error_clear(struct tern_error *err)
{
	if (err) {
		err->code = 0;
		err->msg[0] = '\0';
	}
}
