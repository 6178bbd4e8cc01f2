package placement

import (
	"strconv"
	"strings"

	"tilelab/engine/backend"
	"tilelab/engine/graph"
	"tilelab/engine/tensor"
)

// Weight describes one GGUF tensor for placement: its layer from a "blk.N." prefix (-1 otherwise) and the op
// that consumes it from its name (ConsumingOp).
func Weight(name string, t tensor.DType, ne [4]int) backend.WeightInfo {
	return backend.WeightInfo{Name: name, Type: t, Ne: ne, Layer: LayerOf(name), Op: ConsumingOp(name)}
}

// LayerOf reads the repeating layer from a tensor name such as "blk.12.attn_q.weight"; -1 for tensors outside
// the layers (token_embd, output_norm, output) and for names whose layer number does not parse.
func LayerOf(name string) int {
	rest, ok := strings.CutPrefix(name, "blk.")
	if !ok {
		return -1
	}
	num, _, ok := strings.Cut(rest, ".")
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// ConsumingOp names the op that reads a weight, from llama.cpp's tensor naming: stacked experts (*_exps) feed
// MUL_MAT_ID, the token embedding GET_ROWS, norms RMS_NORM, biases ADD, and every other weight (the MoE router
// ffn_gate_inp included) MUL_MAT.
func ConsumingOp(name string) graph.Kind {
	base := strings.TrimSuffix(strings.TrimSuffix(name, ".weight"), ".bias")
	if i := strings.LastIndexByte(base, '.'); i >= 0 {
		base = base[i+1:]
	}
	switch {
	case strings.HasSuffix(name, ".bias"):
		return graph.Add
	case strings.HasSuffix(base, "_exps"):
		return graph.MulMatID
	case base == "token_embd":
		return graph.GetRows
	case strings.Contains(base, "norm"):
		return graph.RMSNorm
	default:
		return graph.MulMat
	}
}
