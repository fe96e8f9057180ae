/*
 * log.h - the agent's log: stderr, with sd-daemon level prefixes when
 * stderr is the journal.  Never pass a secret to these functions.
 */
#ifndef XTCMK_LOG_H
#define XTCMK_LOG_H

#include <syslog.h>

void	log_init(int level);
int	log_level_parse(const char *s);	/* -1 if unknown */
const char *log_level_name(int level);
void	log_msg(int level, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

#define log_err(...)	log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...)	log_msg(LOG_WARNING, __VA_ARGS__)
#define log_info(...)	log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)	log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
