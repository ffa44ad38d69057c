// Package changepoint finds mean shifts in a univariate series (a benchmark history, a
// function's CPU share per time bucket).
//
// Method: binary segmentation with a likelihood-ratio test. A segment of n points is
// split at the k maximizing the two-sample z score
// |S_k − k/n·S_n| / (σ·√(k(n−k)/n)) (k and n−k at least MinSegment); the split is kept
// if that maximum is significant at α under the James–James–Siegmund (1987)
// approximation of its null distribution, which accounts for the search over all k.
// So α is the false-positive rate per series, not per candidate split. The weighted
// statistic keeps power for shifts near the ends of a series, where a regression sits
// in a history window.
//
// The noise scale σ must not be inflated by the shifts being looked for, and benchmark
// histories are autocorrelated (a noisy neighbour slows several runs in a row), which
// makes white-noise tests flag noise. So σ is the long-run standard deviation
// σ_x·√((1+φ)/(1−φ)) under AR(1) noise: first estimated from lag-1/lag-2 differences
// (10%-trimmed), then re-estimated twice from the residuals around the current
// segmentation (winsorized lag-1 autocorrelation with a small-sample bias correction).
//
// Outliers: before the mean-shift search each value is clipped to within OutlierSDs
// (default 4) robust σ of the running median of 2·MinSegment+1 points, so one slow
// run neither fakes a shift nor swamps one (TestNoiseRobust); the first σ is the MAD
// of lag differences around their median, which a trend only shifts.
//
// Missing values are NaN (a time bucket with no data, a failed benchmark run). They are
// skipped, not imputed — a gap is not a zero, and an imputed value would pretend to be a
// measurement — so the observed values on either side of a gap are neighbours for the
// tests and the noise estimate. Results keep the caller's indices: a change point's
// Index is the first observed index of its new segment. Infinite values are an error.
//
// Measured false-positive rates at α = 0.01 (2,000 seeded series each; regression
// test: TestFalsePositiveRate): white noise 0.75–1.25% for n = 20…1000; AR(1) with
// φ = 0.3/0.6: 2.6%/2.7% at n = 100, 1.2%/1.25% at n = 300, 0.85%/0.7% at n = 1000.
// Short autocorrelated series (n ≤ 50) exceed α (4–12%): φ cannot be estimated from
// them.
package changepoint
