/* Native test of the C filter: routes the calls of ../testdata/transcript.txt, which the
 * shared replay in examples/common/transcript.c reads, to the filter; the Rust twin replays
 * the same file. */
#include "filter.h"
#include "transcript.h"

/* What the transcript's header promises; only the filter asks for claims. */
void host_claims(struct claims *out) {
    buf_puts(&out->name, "sensor-filter");
    buf_puts(&out->measurement, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
    buf_puts(&out->platform, "sim");
    out->simulated = true;
}

int transcript_dispatch(enum transcript_call call, const struct buf *name,
                        const struct buf *payload, struct buf *response, struct buf *err) {
    const uint8_t *data = (const uint8_t *)payload->data;
    switch (call) {
    case TRANSCRIPT_INPUT:
        return filter_on_input(name->data, name->len, data, payload->len, err);
    case TRANSCRIPT_REQUEST:
        return filter_on_request(name->data, name->len, data, payload->len, response, err);
    case TRANSCRIPT_ENTRY:
        return filter_call_entry(name->data, name->len, data, payload->len, response, err);
    }
    return -1; /* unreachable: every call is handled above */
}
