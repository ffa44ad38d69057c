package samplebatch

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// decodeMemoryFactor sets the default Limits.MaxDecodeBytes as a multiple of
// Limits.MaxBytes: an honest uncompressed batch needs about its own size in Arrow
// buffers, so a body claiming far more (compression or length lies) is hostile.
const decodeMemoryFactor = 4

// errDecodeMemory is what cappedAllocator panics with; Decode recovers it and
// reports the limit.
type errDecodeMemory struct{ want, limit int }

func (e errDecodeMemory) Error() string {
	return fmt.Sprintf("arrow buffers would need more than %d bytes (asked for %d more), over the decode memory limit (Limits.MaxDecodeBytes); the message claims sizes it does not hold", e.limit, e.want)
}

// cappedAllocator counts the bytes it has outstanding and panics with
// errDecodeMemory before an allocation would pass limit. arrow-go allocates IPC
// bodies and decompressed buffers at the sizes the message claims, before reading
// them; the panic stops that allocation, and Decode turns it into an error. One
// cappedAllocator serves one Decode call (not safe for concurrent use).
type cappedAllocator struct {
	mem   memory.Allocator
	limit int
	inUse int
	peak  int
}

func (a *cappedAllocator) grow(n int) {
	if n > a.limit-a.inUse {
		panic(errDecodeMemory{want: n, limit: a.limit})
	}
	a.inUse += n
	a.peak = max(a.peak, a.inUse)
}

func (a *cappedAllocator) Allocate(size int) []byte {
	if size < 0 {
		panic(errDecodeMemory{want: size, limit: a.limit})
	}
	a.grow(size)
	return a.mem.Allocate(size)
}

func (a *cappedAllocator) Reallocate(size int, b []byte) []byte {
	if size < 0 {
		panic(errDecodeMemory{want: size, limit: a.limit})
	}
	if d := size - len(b); d > 0 {
		a.grow(d)
	} else {
		a.inUse += d
	}
	return a.mem.Reallocate(size, b)
}

func (a *cappedAllocator) Free(b []byte) {
	a.inUse -= len(b)
	a.mem.Free(b)
}
