package model

import (
	"math"
	"math/rand/v2"
	"testing"
)

func randomLogits(seed uint64, n int) []float32 {
	rng := rand.New(rand.NewPCG(seed, seed))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * 2)
	}
	return x
}

// rankOf returns the rank of id by logit (0 for the best).
func rankOf(logits []float32, id int32) int {
	r := 0
	for i, v := range logits {
		if v > logits[id] || v == logits[id] && int32(i) < id {
			r++
		}
	}
	return r
}

func TestSamplerPicksTheArgmaxWhenGreedy(t *testing.T) {
	logits := randomLogits(1, 1000)
	for _, s := range []*Sampler{Greedy(), {Temp: 0, Seed: 9}, {Temp: 1, TopK: 1, Seed: 3}} {
		for i := 0; i < 5; i++ {
			if got := s.Sample(logits); got != Argmax(logits) {
				t.Fatalf("sampler %+v picked %d, argmax is %d", *s, got, Argmax(logits))
			}
		}
	}
}

func TestSamplerIsDeterministicForASeed(t *testing.T) {
	logits := randomLogits(2, 5000)
	draw := func(seed uint64) []int32 {
		s := &Sampler{Temp: 1.5, TopP: 0.95, Seed: seed}
		out := make([]int32, 50)
		for i := range out {
			out[i] = s.Sample(logits)
		}
		return out
	}
	a, b, c := draw(7), draw(7), draw(8)
	same := true
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("draw %d differs between two runs with seed 7: %d and %d", i, a[i], b[i])
		}
		same = same && a[i] == c[i]
	}
	if same {
		t.Fatal("seeds 7 and 8 gave the same 50 tokens")
	}
}

func TestSamplerRestrictsTheSupport(t *testing.T) {
	logits := randomLogits(3, 2000)
	t.Run("top-k only ever picks among the k best", func(t *testing.T) {
		s := &Sampler{Temp: 5, TopK: 7, Seed: 1}
		seen := map[int32]bool{}
		for i := 0; i < 2000; i++ {
			id := s.Sample(logits)
			if r := rankOf(logits, id); r >= 7 {
				t.Fatalf("picked %d of rank %d with top-k 7", id, r)
			}
			seen[id] = true
		}
		if len(seen) < 5 {
			t.Fatalf("a hot temperature over 7 candidates drew only %d distinct tokens", len(seen))
		}
	})
	t.Run("top-p only picks from the nucleus", func(t *testing.T) {
		// Three tokens hold almost all the mass: 0.5, 0.3 and 0.15 of it; top-p 0.8 keeps the first two.
		l := make([]float32, 100)
		for i := range l {
			l[i] = -30
		}
		l[10], l[20], l[30] = float32(math.Log(0.5)), float32(math.Log(0.3)), float32(math.Log(0.15))
		s := &Sampler{Temp: 1, TopP: 0.8, Seed: 4}
		counts := map[int32]int{}
		for i := 0; i < 3000; i++ {
			counts[s.Sample(l)]++
		}
		if len(counts) != 2 || counts[10] == 0 || counts[20] == 0 {
			t.Fatalf("counts %v; want only tokens 10 and 20", counts)
		}
		if f := float64(counts[10]) / 3000; f < 0.55 || f > 0.70 {
			t.Fatalf("token 10 drawn %.2f of the time; renormalised it has 0.625", f)
		}
	})
	t.Run("a nucleus wider than the first sorted prefix still ends where top-p says", func(t *testing.T) {
		// 1000 equal logits: top-p 0.5 keeps 500 of them, the lower ids first on ties.
		flat := make([]float32, 1000)
		s := &Sampler{Temp: 1, TopP: 0.5, Seed: 6}
		seen := map[int32]bool{}
		for i := 0; i < 3000; i++ {
			id := s.Sample(flat)
			if id >= 500 {
				t.Fatalf("picked %d, outside the nucleus of ids 0..499", id)
			}
			seen[id] = true
		}
		if len(seen) < 400 {
			t.Fatalf("only %d distinct tokens of the 500 in the nucleus", len(seen))
		}
	})
	t.Run("a low temperature concentrates on the best token", func(t *testing.T) {
		s := &Sampler{Temp: 0.01, Seed: 5}
		for i := 0; i < 100; i++ {
			if id := s.Sample(logits); id != Argmax(logits) {
				t.Fatalf("temperature 0.01 picked rank %d", rankOf(logits, id))
			}
		}
	})
}

func TestPartialTopFindsTheKLargest(t *testing.T) {
	for _, n := range []int{1, 2, 17, 1000} {
		for _, k := range []int{1, 3, n} {
			if k > n {
				continue
			}
			logits := randomLogits(uint64(n*31+k), n)
			for i := 0; i < n/3; i++ { // ties
				logits[i*3] = logits[0]
			}
			idx := make([]int32, n)
			for i := range idx {
				idx[i] = int32(i)
			}
			partialTop(idx, logits, k)
			for _, id := range idx[:k] {
				for _, other := range idx[k:] {
					if logits[other] > logits[id] {
						t.Fatalf("n=%d k=%d: %d (%.3f) left out while %d (%.3f) is in", n, k, other, logits[other], id, logits[id])
					}
				}
			}
		}
	}
}
