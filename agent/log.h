/*
 * log.h - the agent's log: stderr, with sd-daemon level prefixes when
 * stderr is the journal (JOURNAL_STREAM checked against fstat(2) of fd
 * 2), structured journal entries for events, and rate limits for what an
 * outsider can repeat.  Never pass a secret to these functions.
 */
#ifndef XTCMK_LOG_H
#define XTCMK_LOG_H

#include <pthread.h>
#include <syslog.h>

/* MESSAGE_ID= of the structured events (journalctl MESSAGE_ID=...). */
#define LOG_MSGID_STARTED	"6dc5bfe22c9841afa673d74a3116c5a8"
#define LOG_MSGID_RELOAD	"8ad65de781cc4007bd3ce28e22c80da6"
#define LOG_MSGID_REFUSED	"273a8b77b98f4f94b86f6329d923ab36"
#define LOG_MSGID_KEY_STATE	"050de4ebecc44b70961b2c2abc92c8d0"
#define LOG_MSGID_ADMIN		"e739495b03ee4e67be26d825e3db0932"
#define LOG_MSGID_DLOG		"892506cc9f0540979d12512d48b9af06"

void	log_init(int level);
/* Is stderr the journal (JOURNAL_STREAM matches fd 2)? */
int	log_to_journal(void);
int	log_level_parse(const char *s);	/* -1 if unknown */
const char *log_level_name(int level);
void	log_msg(int level, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/*
 * An event with journal fields MESSAGE_ID=, CUSTOMER= and APP= (either may
 * be NULL).  Through sd_journal_send(3) when built with libsystemd and
 * stderr is the journal; otherwise one stderr line ending in
 * "[customer X app Y]".
 */
void	log_event(int level, const char *msgid, const char *customer,
	    const char *app, const char *fmt, ...)
	    __attribute__((format(printf, 5, 6)));

/*
 * At most `burst` messages per `interval_s` seconds; returns how many were
 * suppressed before this one (>= 0) when the caller may log, -1 when it
 * must stay quiet.
 */
struct log_ratelimit {
	pthread_mutex_t	mu;
	unsigned	interval_s, burst;
	long long	begin;
	unsigned	n;
	unsigned long	suppressed;
};
#define LOG_RATELIMIT_INIT(iv, b) \
	{ PTHREAD_MUTEX_INITIALIZER, (iv), (b), 0, 0, 0 }
long	log_ratelimit(struct log_ratelimit *rl);

#define log_err(...)	log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...)	log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...)	log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)	log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)	log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
