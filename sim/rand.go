package sim

// Rand is the simulator's only source of randomness: splitmix64, seeded
// once per run. Every choice of a run (the scenario, delays, faults,
// inputs) comes from a Rand derived from the run's seed, so the seed and
// the commit replay a run exactly.
type Rand struct{ state uint64 }

// NewRand returns a generator seeded with seed.
func NewRand(seed uint64) *Rand { return &Rand{state: seed} }

// Uint64 returns the next 64 random bits.
func (r *Rand) Uint64() uint64 {
	r.state += 0x9e3779b97f4a7c15
	z := r.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Fork returns an independent generator, so that adding draws to one part
// of the simulator does not shift every other part's choices.
func (r *Rand) Fork() *Rand { return NewRand(r.Uint64()) }

// Intn returns a number in [0, n); n must be positive.
func (r *Rand) Intn(n int) int { return int(r.Uint64() % uint64(n)) }

// Between returns a number in [lo, hi].
func (r *Rand) Between(lo, hi int64) int64 {
	if hi <= lo {
		return lo
	}
	return lo + int64(r.Uint64()%uint64(hi-lo+1))
}

// Float64 returns a number in [0, 1).
func (r *Rand) Float64() float64 { return float64(r.Uint64()>>11) / (1 << 53) }

// Chance reports true with probability p.
func (r *Rand) Chance(p float64) bool { return p > 0 && r.Float64() < p }

// Exponential returns an exponentially distributed duration with the
// given mean, at least 1 (for Poisson arrivals of faults and inputs).
func (r *Rand) Exponential(meanMs int64) int64 {
	if meanMs <= 0 {
		return 1
	}
	u := r.Float64()
	// -ln(1-u) by a series that is exact enough and needs no math package:
	// the simulator must give the same run on every platform.
	return max(1, int64(float64(meanMs)*negLog1m(u)))
}

// negLog1m returns -ln(1-u) for u in [0, 1), with plain arithmetic only
// (no platform-dependent math routines): ln(x) = 2 atanh((x-1)/(x+1)).
func negLog1m(u float64) float64 {
	x := 1 - u
	if x < 1e-12 {
		x = 1e-12
	}
	// Scale x into [0.5, 1] by powers of two: ln(x) = k ln 2 + ln(m).
	k := 0
	for x < 0.5 {
		x *= 2
		k++
	}
	y := (x - 1) / (x + 1)
	y2 := float64(y * y)
	sum, term := 0.0, y
	for n := 1; n < 60; n += 2 {
		sum = float64(sum + float64(term/float64(n)))
		term = float64(term * y2)
	}
	const ln2 = 0.6931471805599453
	return -(float64(2*sum) - float64(float64(k)*ln2))
}
