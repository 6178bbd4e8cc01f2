package model

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"time"
)

// Sampler picks the next token from logits: greedily when Temp ≤ 0, otherwise from the softmax of logits/Temp
// restricted to the TopK most likely tokens (0: no limit) and then to the smallest set whose probability reaches
// TopP (0 or ≥1: no limit), as llama.cpp's top-k → top-p → temperature chain does. The same Seed gives the same
// tokens.
type Sampler struct {
	Temp float32
	TopK int
	TopP float32
	Seed uint64

	rng  *rand.Rand
	idx  []int32
	prob []float64
}

// Greedy returns a sampler that always picks the most likely token.
func Greedy() *Sampler { return &Sampler{} }

// Sample picks a token id.
func (s *Sampler) Sample(logits []float32) int32 {
	if s.Temp <= 0 || s.TopK == 1 {
		return Argmax(logits)
	}
	if s.rng == nil {
		s.rng = rand.New(rand.NewPCG(s.Seed, 0x9e3779b97f4a7c15))
	}
	// Candidates sorted by logit, best first: all of them, or just the top k found by a partial selection.
	s.idx = s.idx[:0]
	for i := range logits {
		s.idx = append(s.idx, int32(i))
	}
	k := len(logits)
	if s.TopK > 0 && s.TopK < k {
		k = s.TopK
		partialTop(s.idx, logits, k)
	}
	cand := s.idx[:k]
	sort.SliceStable(cand, func(a, b int) bool { return logits[cand[a]] > logits[cand[b]] })

	mx := float64(logits[cand[0]])
	s.prob = s.prob[:0]
	var sum float64
	for _, id := range cand {
		p := math.Exp((float64(logits[id]) - mx) / float64(s.Temp))
		s.prob = append(s.prob, p)
		sum += p
	}
	n := len(cand)
	if s.TopP > 0 && s.TopP < 1 {
		var acc float64
		for i, p := range s.prob {
			acc += p / sum
			if acc >= float64(s.TopP) {
				n = i + 1
				break
			}
		}
		sum = 0
		for _, p := range s.prob[:n] {
			sum += p
		}
	}
	r := s.rng.Float64() * sum
	for i, p := range s.prob[:n] {
		r -= p
		if r < 0 {
			return cand[i]
		}
	}
	return cand[n-1]
}

// partialTop moves the k largest (by logits) of idx to its front, in no particular order (quickselect).
func partialTop(idx []int32, logits []float32, k int) {
	lo, hi := 0, len(idx)-1
	for lo < hi {
		p := logits[idx[(lo+hi)/2]]
		i, j := lo, hi
		for i <= j {
			for logits[idx[i]] > p {
				i++
			}
			for logits[idx[j]] < p {
				j--
			}
			if i <= j {
				idx[i], idx[j] = idx[j], idx[i]
				i++
				j--
			}
		}
		switch {
		case k-1 <= j:
			hi = j
		case k-1 >= i:
			lo = i
		default:
			return
		}
	}
}

// Argmax is the index of the largest logit (the first, on ties).
func Argmax(logits []float32) int32 {
	best := 0
	for i, v := range logits {
		if v > logits[best] {
			best = i
		}
	}
	return int32(best)
}

// Stats are the timings of one Generate call.
type Stats struct {
	PromptTokens int
	PromptTime   time.Duration
	GenTokens    int           // tokens evaluated after the prompt
	GenTime      time.Duration // their evaluation and sampling
}

// PromptRate is prompt tokens per second.
func (s Stats) PromptRate() float64 { return rate(s.PromptTokens, s.PromptTime) }

// GenRate is generated tokens per second.
func (s Stats) GenRate() float64 { return rate(s.GenTokens, s.GenTime) }

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// String is "prompt 4 tok in 12ms (333.3 tok/s), generation 16 tok in 80ms (200.0 tok/s)".
func (s Stats) String() string {
	return fmt.Sprintf("prompt %d tok in %v (%.1f tok/s), generation %d tok in %v (%.1f tok/s)",
		s.PromptTokens, s.PromptTime.Round(time.Microsecond), s.PromptRate(),
		s.GenTokens, s.GenTime.Round(time.Microsecond), s.GenRate())
}

// ErrStop, returned by Generate's onToken, ends generation without an error (at an end-of-generation token, say).
var ErrStop = errors.New("stop generation")

// Generate evaluates the prompt after the KV cache's contents, then samples up to n tokens, calling onToken with
// each (which may return ErrStop to end early). Each sampled token is evaluated before the next is sampled, except
// the last, whose logits nobody needs.
func (m *Model) Generate(ctx context.Context, prompt []int32, n int, s *Sampler, onToken func(id int32) error) (Stats, error) {
	var st Stats
	if s == nil {
		s = Greedy()
	}
	t0 := time.Now()
	logits, err := m.Eval(ctx, prompt)
	if err != nil {
		return st, err
	}
	st.PromptTokens, st.PromptTime = len(prompt), time.Since(t0)
	t0 = time.Now()
	var tok [1]int32
	for i := 0; i < n; i++ {
		tok[0] = s.Sample(logits)
		if err := onToken(tok[0]); err != nil {
			if errors.Is(err, ErrStop) {
				break
			}
			st.GenTime = time.Since(t0)
			return st, err
		}
		if i == n-1 {
			break
		}
		if logits, err = m.Eval(ctx, tok[:]); err != nil {
			st.GenTime = time.Since(t0)
			return st, err
		}
		st.GenTokens++
	}
	st.GenTime = time.Since(t0)
	return st, nil
}
