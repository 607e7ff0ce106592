/*
 * json.h - a small, strict JSON <-> msgpack converter for the ferry CLI.
 *
 * `ferry submit FN ARGS...` parses each argument as JSON and packs it as
 * msgpack; results and status replies are printed back as JSON.  The parser
 * follows RFC 8259 exactly (no comments, no trailing commas, no NaN, UTF-8
 * input only) and reports the byte offset of the first problem.  The
 * printer accepts any msgpack value and always writes valid JSON, choosing
 * a JSON form for the msgpack types JSON lacks (bin, ext, non-string keys).
 */
#ifndef FERRY_JSON_H
#define FERRY_JSON_H

#include <msgpack.h>
#include <stddef.h>

/*
 * Deepest nesting of arrays and objects accepted by json_to_msgpack().
 * msgpack-c's unpacker (msgpack_unpack, msgpack_unpacker) fails on values
 * nested deeper than 32 containers (its MSGPACK_EMBED_STACK_SIZE), so a
 * deeper value could be submitted but never decoded by a C worker or
 * printed by the CLI; the parser refuses it up front instead.
 */
#define JSON_MAX_DEPTH 32

/*
 * Parse the JSON text s (len bytes, need not be NUL-terminated) and pack it
 * as one msgpack value with pk.  Objects become maps (keys in input order,
 * duplicates kept), arrays arrays, strings str (escapes decoded, \uXXXX
 * surrogate pairs joined into UTF-8), integers that fit int64 or uint64
 * msgpack ints (-0 is the integer 0), every other number a float64,
 * true/false/null bool and nil.  Leading and trailing whitespace is
 * allowed; anything else after the value is an error.  Returns 0, or -1
 * with a message in err (if err is not NULL) naming the byte offset and
 * the problem ("offset 7: expected ',' or ']'").  The text is checked in
 * full before anything is packed, so on a syntax error pk has received
 * nothing; -1 after packing started means pk's writer failed (no memory).
 */
int json_to_msgpack(
    const char *s, size_t len, msgpack_packer *pk, char *err, size_t errlen);

/*
 * Append the compact JSON text of o to b (b is used as a plain growable
 * byte buffer; nothing is NUL-terminated).  str -> string (control
 * characters escaped, \b \f \n \r \t in short form, each byte that is not
 * part of valid UTF-8 as \uFFFD); bin -> "base64:<standard base64>";
 * ext -> {"ext": type, "base64": "..."}; floats in the shortest form that
 * reads back to the same value (at most %.17g, always with a '.' or an
 * exponent so they read back as floats), NaN and infinities -> null; map
 * keys that are not strings -> their JSON text inside a string (a bin key
 * -> its "base64:..." string).  Returns 0, or -1 if b could not grow (out
 * of memory), o is nested more than 1000 levels deep, or o has non-string
 * keys inside non-string keys more than 4 levels deep (each level escapes
 * the text inside it again, so the output could double per level); b may
 * then hold part of the text.
 */
int msgpack_to_json(const msgpack_object *o, msgpack_sbuffer *b);

/*
 * Like msgpack_to_json(), but for people: one array element or object
 * member per line, indented by indent spaces per level ("key": value).
 * Empty arrays and objects stay "[]" and "{}".  indent <= 0 gives the
 * compact form.  No trailing newline.
 */
int msgpack_to_json_pretty(
    const msgpack_object *o, msgpack_sbuffer *b, int indent);

/*
 * Decode exactly one msgpack value from data (len bytes) and return its
 * compact JSON text as a malloc'd NUL-terminated string that the caller
 * frees.  Returns NULL with a message in err (if err is not NULL) when the
 * bytes are empty, truncated, malformed, followed by extra bytes, nested
 * deeper than msgpack-c can decode (32), have keys nested too deeply in
 * keys to print (see msgpack_to_json()), or memory runs out.
 */
char *json_from_msgpack_bytes(
    const void *data, size_t len, char *err, size_t errlen);

#endif
