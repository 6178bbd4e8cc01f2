package workbench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"tilelab/engine/gguf"
	"tilelab/engine/synth"
	"tilelab/engine/tensor"
	"tilelab/workbench/lang"
	"tilelab/workbench/result"
)

func init() {
	registry["synth"].run = runSynth
}

func presets() []string { return synth.Presets() }

// synthOptions checks a preset and builds its options; errors point at the parameter that is wrong.
func (c *ctxCall) synthOptions(param, preset, quant string, layers int) (synth.Options, error) {
	if _, err := synth.Lookup(preset); err != nil {
		e := c.errAt(param, "", "unknown preset '%s'", preset)
		if le, ok := e.(*lang.Error); ok {
			if n := lang.Nearest(preset, presets()); n != "" {
				le.Hint = fmt.Sprintf("did you mean 'synth:%s'?", n)
			} else {
				le.Hint = "presets: " + strings.Join(presets(), ", ")
			}
		}
		return synth.Options{}, e
	}
	q := tensor.Q4_0
	if quant != "" {
		var err error
		if q, err = synth.ParseQuant(quant); err != nil {
			return synth.Options{}, c.errAt("quant", "", "%v", err)
		}
	}
	return synth.Options{Quant: q, Layers: layers, Seed: uint64(c.s.settings.Seed)}, nil
}

// synthHeader builds a preset's metadata in memory, so a plan of a 30B model reads and writes nothing.
func (c *ctxCall) synthHeader(param, preset, quant string, layers int) (*gguf.File, string, error) {
	o, err := c.synthOptions(param, preset, quant, layers)
	if err != nil {
		return nil, "", err
	}
	f, err := synth.Header(preset, o)
	if err != nil {
		return nil, "", c.errAt(param, "", "synth:%s: %v", preset, err)
	}
	return f, fmt.Sprintf("synth:%s (%s, %s)", preset, f.Architecture(), o.Quant), nil
}

// synthCached generates a preset into the cache folder once and returns its path and a model name. The file
// name holds everything that shapes the weights, so a different quant or seed is a different file.
func (c *ctxCall) synthCached(param, preset, quant string, layers int) (string, string, error) {
	o, err := c.synthOptions(param, preset, quant, layers)
	if err != nil {
		return "", "", err
	}
	name := fmt.Sprintf("%s-%s", preset, o.Quant)
	if layers > 0 {
		name += fmt.Sprintf("-l%d", layers)
	}
	path := filepath.Join(c.s.opts.CacheDir, "synth", fmt.Sprintf("%s-seed%d.gguf", name, o.Seed))
	if _, err := os.Stat(path); err == nil {
		return path, preset, nil
	}
	if err := c.writeSynth(path, preset, o); err != nil {
		if c.ctx.Err() != nil {
			return "", "", err
		}
		return "", "", c.errAt(param, "", "generating synth:%s: %v", preset, err)
	}
	return path, preset, nil
}

// writeSynth writes a preset through a temporary file, so an interrupted write never leaves a truncated model
// in the cache, and shows progress as it goes. The temporary name is unique: two sessions (two notebooks, or
// parallel test runs) generating the same cached model must not truncate each other's file mid-write.
func (c *ctxCall) writeSynth(path, preset string, o synth.Options) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	prog := c.progress("synth " + preset)
	o.Progress = func(done, total int64) {
		prog.step(int(done>>20), int(total>>20), "MiB")
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".partial-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = synth.Write(ctxWriter{c.ctx, f}, preset, o)
	if err == nil {
		err = f.Chmod(0o644) // CreateTemp makes it private; a model file is as readable as any other output
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		if c.ctx.Err() != nil {
			prog.done("interrupted")
			return interrupted(c.ctx.Err())
		}
		prog.done("failed")
		return err
	}
	prog.done("written")
	return os.Rename(tmp, path)
}

// ctxWriter fails writes once ctx is done, so an interrupt stops a many-gigabyte synthetic model mid-file.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (w ctxWriter) Write(p []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	return w.w.Write(p)
}

func runSynth(c *ctxCall) error {
	preset := strings.TrimPrefix(c.Str("preset"), "synth:")
	o, err := c.synthOptions("preset", preset, c.Str("quant"), c.Int("layers"))
	if err != nil {
		return err
	}
	if c.Has("seed") {
		o.Seed = uint64(c.Int("seed"))
	}
	if c.Has("vocab") {
		o.Vocab = c.path(c.Str("vocab"))
		if _, err := os.Stat(o.Vocab); err != nil {
			return c.errAt("vocab", "give a GGUF file that carries tokenizer.* keys", "cannot read vocab: %v", err)
		}
	}
	out := c.path(c.Str("out"))
	start := time.Now()
	if err := c.writeSynth(out, preset, o); err != nil {
		if c.ctx.Err() != nil {
			return err
		}
		return c.errAt("out", "", "cannot write %s: %v", c.Str("out"), err)
	}
	st, err := os.Stat(out)
	if err != nil {
		return err
	}
	shape, _ := synth.Lookup(preset)
	if o.Layers > 0 {
		shape.Layers = o.Layers
	}
	t := result.NewTable("synth "+preset, "preset", "shape", "quant", "file", "size:MiB", "took:s")
	t.Add(preset, shape.String(), o.Quant.String(), out, float64(st.Size())/(1<<20), time.Since(start).Seconds())
	c.emit(&Record{Tables: []*result.Table{t}, Context: map[string]any{"file": out, "seed": o.Seed}})
	return nil
}
