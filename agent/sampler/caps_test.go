package sampler

import (
	"strings"
	"testing"
)

func TestParseCapEff(t *testing.T) {
	tests := []struct {
		name    string
		status  string
		want    CapSet
		wantErr bool
	}{
		{"root", "Name:\tx\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\n", 0x1ffffffffff, false},
		{"documented four", "CapEff:\t000000c001080000\n", 1<<CapBPF | 1<<CapPerfmon | 1<<CapSysPtrace | 1<<CapSysResource, false},
		{"none", "CapEff:\t0000000000000000\n", 0, false},
		{"missing line", "Name:\tx\n", 0, true},
		{"garbage", "CapEff:\tzz\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCapEff([]byte(tt.status))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("ParseCapEff = %#x, %v; want %#x, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestCheckCapabilities(t *testing.T) {
	set := func(cs ...Capability) CapSet {
		var s CapSet
		for _, c := range cs {
			s |= 1 << c
		}
		return s
	}
	modern := Host{KernelMajor: 6, KernelMinor: 18}
	old := Host{KernelMajor: 5, KernelMinor: 10}
	ancient := Host{KernelMajor: 4, KernelMinor: 19}
	four := set(CapBPF, CapPerfmon, CapSysPtrace, CapSysResource)
	tests := []struct {
		name     string
		eff      CapSet
		host     Host
		required []Capability // in order
		degraded []Capability
	}{
		{"root", ^CapSet(0), modern, nil, nil},
		{"documented four", four, modern, nil, nil},
		{"no bpf", four &^ set(CapBPF), modern, []Capability{CapBPF}, nil},
		{"no perfmon", four &^ set(CapPerfmon), modern, []Capability{CapPerfmon}, nil},
		{"nothing", 0, modern, []Capability{CapBPF, CapPerfmon}, []Capability{CapSysPtrace}},
		{"no ptrace degrades", set(CapBPF, CapPerfmon), modern, nil, []Capability{CapSysPtrace}},
		{"sys_admin stands in", set(CapSysAdmin, CapSysPtrace), modern, nil, nil},
		{"no sys_resource before 5.11", set(CapBPF, CapPerfmon, CapSysPtrace), old, []Capability{CapSysResource}, nil},
		{"unlimited memlock before 5.11", set(CapBPF, CapPerfmon, CapSysPtrace), Host{5, 10, true}, nil, nil},
		{"no sys_resource from 5.11", set(CapBPF, CapPerfmon, CapSysPtrace), Host{5, 11, false}, nil, nil},
		{"before 5.8 needs sys_admin", four, ancient, []Capability{CapSysAdmin}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var req, deg []Capability
			missing := CheckCapabilities(tt.eff, tt.host)
			for _, r := range missing {
				if r.Required {
					req = append(req, r.Cap)
				} else {
					deg = append(deg, r.Cap)
				}
			}
			if !equalCaps(req, tt.required) || !equalCaps(deg, tt.degraded) {
				t.Fatalf("required %v degraded %v; want %v and %v", req, deg, tt.required, tt.degraded)
			}
			err := CapabilityError(missing)
			if (err != nil) != (len(tt.required) > 0) {
				t.Fatalf("CapabilityError = %v", err)
			}
			for _, c := range tt.required {
				if !strings.Contains(err.Error(), "missing capability "+c.String()+" (needed for ") {
					t.Errorf("error %q does not name %v", err, c)
				}
			}
			if err != nil {
				for _, c := range tt.degraded {
					if strings.Contains(err.Error(), c.String()) {
						t.Errorf("error %q names optional %v", err, c)
					}
				}
			}
		})
	}
}

func equalCaps(a, b []Capability) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestOwnCapabilities(t *testing.T) {
	if _, err := CheckOwnCapabilities(); err != nil {
		t.Fatal(err)
	}
}
