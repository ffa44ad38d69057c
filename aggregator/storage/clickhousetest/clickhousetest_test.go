package clickhousetest

import (
	"net"
	"testing"
)

func TestStartN(t *testing.T) {
	addrs := StartN(t, 2)
	if len(addrs) != 2 || addrs[0] == addrs[1] {
		t.Fatalf("addrs = %v", addrs)
	}
	for _, a := range addrs {
		c, err := net.Dial("tcp", a)
		if err != nil {
			t.Fatalf("dial %s: %v", a, err)
		}
		c.Close()
	}
}
