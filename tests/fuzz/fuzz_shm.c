/*
 * fuzz_shm.c - how libxtcmk reads the fast path's memory-mapped file
 * (module/shm.c): the header check and the lock-free lookup.
 *
 * The input is a file image, its header packed: the first 88 bytes are
 * the header's fields, the rest is the slot area that follows the 4096
 * byte header (so small inputs reach the slots).  The heartbeat is taken
 * as fresh (now = the header's own heartbeat) so lookups go past it.
 * Properties: a header is accepted only with a geometry that fits the
 * image; a lookup never reads outside the image (ASan) and an answer is
 * at most the caller's capacity and a payload whose CUSTOMER field is
 * the id asked for, of a slot that holds that id.
 */
#include "../../module/shm.h"
#include "../../common/wire.h"

#include "fuzz.h"

#define PACKED	88	/* bytes of the header taken from the input */

static void
check_answer(const struct xm_geom *g, const uint8_t *img, const char *id,
    uint64_t now)
{
	uint8_t buf[XM_SLOT_SIZE_MAX];
	struct xw_field f;
	struct xm_rec rec;
	size_t len = 0, idlen = strlen(id);
	enum xm_why why;

	why = xm_lookup(g, img, id, idlen, now, buf, sizeof(buf), &len,
	    &rec);
	FUZZ_CHECK(why >= XM_HIT && why < XM__WHY_COUNT);
	if (why != XM_HIT)
		return;
	FUZZ_CHECK(len > 0 && len <= sizeof(buf));
	FUZZ_CHECK(len <= XM_PAYLOAD_MAX(g->slot_size));
	FUZZ_CHECK(xw_find(buf, len, XT_CUSTOMER, &f) == 1);
	FUZZ_CHECK(f.len == idlen && memcmp(f.val, id, idlen) == 0);
	FUZZ_CHECK(rec.file_id == g->file_id);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct xm_header *h;
	struct xm_geom g;
	uint8_t *img;
	size_t n, i;
	char id[XM_ID_MAX + 1];

	n = XM_HDR_SIZE + (size > PACKED ? size - PACKED : 0);
	if ((img = calloc(1, n)) == NULL)
		abort();
	memcpy(img, data, size < PACKED ? size : PACKED);
	if (size > PACKED)
		memcpy(img + XM_HDR_SIZE, data + PACKED, size - PACKED);
	h = (const struct xm_header *)img;
	if (xm_geom_check(img, n, &g) == 0) {
		FUZZ_CHECK(xm_file_size(g.nslots, g.slot_size) <= n);
		FUZZ_CHECK((g.nslots & (g.nslots - 1)) == 0);
		FUZZ_CHECK(g.probe_max >= 1 && g.probe_max <= XM_PROBE_MAX);
		check_answer(&g, img, "c1", h->heartbeat_ms);
		/* The ids the slots claim, as far as they are text. */
		for (i = 0; i < g.nslots && i < 8; i++) {
			const struct xm_slot *s = (const struct xm_slot *)(img +
			    XM_HDR_SIZE + i * g.slot_size);
			size_t l = s->id_len;

			if (l == 0 || l > XM_ID_MAX ||
			    memchr(s->id, '\0', l) != NULL)
				continue;
			memcpy(id, s->id, l);
			id[l] = '\0';
			check_answer(&g, img, id, h->heartbeat_ms);
		}
	}
	free(img);
	return 0;
}
