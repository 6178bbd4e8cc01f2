package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"tilelab/engine/bench"
	"tilelab/engine/bench/hw"
	"tilelab/engine/tensor"
)

func init() {
	register("bench", "measure prompt (pp) and generation (tg) tok/s per mode, as llama-bench does", runBench)
}

// intList is a flag holding a comma-separated list of non-negative integers ("128,512").
type intList []int

// String joins the list with commas, as flag.Value requires for printing defaults.
func (l *intList) String() string {
	s := make([]string, len(*l))
	for i, v := range *l {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ",")
}

// Set replaces the list with the comma-separated integers of v (a repeated flag does not append).
func (l *intList) Set(v string) error {
	*l = nil
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return fmt.Errorf("%q is not a non-negative integer", f)
		}
		*l = append(*l, n)
	}
	return nil
}

func runBench(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	models := fs.String("m", "", "GGUF `FILE`s, comma-separated")
	prompt, gen, threads, ngl := intList{512}, intList{128}, intList{}, intList{}
	fs.Var(&prompt, "p", "prompt sizes: one pp test per `N` (comma list; 0 for none)")
	fs.Var(&gen, "n", "generation lengths: one tg test per `N` (comma list; 0 for none)")
	fs.Var(&threads, "t", "CPU threads (comma list; default one per CPU the process may use)")
	fs.Var(&ngl, "ngl", "layers offloaded in the GPU modes (comma list; default a quarter of the layers)")
	reps := fs.Int("r", 5, "timed repetitions of each test")
	modes := fs.String("mode", "cpu", "modes, comma-separated: cpu, cpu+amx, cpu+gpu, cpu+gpu+amx, or all")
	amxPolicy := fs.String("amx", "all", "weights offered to AMX in the AMX modes: all or attn (the seed's attention-only set)")
	kvType := fs.String("kv", "f32", "the KV cache's element type: f32 or f16 (llama-bench's -ctk/-ctv)")
	format := fs.String("format", "md", "output format: md, json or csv")
	out := fs.String("o", "", "write the result to `FILE` (default standard output)")
	jsonOut := fs.String("json", "", "also write the result as JSON, raw repetitions included, to `FILE`")
	noWarm := fs.Bool("no-warmup", false, "skip the warm-up run of each test")
	quiet := fs.Bool("q", false, "no progress lines on standard error")
	cpuProfile := fs.String("cpuprofile", "", "write a Go CPU profile of the whole run to `FILE` (for go tool pprof)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: tilelab bench -m FILE [-p 512] [-n 128] [-r 5] [-t THREADS] [--mode cpu,cpu+amx,cpu+gpu,cpu+gpu+amx]")
		fmt.Fprintln(stderr, "                     [--amx all|attn] [--ngl N] [--kv f32|f16] [--format md|json|csv] [-o FILE]")
		fmt.Fprintln(stderr, "\nllama-bench's tests: ppN evaluates N random tokens in one batch, tgN generates N tokens one at a")
		fmt.Fprintln(stderr, "time; each runs once to warm up, then -r times from an empty KV cache (sized p+n). Lists run every")
		fmt.Fprintln(stderr, "combination. A mode this machine cannot run is a row saying why. Ctrl-C keeps what was measured.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return err
	}
	if *models == "" {
		fmt.Fprintln(stderr, "tilelab bench: -m FILE is required")
		fs.Usage()
		return errUsage
	}
	ms, err := bench.ParseModes(*modes)
	if err != nil {
		fmt.Fprintf(stderr, "tilelab bench: --mode: %v\n", err)
		return errUsage
	}
	if *format != "md" && *format != "json" && *format != "csv" {
		fmt.Fprintf(stderr, "tilelab bench: --format %q: want md, json or csv\n", *format)
		return errUsage
	}
	if *reps < 1 {
		// bench.Config reads 0 as its default of 5, which would run five repetitions when none were asked for.
		fmt.Fprintf(stderr, "tilelab bench: -r %d: want at least one repetition\n", *reps)
		return errUsage
	}
	if *amxPolicy != "all" && *amxPolicy != "attn" {
		fmt.Fprintf(stderr, "tilelab bench: --amx %q: want all or attn\n", *amxPolicy)
		return errUsage
	}
	kv, err := tensor.ParseDType(*kvType)
	if err != nil || (kv != tensor.F32 && kv != tensor.F16) {
		fmt.Fprintf(stderr, "tilelab bench: --kv %q: want f32 or f16\n", *kvType)
		return errUsage
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var lastLoad time.Time
	progress := func(p bench.Progress) {
		if *quiet {
			return
		}
		if l := p.Load; l != nil {
			// A line every few seconds: repacking a large model's experts takes tens of seconds.
			if l.Done == l.Total || time.Since(lastLoad) > 3*time.Second {
				lastLoad = time.Now()
				fmt.Fprintf(stderr, "%s t=%d: converting weights for amx=%s: %.2f of %.2f GiB\n", l.Mode, l.Threads, l.AMX,
					float64(l.Done)/(1<<30), float64(l.Total)/(1<<30))
			}
			return
		}
		r := p.Row
		switch {
		case r.Skipped != "":
			fmt.Fprintf(stderr, "%s %s: skipped: %s\n", r.Mode, r.Test, r.Skipped)
		case p.Rep == 0:
			fmt.Fprintf(stderr, "%s t=%d %s: warm-up %.3fs\n", r.Mode, r.Threads, r.Test, p.Elapsed.Seconds())
		default:
			fmt.Fprintf(stderr, "%s t=%d %s: rep %d/%d %.2f tok/s\n", r.Mode, r.Threads, r.Test, p.Rep, p.Of, r.SamplesT[len(r.SamplesT)-1])
		}
	}
	total := &bench.Result{}
	var runErr error
	for _, m := range strings.Split(*models, ",") {
		res, err := bench.Run(ctx, bench.Config{Model: m, Prompt: prompt, Gen: gen, Reps: *reps, Threads: threads,
			Modes: ms, AMX: *amxPolicy, NGL: ngl, KV: kv, NoWarm: *noWarm, Setup: hw.Setup}, progress)
		if res != nil {
			total.Env = res.Env
			total.Rows = append(total.Rows, res.Rows...)
		}
		if err != nil {
			runErr = err
			break
		}
	}
	if len(total.Rows) > 0 {
		w := stdout
		if *out != "" {
			f, err := os.Create(*out)
			if err != nil {
				return err
			}
			defer f.Close()
			w = f
		}
		if err := total.Write(w, *format); err != nil {
			return err
		}
		if *jsonOut != "" {
			f, err := os.Create(*jsonOut)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := total.WriteJSON(f); err != nil {
				return err
			}
		}
	}
	if errors.Is(runErr, context.Canceled) {
		where := "above"
		if *out != "" {
			where = "in " + *out
		}
		return fmt.Errorf("interrupted; the repetitions measured so far are %s", where)
	}
	return runErr
}
