/* Native test of the C actuator: routes the calls of ../testdata/transcript.txt, which the
 * shared replay in examples/common/transcript.c reads, to the actuator; the Rust twin replays
 * the same file. */
#include "actuator.h"
#include "transcript.h"

int transcript_dispatch(enum transcript_call call, const struct buf *name,
                        const struct buf *payload, struct buf *response, struct buf *err) {
    const uint8_t *data = (const uint8_t *)payload->data;
    switch (call) {
    case TRANSCRIPT_INPUT:
        return actuator_on_input(name->data, name->len, data, payload->len, err);
    case TRANSCRIPT_REQUEST:
        return actuator_on_request(name->data, name->len, data, payload->len, response, err);
    case TRANSCRIPT_ENTRY:
        return actuator_call_entry(name->data, name->len, data, payload->len, response, err);
    }
    return -1; /* unreachable: every call is handled above */
}
