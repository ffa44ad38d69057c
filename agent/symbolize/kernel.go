package symbolize

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// kernelSymbols is /proc/kallsyms: text symbols sorted by address.
type kernelSymbols struct {
	addrs []uint64
	names []string // already suffixed with "_[k]"
}

var errKptrRestrict = errors.New("kallsyms addresses are hidden (kptr_restrict or missing CAP_SYSLOG)")

func parseKallsyms(r io.Reader) (*kernelSymbols, error) {
	type ksym struct {
		addr uint64
		name string
	}
	var syms []ksym
	nonZero := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		// "ffffffff81000000 T _stext" or "... t name\t[module]"
		f := strings.Fields(sc.Text())
		if len(f) < 3 {
			continue
		}
		switch f[1] {
		case "t", "T", "w", "W":
		default:
			continue
		}
		addr, err := strconv.ParseUint(f[0], 16, 64)
		if err != nil {
			return nil, fmt.Errorf("parse kallsyms address %q: %w", f[0], err)
		}
		if addr != 0 {
			nonZero = true
		}
		syms = append(syms, ksym{addr: addr, name: f[2] + "_[k]"})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read kallsyms: %w", err)
	}
	if !nonZero {
		return nil, errKptrRestrict
	}
	// Stable: keep the first (kallsyms order) of aliases at one address.
	slices.SortStableFunc(syms, func(a, b ksym) int { return cmp.Compare(a.addr, b.addr) })
	k := &kernelSymbols{}
	for i, s := range syms {
		if i > 0 && syms[i-1].addr == s.addr {
			continue
		}
		k.addrs = append(k.addrs, s.addr)
		k.names = append(k.names, s.name)
	}
	return k, nil
}

func (k *kernelSymbols) lookup(addr uint64) (string, bool) {
	i, found := slices.BinarySearch(k.addrs, addr)
	if !found {
		i--
	}
	if i < 0 {
		return "", false
	}
	return k.names[i], true
}
