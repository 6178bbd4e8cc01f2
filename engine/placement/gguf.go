package placement

import (
	"fmt"

	"tilelab/engine/backend"
	"tilelab/engine/gguf"
)

// Weights describes every tensor of a GGUF file for placement, from its metadata alone: no tensor bytes are read,
// so a metadata-only File (synth.Header) plans as well as a mapped one. A tensor whose type TileLab cannot size is
// an error naming it.
func Weights(f *gguf.File) ([]backend.WeightInfo, error) {
	if f == nil {
		return nil, fmt.Errorf("placement needs a GGUF file, got nil")
	}
	ws := make([]backend.WeightInfo, 0, len(f.Tensors))
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		if !ti.Type.Known() {
			return nil, fmt.Errorf("tensor %s has type %s, which TileLab cannot place", ti.Name, ti.Type)
		}
		ws = append(ws, Weight(ti.Name, ti.Type, ti.Ne))
	}
	return ws, nil
}

// Layers reads the number of repeating layers from the file's "<arch>.block_count".
func Layers(f *gguf.File) (int, error) {
	if f == nil {
		return 0, fmt.Errorf("placement needs a GGUF file, got nil")
	}
	arch := f.Architecture()
	if arch == "" {
		return 0, fmt.Errorf("the file has no general.architecture, so its layer count key is unknown")
	}
	n, ok := f.Uint(arch + ".block_count")
	if !ok {
		return 0, fmt.Errorf("the file has no %s.block_count", arch)
	}
	if n > 1<<16 {
		return 0, fmt.Errorf("%s.block_count is %d, beyond any real model", arch, n)
	}
	return int(n), nil
}

// FromGGUF plans a file: Weights and Layers, then Place.
func FromGGUF(f *gguf.File, o Options, reg *backend.Registry) (*Plan, error) {
	ws, err := Weights(f)
	if err != nil {
		return nil, err
	}
	n, err := Layers(f)
	if err != nil {
		return nil, err
	}
	return Place(ws, n, o, reg)
}
