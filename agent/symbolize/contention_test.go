package symbolize

import (
	"testing"
	"time"
)

// TestProcessStartedNotBlockedByParse holds the parser (as a long DWARF
// parse would) and checks that new processes are still read, the file is
// parsed once for all of them, and Symbolize waits for the parse.
func TestProcessStartedNotBlockedByParse(t *testing.T) {
	exe := buildC(t, false)
	exeA := nmSymbols(t, exe)["a"].addr + 4
	line, _, _ := mapsLine(t, exe, exe, 0)
	fp := newFakeProc(t)
	s := newTestSymbolizer(t, Config{ProcRoot: fp.root})
	s.parsing <- struct{}{} // a parse in progress, indefinitely

	started := make(chan error)
	go func() {
		for _, pid := range []uint32{30, 31, 32} {
			fp.set(t, pid, 100, line)
			if err := s.ProcessStarted(pid); err != nil {
				started <- err
				return
			}
		}
		started <- nil
	}()
	select {
	case err := <-started:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute): // a deadlock guard, not a speed check
		t.Fatal("ProcessStarted blocked behind a parse")
	}
	if st := s.Stats(); st.FileMisses != 1 || st.FileHits != 2 || st.Processes != 3 || st.FilesCached != 1 {
		t.Errorf("stats while parsing = %+v, want 1 miss, 2 hits, 3 processes", st)
	}

	got := make(chan []string)
	go func() { got <- s.Symbolize(31, []uint64{exeA}, nil) }()
	// Symbolize must not hold the lock while it waits for the parse.
	fp.set(t, 33, 100, line)
	if err := s.ProcessStarted(33); err != nil {
		t.Fatal(err)
	}
	<-s.parsing // let the parse run
	if names := <-got; len(names) != 1 || names[0] != "a" {
		t.Errorf("Symbolize after parse = %q, want [a]", names)
	}
	if st := s.Stats(); st.FileMisses != 1 || st.FileErrors != 0 {
		t.Errorf("stats after parse = %+v", st)
	}
}
