# CRC-32 (zlib's polynomial, bit-reflected) in C, included by both compiled twins (_core.pyx
# seals code bytes with it, _load.pyx checks them): zlib.crc32 called from Python on a slice
# cost more than marshalling or unmarshalling the small code objects it protects.
# The table comes from _format.crc32_table(), so it is zlib's by construction; the including
# module imports crc32_table and uint32_t.

cdef uint32_t _CRC_TABLES[8][256]


cdef void _init_crc_tables():
    # Slicing-by-8: eight bytes per step through eight derived tables.
    cdef int i = 0, k
    for value in crc32_table():
        _CRC_TABLES[0][i] = <uint32_t>value
        i += 1
    for k in range(1, 8):
        for i in range(256):
            _CRC_TABLES[k][i] = ((_CRC_TABLES[k - 1][i] >> 8)
                                 ^ _CRC_TABLES[0][_CRC_TABLES[k - 1][i] & 0xFF])


_init_crc_tables()


# Slicing-by-8 in C (the last bytes after the folding below go through it too: byte by byte,
# the 16 to 31 bytes there were one chain of dependent table loads, a third of the whole CRC of
# a small code object).
cdef extern from *:
    """
    static uint32_t ffp_crc32_slice8(uint32_t crc, const unsigned char *p, Py_ssize_t n,
                                     const uint32_t (*t)[256])
    {
        while (n >= 8) {
            uint32_t one = crc ^ ((uint32_t)p[0] | ((uint32_t)p[1] << 8)
                                  | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24));
            crc = t[7][one & 0xFF] ^ t[6][(one >> 8) & 0xFF] ^ t[5][(one >> 16) & 0xFF]
                  ^ t[4][one >> 24] ^ t[3][p[4]] ^ t[2][p[5]] ^ t[1][p[6]] ^ t[0][p[7]];
            p += 8;
            n -= 8;
        }
        while (n-- > 0)
            crc = t[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
        return crc;
    }
    """
    uint32_t ffp_crc32_slice8(uint32_t crc, const unsigned char* p, Py_ssize_t n,
                              const uint32_t (*tables)[256]) noexcept


# 64 bytes and more: folded with carry-less multiplication where the CPU has it (x86-64
# PCLMULQDQ, checked at run time), about ten times the speed of the tables, which then only
# finish the last 16 to 79 bytes. The folding constants are x^(64+D-1) and x^(D-1) modulo
# zlib's polynomial, bit-reflected over 64 bits, for folds across D = 512 and 128 bits
# (derived for this file; tests/test_code_encoding.py checks both paths against zlib.crc32).
cdef extern from *:
    """
    #if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    #include <immintrin.h>
    __attribute__((target("pclmul,sse2")))
    static uint32_t ffp_crc32_clmul(const unsigned char *p, Py_ssize_t n,
                                    const uint32_t (*tables)[256])
    {
        const __m128i k512 = _mm_set_epi64x((long long)0xcad38e8f00000000ULL,
                                            (long long)0x653d982200000000ULL);
        const __m128i k128 = _mm_set_epi64x((long long)0x9ba54c6f00000000ULL,
                                            (long long)0x65673b4600000000ULL);
        __m128i x0 = _mm_loadu_si128((const __m128i *)p);
        __m128i x1 = _mm_loadu_si128((const __m128i *)(p + 16));
        __m128i x2 = _mm_loadu_si128((const __m128i *)(p + 32));
        __m128i x3 = _mm_loadu_si128((const __m128i *)(p + 48));
        unsigned char last[16];
        x0 = _mm_xor_si128(x0, _mm_cvtsi32_si128((int)0xFFFFFFFF));
        p += 64;
        n -= 64;
    #define FFP_FOLD(x, k) _mm_xor_si128(_mm_clmulepi64_si128((x), (k), 0x00), \
                                         _mm_clmulepi64_si128((x), (k), 0x11))
        while (n >= 64) {
            x0 = _mm_xor_si128(FFP_FOLD(x0, k512), _mm_loadu_si128((const __m128i *)p));
            x1 = _mm_xor_si128(FFP_FOLD(x1, k512), _mm_loadu_si128((const __m128i *)(p + 16)));
            x2 = _mm_xor_si128(FFP_FOLD(x2, k512), _mm_loadu_si128((const __m128i *)(p + 32)));
            x3 = _mm_xor_si128(FFP_FOLD(x3, k512), _mm_loadu_si128((const __m128i *)(p + 48)));
            p += 64;
            n -= 64;
        }
        x0 = _mm_xor_si128(FFP_FOLD(x0, k128), x1);
        x0 = _mm_xor_si128(FFP_FOLD(x0, k128), x2);
        x0 = _mm_xor_si128(FFP_FOLD(x0, k128), x3);
        while (n >= 16) {
            x0 = _mm_xor_si128(FFP_FOLD(x0, k128), _mm_loadu_si128((const __m128i *)p));
            p += 16;
            n -= 16;
        }
    #undef FFP_FOLD
        /* The folded block followed by the tail has the CRC register of the whole input. */
        _mm_storeu_si128((__m128i *)last, x0);
        return ffp_crc32_slice8(ffp_crc32_slice8(0, last, 16, tables), p, n, tables) ^ 0xFFFFFFFF;
    }
    static int ffp_cpu_has_clmul(void)
    {
        __builtin_cpu_init();
        return __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse2");
    }
    #else
    static uint32_t ffp_crc32_clmul(const unsigned char *p, Py_ssize_t n,
                                    const uint32_t (*tables)[256])
    {
        (void)p; (void)n; (void)tables;
        return 0;
    }
    static int ffp_cpu_has_clmul(void) { return 0; }
    #endif
    """
    uint32_t ffp_crc32_clmul(const unsigned char* p, Py_ssize_t n,
                             const uint32_t (*tables)[256]) noexcept
    int ffp_cpu_has_clmul() noexcept


cdef bint _CRC_CLMUL = ffp_cpu_has_clmul()


def _crc32_paths(data, clmul=None):
    """zlib.crc32 of ``data`` computed here (for the tests): by the path this CPU takes, or
    with ``clmul`` False/True by the tables / the folding (True only where the CPU has it)."""
    cdef const unsigned char[:] view = data
    cdef bint saved = _CRC_CLMUL
    global _CRC_CLMUL
    if clmul is not None:
        if clmul and not ffp_cpu_has_clmul():
            raise RuntimeError("this CPU has no carry-less multiplication")
        _CRC_CLMUL = clmul
    try:
        return _crc32(&view[0] if view.shape[0] else NULL, view.shape[0])
    finally:
        _CRC_CLMUL = saved


def _crc32_has_clmul():
    """Whether this CPU folds the CRC with carry-less multiplication."""
    return bool(ffp_cpu_has_clmul())


cdef inline uint32_t _crc32(const unsigned char* p, Py_ssize_t n) noexcept:
    if n >= 64 and _CRC_CLMUL:
        return ffp_crc32_clmul(p, n, _CRC_TABLES)
    return ffp_crc32_slice8(0xFFFFFFFF, p, n, _CRC_TABLES) ^ 0xFFFFFFFF
