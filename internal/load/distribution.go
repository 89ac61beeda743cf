package load

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
)

// Dist describes how a path parameter is drawn from the range [Min, Max].
//
//	uniform: every value equally likely.
//	zipf:    value of rank r (1 = hottest) drawn with probability ∝ 1/r^Exponent;
//	         0 < Exponent <= 100 (1.0 is the classic web-cache fit).
//	hotset:  HotWeight of the draws fall uniformly on the HotFraction of the
//	         range that is hot, the rest uniformly on the remainder.
//
// By default rank 1 is Min, rank 2 Min+1 and so on; Scatter spreads the
// ranks over the range with a fixed permutation, so that hot keys are not
// neighbours (as in production, where popular products are not numbered 1..k).
type Dist struct {
	Kind        string  `yaml:"dist" json:"dist"`
	Min         int64   `yaml:"min" json:"min"`
	Max         int64   `yaml:"max" json:"max"`
	Exponent    float64 `yaml:"exponent,omitempty" json:"exponent,omitempty"`
	HotFraction float64 `yaml:"hot_fraction,omitempty" json:"hot_fraction,omitempty"`
	HotWeight   float64 `yaml:"hot_weight,omitempty" json:"hot_weight,omitempty"`
	Scatter     bool    `yaml:"scatter,omitempty" json:"scatter,omitempty"`
}

// A sampler draws a parameter value. Each worker owns its random source, so
// samplers are immutable and shared.
type sampler interface {
	sample(r *rand.Rand) int64
}

// newSampler validates d and builds its sampler.
func newSampler(d Dist) (sampler, error) {
	if d.Max < d.Min {
		return nil, fmt.Errorf("max %d is below min %d", d.Max, d.Min)
	}
	n := uint64(d.Max-d.Min) + 1
	if n == 0 { // the whole int64 range
		return nil, fmt.Errorf("range %d..%d is too wide", d.Min, d.Max)
	}
	p := newPermutation(n, d.Scatter)
	switch d.Kind {
	case "", "uniform":
		return uniformSampler{min: d.Min, n: n}, nil
	case "zipf":
		if !(d.Exponent > 0) || d.Exponent > 100 {
			return nil, fmt.Errorf("zipf exponent must be above 0 and at most 100 (e.g. 1.0), got %v", d.Exponent)
		}
		return newZipfSampler(d.Min, n, d.Exponent, p), nil
	case "hotset":
		if !(d.HotFraction > 0 && d.HotFraction < 1) {
			return nil, fmt.Errorf("hotset hot_fraction must be between 0 and 1 (e.g. 0.01), got %v", d.HotFraction)
		}
		if !(d.HotWeight >= 0 && d.HotWeight <= 1) {
			return nil, fmt.Errorf("hotset hot_weight must be between 0 and 1 (e.g. 0.9), got %v", d.HotWeight)
		}
		hot := uint64(math.Ceil(float64(n) * d.HotFraction))
		if hot >= n {
			hot = n - 1
		}
		if hot == 0 {
			hot = 1
		}
		return hotsetSampler{min: d.Min, n: n, hot: hot, weight: d.HotWeight, perm: p}, nil
	}
	return nil, fmt.Errorf("unknown distribution %q (want uniform, zipf or hotset)", d.Kind)
}

type uniformSampler struct {
	min int64
	n   uint64
}

func (s uniformSampler) sample(r *rand.Rand) int64 { return s.min + int64(r.Uint64N(s.n)) }

type hotsetSampler struct {
	min    int64
	n, hot uint64
	weight float64
	perm   permutation
}

func (s hotsetSampler) sample(r *rand.Rand) int64 {
	var x uint64
	if r.Float64() < s.weight {
		x = r.Uint64N(s.hot)
	} else {
		x = s.hot + r.Uint64N(s.n-s.hot)
	}
	return s.min + int64(s.perm.apply(x))
}

// permutation is the bijection x -> (a·x + b) mod n on [0, n), or the
// identity. It scatters hot ranks without a table.
type permutation struct {
	n, a, b uint64
}

func newPermutation(n uint64, scatter bool) permutation {
	if !scatter || n < 3 {
		return permutation{}
	}
	a := uint64(0x9E3779B97F4A7C15) % n // golden-ratio step: neighbours land far apart
	for a < 2 || gcd(a, n) != 1 {
		a++
		if a >= n {
			a = 2
		}
	}
	return permutation{n: n, a: a, b: n / 3}
}

func (p permutation) apply(x uint64) uint64 {
	if p.n == 0 {
		return x
	}
	hi, lo := bits.Mul64(p.a, x)
	lo, carry := bits.Add64(lo, p.b, 0)
	return bits.Rem64(hi+carry, lo, p.n)
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// zipfSampler draws ranks 1..n with P(r) ∝ r^-s by rejection-inversion
// (Hörmann and Derflinger, 1996): O(1) per draw, no table, any s > 0,
// unlike math/rand's Zipf, which needs s > 1.
type zipfSampler struct {
	min          int64
	n            float64
	s            float64
	hX1, hN, thr float64
	perm         permutation
}

func newZipfSampler(min int64, n uint64, s float64, p permutation) *zipfSampler {
	z := &zipfSampler{min: min, n: float64(n), s: s, perm: p}
	z.hX1 = z.hIntegral(1.5) - 1
	z.hN = z.hIntegral(z.n + 0.5)
	z.thr = 2 - z.hIntegralInverse(z.hIntegral(2.5)-z.h(2))
	return z
}

func (z *zipfSampler) sample(r *rand.Rand) int64 {
	for {
		u := z.hN + r.Float64()*(z.hX1-z.hN)
		x := z.hIntegralInverse(u)
		k := math.Floor(x + 0.5)
		if k < 1 {
			k = 1
		} else if k > z.n {
			k = z.n
		}
		if k-x <= z.thr || u >= z.hIntegral(k+0.5)-z.h(k) {
			return z.min + int64(z.perm.apply(uint64(k)-1))
		}
	}
}

func (z *zipfSampler) h(x float64) float64 { return math.Exp(-z.s * math.Log(x)) }

func (z *zipfSampler) hIntegral(x float64) float64 {
	logX := math.Log(x)
	return helper2((1-z.s)*logX) * logX
}

func (z *zipfSampler) hIntegralInverse(x float64) float64 {
	t := x * (1 - z.s)
	if t < -1 {
		t = -1 // numerical safety near the end of the range
	}
	return math.Exp(helper1(t) * x)
}

// helper1 is log1p(x)/x, helper2 is expm1(x)/x, both continuous at 0.
func helper1(x float64) float64 {
	if math.Abs(x) > 1e-8 {
		return math.Log1p(x) / x
	}
	return 1 - x*(0.5-x*(1.0/3-0.25*x))
}

func helper2(x float64) float64 {
	if math.Abs(x) > 1e-8 {
		return math.Expm1(x) / x
	}
	return 1 + x*0.5*(1+x*(1.0/3)*(1+0.25*x))
}
