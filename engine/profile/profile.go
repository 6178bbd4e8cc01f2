// Package profile records what every op cost: which backend and kernel ran it, on which shapes and buffers,
// how many bytes and operations, and how long it took. Recording is off unless a Recorder is attached.
package profile

import "time"

// Record is one op execution.
type Record struct {
	Op      string // ggml op name, "MUL_MAT"
	Name    string // the op's readable name, "blk.3.attn_q"
	Layer   int    // -1 outside the layers
	Backend string // "CPU", "AMX", "CUDA0"
	Kernel  string // kernel variant, "avx512-vnni", "amx-int8", "reference"
	Shapes  string // input shapes and types, "q4_0[2048 4096] f32[2048 512]"
	Buffers string // buffer types of the inputs, "AMX,CPU"
	Bytes   int64  // bytes read and written
	Flops   int64  // arithmetic operations (a multiply-add counts 2)
	Time    time.Duration
}

// Recorder collects records. A nil *Recorder records nothing and costs nothing.
type Recorder struct {
	Records  []Record
	Overhead time.Duration // time spent outside ops (scheduling, graph building), measured by the caller
}

// Enabled reports whether records are being kept.
func (r *Recorder) Enabled() bool { return r != nil }

// Add keeps one record.
func (r *Recorder) Add(rec Record) {
	if r != nil {
		r.Records = append(r.Records, rec)
	}
}

// Reset drops all records.
func (r *Recorder) Reset() {
	if r != nil {
		r.Records = r.Records[:0]
		r.Overhead = 0
	}
}
