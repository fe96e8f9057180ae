/*
 * xerr.c - error reports (see xerr.h).
 */
#include <stdarg.h>
#include <stdio.h>

#include "xerr.h"

int
xerr_set(struct xerr *e, int code, const char *fmt, ...)
{
	va_list ap;

	if (e != NULL) {
		e->code = code;
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		va_end(ap);
	}
	return -code;
}

void
xerr_clear(struct xerr *e)
{
	if (e != NULL) {
		e->code = 0;
		e->msg[0] = '\0';
		e->need = 0;
		e->dek_need = 0;
	}
}
