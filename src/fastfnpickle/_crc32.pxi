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


cdef inline uint32_t _crc32(const unsigned char* p, Py_ssize_t n) noexcept:
    cdef uint32_t crc = 0xFFFFFFFF
    cdef uint32_t one
    while n >= 8:
        one = crc ^ (<uint32_t>p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16)
                     | (<uint32_t>p[3] << 24))
        crc = (_CRC_TABLES[7][one & 0xFF] ^ _CRC_TABLES[6][(one >> 8) & 0xFF]
               ^ _CRC_TABLES[5][(one >> 16) & 0xFF] ^ _CRC_TABLES[4][one >> 24]
               ^ _CRC_TABLES[3][p[4]] ^ _CRC_TABLES[2][p[5]] ^ _CRC_TABLES[1][p[6]]
               ^ _CRC_TABLES[0][p[7]])
        p += 8
        n -= 8
    while n > 0:
        crc = _CRC_TABLES[0][(crc ^ p[0]) & 0xFF] ^ (crc >> 8)
        p += 1
        n -= 1
    return crc ^ 0xFFFFFFFF
