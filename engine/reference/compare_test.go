package reference

import (
	"context"
	"fmt"
	"math/rand"
	"path/filepath"
	"testing"

	"tilelab/engine/gguf"
	"tilelab/engine/model"
	"tilelab/engine/synth"
	"tilelab/engine/tensor"
)

// TestEngineAgreesWithOracle runs engine/model on its float32 reference kernels and this oracle on the same
// synthetic files, and bounds the relative L2 error of the logits: 1e-4 with F32, F16 and BF16 weights, 1e-3
// with Q8_0 and Q4_0 weights (both sides read the same dequantized values and keep activations in float32, so
// what remains is summation order). Every position of the prompt is compared, then one more token decoded through the
// engine's KV cache against the oracle on the longer sequence.
func TestEngineAgreesWithOracle(t *testing.T) {
	dir := t.TempDir()
	for _, preset := range []string{"tiny-dense", "tiny-moe", "tiny-llama"} {
		for _, q := range []struct {
			typ   tensor.DType
			bound float64
		}{{tensor.F32, 1e-4}, {tensor.F16, 1e-4}, {tensor.BF16, 1e-4}, {tensor.Q8_0, 1e-3}, {tensor.Q4_0, 1e-3}} {
			t.Run(fmt.Sprintf("%s in %s agrees to %g", preset, q.typ, q.bound), func(t *testing.T) {
				path := filepath.Join(dir, fmt.Sprintf("%s-%s.gguf", preset, q.typ))
				if err := synth.WriteFile(path, preset, synth.Options{Quant: q.typ, Seed: 3}); err != nil {
					t.Fatal(err)
				}
				f, err := gguf.Open(path)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				m, err := model.Load(f, model.Options{Reference: true, Threads: 2, Ctx: 64})
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close()
				vocab := m.Hyper.Vocab
				rng := rand.New(rand.NewSource(int64(len(preset)) + int64(q.typ)))
				tokens := make([]int32, 9)
				for i := range tokens {
					tokens[i] = int32(1 + rng.Intn(vocab-1))
				}
				prompt := tokens[:len(tokens)-1]

				engineAll, err := m.EvalAll(context.Background(), prompt)
				if err != nil {
					t.Fatal(err)
				}
				oracle, err := ForwardFile(f, prompt, Options{AllPositions: true})
				if err != nil {
					t.Fatal(err)
				}
				for p, row := range oracle {
					_, rel := compare(engineAll[p*vocab:(p+1)*vocab], row)
					if rel >= q.bound {
						t.Errorf("position %d: relative L2 error %.3g >= %g", p, rel, q.bound)
					}
				}
				_, rel := compare(engineAll[(len(prompt)-1)*vocab:], oracle[len(oracle)-1])
				t.Logf("last prompt position: relative L2 %.3g", rel)

				next, err := m.Eval(context.Background(), tokens[len(tokens)-1:])
				if err != nil {
					t.Fatal(err)
				}
				want, err := ForwardFile(f, tokens, Options{})
				if err != nil {
					t.Fatal(err)
				}
				if _, rel := compare(next, want[0]); rel >= q.bound {
					t.Errorf("decoded token after the prompt: relative L2 error %.3g >= %g", rel, q.bound)
				}
			})
		}
	}
}
