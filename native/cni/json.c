#include "json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64

struct parser {
    const char *text;
    size_t len;
    size_t pos;
    char *err;
    size_t errlen;
    int failed;
};

static void fail(struct parser *p, const char *fmt, ...) {
    if (p->failed) return;
    p->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    char msg[200];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(p->err, p->errlen, "%s at offset %zu", msg, p->pos);
}

static void skip_ws(struct parser *p) {
    while (p->pos < p->len) {
        char c = p->text[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static struct json_node *new_node(struct parser *p, enum json_type type) {
    struct json_node *n = calloc(1, sizeof *n);
    if (n == NULL) {
        fail(p, "out of memory");
        return NULL;
    }
    n->type = type;
    n->start = p->text + p->pos;
    return n;
}

static int hex4(struct parser *p, unsigned *out) {
    if (p->len - p->pos < 4) return 0;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->text[p->pos + i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    p->pos += 4;
    *out = v;
    return 1;
}

static size_t put_utf8(char *out, unsigned cp) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12)); out[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18)); out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* At an opening quote; returns the decoded string (malloc) and moves past the closing quote. A decoded
 * string is never longer than its escaped source, so one buffer of the remaining length suffices. */
static char *parse_string_value(struct parser *p) {
    p->pos++; /* the quote */
    size_t end = p->pos;
    while (end < p->len && p->text[end] != '"') end += (p->text[end] == '\\') ? 2 : 1;
    if (end >= p->len) {
        fail(p, "unterminated string");
        return NULL;
    }
    char *out = malloc(end - p->pos + 1);
    if (out == NULL) {
        fail(p, "out of memory");
        return NULL;
    }
    size_t o = 0;
    while (p->text[p->pos] != '"') {
        unsigned char c = (unsigned char)p->text[p->pos];
        if (c < 0x20) {
            fail(p, "control character in string");
            free(out);
            return NULL;
        }
        if (c != '\\') {
            out[o++] = (char)c;
            p->pos++;
            continue;
        }
        p->pos++;
        char e = p->text[p->pos++];
        switch (e) {
        case '"': out[o++] = '"'; break;
        case '\\': out[o++] = '\\'; break;
        case '/': out[o++] = '/'; break;
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'u': {
            unsigned cp;
            if (!hex4(p, &cp)) goto bad_escape;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (p->len - p->pos < 6 || p->text[p->pos] != '\\' || p->text[p->pos + 1] != 'u') goto bad_escape;
                p->pos += 2;
                if (!hex4(p, &lo) || lo < 0xDC00 || lo > 0xDFFF) goto bad_escape;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                goto bad_escape;
            }
            if (cp == 0) {
                fail(p, "NUL character in string");
                free(out);
                return NULL;
            }
            o += put_utf8(out + o, cp);
            break;
        }
        default:
            goto bad_escape;
        }
    }
    p->pos++; /* the closing quote */
    out[o] = '\0';
    return out;
bad_escape:
    fail(p, "invalid escape in string");
    free(out);
    return NULL;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int parse_number(struct parser *p) {
    size_t s = p->pos;
    if (p->pos < p->len && p->text[p->pos] == '-') p->pos++;
    if (p->pos >= p->len || !is_digit(p->text[p->pos])) goto bad;
    if (p->text[p->pos] == '0') p->pos++;
    else while (p->pos < p->len && is_digit(p->text[p->pos])) p->pos++;
    if (p->pos < p->len && p->text[p->pos] == '.') {
        p->pos++;
        if (p->pos >= p->len || !is_digit(p->text[p->pos])) goto bad;
        while (p->pos < p->len && is_digit(p->text[p->pos])) p->pos++;
    }
    if (p->pos < p->len && (p->text[p->pos] == 'e' || p->text[p->pos] == 'E')) {
        p->pos++;
        if (p->pos < p->len && (p->text[p->pos] == '+' || p->text[p->pos] == '-')) p->pos++;
        if (p->pos >= p->len || !is_digit(p->text[p->pos])) goto bad;
        while (p->pos < p->len && is_digit(p->text[p->pos])) p->pos++;
    }
    return 1;
bad:
    p->pos = s;
    fail(p, "invalid number");
    return 0;
}

static int literal(struct parser *p, const char *word) {
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->text + p->pos, word, n) != 0) {
        fail(p, "unexpected character '%c'", p->text[p->pos]);
        return 0;
    }
    p->pos += n;
    return 1;
}

static struct json_node *parse_value(struct parser *p, int depth);

static struct json_node *parse_container(struct parser *p, int depth, int object) {
    struct json_node *n = new_node(p, object ? JSON_OBJECT : JSON_ARRAY);
    if (n == NULL) return NULL;
    char close = object ? '}' : ']';
    p->pos++;
    skip_ws(p);
    struct json_node **tail = &n->child;
    if (p->pos < p->len && p->text[p->pos] == close) {
        p->pos++;
        n->len = (size_t)(p->text + p->pos - n->start);
        return n;
    }
    for (;;) {
        char *key = NULL;
        if (object) {
            skip_ws(p);
            if (p->pos >= p->len || p->text[p->pos] != '"') {
                fail(p, "expected a member name");
                goto error;
            }
            key = parse_string_value(p);
            if (key == NULL) goto error;
            skip_ws(p);
            if (p->pos >= p->len || p->text[p->pos] != ':') {
                free(key);
                fail(p, "expected ':'");
                goto error;
            }
            p->pos++;
        }
        struct json_node *child = parse_value(p, depth + 1);
        if (child == NULL) {
            free(key);
            goto error;
        }
        child->key = key;
        *tail = child;
        tail = &child->next;
        skip_ws(p);
        if (p->pos >= p->len) {
            fail(p, "unexpected end of input");
            goto error;
        }
        char c = p->text[p->pos++];
        if (c == close) break;
        if (c != ',') {
            p->pos--;
            fail(p, "expected ',' or '%c'", close);
            goto error;
        }
    }
    n->len = (size_t)(p->text + p->pos - n->start);
    return n;
error:
    json_free(n);
    return NULL;
}

static struct json_node *parse_value(struct parser *p, int depth) {
    if (depth > MAX_DEPTH) {
        fail(p, "nested deeper than %d", MAX_DEPTH);
        return NULL;
    }
    skip_ws(p);
    if (p->pos >= p->len) {
        fail(p, "unexpected end of input");
        return NULL;
    }
    char c = p->text[p->pos];
    struct json_node *n;
    switch (c) {
    case '{': return parse_container(p, depth, 1);
    case '[': return parse_container(p, depth, 0);
    case '"':
        n = new_node(p, JSON_STRING);
        if (n == NULL) return NULL;
        n->string = parse_string_value(p);
        if (n->string == NULL) {
            free(n);
            return NULL;
        }
        break;
    case 't': n = new_node(p, JSON_TRUE); if (n == NULL || !literal(p, "true")) goto bad; break;
    case 'f': n = new_node(p, JSON_FALSE); if (n == NULL || !literal(p, "false")) goto bad; break;
    case 'n': n = new_node(p, JSON_NULL); if (n == NULL || !literal(p, "null")) goto bad; break;
    default:
        n = new_node(p, JSON_NUMBER);
        if (n == NULL || !parse_number(p)) goto bad;
        break;
    }
    n->len = (size_t)(p->text + p->pos - n->start);
    return n;
bad:
    free(n);
    return NULL;
}

struct json_node *json_parse(const char *text, size_t len, char *err, size_t errlen) {
    struct parser p = { text, len, 0, err, errlen, 0 };
    if (memchr(text, '\0', len) != NULL) {
        snprintf(err, errlen, "NUL byte in input");
        return NULL;
    }
    struct json_node *root = parse_value(&p, 0);
    if (root == NULL) return NULL;
    skip_ws(&p);
    if (p.pos != len) {
        fail(&p, "trailing characters after the document");
        json_free(root);
        return NULL;
    }
    return root;
}

void json_free(struct json_node *node) {
    while (node != NULL) {
        struct json_node *next = node->next;
        json_free(node->child);
        free(node->string);
        free(node->key);
        free(node);
        node = next;
    }
}

const struct json_node *json_get(const struct json_node *object, const char *key) {
    if (object == NULL || object->type != JSON_OBJECT) return NULL;
    const struct json_node *found = NULL;
    /* The last of duplicate names wins, as in Go's encoding/json that runtimes and other plugins use. */
    for (const struct json_node *m = object->child; m != NULL; m = m->next)
        if (strcmp(m->key, key) == 0) found = m;
    return found;
}

const char *json_string(const struct json_node *node) {
    return node != NULL && node->type == JSON_STRING ? node->string : NULL;
}
