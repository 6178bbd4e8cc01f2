package amx

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"tilelab/engine/backend"
	"tilelab/engine/cpu"
	"tilelab/engine/graph"
	"tilelab/engine/pool"
	"tilelab/engine/tensor"
)

// Name is the name of the AMX buffer type and backend.
const Name = "AMX"

// BufferType is the AMX buffer type: it repacks Q8_0 and Q4_0 weights into the amx-int8 layout and F16 and BF16
// weights into amx-bf16, for MUL_MAT and MUL_MAT_ID (MoE experts) alike.
//
// The layout depends only on the buffer type's fields, never on the machine: Import makes the same packing with
// or without AMX (the emulator reads the very layout the hardware does), so a plan's packed sizes are the same
// everywhere.
type BufferType struct {
	// Group is the int8 scale group weights are repacked with (TileConfig.Group); 32 keeps Q8_0/Q4_0 exact, 0
	// keeps one scale per row. NewBufferType uses DefaultConfig's, the one every machine uses by default.
	Group int
	// Plain says when Import also keeps a reference to the weight's plain GGUF bytes, for the small-batch path
	// (the zero value keeps them when they are a view of a mapped file, which costs no memory).
	Plain PlainPolicy
}

// NewBufferType returns the AMX buffer type of the default layout (DefaultConfig's group), keeping plain bytes
// of mapped files: the buffer type amx.Register adds and plans use, the same on every machine.
func NewBufferType() *BufferType { return &BufferType{Group: DefaultConfig.Group} }

// Name returns "AMX".
func (*BufferType) Name() string { return Name }

// IsHost is true: AMX weights are in ordinary memory the CPU reads.
func (*BufferType) IsHost() bool { return true }

// Accepts takes Q8_0, Q4_0, F16 and BF16 weights of MUL_MAT and MUL_MAT_ID whose rows are whole blocks and
// whose row count is a multiple of 32; a buffer type whose Group the kernels cannot use takes nothing.
func (b *BufferType) Accepts(w backend.WeightInfo) (bool, string) {
	if err := checkGroup(b.Group); err != nil {
		return false, "AMX buffer type misconfigured: " + err.Error()
	}
	if w.Op != graph.MulMat && w.Op != graph.MulMatID {
		return false, fmt.Sprintf("consumed by %s; AMX computes only MUL_MAT and MUL_MAT_ID", w.Op)
	}
	switch w.Type {
	case tensor.Q8_0, tensor.Q4_0, tensor.F16, tensor.BF16:
	case tensor.F32:
		return false, "F32 tensors are not packed for AMX"
	default:
		return false, fmt.Sprintf("%s has no AMX layout (AMX takes q8_0, q4_0, f16, bf16)", w.Type)
	}
	// Unused outer dimensions may be 0 or 1; the row length and the row count must be positive.
	for i, n := range w.Ne {
		if n < 0 || (i < 2 && n == 0) {
			return false, fmt.Sprintf("%s %s: ne%d %d, a weight has at least one row of one block", w.Type, fmtNe(w.Ne), i, n)
		}
	}
	if bs := w.Type.BlockSize(); w.Ne[0]%bs != 0 {
		return false, fmt.Sprintf("%s, ne0 %d is not a multiple of the block (%d)", w.Type, w.Ne[0], bs)
	}
	if w.Ne[1]%32 != 0 {
		return false, fmt.Sprintf("%s, ne1 %d is not a multiple of 32", w.Type, w.Ne[1])
	}
	if w.Ne[3] > 1 || (w.Op == graph.MulMat && w.Ne[2] > 1) {
		return false, fmt.Sprintf("%s %s: AMX takes 2-D weights, or 3-D expert stacks for MUL_MAT_ID", w.Type, fmtNe(w.Ne))
	}
	what := "ne1 %d %% 32 == 0"
	if w.Op == graph.MulMatID {
		what = "MoE experts, ne1 %d %% 32 == 0"
	}
	return true, fmt.Sprintf("%s, "+what, w.Type, w.Ne[1])
}

func fmtNe(ne [4]int) string {
	return (&graph.Tensor{Ne: ne}).Shape()
}

// PackedBytes is the weight's size in its AMX layout: rows and K padded to 64, int8 values with a float32 scale
// and an int32 sum per row and group (int8), or bf16 values. It is exactly what Import allocates, on any machine.
// Plain bytes kept beside the packing are not counted: they are the mapped file's, already counted as GGUF bytes.
func (b *BufferType) PackedBytes(w backend.WeightInfo) int64 {
	if w.Ne[0] < 1 || w.Ne[1] < 1 {
		return w.Bytes() // refused by Accepts; there is no packing to size
	}
	e := max(w.Ne[2], 1)
	switch w.Type {
	case tensor.Q8_0, tensor.Q4_0:
		_, _, _, _, n := int8Sizes(w.Ne[1], w.Ne[0], e, b.Group)
		return n
	case tensor.F16, tensor.BF16:
		_, _, n := bf16Sizes(w.Ne[1], w.Ne[0], e)
		return n
	}
	return w.Bytes()
}

// Import repacks t (plain GGUF bytes) into its AMX layout: t.Data becomes the packed values, t.Extra the packed
// weight the kernels read, t.Layout amx-int8 or amx-bf16. Where b.Plain says so, t.Extra also keeps a reference
// to the plain bytes t.Data held (typed as plain ggml blocks, apart from t.Data), which the backend reads below
// its threshold with CPU mode's kernel.
func (b *BufferType) Import(t *graph.Tensor) error {
	if t.ViewSrc != nil {
		return fmt.Errorf("AMX import of %s: a view cannot be repacked; import its source", t.Name)
	}
	if t.Layout != "" && t.Layout != tensor.Plain {
		return fmt.Errorf("AMX import of %s: it is already in layout %s", t.Name, t.Layout)
	}
	op := graph.MulMat
	if t.Ne[2] > 1 {
		op = graph.MulMatID
	}
	if ok, why := b.Accepts(backend.WeightInfo{Name: t.Name, Type: t.Type, Ne: t.Ne, Op: op}); !ok {
		return fmt.Errorf("AMX import of %s: %s", t.Name, why)
	}
	e := max(t.Ne[2], 1)
	w := &weights{}
	var err error
	switch t.Type {
	case tensor.Q8_0, tensor.Q4_0:
		w.i8, err = packInt8(t.Type, t.Data, t.Ne[1], t.Ne[0], e, b.Group)
	default:
		w.b16, err = packBF16(t.Type, t.Data, t.Ne[1], t.Ne[0], e)
	}
	if err != nil {
		return fmt.Errorf("AMX import of %s: %w", t.Name, err)
	}
	if b.Plain.keep(t.Data) {
		if w.plain, err = newPlainBlocks(t); err != nil {
			return fmt.Errorf("AMX import of %s: %w", t.Name, err)
		}
	}
	if w.i8 != nil {
		t.Data, t.Layout = w.i8.Q, LayoutInt8
	} else {
		t.Data, t.Layout = w.b16.B, LayoutBF16
	}
	t.Extra, t.BufferType = w, Name
	return nil
}

// Backend computes MUL_MAT and MUL_MAT_ID on weights in the AMX layouts: tile kernels from Threshold rows up
// (per expert for MUL_MAT_ID). Below it, on weights whose plain GGUF bytes Import kept, it runs exactly what CPU
// mode runs (the CPU backend of engine/cpu, its simd kernels over the plain blocks on the same pool), so a small
// batch costs what it costs in CPU mode and gives the same bits; on weights without plain bytes, it runs the
// AVX-512 VNNI path over the packing.
//
// A Backend serves one scheduler at a time: Compute reuses scratch between ops, so it is not safe for concurrent
// use (SupportsOp only reads).
type Backend struct {
	eng    *engine
	status Status
	cpu    *cpu.Backend // CPU mode's kernels, for batches below the threshold on plain bytes

	// Scratch of the small-batch path, reused so a decode step allocates nothing here.
	sub    graph.Op
	subSrc []*graph.Tensor
	gx     []float32 // MUL_MAT_ID rows below the threshold, gathered
	gids   []int32
	gdst   []float32
	grows  [][]float32 // the source row of each gathered row
	goffs  []int       // where each gathered row's outputs go
	ftmp   []float32   // a fused op's intermediate product
	rowJob rowCopyJob
	names  []plainName // the small-batch path's kernel names, made once each

	// Threshold is the smallest number of activation rows (per expert for MUL_MAT_ID) that goes to the tile
	// kernels. It starts at the calibrated value for this machine, or DefaultThreshold.
	Threshold int
	// ThresholdBF16 is the same for F16 and BF16 weights.
	ThresholdBF16 int
	// ThresholdSource says where Threshold came from ("calibrated 2026-11-26 on ...", "default", "set").
	ThresholdSource string
}

// DefaultThreshold and DefaultThresholdBF16 are the tile-kernel thresholds used before the machine is calibrated,
// from the accelerator machine (16-core Sapphire Rapids, see NOTES.md). int8 was 32, the crossover against the
// AVX-512 VNNI path; below the threshold a model's weights now take CPU mode's own kernel, against which the
// calibration put the crossover at 8 to 12 rows on every host, and the tiles took 0.16–0.44 of CPU mode's time
// from 16 rows on. At 32 an uncalibrated MoE prefill (128 experts, 8 used, 512 tokens: about 32 rows an expert)
// sent most experts to the CPU kernel: 1.6x the CPU backend against 4–5x.
const (
	DefaultThreshold     = 16
	DefaultThresholdBF16 = 16
)

// Options adjust a Backend.
type Options struct {
	Config    TileConfig // zero value: DefaultConfig for int8 and DefaultConfigBF16 for bf16; else both
	Emulate   bool       // run the tile kernels in the emulator even where AMX is usable
	NoVecAsm  bool       // run the small-batch path in plain Go even where AVX-512 VNNI is present
	Threshold int        // > 0 overrides the calibrated threshold
}

// NewBackend returns the AMX backend running on p's workers.
func NewBackend(p *pool.Pool, o Options) (*Backend, error) {
	cfg, cfg16 := o.Config, o.Config
	if cfg == (TileConfig{}) {
		cfg, cfg16 = DefaultConfig, DefaultConfigBF16
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	st := detectStatus()
	b := &Backend{eng: newEngine(p, cfg, cfg16, o.Emulate || !st.Usable, st.VNNI && !o.NoVecAsm), status: st,
		cpu: cpu.New(p, cpu.Options{})}
	b.Threshold, b.ThresholdBF16, b.ThresholdSource = DefaultThreshold, DefaultThresholdBF16, "default (not calibrated)"
	switch c, err := LoadCalibration(); {
	case err == nil:
		b.Threshold, b.ThresholdBF16, b.ThresholdSource = c.Threshold, c.ThresholdBF16, "calibrated "+c.When+" on "+c.CPU
	case !errors.Is(err, fs.ErrNotExist):
		// A stored calibration that cannot be used is a decision to show, not to hide.
		b.ThresholdSource = "default (stored calibration not used: " + err.Error() + ")"
	}
	if v := os.Getenv("TILELAB_AMX_THRESHOLD"); v != "" {
		t, err := strconv.Atoi(v)
		if err != nil || t < 0 {
			return nil, fmt.Errorf("TILELAB_AMX_THRESHOLD=%q is not a row count", v)
		}
		b.Threshold, b.ThresholdBF16, b.ThresholdSource = t, t, "TILELAB_AMX_THRESHOLD"
	}
	if o.Threshold > 0 {
		b.Threshold, b.ThresholdBF16, b.ThresholdSource = o.Threshold, o.Threshold, "set"
	}
	return b, nil
}

// Name returns "AMX".
func (*Backend) Name() string { return Name }

// Status is what detection found.
func (b *Backend) Status() Status { return b.status }

// Emulated reports whether the tile kernels run in the emulator.
func (b *Backend) Emulated() bool { return b.eng.emulate }

// Config is the tile configuration of the int8 kernels.
func (b *Backend) Config() TileConfig { return b.eng.cfg }

// ConfigBF16 is the tile configuration of the bf16 kernels.
func (b *Backend) ConfigBF16() TileConfig { return b.eng.cfg16 }

// SetConfig sets the tile configuration of both the int8 and the bf16 kernels (the group of already packed
// weights stays theirs), as a sweep over one weight wants.
func (b *Backend) SetConfig(c TileConfig) error {
	if err := c.Validate(); err != nil {
		return err
	}
	b.eng.cfg, b.eng.cfg16 = c, c
	return nil
}

func packedOf(t *graph.Tensor) (weights, error) {
	src := t.Source()
	if src != t && (t.Ne != src.Ne || t.Type != src.Type) {
		// The kernels address the whole packing; a window of it would be computed as all of it.
		return weights{}, fmt.Errorf("weight %s is a view %s %s of AMX weight %s %s %s; AMX computes whole weights only",
			t.Name, t.Type, t.Shape(), src.Name, src.Type, src.Shape())
	}
	w, _ := src.Extra.(*weights)
	switch layout := src.StorageLayout(); layout {
	case LayoutInt8:
		if w != nil && w.i8 != nil {
			return *w, nil
		}
	case LayoutBF16:
		if w != nil && w.b16 != nil {
			return *w, nil
		}
	default:
		return weights{}, fmt.Errorf("weight %s is in layout %q, not an AMX layout", t.Name, layout)
	}
	return weights{}, fmt.Errorf("weight %s says layout %s but holds no AMX packing (%T)", t.Name, src.Layout, src.Extra)
}

// The reasons SupportsOp gives when it accepts; constants, so that scheduling a decode step allocates nothing.
const (
	reasonInt8  = "weight in AMX layout amx-int8"
	reasonBF16  = "weight in AMX layout amx-bf16"
	reasonFused = "weights in AMX layouts (fused op: CPU mode's fused kernel on the plain bytes below the threshold, else its chain of ops)"
)

// SupportsOp is true for MUL_MAT and MUL_MAT_ID whose weight is in an AMX layout and whose activations are F32,
// and for the fused ops built on them (MUL_MATS, MUL_MAT_ADD, MUL_MAT_SWIGLU, MUL_MAT_ID_SWIGLU, MUL_MAT_ID_SUM)
// whose weights all are: a statement of capability, not of speed.
func (b *Backend) SupportsOp(op *graph.Op) (bool, string) {
	// The refusals a model's other ops meet on every step are constants too.
	if why, ok := quickRefusal(op); ok {
		return false, why
	}
	if isFused(op.Kind) {
		if err := b.supportsFused(op); err != nil {
			return false, err.Error()
		}
		return true, reasonFused
	}
	if err := supports(op); err != nil {
		return false, err.Error()
	}
	if op.Src[0].Source().Layout == LayoutBF16 {
		return true, reasonBF16
	}
	return true, reasonInt8
}

const reasonPlainWeight = "the weight is in the plain layout, not an AMX layout"

// quickRefusal answers without formatting for the ops AMX never computes and for products of plain weights.
func quickRefusal(op *graph.Op) (string, bool) {
	switch op.Kind {
	case graph.MulMat, graph.MulMatID, graph.MulMatAdd, graph.MulMatSwiGLU, graph.MulMatIDSwiGLU, graph.MulMatIDSum, graph.MulMats:
		if len(op.Src) > 0 && op.Src[0] != nil && op.Src[0].StorageLayout() == tensor.Plain {
			return reasonPlainWeight, true
		}
		return "", false
	}
	return reasonOtherOp, true
}

const reasonOtherOp = "AMX computes only MUL_MAT, MUL_MAT_ID and the fused ops built on them"

// supports is SupportsOp's check, nil when the op can run.
func supports(op *graph.Op) error {
	if op.Kind != graph.MulMat && op.Kind != graph.MulMatID {
		return fmt.Errorf("AMX computes MUL_MAT and MUL_MAT_ID, not %s", op.Kind)
	}
	if len(op.Src) < 2 || op.Src[0] == nil || op.Src[1] == nil {
		return fmt.Errorf("%s %s lacks its inputs", op.Kind, op.Name)
	}
	if _, err := packedOf(op.Src[0]); err != nil {
		return err
	}
	if op.Src[1].Type != tensor.F32 {
		return fmt.Errorf("activations are %s; AMX takes f32", op.Src[1].Type)
	}
	return nil
}

// Compute runs the op and names the kernels it used.
func (b *Backend) Compute(op *graph.Op) (string, error) {
	if isFused(op.Kind) {
		if err := b.supportsFused(op); err != nil {
			return "", fmt.Errorf("AMX cannot compute %s %s: %w", op.Kind, op.Name, err)
		}
		return b.computeFused(op)
	}
	if err := supports(op); err != nil {
		return "", fmt.Errorf("AMX cannot compute %s %s: %w", op.Kind, op.Name, err)
	}
	w, _ := packedOf(op.Src[0])
	x, dst := op.Src[1], op.Dst
	n, k, _, _ := w.dims()
	if x.Ne[0] != k {
		return "", fmt.Errorf("%s %s: activations have rows of %d, the weight %s has K %d", op.Kind, op.Name, x.Ne[0], op.Src[0].Name, k)
	}
	if dst == nil || dst.Type != tensor.F32 {
		return "", fmt.Errorf("%s %s: the destination must be f32", op.Kind, op.Name)
	}
	// A view carries its own window of the source's elements, so its F32 is what to read.
	xs := x.F32
	if len(xs) < x.Elems() {
		return "", fmt.Errorf("%s %s: activations %s hold %d values, want %d", op.Kind, op.Name, x.Name, len(xs), x.Elems())
	}
	thr := b.Threshold
	if w.b16 != nil {
		thr = b.ThresholdBF16
	}
	var sets []rowSet
	switch op.Kind {
	case graph.MulMat:
		if e := w.experts(); e != 1 {
			return "", fmt.Errorf("MUL_MAT %s: weight %s is a stack of %d experts; MUL_MAT takes a 2-D weight", op.Name, op.Src[0].Name, e)
		}
		m := x.Rows()
		if dst.Ne[0] != n || dst.Rows() != m || len(dst.F32) < n*m {
			return "", fmt.Errorf("MUL_MAT %s: destination %s, want [%d %d]", op.Name, dst.Shape(), n, m)
		}
		if w.plain != nil && m < thr {
			return b.plainOp(op, w, thr)
		}
		s := rowSet{x: make([][]float32, m), dst: make([]int, m)}
		for r := 0; r < m; r++ {
			s.x[r], s.dst[r] = xs[r*k:(r+1)*k], r*n
		}
		sets = []rowSet{s}
	case graph.MulMatID:
		if ids := op.Src[2:]; w.plain != nil && len(ids) > 0 && ids[0] != nil && ids[0].Elems() < thr {
			// Fewer entries than the threshold in all: every expert is below it (a decode step).
			return b.plainOp(op, w, thr)
		}
		var err error
		if sets, err = expertSets(op, w, xs); err != nil {
			return "", err
		}
		if w.plain != nil {
			return b.mixedID(op, w, sets, thr)
		}
	}
	name, err := b.eng.gemm(w, sets, dst.F32, thr)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", op.Kind, op.Name, err)
	}
	return name, nil
}

// plainName is a cached name of the small-batch path and what it was made from. A backend meets a handful (a
// kernel, a threshold and a weight type each), so a list scanned per op is all the lookup needs.
type plainName struct {
	kernel string
	thr    int
	typ    tensor.DType
	name   string
}

// plainKernel names CPU mode's kernel as the AMX backend used it: "avx512-vnni (m < 32, plain q4_0)".
func (b *Backend) plainKernel(kernel string, thr int, w weights) string {
	for i := range b.names {
		if n := &b.names[i]; n.thr == thr && n.typ == w.plain.Type && n.kernel == kernel {
			return n.name
		}
	}
	s := fmt.Sprintf("%s (m < %d, plain %s)", kernel, thr, w.plain.Type)
	b.names = append(b.names, plainName{kernel, thr, w.plain.Type, s})
	return s
}

// plainOp runs the whole op as CPU mode does: the CPU backend's kernel over the weight's plain bytes, with the
// op's own activations, ids and destination, so the result is CPU mode's bit for bit.
func (b *Backend) plainOp(op *graph.Op, w weights, thr int) (string, error) {
	b.sub = *op
	b.subSrc = append(b.subSrc[:0], op.Src...)
	b.subSrc[0] = w.plain.view
	b.sub.Src = b.subSrc
	kernel, err := b.cpu.Compute(&b.sub)
	b.sub = graph.Op{} // hold no tensors of a finished op
	clear(b.subSrc)
	if err != nil {
		return "", fmt.Errorf("%s %s (below the threshold, on the plain bytes): %w", op.Kind, op.Name, err)
	}
	return b.plainKernel(kernel, thr, w), nil
}

// mixedID runs a MUL_MAT_ID whose experts fall on both sides of the threshold: the experts with at least thr
// rows on the tiles, the others as one MUL_MAT_ID of their rows gathered in entry order on CPU mode's kernel
// (which quantizes, groups and splits each expert's rows exactly as CPU mode does, so those rows come out as CPU
// mode's), then scattered to their places.
func (b *Backend) mixedID(op *graph.Op, w weights, sets []rowSet, thr int) (string, error) {
	var tiles, small []rowSet
	rows := 0
	for _, s := range sets {
		if len(s.x) >= thr {
			tiles = append(tiles, s)
		} else {
			small = append(small, s)
			rows += len(s.x)
		}
	}
	if len(tiles) == 0 {
		return b.plainOp(op, w, thr) // the same bits as the gathered form, without the copies
	}
	dst := op.Dst.F32
	tileName, err := b.eng.gemm(w, tiles, dst, thr)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", op.Kind, op.Name, err)
	}
	if rows == 0 {
		return tileName, nil
	}
	n, k, _, _ := w.dims()
	b.gx, b.gids, b.gdst = grow(b.gx, rows*k), grow(b.gids, rows), grow(b.gdst, rows*n)
	b.grows, b.goffs = b.grows[:0], b.goffs[:0]
	for _, s := range small {
		for r, xr := range s.x {
			b.gids[len(b.grows)] = int32(s.e)
			b.grows, b.goffs = append(b.grows, xr), append(b.goffs, s.dst[r])
		}
	}
	b.copyRows(rows, k, nil, false)
	x := &graph.Tensor{Name: op.Src[1].Name + " (rows below the threshold)", Type: tensor.F32, Ne: [4]int{k, 1, rows, 1}, F32: b.gx}
	ids := &graph.Tensor{Name: "experts of those rows", Type: tensor.I32, Ne: [4]int{1, rows, 1, 1}, I32: b.gids}
	out := &graph.Tensor{Name: op.Dst.Name + " (rows below the threshold)", Type: tensor.F32, Ne: [4]int{n, 1, rows, 1}, F32: b.gdst}
	sub := &graph.Op{Kind: graph.MulMatID, Name: op.Name, Layer: op.Layer, Dst: out, Src: []*graph.Tensor{w.plain.view, x, ids}, Params: op.Params}
	kernel, err := b.cpu.Compute(sub)
	if err != nil {
		return "", fmt.Errorf("%s %s (experts below the threshold, on the plain bytes): %w", op.Kind, op.Name, err)
	}
	b.copyRows(rows, n, dst, true)
	return tileName + " + " + b.plainKernel(kernel, thr, w), nil
}

// copyRows copies rows [0, rows) of width floats each on the pool, in chunks of about 256 KiB, so a prompt's
// thousands of gathered rows are copied by every worker, and a few rows by one: the gathered activations into gx
// (grows[i] to row i), or with scatter, the gathered outputs gdst to their places in dst (row i to goffs[i]).
func (b *Backend) copyRows(rows, width int, dst []float32, scatter bool) {
	per := max(1, (256<<10)/max(4*width, 1))
	b.rowJob = rowCopyJob{b: b, dst: dst, width: width, rows: rows, per: per, scatter: scatter}
	b.eng.pool.RunJob((rows+per-1)/per, &b.rowJob)
	b.rowJob = rowCopyJob{}
}

// rowCopyJob is copyRows's parallel section, kept in the backend so a call allocates no closure.
type rowCopyJob struct {
	b                *Backend
	dst              []float32
	width, rows, per int
	scatter          bool
}

func (j *rowCopyJob) Chunk(c, _ int) {
	b, w := j.b, j.width
	for i := c * j.per; i < min(j.rows, (c+1)*j.per); i++ {
		if j.scatter {
			copy(j.dst[b.goffs[i]:b.goffs[i]+w], b.gdst[i*w:(i+1)*w])
		} else {
			copy(b.gx[i*w:(i+1)*w], b.grows[i])
		}
	}
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// expertSets groups the rows of a MUL_MAT_ID by expert, so each expert's tokens form one GEMM.
func expertSets(op *graph.Op, w weights, xs []float32) ([]rowSet, error) {
	if len(op.Src) < 3 || op.Src[2] == nil || op.Src[2].Type != tensor.I32 {
		return nil, fmt.Errorf("MUL_MAT_ID %s: the expert ids (Src[2], i32) are missing", op.Name)
	}
	x, ids, dst := op.Src[1], op.Src[2], op.Dst
	n, k, _, _ := w.dims()
	e := w.experts()
	u, m := ids.Ne[0], ids.Ne[1]
	xu := x.Ne[1]
	if x.Ne[2] != m || (xu != 1 && xu != u) {
		return nil, fmt.Errorf("MUL_MAT_ID %s: activations %s do not match ids %s (want [%d 1|%d %d])", op.Name, x.Shape(), ids.Shape(), k, u, m)
	}
	if dst.Ne[0] != n || dst.Ne[1] != u || dst.Ne[2] != m || len(dst.F32) < n*u*m {
		return nil, fmt.Errorf("MUL_MAT_ID %s: destination %s, want [%d %d %d]", op.Name, dst.Shape(), n, u, m)
	}
	if len(ids.I32) < u*m {
		return nil, fmt.Errorf("MUL_MAT_ID %s: ids hold %d values, want %d", op.Name, len(ids.I32), u*m)
	}
	idv := ids.I32
	count := make([]int, e)
	for i := 0; i < u*m; i++ {
		id := int(idv[i])
		if id < 0 || id >= e {
			return nil, fmt.Errorf("MUL_MAT_ID %s: token %d slot %d asks for expert %d of %d", op.Name, i/u, i%u, id, e)
		}
		count[id]++
	}
	sets := make([]rowSet, 0, e)
	index := make([]int, e)
	for ex := 0; ex < e; ex++ {
		index[ex] = -1
		if count[ex] > 0 {
			index[ex] = len(sets)
			sets = append(sets, rowSet{e: ex, x: make([][]float32, 0, count[ex]), dst: make([]int, 0, count[ex])})
		}
	}
	for t := 0; t < m; t++ {
		for s := 0; s < u; s++ {
			set := &sets[index[idv[t*u+s]]]
			xr := t*xu + min(s, xu-1)
			set.x = append(set.x, xs[xr*k:(xr+1)*k])
			set.dst = append(set.dst, (t*u+s)*n)
		}
	}
	return sets, nil
}

func (w weights) experts() int {
	if w.i8 != nil {
		return w.i8.E
	}
	return w.b16.E
}

// Register adds the AMX buffer type and backend (with default options) to reg. The backend goes after those
// already registered, so register it before the CPU backend for AMX weights to reach it first; the CPU backend
// refuses AMX layouts anyway.
func Register(reg *backend.Registry, p *pool.Pool) (*Backend, error) {
	b, err := NewBackend(p, Options{})
	if err != nil {
		return nil, err
	}
	reg.AddBufferType(NewBufferType())
	reg.AddBackend(b)
	return b, nil
}

// Describe is a one-paragraph account of the backend for the workbench's env and calibrate commands.
func (b *Backend) Describe() string {
	var s strings.Builder
	fmt.Fprintf(&s, "AMX: %s\n", b.status.Reason)
	mode := "hardware"
	if b.eng.emulate {
		mode = "emulated (correctness only; not timed)"
	}
	fmt.Fprintf(&s, "tile kernels: %s, int8 %s, bf16 %s\n", mode, b.eng.cfg, b.eng.cfg16.bf16String())
	vec := "AVX-512 VNNI assembly"
	if !b.eng.vecAsm {
		vec = "plain Go (no AVX-512 VNNI)"
	}
	fmt.Fprintf(&s, "small batches, below %d rows (int8), %d rows (bf16) (%s): CPU mode's kernel on the plain GGUF bytes of weights from a mapped file; %s over the packing otherwise",
		b.Threshold, b.ThresholdBF16, b.ThresholdSource, vec)
	return s.String()
}
