/* The sensor filter's JSON parser and writer: a byte-for-byte twin of ../rust/src/json.rs, same
 * accepted inputs, same error strings, same number format (checked by testdata/transcript.txt). */
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest number token accepted; longer ones are rejected rather than parsed. */
#define MAX_NUMBER_LEN 64

void buf_put(struct buf *b, const void *data, size_t len) {
    if (len == 0) {
        return;
    }
    if (b->cap - b->len < len + 1) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->len < len + 1) {
            cap *= 2;
        }
        char *grown = realloc(b->data, cap);
        if (!grown) {
            abort();
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

void buf_puts(struct buf *b, const char *text) { buf_put(b, text, strlen(text)); }

void buf_put_u64(struct buf *b, uint64_t value) {
    char digits[20];
    size_t count = 0;
    do {
        digits[sizeof digits - 1 - count++] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    buf_put(b, digits + sizeof digits - count, count);
}

const char *buf_cstr(struct buf *b) {
    buf_put(b, "", 1); /* makes room for, and writes, the NUL */
    b->len--;
    return b->data;
}

bool buf_equals(const struct buf *b, const char *text) {
    size_t len = strlen(text);
    return b->len == len && (len == 0 || memcmp(b->data, text, len) == 0);
}

void buf_free(struct buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

struct parser {
    const uint8_t *input;
    size_t len;
    size_t pos;
    struct buf *err;
};

static int fail(struct parser *p, size_t pos, const char *what) {
    buf_puts(p->err, "malformed JSON at byte ");
    buf_put_u64(p->err, pos);
    buf_puts(p->err, ": ");
    buf_puts(p->err, what);
    return -1;
}

/* The byte at `pos`, or -1 past the end. */
static int peek_at(const struct parser *p, size_t pos) { return pos < p->len ? p->input[pos] : -1; }
static int peek(const struct parser *p) { return peek_at(p, p->pos); }
static bool is_digit(int c) { return c >= '0' && c <= '9'; }

static void skip_whitespace(struct parser *p) {
    while (peek(p) == ' ' || peek(p) == '\t' || peek(p) == '\n' || peek(p) == '\r') {
        p->pos++;
    }
}

static int hex_value(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* A string starting at the opening quote. Only ASCII is accepted, raw or escaped. */
static int parse_string(struct parser *p, struct buf *out) {
    p->pos++;
    for (;;) {
        int c = peek(p);
        if (c < 0) {
            return fail(p, p->pos, "unterminated string");
        }
        if (c == '"') {
            p->pos++;
            return 0;
        }
        if (c == '\\') {
            size_t escape_pos = p->pos;
            char decoded;
            switch (peek_at(p, p->pos + 1)) {
            case '"': decoded = '"'; break;
            case '\\': decoded = '\\'; break;
            case '/': decoded = '/'; break;
            case 'b': decoded = 0x08; break;
            case 'f': decoded = 0x0c; break;
            case 'n': decoded = '\n'; break;
            case 'r': decoded = '\r'; break;
            case 't': decoded = '\t'; break;
            case 'u': {
                long code = 0;
                for (size_t i = 2; i < 6; i++) {
                    int digit = hex_value(peek_at(p, p->pos + i));
                    if (digit < 0) {
                        return fail(p, escape_pos, "invalid \\u escape");
                    }
                    code = code * 16 + digit;
                }
                if (code >= 0x80) {
                    return fail(p, escape_pos, "non-ASCII characters are not supported");
                }
                p->pos += 4;
                decoded = (char)code;
                break;
            }
            default:
                return fail(p, escape_pos, "invalid escape");
            }
            p->pos += 2;
            buf_put(out, &decoded, 1);
        } else if (c < 0x20) {
            return fail(p, p->pos, "control character in string");
        } else if (c >= 0x80) {
            return fail(p, p->pos, "non-ASCII characters are not supported");
        } else {
            char byte = (char)c;
            buf_put(out, &byte, 1);
            p->pos++;
        }
    }
}

static void skip_digits(struct parser *p) {
    while (is_digit(peek(p))) {
        p->pos++;
    }
}

/* A number in RFC 8259 grammar, converted with correct rounding; must be finite. */
static int parse_number(struct parser *p, double *out) {
    size_t start = p->pos;
    if (peek(p) == '-') {
        p->pos++;
    }
    if (peek(p) == '0') {
        p->pos++;
    } else if (peek(p) >= '1' && peek(p) <= '9') {
        skip_digits(p);
    } else {
        return fail(p, p->pos, "invalid number");
    }
    if (peek(p) == '.') {
        p->pos++;
        if (!is_digit(peek(p))) {
            return fail(p, p->pos, "invalid number");
        }
        skip_digits(p);
    }
    if (peek(p) == 'e' || peek(p) == 'E') {
        p->pos++;
        if (peek(p) == '+' || peek(p) == '-') {
            p->pos++;
        }
        if (!is_digit(peek(p))) {
            return fail(p, p->pos, "invalid number");
        }
        skip_digits(p);
    }
    size_t len = p->pos - start;
    if (len > MAX_NUMBER_LEN) {
        return fail(p, start, "number too long");
    }
    char token[MAX_NUMBER_LEN + 1];
    memcpy(token, p->input + start, len);
    token[len] = '\0';
    double value = strtod(token, NULL);
    if (isinf(value)) {
        return fail(p, start, "number out of range");
    }
    *out = value;
    return 0;
}

static struct json_field *push_field(struct json_object *object) {
    if (object->count == object->cap) {
        size_t cap = object->cap ? object->cap * 2 : 4;
        struct json_field *grown = realloc(object->fields, cap * sizeof *grown);
        if (!grown) {
            abort();
        }
        object->fields = grown;
        object->cap = cap;
    }
    struct json_field *field = &object->fields[object->count++];
    memset(field, 0, sizeof *field);
    return field;
}

int json_parse_object(const uint8_t *input, size_t len, struct json_object *out, struct buf *err) {
    struct parser p = {input, len, 0, err};
    memset(out, 0, sizeof *out);
    skip_whitespace(&p);
    if (peek(&p) != '{') {
        return fail(&p, p.pos, "expected '{'");
    }
    p.pos++;
    skip_whitespace(&p);
    if (peek(&p) == '}') {
        p.pos++;
    } else {
        for (;;) {
            if (peek(&p) != '"') {
                return fail(&p, p.pos, "expected a string key");
            }
            struct json_field *field = push_field(out);
            if (parse_string(&p, &field->key) < 0) {
                return -1;
            }
            skip_whitespace(&p);
            if (peek(&p) != ':') {
                return fail(&p, p.pos, "expected ':'");
            }
            p.pos++;
            skip_whitespace(&p);
            int c = peek(&p);
            if (c == '"') {
                field->kind = JSON_STR;
                if (parse_string(&p, &field->str) < 0) {
                    return -1;
                }
            } else if (c == '-' || is_digit(c)) {
                field->kind = JSON_NUM;
                if (parse_number(&p, &field->num) < 0) {
                    return -1;
                }
            } else {
                return fail(&p, p.pos, "expected a string or a number");
            }
            skip_whitespace(&p);
            if (peek(&p) == ',') {
                p.pos++;
                skip_whitespace(&p);
            } else if (peek(&p) == '}') {
                p.pos++;
                break;
            } else {
                return fail(&p, p.pos, "expected ',' or '}'");
            }
        }
    }
    skip_whitespace(&p);
    if (p.pos != len) {
        return fail(&p, p.pos, "trailing characters after the object");
    }
    return 0;
}

void json_object_free(struct json_object *object) {
    for (size_t i = 0; i < object->count; i++) {
        buf_free(&object->fields[i].key);
        buf_free(&object->fields[i].str);
    }
    free(object->fields);
    memset(object, 0, sizeof *object);
}

void json_write_string(struct buf *out, const void *text, size_t len) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *bytes = text;
    buf_put(out, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = bytes[i];
        switch (c) {
        case '"': buf_puts(out, "\\\""); break;
        case '\\': buf_puts(out, "\\\\"); break;
        case 0x08: buf_puts(out, "\\b"); break;
        case 0x0c: buf_puts(out, "\\f"); break;
        case '\n': buf_puts(out, "\\n"); break;
        case '\r': buf_puts(out, "\\r"); break;
        case '\t': buf_puts(out, "\\t"); break;
        default:
            if (c < 0x20) {
                char escape[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                buf_put(out, escape, sizeof escape);
            } else {
                buf_put(out, &c, 1); /* ASCII or a byte of UTF-8, verbatim */
            }
        }
    }
    buf_put(out, "\"", 1);
}

static void put_zeros(struct buf *out, int count) {
    for (int i = 0; i < count; i++) {
        buf_put(out, "0", 1);
    }
}

/* ECMAScript Number::toString layout of 0.d1d2... x 10^(exponent + 1). */
static void write_digits(struct buf *out, bool negative, const char *digits, int count, int exponent) {
    int point = exponent + 1; /* position of the decimal point relative to the first digit */
    if (negative) {
        buf_put(out, "-", 1);
    }
    if (count <= point && point <= 21) {
        buf_put(out, digits, (size_t)count);
        put_zeros(out, point - count);
    } else if (0 < point && point <= 21) {
        buf_put(out, digits, (size_t)point);
        buf_put(out, ".", 1);
        buf_put(out, digits + point, (size_t)(count - point));
    } else if (-6 < point && point <= 0) {
        buf_puts(out, "0.");
        put_zeros(out, -point);
        buf_put(out, digits, (size_t)count);
    } else {
        buf_put(out, digits, 1);
        if (count > 1) {
            buf_put(out, ".", 1);
            buf_put(out, digits + 1, (size_t)(count - 1));
        }
        buf_put(out, point - 1 < 0 ? "e-" : "e+", 2);
        buf_put_u64(out, (uint64_t)(point - 1 < 0 ? 1 - point : point - 1));
    }
}

void json_write_number(struct buf *out, double value) {
    if (value == 0) {
        buf_put(out, "0", 1);
        return;
    }
    /* The shortest correctly rounded %.*e rendering that parses back to `value`; the Rust twin
     * runs the same loop with format! and str::parse, so both pick the same digits. */
    char scientific[40];
    for (int precision = 0; precision < 17; precision++) {
        snprintf(scientific, sizeof scientific, "%.*e", precision, value);
        if (strtod(scientific, NULL) == value) {
            break;
        }
    }
    bool negative = scientific[0] == '-';
    char digits[24];
    int count = 0;
    const char *c = scientific;
    for (; *c && *c != 'e'; c++) {
        if (is_digit(*c) && count < (int)sizeof digits) {
            digits[count++] = *c;
        }
    }
    int exponent = *c == 'e' ? atoi(c + 1) : 0;
    while (count > 1 && digits[count - 1] == '0') {
        count--;
    }
    write_digits(out, negative, digits, count, exponent);
}
