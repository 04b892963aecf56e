/* Recomputes the checksums of an HDF5 file's metadata in place, so that the checkpoint fuzzer's mutations of object
 * headers (attributes, dataspaces, types, layouts), B-trees and heaps reach the reader's own checks instead of
 * failing libhdf5's checksum test. Covers what files with superblock version 2 or 3 hold: the superblock, object
 * headers (OHDR) and their continuation chunks (OCHK), version 2 B-tree headers and leaf roots (BTHD, BTLF),
 * fractal heap headers (FRHP) and their root direct blocks (FHDB: dense links and attributes). Anything it cannot parse
 * within bounds is left as it is. Never reads or writes outside [data, data + size). */
#ifndef LT_FUZZ_H5_FIXUP_H
#define LT_FUZZ_H5_FIXUP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Bob Jenkins' lookup3 hashlittle() (public domain), byte by byte: libhdf5's H5_checksum_metadata(data, n, 0). */
static uint32_t h5fix_lookup3(const uint8_t *k, size_t length) {
#define H5FIX_ROT(x, s) (((x) << (s)) | ((x) >> (32 - (s))))
    uint32_t a, b, c;
    a = b = c = 0xdeadbeefu + (uint32_t)length;
    while (length > 12) {
        a += k[0] + ((uint32_t)k[1] << 8) + ((uint32_t)k[2] << 16) + ((uint32_t)k[3] << 24);
        b += k[4] + ((uint32_t)k[5] << 8) + ((uint32_t)k[6] << 16) + ((uint32_t)k[7] << 24);
        c += k[8] + ((uint32_t)k[9] << 8) + ((uint32_t)k[10] << 16) + ((uint32_t)k[11] << 24);
        a -= c, a ^= H5FIX_ROT(c, 4), c += b;
        b -= a, b ^= H5FIX_ROT(a, 6), a += c;
        c -= b, c ^= H5FIX_ROT(b, 8), b += a;
        a -= c, a ^= H5FIX_ROT(c, 16), c += b;
        b -= a, b ^= H5FIX_ROT(a, 19), a += c;
        c -= b, c ^= H5FIX_ROT(b, 4), b += a;
        length -= 12;
        k += 12;
    }
    if (length == 0) return c;
    uint32_t *w[3] = {&a, &b, &c};
    for (size_t i = 0; i < length; i++) *w[i / 4] += (uint32_t)k[i] << (8 * (i % 4));
    c ^= b, c -= H5FIX_ROT(b, 14);
    a ^= c, a -= H5FIX_ROT(c, 11);
    b ^= a, b -= H5FIX_ROT(a, 25);
    c ^= b, c -= H5FIX_ROT(b, 16);
    a ^= c, a -= H5FIX_ROT(c, 4);
    b ^= a, b -= H5FIX_ROT(a, 14);
    c ^= b, c -= H5FIX_ROT(b, 24);
#undef H5FIX_ROT
    return c;
}

static uint64_t h5fix_le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* Writes the checksum of [at, at + len) at at + len, when that fits. */
static void h5fix_sum(uint8_t *d, size_t size, uint64_t at, uint64_t len) {
    if (at > size || len > size - at || size - at - len < 4) return;
    uint32_t s = h5fix_lookup3(d + at, (size_t)len);
    for (int i = 0; i < 4; i++) d[at + len + (uint64_t)i] = (uint8_t)(s >> (8 * i));
}

/* An object header's chunk 0 at p: its checksum, and those of the continuation chunks its messages point to. */
static void h5fix_ohdr(uint8_t *d, size_t size, size_t p, int so, int sl) {
    if (size - p < 8 || d[p + 4] != 2) return;
    const uint8_t flags = d[p + 5];
    size_t q = p + 6 + (flags & 0x20 ? 16 : 0) + (flags & 0x10 ? 4 : 0);
    const int width = 1 << (flags & 3);
    if (q > size || size - q < (size_t)width) return;
    const uint64_t chunk = h5fix_le(d + q, width);
    q += (size_t)width;
    if (chunk > size - q) return;
    const size_t end = q + (size_t)chunk, header = flags & 0x04 ? 6 : 4;
    for (size_t m = q; end - m >= header;) { /* messages: type, size, flags, [creation order], data */
        const uint8_t type = d[m];
        const size_t len = (size_t)h5fix_le(d + m + 1, 2);
        m += header;
        if (len > end - m) break;
        if (type == 0x10 && len >= (size_t)(so + sl)) { /* continuation: (offset, length) of an OCHK chunk */
            const uint64_t at = h5fix_le(d + m, so), n = h5fix_le(d + m + so, sl);
            if (n >= 8 && at < size && n <= size - at && memcmp(d + at, "OCHK", 4) == 0) h5fix_sum(d, size, at, n - 4);
        }
        m += len;
    }
    h5fix_sum(d, size, p, end - p);
}

static void h5fix_all(uint8_t *d, size_t size) {
    static const uint8_t sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    if (size < 12 || memcmp(d, sig, 8) != 0 || (d[8] != 2 && d[8] != 3)) return;
    const int so = d[9], sl = d[10];
    if ((so != 4 && so != 8) || (sl != 4 && sl != 8)) return;
    h5fix_sum(d, size, 0, 12 + 4 * (uint64_t)so);
    /* B-tree headers first: their leaf roots are checksummed on their own */
    for (size_t p = 0; size >= 4 && p <= size - 4; p++) {
        if (memcmp(d + p, "BTHD", 4) == 0 && size - p >= (size_t)(22 + so + sl)) {
            const uint64_t rec = h5fix_le(d + p + 10, 2), depth = h5fix_le(d + p + 12, 2);
            const uint64_t root = h5fix_le(d + p + 16, so), nrec = h5fix_le(d + p + 16 + so, 2);
            h5fix_sum(d, size, p, 18 + (uint64_t)so + (uint64_t)sl);
            if (depth == 0 && root < size && size - root >= 4 && memcmp(d + root, "BTLF", 4) == 0)
                h5fix_sum(d, size, root, 6 + nrec * rec);
        } else if (memcmp(d + p, "FRHP", 4) == 0) {
            /* prefix, then 10 lengths and 2 addresses of counters, then the doubling table */
            const size_t table = 14 + 10 * (size_t)sl + 2 * (size_t)so, len = table + 4 * (size_t)sl / 2 + 6 + so + 2;
            if (size - p < len + 4) continue;
            const uint64_t filter_len = h5fix_le(d + p + 7, 2), start = h5fix_le(d + p + table + 2, sl);
            const uint64_t bits = h5fix_le(d + p + table + 2 + 2 * sl, 2);
            const uint64_t root = h5fix_le(d + p + table + 6 + 2 * sl, so);
            const uint64_t rows = h5fix_le(d + p + table + 6 + 2 * sl + so, 2);
            h5fix_sum(d, size, p, len + (filter_len > 0 ? (uint64_t)sl + 4 + filter_len : 0));
            /* a root direct block with checksums (flag 2): over the whole block, its checksum field as zero */
            const uint64_t sum_at = root + 5 + (uint64_t)so + (bits + 7) / 8;
            if ((d[p + 9] & 2) && rows == 0 && filter_len == 0 && root < size && start <= size - root &&
                sum_at + 4 <= root + start && memcmp(d + root, "FHDB", 4) == 0) {
                memset(d + sum_at, 0, 4);
                const uint32_t sum = h5fix_lookup3(d + root, (size_t)start);
                for (int i = 0; i < 4; i++) d[sum_at + (uint64_t)i] = (uint8_t)(sum >> (8 * i));
            }
        } else if (memcmp(d + p, "OHDR", 4) == 0) {
            h5fix_ohdr(d, size, p, so, sl);
        }
    }
}

#endif
