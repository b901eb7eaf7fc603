# Compiled fast path of _codecheck.check_loadable, included by _load.pyx.
#
# It accepts a code object only when it can prove everything check_loadable checks; for
# anything else (or when in doubt: a table it cannot allocate, nesting deeper than it follows)
# it answers no, and the caller runs check_loadable, which decides and words the refusal. So
# both twins always reach the same verdict: this copy is never more lenient, only faster (the
# Python check costs more than unmarshalling a small lambda). The tables come from
# _codecheck.FAST_TABLES (see _fast_tables there for their layout).

cdef extern from *:
    """
    #include <string.h>
    #include <stdint.h>

    #define FFP_311 (PY_VERSION_HEX >= 0x030B0000)
    #define FFP_312 (PY_VERSION_HEX >= 0x030C0000)
    #define FFP_314 (PY_VERSION_HEX >= 0x030E0000)
    #define FFP_MAX_NESTING 200

    enum { FFP_ANY, FFP_CONST, FFP_NAMES, FFP_LOCAL, FFP_CELL, FFP_PAIR, FFP_TABLE, FFP_NFREE };
    #define FFP_VALID 0
    #define FFP_CACHES 256
    #define FFP_KIND 512
    #define FFP_SHIFT 768
    #define FFP_JUMP 1024
    #define FFP_FIRST 1280
    #define FFP_SECOND 1536
    #define FFP_BADKIND 1792
    #define FFP_ISEXT 2048
    #define FFP_PRELOAD 2304
    #define FFP_BITS 2560

    #if FFP_311
    /* A varint of 6-bit chunks: up to maxcont bytes 0x40-0x7f, then one 0x00-0x3f. */
    static int ffp_varint(const unsigned char *p, Py_ssize_t n, Py_ssize_t *i, int maxcont,
                          unsigned long *value)
    {
        unsigned long v = 0;
        int cont = 0;
        for (;;) {
            if (*i >= n) return 0;
            unsigned char b = p[(*i)++];
            if (b >= 0x80) return 0;
            v = (v << 6) | (b & 63);
            if (!(b & 0x40)) break;
            if (++cont > maxcont) return 0;
        }
        *value = v;
        return 1;
    }

    /* Location entries: header 1cccclll, then by code 1 byte, 2 bytes, 1 varint, 4 varints or
       nothing; they must cover exactly `units` code units. */
    static int ffp_linetable_ok(PyObject *table, Py_ssize_t units)
    {
        const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(table);
        Py_ssize_t n = PyBytes_GET_SIZE(table), i = 0, covered = 0;
        unsigned long ignored;
        while (i < n) {
            unsigned char h = p[i++];
            if (h < 0x80) return 0;
            int code = (h >> 3) & 15, plain = 0, varints = 0;
            covered += (h & 7) + 1;
            if (code <= 9) plain = 1;
            else if (code <= 12) plain = 2;
            else if (code == 13) varints = 1;
            else if (code == 14) varints = 4;
            for (int k = 0; k < plain; k++) {
                if (i >= n || p[i] >= 0x80) return 0;
                i++;
            }
            for (int k = 0; k < varints; k++)
                if (!ffp_varint(p, n, &i, 5, &ignored)) return 0;
        }
        return covered == units;
    }

    /* Exception entries: start, size, target, depth<<1|lasti; bit 7 on an entry's first byte. */
    static int ffp_exceptions_ok(PyObject *table, const unsigned char *starts, Py_ssize_t units,
                                 int stacksize)
    {
        const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(table);
        Py_ssize_t n = PyBytes_GET_SIZE(table), i = 0;
        unsigned long done = 0, start, size, target, depth;
        while (i < n) {
            unsigned char b = p[i++];
            if (b < 0x80) return 0;
            start = b & 63;
            if (b & 0x40) {
                int cont = 1;
                for (;;) {
                    if (i >= n) return 0;
                    b = p[i++];
                    if (b >= 0x80) return 0;
                    start = (start << 6) | (b & 63);
                    if (!(b & 0x40)) break;
                    if (++cont > 5) return 0;
                }
            }
            if (!ffp_varint(p, n, &i, 4, &size) || !ffp_varint(p, n, &i, 4, &target)
                    || !ffp_varint(p, n, &i, 4, &depth))
                return 0;
            if (start < done || size < 1 || start + size > (unsigned long)units) return 0;
            if (target >= (unsigned long)units || starts[target] != 1) return 0;
            if ((depth >> 1) > (unsigned long)stacksize) return 0;
            done = start + size;
        }
        return 1;
    }
    #endif

    /* 3.12/3.13: _codecheck.check_marshal's screen of the marshal bytes, the same decisions:
       1 when it would find nothing to look at more closely, 0 when it would walk the bytes
       exactly (then it must run). Every "c" (0xe3) 21 bytes before bytecode ("s", 0xf3) or a
       back-reference to it ("r", 0xf2, an index below the bytes before it): a back-reference,
       or bytecode whose last unit is an opcode with caches or that holds an instrumentation
       opcode byte, needs the exact walk. */
    static int ffp_marshal_ok(const unsigned char *p, Py_ssize_t n, const unsigned char *t)
    {
        for (Py_ssize_t s = 0; s + 22 <= n; s++) {
            if (p[s] != 0x63 && p[s] != 0xE3) continue;
            unsigned char kind = p[s + 21];
            if (s + 26 > n) continue;
            int32_t size = (int32_t)((uint32_t)p[s + 22] | (uint32_t)p[s + 23] << 8
                                     | (uint32_t)p[s + 24] << 16 | (uint32_t)p[s + 25] << 24);
            if (kind == 0x72 || kind == 0xF2) {  /* a reference: its index, objects before */
                if (size >= 0 && (Py_ssize_t)size < s) return 0;
                continue;
            }
            if (kind != 0x73 && kind != 0xF3) continue;
            if (size < 2 || (Py_ssize_t)size > n - s - 26) continue;
            Py_ssize_t stop = s + 26 + size;
            if (t[FFP_CACHES + p[stop - 2]]) return 0;
            for (Py_ssize_t q = s + 26; q < stop; q++)
                if (t[FFP_PRELOAD + p[q]]) return 0;
        }
        return 1;
    }

    static int ffp_code_ok(PyObject *obj, const unsigned char *t, int depth);

    /* Every code object in a constant (tuples, frozensets, slices) passes. */
    static int ffp_consts_ok(PyObject *value, const unsigned char *t, int depth)
    {
        if (depth > FFP_MAX_NESTING) return 0;
        if (PyCode_Check(value)) return ffp_code_ok(value, t, depth + 1);
        if (PyTuple_CheckExact(value)) {
            for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(value); k++)
                if (!ffp_consts_ok(PyTuple_GET_ITEM(value, k), t, depth + 1)) return 0;
            return 1;
        }
        if (PyFrozenSet_CheckExact(value)) {
            PyObject *it = PyObject_GetIter(value), *item;
            int good = 1;
            if (it == NULL) { PyErr_Clear(); return 0; }
            while (good && (item = PyIter_Next(it)) != NULL) {
                good = ffp_consts_ok(item, t, depth + 1);
                Py_DECREF(item);
            }
            Py_DECREF(it);
            if (PyErr_Occurred()) { PyErr_Clear(); return 0; }
            return good;
        }
        if (PySlice_Check(value)) {
            PySliceObject *s = (PySliceObject *)value;
            return ffp_consts_ok(s->start, t, depth + 1) && ffp_consts_ok(s->stop, t, depth + 1)
                   && ffp_consts_ok(s->step, t, depth + 1);
        }
        return 1;
    }

    static int ffp_code_ok(PyObject *obj, const unsigned char *t, int depth)
    {
        PyCodeObject *co = (PyCodeObject *)obj;
        if (depth > FFP_MAX_NESTING || !PyCode_Check(obj)) return 0;
        Py_ssize_t nconsts = PyTuple_GET_SIZE(co->co_consts);
        Py_ssize_t nnames = PyTuple_GET_SIZE(co->co_names);
        Py_ssize_t nslots, ncells = 0, nfree = 0, units;
        const unsigned char *code;
    #if FFP_311
        /* Variable kinds: the refused ones, and the counts, straight from the object. */
        PyObject *kinds = co->co_localspluskinds;
        if (!PyBytes_CheckExact(kinds)) return 0;
        const unsigned char *kp = (const unsigned char *)PyBytes_AS_STRING(kinds);
        nslots = PyBytes_GET_SIZE(kinds);
        for (Py_ssize_t k = 0; k < nslots; k++) {
            if (t[FFP_BADKIND + kp[k]]) return 0;
            nfree += kp[k] >> 7;
        }
        /* The interpreter's own copy (co_code would translate it first). */
        code = (const unsigned char *)co->co_code_adaptive;
        units = Py_SIZE(co);
    #else
        if (co->co_nlocals != PyTuple_GET_SIZE(co->co_varnames)) return 0;
        nslots = co->co_nlocals;
        nfree = PyTuple_GET_SIZE(co->co_freevars);
        ncells = PyTuple_GET_SIZE(co->co_cellvars) + nfree;
        code = (const unsigned char *)PyBytes_AS_STRING(co->co_code);
        if (PyBytes_GET_SIZE(co->co_code) & 1) return 0;
        units = PyBytes_GET_SIZE(co->co_code) / 2;
    #endif
    #if FFP_314
        if ((co->co_flags & 0x4000000) && nconsts == 0) return 0;
    #endif
        if (units == 0) return 0;
        /* Where instructions start: 1 an instruction, 2 one after an EXTENDED_ARG prefix (no
           jump lands there), 0 an inline cache entry. */
        unsigned char small[512];
        unsigned char *starts = units <= (Py_ssize_t)sizeof(small) ? small
                                : (unsigned char *)PyMem_Malloc((size_t)units);
        if (starts == NULL) return 0;
        memset(starts, 0, (size_t)units);
        int ok = 0, has_jumps = 0;
        unsigned long ext = 0;
        int prefixed = 0;
        Py_ssize_t i = 0;
        while (i < units) {
            unsigned char op = code[2 * i];
            unsigned long arg = (ext << 8) | code[2 * i + 1];
            if (!t[FFP_VALID + op]) goto done;
            starts[i] = prefixed ? 2 : 1;
            Py_ssize_t ncache = t[FFP_CACHES + op];
            if (i + 1 + ncache > units) goto done;
            for (Py_ssize_t j = 1; j <= ncache; j++) {
    #if FFP_312
                if (j == 1) continue;  /* the interpreter's counter */
    #endif
                if (code[2 * (i + j)] || code[2 * (i + j) + 1]) goto done;
            }
            if (t[FFP_ISEXT + op]) {
                if (i + 1 >= units || arg > 0xFFFFFF) goto done;
                ext = arg;
                prefixed = 1;
                i += 1;
                continue;
            }
            unsigned char base = op;
            if (t[FFP_SECOND + op]) {  /* 3.12 superinstruction: its second must follow */
                if (i + 1 >= units) goto done;
                unsigned char next = code[2 * (i + 1)];
                if (next != t[FFP_SECOND + op] && t[FFP_FIRST + next] != t[FFP_SECOND + op])
                    goto done;
                base = t[FFP_FIRST + op];
            }
            unsigned long shift = t[FFP_SHIFT + base];
            switch (t[FFP_KIND + base]) {
            case FFP_CONST: if (arg >= (unsigned long)nconsts) goto done; break;
            case FFP_NAMES: if ((arg >> shift) >= (unsigned long)nnames) goto done; break;
            case FFP_LOCAL: if (arg >= (unsigned long)nslots) goto done; break;
            case FFP_CELL: if (arg >= (unsigned long)ncells) goto done; break;
            case FFP_PAIR:
                if (prefixed || (arg >> 4) >= (unsigned long)nslots
                        || (arg & 15) >= (unsigned long)nslots)
                    goto done;
                break;
            case FFP_TABLE:
                if (prefixed || !(t[FFP_BITS + base * 32 + (arg >> 3)] & (1 << (arg & 7))))
                    goto done;
                break;
            case FFP_NFREE: if (arg != (unsigned long)nfree) goto done; break;
            default: break;
            }
            if (t[FFP_JUMP + base]) has_jumps = 1;
            ext = 0;
            prefixed = 0;
            i += 1 + ncache;
        }
        if (has_jumps) {  /* every jump lands where an instruction starts */
            ext = 0;
            for (i = 0; i < units; ) {
                unsigned char op = code[2 * i];
                unsigned long arg = (ext << 8) | code[2 * i + 1];
                Py_ssize_t ncache = t[FFP_CACHES + op];
                if (t[FFP_ISEXT + op]) { ext = arg; i += 1; continue; }
                unsigned char base = t[FFP_SECOND + op] ? t[FFP_FIRST + op] : op;
                int jump = t[FFP_JUMP + base];
                if (jump) {
                    long target = jump == 3 ? (long)arg
                                  : jump == 2 ? (long)(i + 1 + ncache) - (long)arg
                                  : (long)(i + 1 + ncache) + (long)arg;
                    if (target < 0 || target >= units || starts[target] != 1) goto done;
                }
                ext = 0;
                i += 1 + ncache;
            }
        }
    #if FFP_311
        if (!PyBytes_CheckExact(co->co_linetable)
                || !ffp_linetable_ok(co->co_linetable, units))
            goto done;
        if (!PyBytes_CheckExact(co->co_exceptiontable)) goto done;
        if (PyBytes_GET_SIZE(co->co_exceptiontable)
                && !ffp_exceptions_ok(co->co_exceptiontable, starts, units, co->co_stacksize))
            goto done;
    #else
        {
            PyObject *table = co->co_linetable;
            if (!PyBytes_CheckExact(table) || (PyBytes_GET_SIZE(table) & 1)) goto done;
            const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(table);
            Py_ssize_t covered = 0;
            for (Py_ssize_t k = 0; k < PyBytes_GET_SIZE(table); k += 2) covered += p[k];
            if (covered != 2 * units) goto done;
        }
    #endif
        for (Py_ssize_t k = 0; k < nconsts; k++)
            if (!ffp_consts_ok(PyTuple_GET_ITEM(co->co_consts, k), t, depth)) goto done;
        ok = 1;
    done:
        if (starts != small) PyMem_Free(starts);
        return ok;
    }
    """
    int ffp_code_ok(object code, const unsigned char* tables, int depth)
    int ffp_marshal_ok(const unsigned char* data, Py_ssize_t size, const unsigned char* tables)

from ._codecheck import FAST_TABLES as _FAST_TABLES_OBJECT

cdef bytes _FAST_TABLES = _FAST_TABLES_OBJECT
cdef const unsigned char* _fast_tables = <const unsigned char*>PyBytes_AS_STRING(_FAST_TABLES)


cdef inline bint _code_passes_fast(object code):
    """True only when code passes every check of _codecheck.check_loadable."""
    return ffp_code_ok(code, _fast_tables, 0) == 1


cdef inline bint _marshal_passes_fast(const unsigned char* data, Py_ssize_t size):
    """True only when _codecheck.check_marshal would find nothing to walk in data."""
    return ffp_marshal_ok(data, size, _fast_tables) == 1
