package simd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

func near(a float32, b float64, rel float64) bool {
	return math.Abs(float64(a)-b) <= rel*(math.Abs(b)+1e-6)
}

func TestRMSNorm(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 7, 2048} {
		x, w := randFloats(r, n), randFloats(r, n)
		for _, weighted := range []bool{false, true} {
			name := "a row of " + itoa(n) + " values scales to unit root mean square"
			if weighted {
				name += " times the weight"
			}
			t.Run(name, func(t *testing.T) {
				var ws []float32
				if weighted {
					ws = w
				}
				dst := make([]float32, n)
				if err := RMSNorm(dst, x, ws, 1e-6); err != nil {
					t.Fatal(err)
				}
				var ss float64
				for _, v := range x {
					ss += float64(v) * float64(v)
				}
				s := 1 / math.Sqrt(ss/float64(n)+1e-6)
				for i := range x {
					want := float64(x[i]) * s
					if weighted {
						want *= float64(w[i])
					}
					if !near(dst[i], want, 1e-5) {
						t.Fatalf("dst[%d] = %g, want %g", i, dst[i], want)
					}
				}
			})
		}
	}
	t.Run("a weight of the wrong length is refused", func(t *testing.T) {
		if err := RMSNorm(make([]float32, 4), make([]float32, 4), make([]float32, 3), 1e-6); err == nil {
			t.Fatal("no error")
		}
	})
}

func TestSoftmax(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	t.Run("a row with masked entries sums to one and matches exp(x-max)/Σ", func(t *testing.T) {
		x := randFloats(r, 37)
		for i := range x {
			x[i] *= 5
		}
		x[3], x[20] = float32(math.Inf(-1)), float32(math.Inf(-1))
		dst := make([]float32, len(x))
		if err := Softmax(dst, x); err != nil {
			t.Fatal(err)
		}
		mx := math.Inf(-1)
		for _, v := range x {
			mx = math.Max(mx, float64(v))
		}
		var sum float64
		for _, v := range x {
			sum += math.Exp(float64(v) - mx)
		}
		for i, v := range x {
			if want := math.Exp(float64(v)-mx) / sum; !near(dst[i], want, 1e-5) {
				t.Fatalf("dst[%d] = %g, want %g", i, dst[i], want)
			}
		}
		if dst[3] != 0 || dst[20] != 0 {
			t.Fatalf("masked entries gave %g and %g", dst[3], dst[20])
		}
	})
	t.Run("a fully masked row is refused", func(t *testing.T) {
		inf := float32(math.Inf(-1))
		err := Softmax(make([]float32, 2), []float32{inf, inf})
		if err == nil || !strings.Contains(err.Error(), "fully masked") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestSwiGLUAndSiLU(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	g, u := randFloats(r, 99), randFloats(r, 99)
	for i := range g {
		g[i] *= 8
	}
	t.Run("SwiGLU multiplies silu of the gate by up", func(t *testing.T) {
		dst := make([]float32, len(g))
		if err := SwiGLU(dst, g, u); err != nil {
			t.Fatal(err)
		}
		for i := range g {
			want := float64(g[i]) / (1 + math.Exp(-float64(g[i]))) * float64(u[i])
			if !near(dst[i], want, 1e-5) {
				t.Fatalf("dst[%d] = %g, want %g", i, dst[i], want)
			}
		}
	})
	t.Run("SiLU is x times the logistic of x", func(t *testing.T) {
		dst := make([]float32, len(g))
		if err := SiLU(dst, g); err != nil {
			t.Fatal(err)
		}
		for i := range g {
			if want := float64(g[i]) / (1 + math.Exp(-float64(g[i]))); !near(dst[i], want, 1e-5) {
				t.Fatalf("dst[%d] = %g, want %g", i, dst[i], want)
			}
		}
	})
	t.Run("SwiGLU refuses inputs of different lengths", func(t *testing.T) {
		if err := SwiGLU(make([]float32, 3), g[:3], u[:2]); err == nil {
			t.Fatal("no error")
		}
	})
}

func TestRoPE(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	const headDim, heads, pos = 16, 3, 11
	x := randFloats(r, headDim*heads)
	for _, c := range []struct {
		name string
		neox bool
		dims int
	}{
		{"normal mode turns adjacent pairs", false, 16},
		{"NeoX mode turns pairs half a rotation apart", true, 16},
		{"partial rotation leaves the tail of each head alone", true, 8},
	} {
		t.Run(c.name, func(t *testing.T) {
			dst := make([]float32, len(x))
			if err := RoPE(dst, x, headDim, c.dims, pos, 10000, c.neox); err != nil {
				t.Fatal(err)
			}
			for h := 0; h < heads; h++ {
				src, out := x[h*headDim:], dst[h*headDim:]
				for i := 0; i < c.dims/2; i++ {
					ang := pos * math.Pow(10000, -2*float64(i)/float64(c.dims))
					a, b := 2*i, 2*i+1
					if c.neox {
						a, b = i, i+c.dims/2
					}
					w0 := float64(src[a])*math.Cos(ang) - float64(src[b])*math.Sin(ang)
					w1 := float64(src[a])*math.Sin(ang) + float64(src[b])*math.Cos(ang)
					if !near(out[a], w0, 1e-4) || !near(out[b], w1, 1e-4) {
						t.Fatalf("head %d pair %d: (%g,%g), want (%g,%g)", h, i, out[a], out[b], w0, w1)
					}
				}
				for i := c.dims; i < headDim; i++ {
					if out[i] != src[i] {
						t.Fatalf("head %d value %d changed", h, i)
					}
				}
			}
			inPlace := append([]float32(nil), x...)
			if err := RoPE(inPlace, inPlace, headDim, c.dims, pos, 10000, c.neox); err != nil {
				t.Fatal(err)
			}
			for i := range dst {
				if inPlace[i] != dst[i] {
					t.Fatalf("in place differs at %d", i)
				}
			}
		})
	}
	t.Run("rope dims larger than the head are refused", func(t *testing.T) {
		if err := RoPE(x, x, headDim, 32, 0, 10000, false); err == nil {
			t.Fatal("no error")
		}
	})
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestExpKernelsEveryFamily(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, fam := range families() {
		for _, n := range []int{1, 15, 16, 17, 33, 100, 2048} {
			x := randFloats(r, n)
			for i := range x {
				x[i] *= 20 // spans exp's useful range and SiLU's saturation on both sides
			}
			if n > 3 {
				x[2] = float32(math.Inf(-1))
			}
			t.Run(fmt.Sprintf("%s softmax of %d values matches exp(x-max)/Σ", fam.name, n), func(t *testing.T) {
				defer use(fam)()
				dst := make([]float32, n)
				if err := Softmax(dst, x); err != nil {
					t.Fatal(err)
				}
				mx := math.Inf(-1)
				for _, v := range x {
					mx = math.Max(mx, float64(v))
				}
				var sum float64
				for _, v := range x {
					sum += math.Exp(float64(v) - mx)
				}
				for i, v := range x {
					want := math.Exp(float64(v)-mx) / sum
					// x-max is rounded to float32 before exp, which exp turns into a relative error of |x-max|·ε.
					if math.Abs(float64(dst[i])-want) > (2e-6+math.Abs(float64(v)-mx)*1.2e-7)*want+1e-38 {
						t.Fatalf("dst[%d] = %g, want %g", i, dst[i], want)
					}
				}
			})
			t.Run(fmt.Sprintf("%s SwiGLU and SiLU of %d values match x/(1+exp(-x))", fam.name, n), func(t *testing.T) {
				defer use(fam)()
				u := randFloats(r, n)
				g := append([]float32(nil), x...)
				if n > 3 {
					g[2] = -3
				}
				dst := make([]float32, n)
				silu := make([]float32, n)
				if err := SwiGLU(dst, g, u); err != nil {
					t.Fatal(err)
				}
				if err := SiLU(silu, g); err != nil {
					t.Fatal(err)
				}
				for i, v := range g {
					s := float64(v) / (1 + math.Exp(-float64(v)))
					if math.Abs(float64(silu[i])-s) > 2e-6*math.Abs(s)+1e-30 {
						t.Fatalf("silu(%g) = %g, want %g", v, silu[i], s)
					}
					if want := s * float64(u[i]); math.Abs(float64(dst[i])-want) > 2e-6*math.Abs(want)+1e-30 {
						t.Fatalf("swiglu(%g, %g) = %g, want %g", v, u[i], dst[i], want)
					}
				}
			})
		}
		t.Run(fam.name+" softmax refuses a fully masked row", func(t *testing.T) {
			defer use(fam)()
			inf := float32(math.Inf(-1))
			if err := Softmax(make([]float32, 20), []float32{inf, inf, inf, inf, inf, inf, inf, inf, inf, inf, inf, inf, inf, inf, inf, inf, inf, inf, inf, inf}); err == nil {
				t.Fatal("no error")
			}
		})
	}
}
