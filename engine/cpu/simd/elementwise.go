package simd

import (
	"fmt"
	"math"
)

// The elementwise ops follow ggml's CPU definitions (sums of squares and of exponentials in float64, expf-based
// SiLU, RoPE angles advanced by repeated multiplication in float32), so their results track llama.cpp's.

// RMSNorm writes dst[i] = x[i] / sqrt(mean(x²) + eps) · w[i] for one row; w may be nil (no weight). dst may be x.
func RMSNorm(dst, x, w []float32, eps float32) error {
	if len(dst) != len(x) || w != nil && len(w) != len(x) {
		return fmt.Errorf("simd: RMSNorm: lengths differ: dst %d, x %d, weight %d", len(dst), len(x), len(w))
	}
	if len(x) == 0 {
		return nil
	}
	var sum float64
	for _, v := range x {
		sum += float64(v * v)
	}
	scale := float32(1 / math.Sqrt(float64(float32(sum/float64(len(x)))+eps)))
	if w == nil {
		for i, v := range x {
			dst[i] = v * scale
		}
		return nil
	}
	w = w[:len(x)]
	for i, v := range x {
		dst[i] = v * scale * w[i]
	}
	return nil
}

// Softmax writes the softmax of one row: dst[i] = exp(x[i]-max) / Σ exp(x[j]-max). Entries of -Inf (masked) give
// zero. dst may be x. The vector paths use a polynomial exp within 2 ulp of the exact one.
func Softmax(dst, x []float32) error {
	if len(dst) != len(x) {
		return fmt.Errorf("simd: Softmax: dst has %d values, x has %d", len(dst), len(x))
	}
	if len(x) == 0 {
		return nil
	}
	return impl.softmax(dst, x)
}

var errFullyMasked = fmt.Errorf("simd: Softmax: every entry of the row is -Inf (fully masked)")

func softmaxGeneric(dst, x []float32) error {
	mx := float32(math.Inf(-1))
	for _, v := range x {
		mx = max(mx, v)
	}
	if math.IsInf(float64(mx), -1) {
		return errFullyMasked
	}
	var sum float64
	for i, v := range x {
		e := expf(v - mx)
		dst[i] = e
		sum += float64(e)
	}
	inv := float32(1 / sum)
	for i := range dst {
		dst[i] *= inv
	}
	return nil
}

// SwiGLU writes dst[i] = silu(gate[i]) · up[i], with silu(x) = x / (1 + exp(-x)). dst may alias either input.
func SwiGLU(dst, gate, up []float32) error {
	if len(gate) != len(dst) || len(up) != len(dst) {
		return fmt.Errorf("simd: SwiGLU: lengths differ: dst %d, gate %d, up %d", len(dst), len(gate), len(up))
	}
	if up == nil {
		up = []float32{} // a nil up would mean plain SiLU below
	}
	impl.swiglu(dst, gate, up)
	return nil
}

// SiLU writes dst[i] = x[i] / (1 + exp(-x[i])). dst may be x.
func SiLU(dst, x []float32) error {
	if len(dst) != len(x) {
		return fmt.Errorf("simd: SiLU: dst has %d values, x has %d", len(dst), len(x))
	}
	impl.swiglu(dst, x, nil)
	return nil
}

func swigluGeneric(dst, g, u []float32) {
	g = g[:len(dst)]
	if u == nil {
		for i, v := range g {
			dst[i] = v / (1 + expf(-v))
		}
		return
	}
	u = u[:len(dst)]
	for i, v := range g {
		dst[i] = v / (1 + expf(-v)) * u[i]
	}
}

// RoPE rotates the heads of one token at position pos, as ggml's rope with no context extension does: x holds
// len(x)/headDim heads of headDim values; the first ropeDims values of each head turn, in pairs (2i, 2i+1) in the
// normal mode and (i, i+ropeDims/2) in the NeoX mode, by pos·theta^(-2i/ropeDims); the rest are copied. dst may
// be x.
func RoPE(dst, x []float32, headDim, ropeDims, pos int, theta float32, neox bool) error {
	switch {
	case len(dst) != len(x):
		return fmt.Errorf("simd: RoPE: dst has %d values, x has %d", len(dst), len(x))
	case headDim <= 0 || len(x)%headDim != 0:
		return fmt.Errorf("simd: RoPE: %d values is not a whole number of heads of %d", len(x), headDim)
	case ropeDims <= 0 || ropeDims > headDim || ropeDims%2 != 0:
		return fmt.Errorf("simd: RoPE: rope dims %d must be even and in (0, head dim %d]", ropeDims, headDim)
	case theta <= 0:
		return fmt.Errorf("simd: RoPE: theta %v must be positive", theta)
	}
	// Angles are shared by every head; 256 pairs cover head dims up to 512 without allocating.
	var cs [512]float32
	var big []float32
	table := cs[:]
	if ropeDims > 256 {
		big = make([]float32, 2*ropeDims)
		table = big
	}
	thetaScale := float32(math.Pow(float64(theta), -2/float64(ropeDims)))
	t := float32(pos)
	for i := 0; i < ropeDims/2; i++ {
		table[2*i] = float32(math.Cos(float64(t)))
		table[2*i+1] = float32(math.Sin(float64(t)))
		t *= thetaScale
	}
	half := ropeDims / 2
	for h := 0; h < len(x); h += headDim {
		src, out := x[h:h+headDim], dst[h:h+headDim]
		for i := 0; i < half; i++ {
			c, s := table[2*i], table[2*i+1]
			a, b := 2*i, 2*i+1
			if neox {
				a, b = i, i+half
			}
			x0, x1 := src[a], src[b]
			out[a] = x0*c - x1*s
			out[b] = x0*s + x1*c
		}
		if &out[0] != &src[0] {
			copy(out[ropeDims:], src[ropeDims:])
		}
	}
	return nil
}

// expf is exp in float32 precision; float64 math.Exp rounded once is within half an ulp of expf.
func expf(x float32) float32 { return float32(math.Exp(float64(x))) }
