/* SPDX-License-Identifier: MIT */
/*
 * Logging: the library never prints. Lines go to the VMM's function, if it
 * registered one for that level; otherwise they are dropped before they are
 * formatted.
 */
#include <stdio.h>

#include "util.h"

void tern_log_msg(const struct tern_log *log, int level, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (!log || !log->fn || level > log->level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log->fn(log->opaque, level, line);
}
