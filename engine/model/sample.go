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

	rng *rand.Rand
	idx []int32
}

// Greedy returns a sampler that always picks the most likely token.
func Greedy() *Sampler { return &Sampler{} }

// Sample picks a token id. It never sorts the whole vocabulary: top-k selects its k candidates, and top-p alone
// grows a sorted prefix until it holds the nucleus, so sampling costs a few passes over the logits.
func (s *Sampler) Sample(logits []float32) int32 {
	if s.Temp <= 0 || s.TopK == 1 {
		return Argmax(logits)
	}
	if s.rng == nil {
		s.rng = rand.New(rand.NewPCG(s.Seed, 0x9e3779b97f4a7c15))
	}
	s.idx = s.idx[:0]
	for i := range logits {
		s.idx = append(s.idx, int32(i))
	}
	temp := float64(s.Temp)
	mx := float64(logits[Argmax(logits)])
	weight := func(id int32) float64 { return math.Exp((float64(logits[id]) - mx) / temp) }

	// The candidates' total weight: the k best under top-k, else the whole vocabulary.
	var cand []int32
	var total float64
	if s.TopK > 0 && s.TopK < len(logits) {
		partialTop(s.idx, logits, s.TopK)
		cand = s.idx[:s.TopK]
		for _, id := range cand {
			total += weight(id)
		}
	} else {
		cand = s.idx
		for _, id := range cand {
			total += weight(id)
		}
	}
	if s.TopP > 0 && s.TopP < 1 {
		cand, total = s.nucleus(logits, cand, total, weight)
	}
	r := s.rng.Float64() * total
	for _, id := range cand {
		if r -= weight(id); r < 0 {
			return id
		}
	}
	return cand[len(cand)-1]
}

// nucleus narrows cand (whose weights sum to total) to its best tokens whose probability reaches TopP, sorting
// only as long a prefix as it needs: 64 candidates, then four times as many, until the prefix holds the nucleus.
func (s *Sampler) nucleus(logits []float32, cand []int32, total float64, weight func(int32) float64) ([]int32, float64) {
	for k := min(64, len(cand)); ; k = min(4*k, len(cand)) {
		if k < len(cand) {
			partialTop(cand, logits, k)
		}
		prefix := cand[:k]
		sort.SliceStable(prefix, func(a, b int) bool {
			if logits[prefix[a]] != logits[prefix[b]] {
				return logits[prefix[a]] > logits[prefix[b]]
			}
			return prefix[a] < prefix[b]
		})
		var acc float64
		for i, id := range prefix {
			acc += weight(id)
			if acc >= float64(s.TopP)*total {
				return prefix[:i+1], acc
			}
		}
		if k == len(cand) {
			return cand, total
		}
	}
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
