package workbench

import (
	"testing"

	"tilelab/engine/backend"
	"tilelab/engine/cpu"
	"tilelab/engine/pool"
)

func TestCheckWrapperReadsWhatItsBackendReads(t *testing.T) {
	p := pool.New(1)
	defer p.Close()
	var b backend.Backend = scanBackend{Backend: cpu.New(p, cpu.Options{}), scan: &nanScan{}}
	r, ok := b.(backend.BufferReader)
	if !ok {
		t.Fatal("the check wrapper does not tell the scheduler which buffers it reads")
	}
	for _, c := range []struct {
		buffer string
		want   bool
	}{{"CPU", true}, {"CUDA_Host", true}, {"CUDA0", false}} {
		if got := r.Reads(c.buffer); got != c.want {
			t.Errorf("Reads(%q) = %v, want %v (the CPU backend's answer)", c.buffer, got, c.want)
		}
	}
}
