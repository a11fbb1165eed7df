/* The sensor driver itself (C twin of ../rust/src/driver.rs): every tick emits a reading of a
 * simulated device, a sawtooth 20 + step % 16. All state lives in the node's sealed state. */
#include "driver.h"

#include <math.h>
#include <string.h>

const char *const driver_inputs[] = {"tick"};
const char *const driver_outputs[] = {"reading"};
const char *const driver_requests[] = {NULL};
const char *const driver_handlers[] = {NULL};
const char *const driver_entries[] = {"set", "stats"};
const size_t driver_input_count = 1, driver_output_count = 1, driver_request_count = 0,
             driver_handler_count = 0, driver_entry_count = 2;

/* Sealed-state keys: the sawtooth position and the tick count (u64 little-endian), and a pending
 * injected reading (the double's IEEE 754 bits, little-endian). */
#define KEY_STEP "step"
#define KEY_TICKS "ticks"
#define KEY_OVERRIDE "override"

/* The sensor a tick without a `sensor` field reads. */
#define DEFAULT_SENSOR "t1"
#define MAX_SENSOR_LEN 64
/* The sawtooth: SAWTOOTH_BASE + step % SAWTOOTH_PERIOD, i.e. 20 to 35. */
#define SAWTOOTH_BASE 20
#define SAWTOOTH_PERIOD 16

static bool name_is(const char *name, size_t len, const char *expected) {
    return len == strlen(expected) && memcmp(name, expected, len) == 0;
}

static int field_error(struct buf *err, const char *what, const struct buf *field, const char *tail) {
    buf_puts(err, what);
    json_write_string(err, field->data, field->len);
    buf_puts(err, tail);
    return -1;
}

static int missing(struct buf *err, const char *field) {
    buf_puts(err, "missing field ");
    json_write_string(err, field, strlen(field));
    return -1;
}

static int corrupt(struct buf *err, const char *key) {
    buf_puts(err, "sealed state: corrupt ");
    json_write_string(err, key, strlen(key));
    return -1;
}

static int store(const char *key, const void *value, size_t len, struct buf *err) {
    size_t mark = err->len;
    buf_puts(err, "sealed state: ");
    if (host_state_set(key, value, len, err) < 0) {
        return -1;
    }
    err->len = mark;
    return 0;
}

static uint64_t from_le(const char *bytes) {
    uint64_t value = 0;
    for (int i = 7; i >= 0; i--) {
        value = value << 8 | (uint8_t)bytes[i];
    }
    return value;
}

static int store_u64(const char *key, uint64_t value, struct buf *err) {
    uint8_t le[8];
    for (int i = 0; i < 8; i++) {
        le[i] = (uint8_t)(value >> (8 * i));
    }
    return store(key, le, sizeof le, err);
}

static int load_counter(const char *key, uint64_t *out, struct buf *err) {
    struct buf bytes = {0};
    *out = 0;
    if (!host_state_get(key, &bytes)) {
        return 0;
    }
    bool valid = bytes.len == 8;
    if (valid) {
        *out = from_le(bytes.data);
    }
    buf_free(&bytes);
    return valid ? 0 : corrupt(err, key);
}

/* The pending injected value (*present false when none); `set` only stores finite numbers, so
 * anything else is corrupt. */
static int load_override(bool *present, double *value, struct buf *err) {
    struct buf bytes = {0};
    *present = false;
    if (!host_state_get(KEY_OVERRIDE, &bytes)) {
        return 0;
    }
    bool valid = bytes.len == 8;
    if (valid) {
        uint64_t bits = from_le(bytes.data);
        memcpy(value, &bits, sizeof bits);
        valid = isfinite(*value);
    }
    buf_free(&bytes);
    if (!valid) {
        return corrupt(err, KEY_OVERRIDE);
    }
    *present = true;
    return 0;
}

static bool valid_sensor_byte(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == ':' || c == '/';
}

/* An empty payload, `{}` or `{"sensor": name}`; the name defaults to "t1". */
static int parse_tick(const uint8_t *data, size_t len, struct buf *sensor, struct buf *err) {
    if (len == 0) {
        buf_puts(sensor, DEFAULT_SENSOR);
        return 0;
    }
    struct json_object object;
    int result = json_parse_object(data, len, &object, err);
    const struct json_field *sensor_field = NULL;
    for (size_t i = 0; result == 0 && i < object.count; i++) {
        const struct json_field *field = &object.fields[i];
        if (buf_equals(&field->key, "sensor")) {
            if (sensor_field) {
                result = field_error(err, "duplicate field ", &field->key, "");
            } else if (field->kind != JSON_STR) {
                result = field_error(err, "field ", &field->key, " must be a string");
            }
            sensor_field = field;
        } else {
            result = field_error(err, "unknown field ", &field->key, "");
        }
    }
    if (result == 0) {
        const char *name = sensor_field ? sensor_field->str.data : DEFAULT_SENSOR;
        size_t name_len = sensor_field ? sensor_field->str.len : strlen(DEFAULT_SENSOR);
        bool valid = name_len >= 1 && name_len <= MAX_SENSOR_LEN;
        for (size_t i = 0; valid && i < name_len; i++) {
            valid = valid_sensor_byte(name[i]);
        }
        if (valid) {
            buf_put(sensor, name, name_len);
        } else {
            buf_puts(err, "field \"sensor\" must be 1 to 64 characters from A-Z a-z 0-9 - _ . : /");
            result = -1;
        }
    }
    json_object_free(&object);
    return result;
}

/* Entries without parameters take an empty payload or `{}`. */
static int expect_no_argument(const uint8_t *data, size_t len, struct buf *err) {
    if (len == 0) {
        return 0;
    }
    struct json_object object;
    int result = json_parse_object(data, len, &object, err);
    if (result == 0 && object.count > 0) {
        result = field_error(err, "unknown field ", &object.fields[0].key, "");
    }
    json_object_free(&object);
    return result;
}

/* Samples the device and emits {"sensor":...,"value":...} on `reading`. An injected value (entry
 * `set`) is reported instead of the sawtooth, once, and does not advance it. */
static int tick(const uint8_t *data, size_t len, struct buf *err) {
    struct buf sensor = {0};
    if (parse_tick(data, len, &sensor, err) < 0) {
        buf_free(&sensor);
        return -1;
    }
    /* Everything that can fail on corrupt state is read before anything is written, and nothing
     * is written unless the node took the reading: a refused tick leaves no trace. */
    uint64_t step, ticks;
    bool injected;
    double value = 0;
    if (load_counter(KEY_STEP, &step, err) < 0 || load_counter(KEY_TICKS, &ticks, err) < 0 ||
        load_override(&injected, &value, err) < 0) {
        buf_free(&sensor);
        return -1;
    }
    if (!injected) {
        value = (double)(SAWTOOTH_BASE + step % SAWTOOTH_PERIOD);
    }

    struct buf reading = {0};
    buf_puts(&reading, "{\"sensor\":");
    json_write_string(&reading, sensor.data, sensor.len);
    buf_puts(&reading, ",\"value\":");
    json_write_number(&reading, value);
    buf_puts(&reading, "}");
    buf_free(&sensor);
    size_t mark = err->len;
    buf_puts(err, "emitting reading: ");
    int result = host_emit_output("reading", &reading, err);
    buf_free(&reading);
    if (result < 0) {
        return -1;
    }
    err->len = mark;

    if (store_u64(KEY_TICKS, ticks + 1, err) < 0) {
        return -1;
    }
    if (injected) {
        host_state_delete(KEY_OVERRIDE);
        return 0;
    }
    return store_u64(KEY_STEP, step + 1, err);
}

/* {"value": number}: the next tick reports this value instead of the sawtooth. */
static int set(const uint8_t *arg, size_t len, struct buf *response, struct buf *err) {
    struct json_object object;
    int result = json_parse_object(arg, len, &object, err);
    const struct json_field *value = NULL;
    for (size_t i = 0; result == 0 && i < object.count; i++) {
        const struct json_field *field = &object.fields[i];
        if (buf_equals(&field->key, "value")) {
            if (value) {
                result = field_error(err, "duplicate field ", &field->key, "");
            } else if (field->kind != JSON_NUM) {
                result = field_error(err, "field ", &field->key, " must be a number");
            }
            value = field;
        } else {
            result = field_error(err, "unknown field ", &field->key, "");
        }
    }
    if (result == 0 && !value) {
        result = missing(err, "value");
    }
    if (result == 0) {
        uint64_t bits;
        memcpy(&bits, &value->num, sizeof bits);
        result = store_u64(KEY_OVERRIDE, bits, err);
    }
    if (result == 0) {
        buf_puts(response, "{\"next\":");
        json_write_number(response, value->num);
        buf_puts(response, "}");
    }
    json_object_free(&object);
    return result;
}

/* Ticks answered so far and the sawtooth's position. */
static int stats(const uint8_t *arg, size_t len, struct buf *response, struct buf *err) {
    uint64_t ticks, step;
    if (expect_no_argument(arg, len, err) < 0 || load_counter(KEY_TICKS, &ticks, err) < 0 ||
        load_counter(KEY_STEP, &step, err) < 0) {
        return -1;
    }
    buf_puts(response, "{\"ticks\":");
    buf_put_u64(response, ticks);
    buf_puts(response, ",\"step\":");
    buf_put_u64(response, step);
    buf_puts(response, "}");
    return 0;
}

static int unknown_port(struct buf *err, const char *kind, const char *name, size_t len) {
    buf_puts(err, "unknown ");
    buf_puts(err, kind);
    buf_puts(err, " ");
    json_write_string(err, name, len);
    return -1;
}

/* Puts "port: " in front of the error that the call which started at `mark` appended. */
static int prefixed(struct buf *err, size_t mark, const char *prefix, int result) {
    if (result < 0) {
        size_t len = strlen(prefix);
        buf_put(err, prefix, len); /* grow by len, then shift the message right */
        memmove(err->data + mark + len, err->data + mark, err->len - len - mark);
        memcpy(err->data + mark, prefix, len);
    }
    return result;
}

int driver_on_input(const char *input, size_t input_len, const uint8_t *data, size_t len,
                    struct buf *err) {
    if (name_is(input, input_len, "tick")) {
        size_t mark = err->len;
        return prefixed(err, mark, "tick: ", tick(data, len, err));
    }
    return unknown_port(err, "input", input, input_len);
}

int driver_on_request(const char *handler, size_t handler_len, const uint8_t *data, size_t len,
                      struct buf *response, struct buf *err) {
    (void)data, (void)len, (void)response;
    return unknown_port(err, "handler", handler, handler_len);
}

int driver_call_entry(const char *entry, size_t entry_len, const uint8_t *arg, size_t len,
                      struct buf *response, struct buf *err) {
    if (name_is(entry, entry_len, "set")) {
        size_t mark = err->len;
        return prefixed(err, mark, "set: ", set(arg, len, response, err));
    }
    if (name_is(entry, entry_len, "stats")) {
        size_t mark = err->len;
        return prefixed(err, mark, "stats: ", stats(arg, len, response, err));
    }
    return unknown_port(err, "entry", entry, entry_len);
}
