//go:build !linux

package cpu

import "tilelab/engine/graph"

// hugeCopy has no huge pages to offer outside Linux: the caller keeps its bytes.
func hugeCopy(owner *graph.Tensor, src []byte) []byte { return nil }
