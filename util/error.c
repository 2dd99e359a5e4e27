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
	char prefix[128];
	size_t plen, olen;
	va_list ap;

	if (!err || !err->code)
		return err ? err->code : 0;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix) - 2, fmt, ap);
	va_end(ap);
	strcat(prefix, ": ");
	plen = strlen(prefix);
	olen = strnlen(err->msg, sizeof(err->msg) - 1);
	if (plen + olen > sizeof(err->msg) - 1)
		olen = sizeof(err->msg) - 1 - plen;
	memmove(err->msg + plen, err->msg, olen);
	memcpy(err->msg, prefix, plen);
	err->msg[plen + olen] = '\0';
	return err->code;
}

void tern_error_clear(struct tern_error *err)
{
	if (err) {
		err->code = 0;
		err->msg[0] = '\0';
	}
}
