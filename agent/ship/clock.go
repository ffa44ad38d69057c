package ship

import "time"

// Clock is the time boundary of the shipper: backoff waits go through it so
// tests can run retries without sleeping.
type Clock interface {
	Now() time.Time
	// After delivers the time once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// RealClock is the wall clock.
var RealClock Clock = realClock{}

// backoff returns the wait before retry number attempt (1-based): min doubled
// per attempt up to max, with jitter drawing uniformly from [d/2, d] so many
// agents reconnecting after an aggregator restart spread out.
func backoff(attempt int, minD, maxD time.Duration, rnd func() float64) time.Duration {
	d := minD
	for i := 1; i < attempt && d < maxD; i++ {
		d *= 2
	}
	d = min(d, maxD)
	half := d / 2
	return half + time.Duration(rnd()*float64(d-half))
}
