package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// exactQuantile is the reference: the ⌈q·n⌉-th smallest sample.
func exactQuantile(sorted []int64, q float64) int64 {
	rank := int(q*float64(len(sorted)) + 0.999999999)
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

func TestHistogramMatchesSortedSamples(t *testing.T) {
	const seed = 20261122
	for _, distribution := range []struct {
		name   string
		sample func(r *rand.Rand) int64
	}{
		{"uniform-small", func(r *rand.Rand) int64 { return r.Int64N(200) }},
		{"uniform-wide", func(r *rand.Rand) int64 { return r.Int64N(histogramValueMaxUs + 1) }},
		{"log-uniform", func(r *rand.Rand) int64 { return int64(math.Exp(r.Float64() * math.Log(float64(histogramValueMaxUs)))) }},
		{"exponential", func(r *rand.Rand) int64 { return int64(r.ExpFloat64() * 3000) }},
	} {
		t.Run(distribution.name, func(t *testing.T) {
			random := rand.New(rand.NewPCG(seed, 1))
			var histogram Histogram
			samples := make([]int64, 20_000)
			for i := range samples {
				samples[i] = min(distribution.sample(random), histogramValueMaxUs)
				histogram.Record(time.Duration(samples[i]) * time.Microsecond)
			}
			slices.Sort(samples)
			if histogram.Count() != uint64(len(samples)) {
				t.Fatalf("count %d, want %d", histogram.Count(), len(samples))
			}
			if got := int64(histogram.Max() / time.Microsecond); got != samples[len(samples)-1] {
				t.Errorf("max %d µs, want %d (seed %d)", got, samples[len(samples)-1], seed)
			}
			for _, q := range []float64{0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 1} {
				want := exactQuantile(samples, q)
				got := int64(histogram.Quantile(q) / time.Microsecond)
				if diff := abs(got - want); float64(diff) > 0.01*float64(want) && diff > 0 {
					t.Errorf("q=%v: %d µs, want %d ±1%% (seed %d)", q, got, want, seed)
				}
			}
		})
	}
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

func TestHistogramBucketsCoverEveryValueWithinOnePercent(t *testing.T) {
	previous := -1
	for us := int64(0); us <= histogramValueMaxUs; us += 1 + us/1000 {
		index := bucketIndex(us)
		if index < previous || index >= histogramBucketCount {
			t.Fatalf("value %d µs: bucket %d after %d (of %d)", us, index, previous, histogramBucketCount)
		}
		previous = index
		if got := bucketValue(index); float64(abs(got-us)) > 0.01*float64(us) {
			t.Fatalf("value %d µs reported as %d", us, got)
		}
	}
}

func TestHistogramMergeEmptyAndClamp(t *testing.T) {
	var a, b Histogram
	if a.Quantile(0.5) != 0 || a.Summary().Count != 0 {
		t.Fatal("empty histogram must report zeros")
	}
	a.Record(time.Millisecond)
	b.Record(-time.Second) // counts as 0
	b.Record(time.Minute)  // above HistogramValueMax: clamped bucket, exact max
	a.Merge(&b)
	if a.Count() != 3 || a.Max() != time.Minute {
		t.Fatalf("count %d max %v", a.Count(), a.Max())
	}
	if got := a.Quantile(0.01); got != 0 {
		t.Errorf("min quantile %v, want 0", got)
	}
	if got := a.Quantile(1); got < HistogramValueMax*99/100 || got > time.Minute {
		t.Errorf("top quantile %v", got)
	}
	a.Reset()
	if a.Count() != 0 {
		t.Error("Reset kept values")
	}
}
