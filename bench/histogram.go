package bench

import (
	"math/bits"
	"time"
)

// Histogram records durations with a log-linear bucket layout in the style
// of HdrHistogram: values are kept in microseconds, exactly below
// histogramSubBuckets µs, and above that in buckets 1/histogramSubBuckets
// of a power of two wide, so that the value reported for a bucket (its
// midpoint) is within 1/(2·histogramSubBuckets) ≈ 0.4% of every value in
// it. Values above HistogramValueMax are counted in the top bucket; Max
// stays exact.
//
// A Histogram is not safe for concurrent use.
type Histogram struct {
	counts [histogramBucketCount]uint64
	count  uint64
	sumUs  uint64
	minUs  int64
	maxUs  int64
}

const (
	// histogramSubBucketBits sets the resolution: 2^7 = 128 buckets per
	// power of two, a relative error of at most 1/256 for the midpoint.
	histogramSubBucketBits = 7
	histogramSubBuckets    = 1 << histogramSubBucketBits
	// HistogramValueMax is the largest value recorded without clamping.
	HistogramValueMax = 10 * time.Second
	// histogramValueMaxUs is HistogramValueMax in microseconds.
	histogramValueMaxUs = int64(HistogramValueMax / time.Microsecond)
	// histogramBucketCount covers 0..histogramValueMaxUs: one linear range
	// of histogramSubBuckets, then histogramSubBuckets per power of two up
	// to 2^24 µs (16.7 s > 10 s).
	histogramBucketCount = histogramSubBuckets + (24-histogramSubBucketBits)*histogramSubBuckets
)

// bucketIndex returns the bucket of a value in µs (0 ≤ us ≤ max).
func bucketIndex(us int64) int {
	if us < histogramSubBuckets {
		return int(us)
	}
	shift := bits.Len64(uint64(us)) - histogramSubBucketBits - 1
	mantissa := int(us>>shift) - histogramSubBuckets // 0..histogramSubBuckets-1
	return histogramSubBuckets + shift*histogramSubBuckets + mantissa
}

// bucketValue returns the value reported for bucket index: exact in the
// linear range, else the midpoint of the bucket.
func bucketValue(index int) int64 {
	if index < histogramSubBuckets {
		return int64(index)
	}
	shift := (index - histogramSubBuckets) / histogramSubBuckets
	mantissa := int64((index-histogramSubBuckets)%histogramSubBuckets) + histogramSubBuckets
	low := mantissa << shift
	width := int64(1) << shift
	return low + (width-1)/2
}

// Record adds one duration; negative durations count as 0.
func (h *Histogram) Record(d time.Duration) {
	us := int64(d / time.Microsecond)
	if us < 0 {
		us = 0
	}
	if h.count == 0 || us < h.minUs {
		h.minUs = us
	}
	if us > h.maxUs {
		h.maxUs = us
	}
	h.count++
	h.sumUs += uint64(us)
	clamped := min(us, histogramValueMaxUs)
	h.counts[bucketIndex(clamped)]++
}

// Merge adds every value of other to h.
func (h *Histogram) Merge(other *Histogram) {
	if other.count == 0 {
		return
	}
	if h.count == 0 || other.minUs < h.minUs {
		h.minUs = other.minUs
	}
	h.maxUs = max(h.maxUs, other.maxUs)
	h.count += other.count
	h.sumUs += other.sumUs
	for i, c := range other.counts {
		h.counts[i] += c
	}
}

// Reset empties h.
func (h *Histogram) Reset() { *h = Histogram{} }

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.count }

// Max is the largest recorded value, exact.
func (h *Histogram) Max() time.Duration { return time.Duration(h.maxUs) * time.Microsecond }

// Quantile returns the value at quantile q (0 < q ≤ 1): the smallest
// recorded value v such that at least ⌈q·count⌉ values are ≤ v, to the
// bucket resolution, never above Max. It returns 0 when h is empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.count == 0 {
		return 0
	}
	rank := uint64(q*float64(h.count) + 0.999999999)
	rank = max(1, min(rank, h.count))
	var seen uint64
	for index, c := range h.counts {
		seen += c
		if seen >= rank {
			us := min(bucketValue(index), h.maxUs)
			us = max(us, h.minUs)
			return time.Duration(us) * time.Microsecond
		}
	}
	return h.Max()
}

// LatencySummary is the report of a Histogram, in microseconds.
type LatencySummary struct {
	Count  uint64 `json:"count"`
	MeanUs int64  `json:"mean_us"`
	P50Us  int64  `json:"p50_us"`
	P90Us  int64  `json:"p90_us"`
	P99Us  int64  `json:"p99_us"`
	P999Us int64  `json:"p99_9_us"`
	MaxUs  int64  `json:"max_us"`
}

// Summary reports count, mean, p50, p90, p99, p99.9 and max.
func (h *Histogram) Summary() LatencySummary {
	summary := LatencySummary{Count: h.count, MaxUs: h.maxUs}
	if h.count == 0 {
		return summary
	}
	us := func(q float64) int64 { return int64(h.Quantile(q) / time.Microsecond) }
	summary.MeanUs = int64(h.sumUs / h.count)
	summary.P50Us, summary.P90Us, summary.P99Us, summary.P999Us = us(0.50), us(0.90), us(0.99), us(0.999)
	return summary
}
