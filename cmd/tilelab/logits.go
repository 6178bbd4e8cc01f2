package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"

	"tilelab/amx"
	"tilelab/engine/backend"
	"tilelab/engine/cpu"
	"tilelab/engine/gguf"
	"tilelab/engine/model"
	"tilelab/engine/placement"
	"tilelab/engine/pool"
	"tilelab/engine/tokenizer"
)

func init() {
	register("logits", "run a prompt and print its last position's argmax and top 5; -o writes the logits as float32", runLogits)
}

// engineFlags are the flags logits and generate share: which model, and how to run it.
type engineFlags struct {
	model     *string
	threads   *int
	ctx       *int
	amx       *string
	reference *bool
}

func addEngineFlags(fs *flag.FlagSet) engineFlags {
	return engineFlags{
		model:     fs.String("m", "", "model GGUF `FILE`"),
		threads:   fs.Int("t", 0, "worker `threads` (0: one per CPU the process may use)"),
		ctx:       fs.Int("ctx", 0, "KV cache length in `tokens` (0: the model's context, at most 4096)"),
		amx:       fs.String("amx", placement.AMXOff, "AMX placement `mode`: off, attn or all"),
		reference: fs.Bool("reference", false, "run every op on the float32 reference kernels"),
	}
}

// check rejects engine flag values that would otherwise pass silently (a negative -t or --ctx means the default
// to the engine, not what was asked), saying which flag is wrong; it returns errUsage like a bad flag.
func (e engineFlags) check(name string, stderr io.Writer) error {
	switch {
	case *e.threads < 0:
		fmt.Fprintf(stderr, "tilelab %s: -t %d: the thread count cannot be negative (0: one per CPU the process may use)\n", name, *e.threads)
	case *e.ctx < 0:
		fmt.Fprintf(stderr, "tilelab %s: --ctx %d: the KV cache length cannot be negative (0: the model's context)\n", name, *e.ctx)
	default:
		return nil
	}
	return errUsage
}

// parseFlags parses args, printing usage on error; it returns errUsage for bad flags and stray arguments.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return flag.ErrHelp
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tilelab %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	return nil
}

// engine is an opened model with what the commands report about it.
type engine struct {
	m           *model.Model
	tok         *tokenizer.Tokenizer
	threads     int
	amxEmulated bool // AMX tiles run in the emulator: correct but never to be timed
}

// open loads the model and its tokenizer on a pool of the requested threads: the CPU backend, and the AMX
// buffer type and backend ahead of it when --amx offers AMX anything. close releases all of it.
func (e engineFlags) open() (eng engine, close func(), err error) {
	po := placement.Options{AMX: strings.ToLower(*e.amx)}
	if err := po.Validate(); err != nil {
		return engine{}, nil, err
	}
	f, err := gguf.Open(*e.model)
	if err != nil {
		return engine{}, nil, err
	}
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		f.Close()
		return engine{}, nil, err
	}
	p := pool.New(*e.threads)
	reg := backend.NewRegistry()
	reg.AddBufferType(cpu.BufferType())
	if po.AMX != "" && po.AMX != placement.AMXOff {
		ab, err := amx.Register(reg, p)
		if err != nil {
			p.Close()
			f.Close()
			return engine{}, nil, err
		}
		eng.amxEmulated = ab.Emulated()
	}
	reg.AddBackend(cpu.New(p, cpu.Options{Reference: *e.reference}))
	m, err := model.Load(f, model.Options{Placement: po, Registry: reg, Ctx: *e.ctx})
	if err != nil {
		p.Close()
		f.Close()
		return engine{}, nil, err
	}
	eng.m, eng.tok, eng.threads = m, tok, p.Threads()
	return eng, func() { m.Close(); p.Close(); f.Close() }, nil
}

func runLogits(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("logits", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ef := addEngineFlags(fs)
	prompt := fs.String("p", "", "prompt `TEXT` (tokenized with the model's vocabulary, BOS as llama.cpp adds it)")
	tokens := fs.String("tokens", "", "comma-separated token `ids`, instead of -p")
	out := fs.String("o", "", "write the last position's logits to `FILE` as little-endian float32")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: tilelab logits -m FILE (-p TEXT | --tokens 1,2,3) [-o OUT.f32] [-t THREADS] [--reference]")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return err
	}
	if *ef.model == "" || (*prompt == "") == (*tokens == "") {
		fmt.Fprintln(stderr, "tilelab logits: -m FILE and exactly one of -p TEXT or --tokens ids are required")
		fs.Usage()
		return errUsage
	}
	if err := ef.check("logits", stderr); err != nil {
		return err
	}
	var ids []int32
	if *tokens != "" {
		var err error
		if ids, err = parseTokens(*tokens); err != nil {
			return err
		}
	}
	eng, closeAll, err := ef.open()
	if err != nil {
		return err
	}
	defer closeAll()
	m, tok := eng.m, eng.tok
	if *prompt != "" {
		ids = tok.Encode(*prompt, true)
		if len(ids) == 0 {
			return fmt.Errorf("the prompt %q has no tokens", *prompt)
		}
	}
	logits, err := m.Eval(context.Background(), ids)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "tokens (%d):", len(ids))
	for _, id := range ids {
		fmt.Fprintf(stdout, " %d", id)
	}
	fmt.Fprintln(stdout)
	top := topN(logits, 5)
	fmt.Fprintf(stdout, "argmax: %d %q\n", top[0], tok.TokenBytes(top[0]))
	fmt.Fprintln(stdout, "top 5:")
	for i, id := range top {
		fmt.Fprintf(stdout, "  %d. %-7d %10.6f  %q\n", i+1, id, logits[id], tok.TokenBytes(id))
	}
	if *out != "" {
		if err := writeF32(*out, logits); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %d logits to %s\n", len(logits), *out)
	}
	return nil
}

// parseTokens reads "1,2,3" (spaces allowed).
func parseTokens(s string) ([]int32, error) {
	var ids []int32
	for i, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		v, err := strconv.ParseInt(f, 10, 32)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("--tokens: item %d, %q, is not a token id", i+1, f)
		}
		ids = append(ids, int32(v))
	}
	return ids, nil
}

// topN returns the ids of the n largest logits, largest first (ties: lower id first).
func topN(logits []float32, n int) []int32 {
	ids := make([]int32, len(logits))
	for i := range ids {
		ids[i] = int32(i)
	}
	sort.SliceStable(ids, func(a, b int) bool { return logits[ids[a]] > logits[ids[b]] })
	return ids[:min(n, len(ids))]
}

func writeF32(path string, x []float32) error {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return os.WriteFile(path, b, 0o644)
}
