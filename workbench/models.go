package workbench

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"tilelab/amx"
	"tilelab/cuda"
	"tilelab/engine/backend"
	"tilelab/engine/cpu"
	"tilelab/engine/gguf"
	"tilelab/engine/model"
	"tilelab/engine/placement"
	"tilelab/engine/pool"
	"tilelab/engine/tensor"
	"tilelab/engine/tokenizer"
	"tilelab/workbench/lang"
)

// loaded is one model of the session: the mapped file, its tokenizer, the placed model and the pool it runs on.
type loaded struct {
	name    string
	source  string // as the user gave it
	file    *fileRef
	tok     *tokenizer.Tokenizer
	tokErr  error
	m       *model.Model
	pool    *pool.Pool
	amx     *amx.Backend // nil unless AMX buffers are in use
	opts    placement.Options
	threads int
	ctx     int
	batch   int
	took    time.Duration
}

// fileRef is a mapped GGUF file shared by every load of it; its hash is computed on first use (a 17 GB file
// should not be read at load time when nothing asks for its hash).
type fileRef struct {
	f    *gguf.File
	path string
	refs int

	once sync.Once
	sum  string
	err  error
}

// SHA256 hashes the file's bytes once.
func (r *fileRef) SHA256() (string, error) {
	r.once.Do(func() {
		fh, err := os.Open(r.path)
		if err != nil {
			r.err = err
			return
		}
		defer fh.Close()
		h := sha256.New()
		if _, err := io.Copy(h, fh); err != nil {
			r.err = err
			return
		}
		r.sum = hex.EncodeToString(h.Sum(nil))
	})
	return r.sum, r.err
}

// modelInfo is what a saved result says about the model it measured.
type modelInfo struct {
	l *loaded
}

// MarshalJSON writes path, hash, architecture and placement summary.
func (mi modelInfo) MarshalJSON() ([]byte, error) {
	l := mi.l
	sum, err := l.file.SHA256()
	if err != nil {
		sum = "unavailable: " + err.Error()
	}
	return json.Marshal(map[string]any{
		"name": l.name, "source": l.source, "path": l.file.path, "sha256": sum, "arch": l.m.Hyper.Arch,
		"layers": l.m.Hyper.Layers, "placement": l.m.Plan.Summary(), "threads": l.threads,
	})
}

// modelSet holds the models a session has loaded, by name, and the files they map.
type modelSet struct {
	order  []string
	byName map[string]*loaded
	files  map[string]*fileRef
}

func newModelSet() *modelSet {
	return &modelSet{byName: map[string]*loaded{}, files: map[string]*fileRef{}}
}

// names lists the loaded models in load order (completion offers them).
func (ms *modelSet) names() []string { return append([]string(nil), ms.order...) }

// open maps a file once however many loads use it.
func (ms *modelSet) open(path string) (*fileRef, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if r, ok := ms.files[abs]; ok {
		r.refs++
		return r, nil
	}
	f, err := gguf.Open(abs)
	if err != nil {
		return nil, err
	}
	r := &fileRef{f: f, path: abs, refs: 1}
	ms.files[abs] = r
	return r, nil
}

func (ms *modelSet) release(r *fileRef) {
	r.refs--
	if r.refs <= 0 {
		r.f.Close()
		delete(ms.files, r.path)
	}
}

func (ms *modelSet) add(l *loaded) {
	if old, ok := ms.byName[l.name]; ok {
		ms.close(old)
	}
	ms.byName[l.name] = l
	ms.order = append(ms.order, l.name)
}

func (ms *modelSet) close(l *loaded) {
	l.m.Close()
	if l.pool != nil {
		l.pool.Close()
	}
	ms.release(l.file)
	delete(ms.byName, l.name)
	for i, n := range ms.order {
		if n == l.name {
			ms.order = append(ms.order[:i], ms.order[i+1:]...)
			break
		}
	}
}

// place loads the file's model under one set of placement options, on a fresh pool: the registry holds the CPU
// buffer type and backend, and the AMX ones when the options offer AMX anything.
//
// wrap, when set, wraps every backend (check uses it to scan each op's output); onLoad, when set, hears how far
// the weights a buffer type converts have come (model.Options.Progress).
func place(r *fileRef, o placement.Options, threads, ctx, batch int, kv tensor.DType, reference bool, wrap func(backend.Backend) backend.Backend,
	onLoad func(done, total int64)) (*model.Model, *pool.Pool, *amx.Backend, error) {
	if err := o.Validate(); err != nil {
		return nil, nil, nil, err
	}
	if err := cuda.CheckOptions(o); err != nil {
		return nil, nil, nil, err
	}
	if o.NGL > 0 || o.GPU {
		return nil, nil, nil, fmt.Errorf("no CUDA backend yet: the cuda package plans GPU buffers but cannot run them")
	}
	// Vocabulary 1: only the attention shapes matter here, and ReadHyper refuses an empty one.
	if h, err := model.ReadHyper(r.f, 1); err == nil && ctx > 0 {
		if err := fitsMemory(float64(h.KVBytes(ctx, kv)), fmt.Sprintf("a KV cache of ctx=%d tokens", ctx)); err != nil {
			return nil, nil, nil, err
		}
	}
	p := pool.New(threads)
	reg := backend.NewRegistry()
	reg.AddBufferType(cpu.BufferType())
	var ab *amx.Backend
	if o.AMX != "" && o.AMX != placement.AMXOff {
		var err error
		if ab, err = amx.Register(reg, p); err != nil {
			p.Close()
			return nil, nil, nil, err
		}
	}
	reg.AddBackend(cpu.New(p, cpu.Options{Reference: reference}))
	if wrap != nil {
		wrapped := backend.NewRegistry()
		for _, bt := range reg.BufferTypes() {
			wrapped.AddBufferType(bt)
		}
		for _, b := range reg.Backends() {
			wrapped.AddBackend(wrap(b))
		}
		reg = wrapped
	}
	m, err := model.Load(r.f, model.Options{Placement: o, Registry: reg, Ctx: ctx, Batch: batch, KV: kv, Progress: onLoad})
	if err != nil {
		p.Close()
		return nil, nil, nil, err
	}
	return m, p, ab, nil
}

// model finds the model a command names, or the last loaded one.
func (c *ctxCall) model(param string) (*loaded, error) {
	ms := c.s.models
	name := c.Str(param)
	if name == "" {
		if len(ms.order) == 0 {
			return nil, c.errAt(param, "load one first, e.g. load synth:tiny-moe", "no model is loaded")
		}
		return ms.byName[ms.order[len(ms.order)-1]], nil
	}
	if l, ok := ms.byName[name]; ok {
		return l, nil
	}
	e := c.errAt(param, "", "no model named '%s' is loaded", name)
	if le, ok := e.(*lang.Error); ok {
		if n := lang.Nearest(name, ms.order); n != "" {
			le.Hint = fmt.Sprintf("did you mean '%s'?", n)
		} else if len(ms.order) > 0 {
			le.Hint = "loaded: " + strings.Join(ms.order, ", ")
		} else {
			le.Hint = "nothing is loaded yet"
		}
	}
	return nil, e
}

// modeOptions turns a mode name into placement options.
func modeOptions(mode, amxPolicy string, ngl int) placement.Options {
	o := placement.Options{AMX: placement.AMXOff}
	if strings.Contains(mode, "amx") {
		o.AMX = amxPolicy
	}
	if strings.Contains(mode, "gpu") {
		o.NGL = ngl
	}
	return o
}

// modeName is the inverse of modeOptions, for tables.
func modeName(o placement.Options) string {
	m := "cpu"
	if o.NGL > 0 {
		m += "+gpu"
	}
	if o.AMX != "" && o.AMX != placement.AMXOff {
		m += "+amx"
	}
	return m
}

// unavailable says why this machine cannot time a mode, or "".
func unavailable(o placement.Options) string {
	if o.NGL > 0 || o.GPU {
		if g := probeGPU(); !g.Available {
			return "no GPU here: " + strings.TrimRight(g.Reason, ": ")
		}
		return "no CUDA backend yet (the cuda package plans GPU buffers but cannot run them)"
	}
	if o.AMX != "" && o.AMX != placement.AMXOff && amx.Detect().Emulated() {
		return amx.ErrEmulated.Error()
	}
	return ""
}

// stats summarise a model for `models`: parameters, the most common weight type and the memory it holds.
func modelStats(l *loaded) (params int64, quant string, mib float64) {
	count := map[string]int64{}
	for _, d := range l.m.Plan.Decisions {
		n := int64(1)
		for _, x := range d.Weight.Ne {
			n *= int64(max(x, 1))
		}
		params += n
		count[d.Weight.Type.String()] += n
		mib += placement.MiB(d.PackedBytes)
	}
	var types []string
	for t := range count {
		types = append(types, t)
	}
	sort.Slice(types, func(i, j int) bool { return count[types[i]] > count[types[j]] })
	if len(types) > 0 {
		quant = types[0]
	}
	return params, quant, mib
}
