/* The actuator itself (C twin of ../rust/src/actuator.rs): acts on the sensor filter's alerts,
 * which the node delivers only from an authenticated connection, after checking every field. */
#include "actuator.h"

#include <math.h>
#include <string.h>

const char *const actuator_inputs[] = {"alert"};
const char *const actuator_outputs[] = {NULL};
const char *const actuator_requests[] = {NULL};
const char *const actuator_handlers[] = {NULL};
const char *const actuator_entries[] = {"state"};
const size_t actuator_input_count = 1, actuator_output_count = 0, actuator_request_count = 0,
             actuator_handler_count = 0, actuator_entry_count = 1;

/* Sealed-state keys: the number of actions (u64 little-endian) and the last alert acted on
 * ({"sensor":...,"value":...}). */
#define KEY_ACTIONS "actions"
#define KEY_LAST "last"

#define MAX_SENSOR_LEN 64
/* 2^64, the first number above the range of `count` and `time_ns`. */
#define U64_LIMIT 18446744073709551616.0

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

static int load_counter(const char *key, uint64_t *out, struct buf *err) {
    struct buf bytes = {0};
    *out = 0;
    if (!host_state_get(key, &bytes)) {
        return 0;
    }
    bool valid = bytes.len == 8;
    for (int i = 7; valid && i >= 0; i--) {
        *out = *out << 8 | (uint8_t)bytes.data[i];
    }
    buf_free(&bytes);
    return valid ? 0 : corrupt(err, key);
}

static int store_counter(const char *key, uint64_t value, struct buf *err) {
    uint8_t le[8];
    for (int i = 0; i < 8; i++) {
        le[i] = (uint8_t)(value >> (8 * i));
    }
    return store(key, le, sizeof le, err);
}

static bool valid_sensor_byte(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == ':' || c == '/';
}

/* Takes a number field into *slot (NULL until then). */
static int put_number(const struct json_field **slot, const struct json_field *field, struct buf *err) {
    if (*slot) {
        return field_error(err, "duplicate field ", &field->key, "");
    }
    if (field->kind != JSON_NUM) {
        return field_error(err, "field ", &field->key, " must be a number");
    }
    *slot = field;
    return 0;
}

/* Takes a whole number in the range of u64 into *slot: the filter writes `count` and `time_ns`
 * from u64s. */
static int put_integer(const struct json_field **slot, const struct json_field *field, struct buf *err) {
    if (*slot) {
        return field_error(err, "duplicate field ", &field->key, "");
    }
    if (field->kind != JSON_NUM || !(field->num >= 0 && field->num < U64_LIMIT) ||
        trunc(field->num) != field->num) {
        return field_error(err, "field ", &field->key, " must be a non-negative integer");
    }
    *slot = field;
    return 0;
}

static void write_last(struct buf *out, const char *sensor, size_t sensor_len, double value) {
    buf_puts(out, "{\"sensor\":");
    json_write_string(out, sensor, sensor_len);
    buf_puts(out, ",\"value\":");
    json_write_number(out, value);
    buf_puts(out, "}");
}

/* Checks {"sensor":...,"value":...,"threshold":...,"count":...,"time_ns":...} (each field exactly
 * once) and acts on it: counts the action, remembers the sensor and value, and logs. */
static int on_alert(const uint8_t *data, size_t len, struct buf *err) {
    struct json_object object;
    int result = json_parse_object(data, len, &object, err);
    const struct json_field *sensor = NULL, *value = NULL, *threshold = NULL, *count = NULL,
                            *time_ns = NULL;
    for (size_t i = 0; result == 0 && i < object.count; i++) {
        const struct json_field *field = &object.fields[i];
        if (buf_equals(&field->key, "sensor")) {
            if (sensor) {
                result = field_error(err, "duplicate field ", &field->key, "");
            } else if (field->kind != JSON_STR) {
                result = field_error(err, "field ", &field->key, " must be a string");
            }
            sensor = field;
        } else if (buf_equals(&field->key, "value")) {
            result = put_number(&value, field, err);
        } else if (buf_equals(&field->key, "threshold")) {
            result = put_number(&threshold, field, err);
        } else if (buf_equals(&field->key, "count")) {
            result = put_integer(&count, field, err);
        } else if (buf_equals(&field->key, "time_ns")) {
            result = put_integer(&time_ns, field, err);
        } else {
            result = field_error(err, "unknown field ", &field->key, "");
        }
    }
    const char *required[] = {"sensor", "value", "threshold", "count", "time_ns"};
    const struct json_field *found[] = {sensor, value, threshold, count, time_ns};
    for (size_t i = 0; result == 0 && i < sizeof required / sizeof *required; i++) {
        if (!found[i]) {
            result = missing(err, required[i]);
        }
    }
    if (result == 0) {
        bool valid = sensor->str.len >= 1 && sensor->str.len <= MAX_SENSOR_LEN;
        for (size_t i = 0; valid && i < sensor->str.len; i++) {
            valid = valid_sensor_byte(sensor->str.data[i]);
        }
        if (!valid) {
            buf_puts(err, "field \"sensor\" must be 1 to 64 characters from A-Z a-z 0-9 - _ . : /");
            result = -1;
        }
    }
    /* The filter alerts only above the threshold; anything else is not an alert to act on. */
    if (result == 0 && !(value->num > threshold->num)) {
        buf_puts(err, "value ");
        json_write_number(err, value->num);
        buf_puts(err, " is not above threshold ");
        json_write_number(err, threshold->num);
        result = -1;
    }

    /* Corrupt state is reported before anything is written. */
    uint64_t actions = 0;
    if (result == 0) {
        result = load_counter(KEY_ACTIONS, &actions, err);
    }
    if (result == 0) {
        result = store_counter(KEY_ACTIONS, actions + 1, err);
    }
    if (result == 0) {
        struct buf last = {0};
        write_last(&last, sensor->str.data, sensor->str.len, value->num);
        result = store(KEY_LAST, last.data, last.len, err);
        buf_free(&last);
    }
    if (result == 0) {
        struct buf message = {0};
        buf_puts(&message, "actuating: ");
        buf_put(&message, sensor->str.data, sensor->str.len);
        buf_puts(&message, " value ");
        json_write_number(&message, value->num);
        buf_puts(&message, " above threshold ");
        json_write_number(&message, threshold->num);
        host_log_warn(&message);
        buf_free(&message);
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

/* How often the actuator acted and on what, last. */
static int state(const uint8_t *arg, size_t len, struct buf *response, struct buf *err) {
    uint64_t actions;
    if (expect_no_argument(arg, len, err) < 0 || load_counter(KEY_ACTIONS, &actions, err) < 0) {
        return -1;
    }
    struct buf stored = {0};
    if (!host_state_get(KEY_LAST, &stored)) {
        buf_puts(response, "{\"actions\":");
        buf_put_u64(response, actions);
        buf_puts(response, ",\"last\":null}");
        return 0;
    }
    struct json_object last;
    struct buf ignored = {0};
    int parsed = json_parse_object((const uint8_t *)stored.data, stored.len, &last, &ignored);
    bool valid = parsed == 0 && last.count == 2 && buf_equals(&last.fields[0].key, "sensor") &&
                 last.fields[0].kind == JSON_STR && buf_equals(&last.fields[1].key, "value") &&
                 last.fields[1].kind == JSON_NUM;
    if (valid) {
        buf_puts(response, "{\"actions\":");
        buf_put_u64(response, actions);
        buf_puts(response, ",\"last\":");
        write_last(response, last.fields[0].str.data, last.fields[0].str.len, last.fields[1].num);
        buf_puts(response, "}");
    }
    json_object_free(&last);
    buf_free(&ignored);
    buf_free(&stored);
    return valid ? 0 : corrupt(err, KEY_LAST);
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

int actuator_on_input(const char *input, size_t input_len, const uint8_t *data, size_t len,
                      struct buf *err) {
    if (name_is(input, input_len, "alert")) {
        size_t mark = err->len;
        return prefixed(err, mark, "alert: ", on_alert(data, len, err));
    }
    return unknown_port(err, "input", input, input_len);
}

int actuator_on_request(const char *handler, size_t handler_len, const uint8_t *data, size_t len,
                        struct buf *response, struct buf *err) {
    (void)data, (void)len, (void)response;
    return unknown_port(err, "handler", handler, handler_len);
}

int actuator_call_entry(const char *entry, size_t entry_len, const uint8_t *arg, size_t len,
                        struct buf *response, struct buf *err) {
    if (name_is(entry, entry_len, "state")) {
        size_t mark = err->len;
        return prefixed(err, mark, "state: ", state(arg, len, response, err));
    }
    return unknown_port(err, "entry", entry, entry_len);
}
