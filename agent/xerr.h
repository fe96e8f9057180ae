/*
 * xerr.h - error reports inside the agent and xtcmkctl.
 *
 * Functions that can fail return 0 (or a count) on success and -code on
 * failure, where code is an enum xtcmk_result; when they take a
 * `struct xerr *` they also leave a sentence there that says what to fix.
 */
#ifndef XTCMK_XERR_H
#define XTCMK_XERR_H

#include "xtcmk.h"

#define XERR_MSG_MAX	512

struct xerr {
	int	code;			/* enum xtcmk_result */
	char	msg[XERR_MSG_MAX];
	size_t	need;			/* XTCMK_E_TOOBIG: blob size that fits */
	size_t	dek_need;		/* XTCMK_E_TOOBIG: DEK length */
};

/* Fill `e` (may be NULL) and return -code. */
int	xerr_set(struct xerr *e, int code, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
void	xerr_clear(struct xerr *e);

#endif
