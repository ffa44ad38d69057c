package detect

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// benchService builds a service with nSeries functions × nBuckets buckets of
// binomial-like counts (normal approximation), 1% of them with a step near the end.
func benchService(nSeries, nBuckets int) *Service {
	r := rand.New(rand.NewPCG(1, 1))
	svc := &Service{Name: "bench", Cores: 100, Start: scenarioStart, Step: 15 * time.Minute,
		Total: make([]float64, nBuckets)}
	for t := range svc.Total {
		svc.Total[t] = 1e6 * (1 + 0.3*math.Sin(2*math.Pi*float64(t)/96))
	}
	svc.Series = make([]Series, nSeries)
	for i := range svc.Series {
		p := math.Exp(-4 - 3*r.Float64()) // shares from 0.09% to 1.8%
		inc := make([]float64, nBuckets)
		for t := range inc {
			pt := p
			if i%100 == 0 && t >= nBuckets-15 {
				pt *= 1.1
			}
			mu := svc.Total[t] * pt
			inc[t] = math.Max(0, math.Round(mu+math.Sqrt(mu)*r.NormFloat64()))
		}
		svc.Series[i] = Series{Function: fmt.Sprintf("pkg%d.F%d", i%50, i), Inclusive: inc}
	}
	return svc
}

// BenchmarkDetect runs the whole pipeline on 10k series × 1000 buckets and reports
// series/s.
func BenchmarkDetect(b *testing.B) {
	const nSeries, nBuckets = 10000, 1000
	svc := benchService(nSeries, nBuckets)
	cfg := DefaultConfig()
	b.ResetTimer()
	var truePos, falsePos int
	for b.Loop() {
		fs, err := Detect(svc, cfg)
		if err != nil {
			b.Fatal(err)
		}
		truePos, falsePos = 0, 0
		for _, f := range fs {
			var pkg, i int
			if _, err := fmt.Sscanf(f.Function, "pkg%d.F%d", &pkg, &i); err == nil && i%100 == 0 {
				truePos++
			} else {
				falsePos++
			}
		}
	}
	b.ReportMetric(float64(nSeries)*float64(b.N)/b.Elapsed().Seconds(), "series/s")
	b.ReportMetric(float64(truePos), "true_findings/100")
	b.ReportMetric(float64(falsePos), "false_findings")
}
