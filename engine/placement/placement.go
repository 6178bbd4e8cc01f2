// Package placement decides, for every weight of a model, which buffer type holds it and why.
//
// It works from metadata alone (backend.WeightInfo: name, type, shape, layer, consuming op), so a 17 GB model can
// be planned on any machine without reading a weight. It is hardware-neutral: whether AMX or CUDA can take a
// weight, and how large the weight becomes there, is each buffer type's own answer (BufferType.Accepts and
// PackedBytes); placement only applies the user's options and the order of preference
//
//	CUDA0 (layer offloaded) → AMX (offered and accepted) → CUDA_Host (a GPU is present) → CPU
//
// and records a reason for every decision, because "which tensors landed where, and why" is the question users
// bring.
package placement

import (
	"fmt"
	"strings"

	"tilelab/engine/backend"
)

// The buffer type names placement prefers between. The buffer types themselves live in their packages
// (engine/cpu, amx, cuda) and are looked up in the registry by these names.
const (
	CPU      = "CPU"
	AMX      = "AMX"
	CUDA0    = "CUDA0"
	CUDAHost = "CUDA_Host"
)

// The values of Options.AMX.
const (
	AMXOff  = "off"  // nothing is offered to AMX
	AMXAttn = "attn" // the seed's policy: attention projections only (attn_q, attn_k, attn_v, attn_output)
	AMXAll  = "all"  // every weight is offered; the AMX buffer type's own rule decides
)

// Options are the user's placement choices.
type Options struct {
	AMX string // AMXOff, AMXAttn or AMXAll; "" means off
	NGL int    // the last NGL repeating layers go to CUDA0 (and the output layer too when NGL exceeds the layer count)
	GPU bool   // a GPU is present: host weights are pinned (CUDA_Host) so large batches can be offloaded
}

// Validate rejects option values placement cannot act on, naming the bad one.
func (o Options) Validate() error {
	switch o.AMX {
	case "", AMXOff, AMXAttn, AMXAll:
	default:
		return fmt.Errorf("amx=%q is not a placement mode (want off, attn or all)", o.AMX)
	}
	if o.NGL < 0 {
		return fmt.Errorf("ngl=%d is negative; it counts the layers to offload to the GPU", o.NGL)
	}
	return nil
}

// amxMode is the AMX option with its default spelled out.
func (o Options) amxMode() string {
	if o.AMX == "" {
		return AMXOff
	}
	return o.AMX
}

// GPUPresent reports whether the placement assumes a GPU: asked for directly, or implied by offloading layers.
func (o Options) GPUPresent() bool { return o.GPU || o.NGL > 0 }

// String spells the options the way the command line and the workbench take them: "amx=attn ngl=12 gpu=on".
func (o Options) String() string {
	s := fmt.Sprintf("amx=%s ngl=%d", o.amxMode(), o.NGL)
	if o.GPUPresent() {
		s += " gpu=on"
	}
	return s
}

// Decision is where one weight goes, why, and what it costs there.
type Decision struct {
	Weight      backend.WeightInfo
	BufferType  string
	Reason      string // "AMX: q4_0, ne1 4096 % 32 == 0 (attention projection, amx=attn)", read by users
	Bytes       int64  // size in the GGUF file
	PackedBytes int64  // size once stored in BufferType (larger where the buffer type repacks)
}

// Plan is the placement of every weight of one model under one set of options.
type Plan struct {
	Options   Options
	NLayers   int
	Decisions []Decision
	// BufferTypes are the registry's buffer type names in registry order, so totals list them the same way
	// every time.
	BufferTypes []string
}

// Place decides a buffer type for every weight. reg must hold every buffer type the options can lead to: CPU
// always, AMX when o.AMX is not off, CUDA0 when o.NGL > 0, CUDA_Host when a GPU is present. A plan registers them
// all (they need no hardware to answer Accepts); a loader registers only what the machine has, so asking for GPU
// layers without a GPU fails here with a reason.
func Place(ws []backend.WeightInfo, nLayers int, o Options, reg *backend.Registry) (*Plan, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if nLayers < 0 {
		return nil, fmt.Errorf("the model has %d layers; the count cannot be negative", nLayers)
	}
	if reg == nil {
		return nil, fmt.Errorf("placement needs a registry of buffer types, got nil")
	}
	bts, err := lookup(reg, o)
	if err != nil {
		return nil, err
	}
	p := &Plan{Options: o, NLayers: nLayers, Decisions: make([]Decision, 0, len(ws))}
	for _, bt := range reg.BufferTypes() {
		p.BufferTypes = append(p.BufferTypes, bt.Name())
	}
	for _, w := range ws {
		if w.Layer >= nLayers {
			return nil, fmt.Errorf("weight %s is in layer %d, but the model has %d layers", w.Name, w.Layer, nLayers)
		}
		if !w.Type.Known() {
			return nil, fmt.Errorf("weight %s has tensor type %s, which TileLab cannot size or compute", w.Name, w.Type)
		}
		bt, reason, err := choose(w, nLayers, o, bts)
		if err != nil {
			return nil, err
		}
		p.Decisions = append(p.Decisions, Decision{
			Weight: w, BufferType: bt.Name(), Reason: reason, Bytes: w.Bytes(), PackedBytes: bt.PackedBytes(w),
		})
	}
	return p, nil
}

// buffers are the buffer types one placement chooses between; nil where the options never lead there.
type buffers struct {
	cpu, amx, cuda, host backend.BufferType
}

// lookup finds the buffer types the options need and says which one is missing, and why it is needed.
func lookup(reg *backend.Registry, o Options) (buffers, error) {
	var b buffers
	get := func(name, why string) (backend.BufferType, error) {
		bt, err := reg.BufferType(name)
		if err != nil {
			return nil, fmt.Errorf("%s, but no %s buffer type is registered (%v)", why, name, names(reg))
		}
		return bt, nil
	}
	var err error
	if b.cpu, err = get(CPU, "every placement falls back to CPU memory"); err != nil {
		return b, err
	}
	if o.amxMode() != AMXOff {
		if b.amx, err = get(AMX, fmt.Sprintf("amx=%s offers weights to AMX", o.amxMode())); err != nil {
			return b, err
		}
	}
	if o.NGL > 0 {
		if b.cuda, err = get(CUDA0, fmt.Sprintf("ngl=%d puts layers on the GPU", o.NGL)); err != nil {
			return b, fmt.Errorf("%w: %s", err, noGPU())
		}
	}
	if o.GPUPresent() {
		why := "gpu=on pins host weights"
		if o.NGL > 0 {
			why = fmt.Sprintf("ngl=%d implies a GPU, which pins host weights", o.NGL)
		}
		if b.host, err = get(CUDAHost, why); err != nil {
			return b, fmt.Errorf("%w: %s", err, noGPU())
		}
	}
	return b, nil
}

// gpuProbe, when set, says whether a GPU can be used here and why not. Placement cannot import the cuda package
// (cuda imports placement), so cuda registers its probe when it is linked in; an error about a missing GPU buffer
// type then carries the driver's own reason ("no CUDA driver: libcuda.so.1 not found").
var gpuProbe func() (ok bool, reason string)

// SetGPUProbe installs the function that explains why no GPU buffer type is registered. The cuda package calls
// it from init.
func SetGPUProbe(probe func() (ok bool, reason string)) { gpuProbe = probe }

func noGPU() string {
	if gpuProbe != nil {
		if ok, why := gpuProbe(); !ok {
			return "no GPU can be used here (" + why + ")"
		}
		return "a GPU is present but its buffer types were not registered"
	}
	return "no GPU is available to this session"
}

func names(reg *backend.Registry) string {
	var ns []string
	for _, bt := range reg.BufferTypes() {
		ns = append(ns, bt.Name())
	}
	if len(ns) == 0 {
		return "none are"
	}
	return "registered: " + strings.Join(ns, ", ")
}

// choose walks the order of preference for one weight and explains the outcome: the reason names the buffer type
// chosen, why it qualified, and why the better ones did not.
func choose(w backend.WeightInfo, nLayers int, o Options, b buffers) (backend.BufferType, string, error) {
	off, offWhy := Offloaded(w, nLayers, o.NGL)
	if off {
		if ok, why := b.cuda.Accepts(w); !ok {
			return nil, "", fmt.Errorf("weight %s: %s, but %s refuses it: %s", w.Name, offWhy, CUDA0, why)
		}
		return b.cuda, CUDA0 + ": " + offWhy, nil
	}

	var notAMX string
	if offered, why := OfferedToAMX(w, o.amxMode()); !offered {
		notAMX = why
	} else if ok, accWhy := b.amx.Accepts(w); ok {
		return b.amx, AMX + ": " + accWhy + " (" + why + ")", nil
	} else {
		notAMX = "AMX refuses it: " + accWhy
	}

	host, hostName := b.cpu, CPU
	if o.GPUPresent() {
		host, hostName = b.host, CUDAHost
	}
	if ok, why := host.Accepts(w); !ok {
		return nil, "", fmt.Errorf("weight %s fits no buffer type: %s; %s; %s refuses it: %s", w.Name, offWhy, notAMX, hostName, why)
	}
	if o.GPUPresent() {
		return host, hostName + ": " + offWhy + ", pinned for GPU transfers; " + notAMX, nil
	}
	return host, hostName + ": " + notAMX, nil
}

// Offloaded reports whether ngl puts the weight on the GPU, following llama.cpp's layer split: the last ngl
// repeating layers are offloaded, and the output layer (output.weight, output_norm) only once ngl exceeds the
// number of repeating layers. The input layer (token_embd) always stays on the host. The reason says either way.
func Offloaded(w backend.WeightInfo, nLayers, ngl int) (bool, string) {
	first := max(nLayers-ngl, 0) // first offloaded repeating layer
	switch {
	case w.Layer >= 0:
		if ngl > 0 && w.Layer >= first {
			return true, fmt.Sprintf("layer %d offloaded (ngl=%d offloads %s)", w.Layer, ngl, span(first, nLayers))
		}
		if ngl == 0 {
			return false, fmt.Sprintf("layer %d stays on the host (ngl=0)", w.Layer)
		}
		return false, fmt.Sprintf("layer %d stays on the host (ngl=%d offloads %s)", w.Layer, ngl, span(first, nLayers))
	case isInput(w.Name):
		return false, "the input layer (" + w.Name + ") stays on the host"
	case ngl > nLayers:
		return true, fmt.Sprintf("output layer offloaded (ngl=%d > %d layers)", ngl, nLayers)
	default:
		return false, fmt.Sprintf("output layer stays on the host (it needs ngl > %d, got %d)", nLayers, ngl)
	}
}

func span(first, n int) string {
	if first == n-1 {
		return fmt.Sprintf("layer %d", first)
	}
	return fmt.Sprintf("layers %d-%d", first, n-1)
}

func isInput(name string) bool { return strings.HasPrefix(name, "token_embd.") }

// attnProjections are the weights the seed's AMX policy took: the four attention projections of every layer.
var attnProjections = []string{"attn_q", "attn_k", "attn_v", "attn_output"}

// IsAttentionProjection reports whether the weight is one of a layer's attention projections (attn_q, attn_k,
// attn_v, attn_output), the set amx=attn offers. Their norms (attn_q_norm, attn_norm) and biases are not.
func IsAttentionProjection(name string) bool {
	if !strings.HasPrefix(name, "blk.") {
		return false
	}
	parts := strings.Split(name, ".")
	if len(parts) != 4 || parts[3] != "weight" {
		return false
	}
	for _, p := range attnProjections {
		if parts[2] == p {
			return true
		}
	}
	return false
}

// OfferedToAMX applies the amx option: whether the weight is offered to the AMX buffer type at all (which may
// still refuse it), with the reason either way.
func OfferedToAMX(w backend.WeightInfo, mode string) (bool, string) {
	switch mode {
	case AMXAttn:
		if IsAttentionProjection(w.Name) {
			return true, "attention projection, amx=attn"
		}
		return false, "amx=attn offers only attention projections"
	case AMXAll:
		return true, "amx=all"
	default:
		return false, "amx=off"
	}
}
