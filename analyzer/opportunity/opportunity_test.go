package opportunity

import (
	"math"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/model"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name    string
		frames  []string
		pattern string // "" = none
		site    string
	}{
		{"regexp in handler", []string{"main.main", "example.com/s.Handle", "regexp.MustCompile", "regexp.Compile", "regexp.compile", "regexp/syntax.Parse"}, PatternRegexpCompile, "example.com/s.Handle"},
		{"regexp in init", []string{"runtime.main", "runtime.doInit1", "example.com/s.init", "regexp.MustCompile", "regexp.compile"}, "", ""},
		{"regexp in init.0", []string{"example.com/s.init.0", "regexp.MustCompile", "regexp.compile"}, "", ""},
		{"sprintf", []string{"main.main", "main.render", "fmt.Sprintf", "fmt.(*pp).doPrintf", "runtime.mallocgc"}, PatternSprintf, "main.render"},
		{"errorf", []string{"example.com/s.F", "fmt.Errorf"}, PatternSprintf, "example.com/s.F"},
		{"concat", []string{"example.com/s.Join", "runtime.concatstring3", "runtime.concatstrings", "runtime.mallocgc"}, PatternStringConcat, "example.com/s.Join"},
		{"growslice", []string{"example.com/s.Collect", "runtime.growslice", "runtime.memmove"}, PatternSliceGrowth, "example.com/s.Collect"},
		{"json", []string{"example.com/s.Encode", "encoding/json.Marshal", "reflect.Value.Field"}, PatternJSON, "example.com/s.Encode"},
		{"flate", []string{"example.com/s.Zip", "compress/gzip.(*Writer).Write", "compress/flate.(*compressor).deflate"}, PatternFlate, "example.com/s.Zip"},
		{"tls", []string{"net/http.(*conn).serve", "crypto/tls.(*Conn).serverHandshake", "crypto/ecdh.x"}, PatternTLSHandshake, "crypto/tls.(*Conn).serverHandshake"},
		{"mutex", []string{"example.com/s.Inc", "sync.(*Mutex).Lock", "sync.(*Mutex).lockSlow", "runtime.semacquire1"}, PatternMutex, "example.com/s.Inc"},
		{"map", []string{"example.com/s.Index", "runtime.mapassign_faststr", "runtime.hashGrow"}, PatternMapGrowth, "example.com/s.Index"},
		{"memmove", []string{"example.com/s.Copy", "runtime.memmove"}, PatternMemmove, "example.com/s.Copy"},
		{"gc worker", []string{"runtime.gcBgMarkWorker", "runtime.gcDrain", "runtime.scanobject"}, PatternAlloc, "runtime.gcBgMarkWorker"},
		{"malloc", []string{"example.com/s.New", "runtime.newobject", "runtime.mallocgc"}, PatternAlloc, "example.com/s.New"},
		{"native malloc", []string{"main", "process", "malloc", "_int_malloc"}, PatternNativeMalloc, "malloc"},
		{"native memcpy", []string{"main", "process", "__memcpy_avx_unaligned_erms"}, PatternNativeMemcpy, "__memcpy_avx_unaligned_erms"},
		{"page fault", []string{"main", "asm_exc_page_fault_[k]", "handle_mm_fault_[k]"}, PatternPageFault, "asm_exc_page_fault_[k]"},
		{"syscall", []string{"example.com/s.Write", "syscall.Syscall", "entry_SYSCALL_64_[k]", "__x64_sys_write_[k]"}, PatternSyscall, "example.com/s.Write"},
		{"plain", []string{"main.main", "example.com/s.Work"}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, idx := Classify(tc.frames)
			if tc.pattern == "" {
				if p != nil {
					t.Fatalf("classified as %s", p.Name)
				}
				return
			}
			if p == nil || p.Name != tc.pattern {
				t.Fatalf("pattern %v, want %s", p, tc.pattern)
			}
			if got := Site(tc.frames, idx); got != tc.site {
				t.Errorf("site %s, want %s", got, tc.site)
			}
		})
	}
}

func profile() *model.Profile {
	return &model.Profile{PeriodNS: 10_000_000, Total: 1000, Stacks: []model.StackCount{
		{Frames: []string{"main.main", "example.com/s.Handle", "regexp.MustCompile", "regexp.compile"}, Value: 300},
		{Frames: []string{"main.main", "example.com/s.Handle", "fmt.Sprintf"}, Value: 100},
		{Frames: []string{"main.main", "example.com/s.Work"}, Value: 599},
		{Frames: []string{"main.main", "example.com/s.Work", "runtime.memmove"}, Value: 1}, // under MinShare
	}}
}

func TestRank(t *testing.T) {
	// 1000 samples at 100 Hz over 10 s = 1 core.
	in := Input{Service: "s", Profile: profile(), Wall: 10 * time.Second}
	if got := in.ServiceCores(); math.Abs(got-1) > 1e-9 {
		t.Fatalf("cores %v, want 1", got)
	}
	ops, err := Rank(in, Config{WattsPerCore: 10, CostPerCoreYear: 100, MinShare: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 2 {
		t.Fatalf("%d opportunities, want 2: %+v", len(ops), ops)
	}
	o := ops[0]
	if o.Pattern != PatternRegexpCompile || o.Function != "example.com/s.Handle" || o.Share != 0.3 || o.SiteShare != 0.4 {
		t.Errorf("first %+v", o)
	}
	want := 0.3 * 0.95
	if math.Abs(o.SavingShare-want) > 1e-9 || math.Abs(o.Saving.Cores-want) > 1e-9 || math.Abs(o.Saving.Watts-10*want) > 1e-9 || math.Abs(o.Saving.MoneyPerYear-100*want) > 1e-9 {
		t.Errorf("saving %+v %v, want share and cores %v", o.Saving, o.SavingShare, want)
	}
	if ops[1].Pattern != PatternSprintf {
		t.Errorf("second %s", ops[1].Pattern)
	}
	f := o.Finding(in)
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	if f.Kind != findings.KindOpportunity || f.Opportunity.EstimatedSavingShare != o.SavingShare || f.ID == "" || len(f.RepresentativeStacks) != 1 {
		t.Errorf("finding %+v", f)
	}
	if f2 := o.Finding(in); f2.ID != f.ID {
		t.Error("finding id not stable")
	}
}

// Evidence minimums: too few samples, a saving under the minimum cores or a
// share whose interval is wider than itself is not reported; zero minimums
// report everything.
func TestRankEvidenceMinimums(t *testing.T) {
	evidence := Config{}.WithEvidence()
	tiny := &model.Profile{PeriodNS: 10_000_000, Total: 2, Stacks: []model.StackCount{
		{Frames: []string{"main.main", "example.com/s.Handle", "regexp.MustCompile", "regexp.compile"}, Value: 2},
	}}
	// 12 samples of a big profile: the share's interval is wider than the share.
	wide := &model.Profile{PeriodNS: 10_000_000, Total: 5_000, Stacks: []model.StackCount{
		{Frames: []string{"main.main", "example.com/s.Handle", "regexp.MustCompile", "regexp.compile"}, Value: 12},
		{Frames: []string{"main.main", "example.com/s.Work"}, Value: 4_988},
	}}
	intervalOnly := Config{MaxIntervalRatio: EvidenceMaxIntervalRatio}
	for _, tc := range []struct {
		name string
		in   Input
		cfg  Config
		want int
	}{
		{"two samples", Input{Profile: tiny, Wall: time.Second}, evidence, 0},
		{"two samples, no minimums", Input{Profile: tiny, Wall: time.Second}, Config{}, 1},
		{"enough samples, saving under a thousandth core", Input{Profile: profile(), Cores: 0.001}, evidence, 0},
		{"enough samples and saving", Input{Profile: profile(), Cores: 1}, evidence, 2},
		{"12 samples: interval wider than the share", Input{Profile: wide, Cores: 1000}, intervalOnly, 0},
		{"12 samples, no interval limit", Input{Profile: wide, Cores: 1000}, Config{}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ops, err := Rank(tc.in, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if len(ops) != tc.want {
				t.Errorf("%d opportunities, want %d: %+v", len(ops), tc.want, ops)
			}
		})
	}
}

func TestFunctionCosts(t *testing.T) {
	p := &model.Profile{PeriodNS: 10_000_000, Total: 100, Stacks: []model.StackCount{
		{Frames: []string{"main", "rec", "rec", "leaf"}, Value: 60},
		{Frames: []string{"main", "rec"}, Value: 40},
	}}
	fc, err := FunctionCosts(Input{Profile: p, Cores: 2}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]FunctionCost{}
	for _, c := range fc {
		got[c.Function] = c
	}
	for _, tc := range []struct {
		fn         string
		self, incl float64
	}{{"main", 0, 1}, {"rec", 0.4, 1}, {"leaf", 0.6, 0.6}} {
		c := got[tc.fn]
		if c.SelfShare != tc.self || c.InclusiveShare != tc.incl || math.Abs(c.Inclusive.Cores-2*tc.incl) > 1e-9 {
			t.Errorf("%s: %+v, want self %v inclusive %v", tc.fn, c, tc.self, tc.incl)
		}
	}
	if fc[len(fc)-1].Function != "leaf" {
		t.Errorf("not sorted by inclusive: %+v", fc)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{{WattsPerCore: -1}, {CostPerCoreYear: -1}, {MinShare: 1}, {MaxResults: -1}, {MaxStacks: -1}} {
		if c.Validate() == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Error(err)
	}
	if _, err := Rank(Input{}, Config{}); err == nil {
		t.Error("empty profile: no error")
	}
}

func BenchmarkRank(b *testing.B) {
	p := &model.Profile{PeriodNS: 10_000_000}
	for i := range 20000 {
		fr := []string{"main.main", "example.com/s.Handle", "example.com/s.step" + string(rune('a'+i%26))}
		switch i % 4 {
		case 0:
			fr = append(fr, "runtime.mallocgc")
		case 1:
			fr = append(fr, "fmt.Sprintf", "fmt.(*pp).doPrintf")
		}
		p.Stacks = append(p.Stacks, model.StackCount{Frames: fr, Value: int64(1 + i%7)})
		p.Total += int64(1 + i%7)
	}
	in := Input{Service: "s", Profile: p, Wall: time.Minute}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Rank(in, Config{}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestShareCI(t *testing.T) {
	for _, tc := range []struct {
		k, n          int64
		lo, value, hi float64
	}{
		{2, 2, 0.342, 1, 1},          // two samples of two: not [100%, 100%]
		{0, 10, 0, 0, 0.278},         // none seen still bounds the share
		{20, 100, 0.133, 0.2, 0.289}, // the evidence minimum
		{5000, 10000, 0.490, 0.5, 0.510},
		{0, 0, 0, 0, 0},
	} {
		s := shareCI(tc.k, tc.n)
		near := func(a, b float64) bool { return math.Abs(a-b) < 0.001 }
		if !near(s.Lo, tc.lo) || !near(s.Value, tc.value) || !near(s.Hi, tc.hi) || s.Samples != float64(tc.n) {
			t.Errorf("shareCI(%d, %d) = %+v, want [%.3f, %.3f] around %.3f", tc.k, tc.n, s, tc.lo, tc.hi, tc.value)
		}
	}
}
