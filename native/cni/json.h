/* A small JSON reader for the CNI plugin: parses a whole document into a tree of nodes that keep their
 * span in the source text, so a sub-document (prevResult) can be printed back byte for byte. Strict
 * RFC 8259: one value, no trailing commas, no comments, control characters escaped, bounded depth. */
#ifndef NETPOL_CNI_JSON_H
#define NETPOL_CNI_JSON_H

#include <stddef.h>

enum json_type { JSON_NULL, JSON_FALSE, JSON_TRUE, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

struct json_node {
    enum json_type type;
    const char *start; /* span of the value in the source text */
    size_t len;
    char *string;      /* JSON_STRING: the decoded value (UTF-8, NUL-terminated; an embedded NUL is refused) */
    char *key;         /* member of an object: its decoded name */
    struct json_node *child; /* first element or member */
    struct json_node *next;  /* next sibling */
};

/* Parses text[0..len); returns the root or NULL with a message in err (size errlen). */
struct json_node *json_parse(const char *text, size_t len, char *err, size_t errlen);
void json_free(struct json_node *node);

/* The member named key of an object, or NULL (also when node is not an object). */
const struct json_node *json_get(const struct json_node *object, const char *key);
/* The decoded string of a string node, or NULL for any other node (or NULL). */
const char *json_string(const struct json_node *node);

#endif
