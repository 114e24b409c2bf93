#include "util/utf8.h"

#include <string.h>

bool utf8_is_valid(const char *s, size_t len)
{
    if (len == 0)
        return true; /* s may be NULL */
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *end = p + len;

    while (p < end) {
        if (*p < 0x80) {
            /* Posts are mostly ASCII: test eight bytes per step. */
            while (end - p >= 8) {
                uint64_t word;
                memcpy(&word, p, sizeof(word));
                if (word & UINT64_C(0x8080808080808080))
                    break;
                p += 8;
            }
            while (p < end && *p < 0x80)
                p++;
            continue;
        }
        size_t n;
        if (utf8_decode(p, end, &n) < 0)
            return false;
        p += n;
    }
    return true;
}
