# The compiled core's table of the cells a pickle has written (the pure twin keeps a dict of
# id(cell) -> (func, index) or cell). Included by _core.pyx, which cimports PyObject.
#
# Why not that dict here: a batch of 10,000 closures of two cells made 20,000 int keys and
# 20,000 (func, index) tuples per pickle and freed them all at its end; measured side by side,
# that was a tenth of the batch's dumps time (wall, cold code objects), most of it memory
# touched, not instructions. This table is an open-addressing array of plain pointers; the
# objects stay alive through ``owners`` (a list, so the collector sees them): a function keeps
# its closure tuple, and the tuple its cells, so no key's address can be reused while it is in
# the table.

from libc.stdlib cimport calloc, free
from libc.string cimport memset
from libc.stdint cimport uintptr_t

cdef struct _CellSlot:
    PyObject* cell   # the key; NULL: an empty slot
    PyObject* owner  # the function whose closure holds the cell, or the cell (written bare)
    Py_ssize_t index # the cell's position in owner.__closure__; -1 for a bare cell

# Tables up to this many slots are kept between pickles (emptied); bigger ones are freed, so
# a thread's pickler does not hold (or wipe) a big array after one big pickle.
cdef enum: _CELLS_KEPT = 64


cdef class CellTable:
    """The cells written so far in this pickle, by address (see the comment above)."""

    cdef _CellSlot* slots
    cdef Py_ssize_t capacity  # a power of two, or 0 before the first entry
    cdef Py_ssize_t used
    cdef int shift            # 64 - log2(capacity), for the multiplicative hash
    cdef list owners
    # The first closure of a pickle waits here instead of being entered cell by cell, until
    # another closure or a bare cell needs the table (never, for a pickle of one function).
    cdef object pending_func
    cdef tuple pending_closure

    def __cinit__(self):
        self.owners = []

    def __dealloc__(self):
        free(self.slots)

    cdef inline bint empty(self):
        return self.used == 0 and self.pending_closure is None and not self.owners

    cdef inline Py_ssize_t _home(self, PyObject* cell):
        # Objects are 16-byte aligned: the low bits carry nothing.
        return <Py_ssize_t>(((<uintptr_t>cell >> 4) * <uintptr_t>0x9E3779B97F4A7C15ULL)
                            >> self.shift)

    cdef _CellSlot* find(self, PyObject* cell):
        """The slot holding ``cell``, or NULL."""
        if self.used == 0:
            return NULL
        cdef Py_ssize_t mask = self.capacity - 1
        cdef Py_ssize_t i = self._home(cell)
        while self.slots[i].cell is not NULL:
            if self.slots[i].cell == cell:
                return &self.slots[i]
            i = (i + 1) & mask
        return NULL

    cdef int _grow(self) except -1:
        cdef Py_ssize_t old_capacity = self.capacity
        cdef _CellSlot* old = self.slots
        cdef Py_ssize_t capacity = 16 if old_capacity == 0 else old_capacity * 2
        cdef _CellSlot* slots = <_CellSlot*>calloc(capacity, sizeof(_CellSlot))
        if slots is NULL:
            raise MemoryError("the cell table of a pickle could not grow")
        cdef int shift = 64
        cdef Py_ssize_t c = capacity
        while c > 1:
            c >>= 1
            shift -= 1
        self.slots = slots
        self.capacity = capacity
        self.shift = shift
        cdef Py_ssize_t k, i, mask = capacity - 1
        for k in range(old_capacity):
            if old[k].cell is not NULL:
                i = self._home(old[k].cell)
                while slots[i].cell is not NULL:
                    i = (i + 1) & mask
                slots[i] = old[k]
        free(old)
        return 0

    cdef int put(self, PyObject* cell, PyObject* owner, Py_ssize_t index) except -1:
        """Enter ``cell`` (not in the table); the caller keeps ``owner`` in ``owners``."""
        if 2 * (self.used + 1) > self.capacity:
            self._grow()
        cdef Py_ssize_t mask = self.capacity - 1
        cdef Py_ssize_t i = self._home(cell)
        while self.slots[i].cell is not NULL:
            i = (i + 1) & mask
        self.slots[i].cell = cell
        self.slots[i].owner = owner
        self.slots[i].index = index
        self.used += 1
        return 0

    cdef int enter_pending(self) except -1:
        if self.pending_closure is None:
            return 0
        func = self.pending_func
        cdef tuple closure = self.pending_closure
        self.pending_func = None
        self.pending_closure = None
        self.owners.append(func)
        cdef Py_ssize_t i
        for i in range(len(closure)):  # no cell twice: a pending closure was checked for that
            self.put(<PyObject*>closure[i], <PyObject*>func, i)
        return 0

    cpdef clear(self):
        """Forget every cell (the pickler's memo was cleared)."""
        self.pending_func = None
        self.pending_closure = None
        if self.used:
            if self.capacity > _CELLS_KEPT:
                free(self.slots)
                self.slots = NULL
                self.capacity = 0
            else:
                memset(self.slots, 0, self.capacity * sizeof(_CellSlot))
            self.used = 0
        if self.owners:
            # Replaced before the old list goes: freeing a function can run code that pickles.
            owners = self.owners
            self.owners = []
            del owners
