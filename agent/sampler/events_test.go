package sampler

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"
)

func encodeEvent(startNs, tsNs uint64, kind, pid, tid, ppid uint32, comm string) []byte {
	b := make([]byte, eventSize)
	ne := binary.NativeEndian
	ne.PutUint64(b[0:], startNs)
	ne.PutUint64(b[8:], tsNs)
	ne.PutUint32(b[16:], kind)
	ne.PutUint32(b[20:], pid)
	ne.PutUint32(b[24:], tid)
	ne.PutUint32(b[28:], ppid)
	copy(b[32:48], comm)
	return b
}

func TestDecodeEvent(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    ProcEvent
		wantErr string
	}{
		{
			name: "exec",
			in:   encodeEvent(5e9, 6e9, 1, 42, 43, 1, "sleep"),
			want: ProcEvent{Kind: EventExec, PID: 42, TID: 43, PPID: 1, Comm: "sleep", Start: 5 * time.Second, At: 6 * time.Second},
		},
		{
			name: "full-length comm has no NUL",
			in:   encodeEvent(1, 2, 2, 7, 7, 3, "abcdefghijklmnop"),
			want: ProcEvent{Kind: EventExit, PID: 7, TID: 7, PPID: 3, Comm: "abcdefghijklmnop", Start: 1, At: 2},
		},
		{
			name: "ring padding after the record is ignored",
			in:   append(encodeEvent(1, 2, 3, 9, 9, 8, "x"), 0, 0, 0, 0),
			want: ProcEvent{Kind: EventFork, PID: 9, TID: 9, PPID: 8, Comm: "x", Start: 1, At: 2},
		},
		{
			name: "python code: address and lineno bits",
			in:   encodeEvent(0x7f00deadbeef, 2, 5, 9, 10, 0x1234, ""),
			want: ProcEvent{Kind: EventPythonCode, PID: 9, Code: 0x7f00deadbeef, Lineno: 0x1234, At: 2},
		},
		{name: "short", in: make([]byte, 47), wantErr: "47 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeEvent(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestNames(t *testing.T) {
	if eventSize != 48 {
		t.Errorf("event size %d, want 48 (struct event changed?)", eventSize)
	}
	for r := DropReason(0); r < NumDropReasons; r++ {
		if r.String() == "" || r.String() == "unknown" {
			t.Errorf("drop reason %d has no name", r)
		}
	}
	if NumDropReasons.String() != "unknown" {
		t.Errorf("NumDropReasons named %q", NumDropReasons.String())
	}
	for k, want := range map[EventKind]string{EventExec: "exec", EventExit: "exit", EventFork: "fork", 9: "EventKind(9)"} {
		if k.String() != want {
			t.Errorf("%d.String() = %q, want %q", k, k.String(), want)
		}
	}
}
