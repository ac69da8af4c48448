/* How much one request may decode into. Every decoded value costs an
 * allocation or more (a cJSON node, a protobuf-c message, a pointer), so a
 * body of millions of tiny elements ("[0,0,0,...]") would cost a hundred
 * times its size. The decoders count on the body's text or wire bytes and
 * refuse past these bounds before building anything. */
#ifndef BERTH_CODEC_LIMITS_H
#define BERTH_CODEC_LIMITS_H

#include <stddef.h>

struct codec_limits {
    /* Elements of one list or map, members of one JSON object, occurrences
     * of one field (or of unknown fields) in one binary message: past it,
     * invalid_argument naming the field. */
    size_t max_elements;
    /* Values of the whole body (JSON values, binary fields and packed
     * elements): past it, resource_exhausted naming where it ran out. */
    size_t max_nodes;
};

/* What a Connect request may hold: far above any real call (env and
 * metadata maps hold hundreds), and at most a few MB of memory each. */
#define CODEC_MAX_ELEMENTS 10000
#define CODEC_MAX_NODES 50000

#endif
