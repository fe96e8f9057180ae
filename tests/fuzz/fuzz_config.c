/*
 * fuzz_config.c - the xtcmk.conf parser (agent/conf.c).
 *
 * config_load() reads a path, so each input is written to a memfd made
 * once per process and read back through /proc/self/fd.  Properties: a
 * loaded configuration holds values within the documented limits and
 * dumps without trouble; a refusal carries a message.
 */
#include <sys/mman.h>

#include <errno.h>
#include <unistd.h>

#include "conf.h"
#include "fuzz.h"

static int memfd = -1;
static char path[64];
static FILE *devnull;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if ((memfd = memfd_create("fuzz_config", MFD_CLOEXEC)) == -1) {
		perror("memfd_create");
		abort();
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
	if ((devnull = fopen("/dev/null", "we")) == NULL) {
		perror("/dev/null");
		abort();
	}
	return 0;
}

static void
write_input(const uint8_t *data, size_t size)
{
	size_t off = 0;
	ssize_t n;

	FUZZ_CHECK(ftruncate(memfd, 0) == 0);
	while (off < size) {
		n = pwrite(memfd, data + off, size - off, (off_t)off);
		if (n == -1 && errno == EINTR)
			continue;
		FUZZ_CHECK(n > 0);
		off += (size_t)n;
	}
}

static void
check_config(const struct config *c)
{
	FUZZ_CHECK(c->socket_path != NULL && c->state_dir != NULL &&
	    c->policy_dir != NULL && c->lua_dir != NULL &&
	    c->registry_path != NULL && c->decision_log != NULL &&
	    c->provider != NULL && c->azure_authority != NULL);
	FUZZ_CHECK(c->max_connections >= 1 &&
	    c->max_connections <= CONN_MAX_LIMIT);
	FUZZ_CHECK(c->max_connections_per_uid >= 1 &&
	    c->max_connections_per_uid <= c->max_connections);
	FUZZ_CHECK(c->idle_timeout_s >= 1 && c->idle_timeout_s <= 86400);
	FUZZ_CHECK(c->request_timeout_s >= 1 && c->request_timeout_s <= 300);
	FUZZ_CHECK(c->max_frame >= FRAME_MIN && c->max_frame <= 65536);
	FUZZ_CHECK(c->policy_workers >= 1 && c->policy_workers <= 64);
	FUZZ_CHECK(c->status_workers >= 1 && c->status_workers <= 64);
	FUZZ_CHECK(c->limits.instructions >= 1000 &&
	    c->limits.instructions <= POLICY_INSTR_MAX);
	FUZZ_CHECK(c->limits.memory >= (1u << 20) &&
	    c->limits.memory <= POLICY_MEM_MAX);
	FUZZ_CHECK(c->limits.time_ms >= 1 &&
	    c->limits.time_ms <= POLICY_TIME_MAX_MS);
	FUZZ_CHECK(c->data_uids.n >= 0 && c->data_uids.n <= CONFIG_IDS_MAX);
	FUZZ_CHECK(c->data_gids.n >= 0 && c->data_gids.n <= CONFIG_IDS_MAX);
	FUZZ_CHECK(c->admin_uids.n >= 0 && c->admin_uids.n <= CONFIG_IDS_MAX);
	FUZZ_CHECK(c->admin_gids.n >= 0 && c->admin_gids.n <= CONFIG_IDS_MAX);
	FUZZ_CHECK(json_is_object(c->params) &&
	    json_object_size(c->params) <= CONFIG_PARAMS_MAX);
	FUZZ_CHECK(strcmp(c->provider, "local") == 0);
	FUZZ_CHECK(strncmp(c->azure_authority, "https://", 8) == 0);
	FUZZ_CHECK(c->workload == NULL || strlen(c->workload) <= 64);
	FUZZ_CHECK(c->socket_path[0] == '/' && c->state_dir[0] == '/');
	(void)config_allows(c, 0, 0, 0);
	(void)config_allows(c, 1, 1000, 1000);
	config_dump(c, devnull);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *c = NULL;
	struct xerr e;
	int rc;

	write_input(data, size);
	memset(&e, 0, sizeof(e));
	rc = config_load(path, &c, &e);
	if (rc == 0) {
		FUZZ_CHECK(c != NULL);
		check_config(c);
		config_free(c);
	} else {
		FUZZ_CHECK(rc < 0 && e.code == -rc && e.msg[0] != '\0');
		FUZZ_CHECK(c == NULL);
	}
	return 0;
}
