package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"unicode/utf8"

	"tilelab/engine/model"
)

func init() {
	register("generate", "stream a continuation of a prompt and print prompt and generation tok/s", runGenerate)
}

func runGenerate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ef := addEngineFlags(fs)
	prompt := fs.String("p", "", "prompt `TEXT`")
	n := fs.Int("n", 32, "tokens to generate")
	temp := fs.Float64("temp", 0, "sampling temperature (0: greedy)")
	topK := fs.Int("top-k", 0, "sample among the `K` most likely tokens (0: all)")
	topP := fs.Float64("top-p", 0, "sample among the most likely tokens whose probability reaches `P` (0: all)")
	seed := fs.Uint64("seed", 0, "sampling seed")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: tilelab generate -m FILE -p TEXT [-n N] [--temp 0] [--top-k K] [--top-p P] [--seed S] [-t THREADS]")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return err
	}
	if *ef.model == "" || *prompt == "" {
		fmt.Fprintln(stderr, "tilelab generate: -m FILE and -p TEXT are required")
		fs.Usage()
		return errUsage
	}
	if *n < 0 || *temp < 0 || *topK < 0 || *topP < 0 || *topP > 1 {
		fmt.Fprintln(stderr, "tilelab generate: -n, --temp and --top-k must not be negative, and --top-p lies in [0,1]")
		return errUsage
	}
	if err := ef.check("generate", stderr); err != nil {
		return err
	}
	eng, closeAll, err := ef.open()
	if err != nil {
		return err
	}
	defer closeAll()
	m, tok := eng.m, eng.tok
	ids := tok.Encode(*prompt, true)
	if len(ids) == 0 {
		return fmt.Errorf("the prompt %q has no tokens", *prompt)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	out := utf8Stream{w: stdout}
	fmt.Fprint(stdout, *prompt)
	s := &model.Sampler{Temp: float32(*temp), TopK: *topK, TopP: float32(*topP), Seed: *seed}
	st, err := m.Generate(ctx, ids, *n, s, func(id int32) error {
		if tok.IsEOG(id) {
			return model.ErrStop
		}
		return out.write(tok.TokenBytes(id))
	})
	out.flush()
	fmt.Fprintln(stdout)
	if err != nil {
		return err
	}
	if eng.amxEmulated {
		// DESIGN.md: the emulator is for correctness only, so its speed is never reported.
		fmt.Fprintf(stderr, "prompt: %d tokens; generation: %d tokens (no AMX here: tiles ran in the emulator, which is for correctness only, so no rates)\n",
			st.PromptTokens, st.GenTokens)
		return nil
	}
	kernels := "fast kernels"
	if *ef.reference {
		kernels = "reference kernels"
	}
	fmt.Fprintf(stderr, "prompt: %d tokens, %.2f tok/s; generation: %d tokens, %.2f tok/s (%s, %s, %d threads)\n",
		st.PromptTokens, st.PromptRate(), st.GenTokens, st.GenRate(), kernels, m.Plan.Options, eng.threads)
	return nil
}

// utf8Stream writes token bytes as they come but holds back a trailing incomplete UTF-8 sequence, so a character
// split over two tokens is printed whole.
type utf8Stream struct {
	w       io.Writer
	pending []byte
}

func (u *utf8Stream) write(b []byte) error {
	u.pending = append(u.pending, b...)
	cut := completePrefix(u.pending)
	if cut == 0 {
		return nil
	}
	if _, err := u.w.Write(u.pending[:cut]); err != nil {
		return err
	}
	u.pending = append(u.pending[:0], u.pending[cut:]...)
	return nil
}

// flush writes whatever is held back, even if it never became valid UTF-8.
func (u *utf8Stream) flush() {
	if len(u.pending) > 0 {
		u.w.Write(u.pending)
		u.pending = u.pending[:0]
	}
}

// completePrefix is the length of b without a trailing, still incomplete, multi-byte sequence. Invalid bytes that
// can never complete are not held back.
func completePrefix(b []byte) int {
	// A UTF-8 sequence is at most 4 bytes, so only the last 3 can belong to an unfinished one.
	for i := len(b) - 1; i >= 0 && i >= len(b)-3; i-- {
		if c := b[i]; c < 0x80 || c >= 0xC0 { // ASCII or a lead byte: the last sequence starts here
			if !utf8.FullRune(b[i:]) {
				return i
			}
			return len(b)
		}
	}
	return len(b)
}
