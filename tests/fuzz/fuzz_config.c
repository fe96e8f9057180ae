/*
 * fuzz_config.c - the xtcmk.conf parser (agent/conf.c).
 *
 * config_load() reads a path, so each input is written to a memfd made
 * once per process and read back through /proc/self/fd.  Properties: a
 * loaded configuration holds values within the documented limits; what
 * config_dump() prints (xtcmkd --check-config) loads again to the same
 * configuration; a refusal carries a message.
 */
#include <sys/mman.h>

#include <errno.h>
#include <stddef.h>
#include <unistd.h>

#include "conf.h"
#include "fuzz.h"

static int memfd = -1, dumpfd = -1;
static char path[64], dump_path[64];

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
	if ((dumpfd = memfd_create("fuzz_config_dump", MFD_CLOEXEC)) == -1) {
		perror("memfd_create");
		abort();
	}
	snprintf(dump_path, sizeof(dump_path), "/proc/self/fd/%d", dumpfd);
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
	    c->azure_authority != NULL);
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
	FUZZ_CHECK(strncmp(c->azure_authority, "https://", 8) == 0);
	FUZZ_CHECK(c->workload == NULL || strlen(c->workload) <= 64);
	FUZZ_CHECK(c->socket_path[0] == '/' && c->state_dir[0] == '/');
	(void)config_allows(c, 0, 0, 0);
	(void)config_allows(c, 1, 1000, 1000);
}

/* String fields compared after a dump and reload. */
static const size_t str_fields[] = {
	offsetof(struct config, socket_path),
	offsetof(struct config, state_dir),
	offsetof(struct config, registry_path),
	offsetof(struct config, decision_log),
	offsetof(struct config, workload),
	offsetof(struct config, policy_dir),
	offsetof(struct config, lua_dir),
	offsetof(struct config, azure_tenant),
	offsetof(struct config, azure_authority),
	offsetof(struct config, azure_identity_client_id),
	offsetof(struct config, azure_identity_object_id),
	offsetof(struct config, azure_identity_resource_id),
	offsetof(struct config, azure_imds_endpoint),
	offsetof(struct config, azure_federated_token_file),
	offsetof(struct config, azure_identity_endpoint),
	offsetof(struct config, azure_token_audience),
	offsetof(struct config, azure_ca_file),
	offsetof(struct config, azure_connect_to),
	offsetof(struct config, azure_api_version),
};

static const char *
str_at(const struct config *c, size_t off)
{
	return *(char *const *)((const char *)c + off);
}

static int
same_ids(const struct id_list *a, const struct id_list *b)
{
	return a->any == b->any && a->n == b->n &&
	    memcmp(a->ids, b->ids, (size_t)a->n * sizeof(a->ids[0])) == 0;
}

/*
 * Dump `c` and load the dump: the same configuration must come back.
 * Not compared: the file name, and the identity header, which the dump
 * hides as a secret.  No identity means "imds".
 */
static void
check_dump(const struct config *c)
{
	struct config *d = NULL;
	struct xerr e;
	const char *a, *b;
	FILE *f;
	size_t i;
	int rc;

	FUZZ_CHECK(ftruncate(dumpfd, 0) == 0);
	FUZZ_CHECK((f = fopen(dump_path, "we")) != NULL);
	config_dump(c, f);
	FUZZ_CHECK(fclose(f) == 0);
	rc = config_load(dump_path, &d, &e);
	if (rc != 0)
		fprintf(stderr, "the dump does not load: %s\n", e.msg);
	FUZZ_CHECK(rc == 0);
	for (i = 0; i < sizeof(str_fields) / sizeof(str_fields[0]); i++) {
		a = str_at(c, str_fields[i]);
		b = str_at(d, str_fields[i]);
		if ((a == NULL) != (b == NULL) ||
		    (a != NULL && strcmp(a, b) != 0))
			fprintf(stderr, "field at offset %zu: '%s' became "
			    "'%s'\n", str_fields[i], a ? a : "(null)",
			    b ? b : "(null)");
		FUZZ_CHECK((a == NULL) == (b == NULL));
		FUZZ_CHECK(a == NULL || strcmp(a, b) == 0);
	}
	a = c->azure_identity != NULL ? c->azure_identity : "imds";
	b = d->azure_identity != NULL ? d->azure_identity : "imds";
	FUZZ_CHECK(strcmp(a, b) == 0);
	FUZZ_CHECK(c->log_level == d->log_level);
	FUZZ_CHECK(c->max_connections == d->max_connections &&
	    c->max_connections_per_uid == d->max_connections_per_uid &&
	    c->idle_timeout_s == d->idle_timeout_s &&
	    c->request_timeout_s == d->request_timeout_s &&
	    c->max_frame == d->max_frame &&
	    c->policy_workers == d->policy_workers &&
	    c->status_workers == d->status_workers &&
	    c->dek_cache_entries == d->dek_cache_entries);
	FUZZ_CHECK(c->azure_timeout_ms == d->azure_timeout_ms &&
	    c->azure_retries == d->azure_retries &&
	    c->azure_rate_limit == d->azure_rate_limit &&
	    !c->azure_local_wrap == !d->azure_local_wrap);
	FUZZ_CHECK(same_ids(&c->data_uids, &d->data_uids) &&
	    same_ids(&c->data_gids, &d->data_gids) &&
	    same_ids(&c->admin_uids, &d->admin_uids) &&
	    same_ids(&c->admin_gids, &d->admin_gids));
	FUZZ_CHECK(c->limits.instructions == d->limits.instructions &&
	    c->limits.memory == d->limits.memory &&
	    c->limits.time_ms == d->limits.time_ms);
	if (!json_equal(c->params, d->params)) {
		char *x = json_dumps(c->params, JSON_SORT_KEYS);
		char *y = json_dumps(d->params, JSON_SORT_KEYS);

		fprintf(stderr, "params %s became %s\n", x, y);
		free(x);
		free(y);
	}
	FUZZ_CHECK(json_equal(c->params, d->params));
	config_free(d);
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
		check_dump(c);
		config_free(c);
	} else {
		FUZZ_CHECK(rc < 0 && e.code == -rc && e.msg[0] != '\0');
		FUZZ_CHECK(c == NULL);
	}
	return 0;
}
