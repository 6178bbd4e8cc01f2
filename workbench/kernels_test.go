package workbench

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"tilelab/amx"
)

func TestMatmulMeasuresErrorEverywhere(t *testing.T) {
	s := newSession(t)
	mustExec(t, s, "set reps=2 warmup=0 threads=2\nmatmul m=1,5 n=64 k=256 type=q8_0,q4_0,bf16,f32 backend=cpu,amx")
	rows := s.Last().Tables[0].Rows
	if len(rows) != 16 {
		t.Fatalf("%d rows, want 2 m × 4 types × 2 backends", len(rows))
	}
	usable := amx.Detect().Usable
	for _, r := range rows {
		typ, be, note := r[0].(string), r[1].(string), r[11].(string)
		name := typ + "/" + be
		if be == "amx" && typ == "f32" {
			if !strings.Contains(note, "AMX does not take it") {
				t.Errorf("%s: note %q", name, note)
			}
			continue
		}
		rel, ok := r[10].(float64)
		// Quantized activations (the fast paths use Q8_0 like llama.cpp) keep the error well under 2%.
		if !ok || rel > 0.02 {
			t.Errorf("%s: relative error %v against the reference", name, r[10])
		}
		if be == "amx" && !usable {
			if r[5] != nil || note != amx.ErrEmulated.Error() {
				t.Errorf("%s: the emulator was timed (%v) or not flagged (%q)", name, r[5], note)
			}
		} else if _, ok := r[5].(interface{ String() string }); !ok {
			t.Errorf("%s: no time (%v, %q)", name, r[5], note)
		}
	}
	if len(s.Last().Charts) != 1 {
		t.Error("matmul drew no line chart")
	}
}

func TestMatmulErrors(t *testing.T) {
	tests := []struct{ name, code, want string }{
		{"k must hold whole blocks", "matmul m=1 n=32 k=48 type=q8_0 backend=cpu", "not a multiple of the q8_0 block"},
		{"a bad tile is explained", `matmul m=1 n=32 k=64 tile="99x64 2x2"`, "bad tile configuration"},
		{"an unknown backend gets a suggestion", "matmul backend=amd", "did you mean 'amx'?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := exec(t, newSession(t), "set reps=1 warmup=0\n"+tt.code)
			got := ""
			if err != nil {
				got = err.Error()
			} else {
				got = r.text()
			}
			if !strings.Contains(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTiles(t *testing.T) {
	s := newSession(t)
	mustExec(t, s, "set reps=1 warmup=0\ntiles m=32 n=64 k=128 rows=8,16 kstep=64 acc=2x2,1x4")
	rows := s.Last().Tables[0].Rows
	if len(rows) != 4 {
		t.Fatalf("%d configurations, want 4", len(rows))
	}
	if !amx.Detect().Usable {
		for _, r := range rows {
			if r[9] != amx.ErrEmulated.Error() || r[5] != nil {
				t.Errorf("row %v: the emulator must not be timed", r)
			}
		}
	}
	for _, tt := range []struct{ code, want string }{
		{"tiles acc=2by2", "bad accumulator layout '2by2'"},
		{"tiles acc=4x4", "tile configuration"},
		{"tiles rows=17", "must be between 1 and 16"},
		{"tiles type=bf16 kblock=64", "keep the whole K"},
	} {
		t.Run(tt.code+" is refused", func(t *testing.T) {
			_, err := exec(t, s, tt.code)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestParseAcc(t *testing.T) {
	for _, tt := range []struct {
		in     string
		mt, nt int
		ok     bool
	}{{"2x2", 2, 2, true}, {"1x4", 1, 4, true}, {"4x1", 4, 1, true}, {"0x4", 0, 0, false}, {"x", 0, 0, false}, {"22", 0, 0, false}} {
		mt, nt, ok := parseAcc(tt.in)
		if mt != tt.mt || nt != tt.nt || ok != tt.ok {
			t.Errorf("parseAcc(%q) = %d, %d, %v", tt.in, mt, nt, ok)
		}
	}
}

func TestSetTileValidates(t *testing.T) {
	s := newSession(t)
	mustExec(t, s, `set tile="16x64 1x4 g32"`)
	if s.settings.Tile != "16x64 1x4 g32" {
		t.Errorf("tile = %q", s.settings.Tile)
	}
	if _, err := exec(t, s, `set tile="banana"`); err == nil || !strings.Contains(err.Error(), "bad value 'banana' for tile") {
		t.Errorf("err = %v", err)
	}
}

func TestCalibrateWithoutAMXIsAResult(t *testing.T) {
	defer func(d func() amx.Status) { amxDetect = d }(amxDetect)
	amxDetect = func() amx.Status { return amx.Status{Reason: "no AMX: injected"} }
	dir := t.TempDir()
	stored := amx.Calibration{CPU: "Intel Xeon (elsewhere)", When: "2026-11-20 10:00 UTC", Threads: 16, Config: "int8 16x64", Threshold: 24, ThresholdBF16: 48,
		Against: "CPU mode's kernel on the plain bytes",
		Points:  []amx.CalPoint{{Type: "q8_0", Shape: "1x4096x4096", TileUs: 90, VecUs: 40, Faster: "cpu", TileGop: 370, VecGop: 830, Kernel: "avx512-vnni (m < 24, plain q8_0)"}}}
	data, err := json.Marshal(stored)
	if err != nil {
		t.Fatal(err)
	}
	good, bad := filepath.Join(dir, "good.json"), filepath.Join(dir, "bad.json")
	os.WriteFile(good, data, 0o644)
	os.WriteFile(bad, []byte("{not json"), 0o644)
	const why = "no AMX here; emulator is for correctness only (no AMX: injected)"
	tests := []struct {
		name, file string
		rows       [][2]string // type and note of each row
		notes      []string
	}{
		{"with nothing stored, each type is a row saying why", filepath.Join(dir, "none.json"),
			[][2]string{{"q4_0", why}, {"q8_0", why}}, []string{"not measured: " + why, "no calibration is stored in"}},
		{"a stored calibration is shown, with where and when it was measured", good,
			[][2]string{{"q8_0", "stored 2026-11-20 10:00 UTC"}, {"q4_0", why}}, []string{"not measured: " + why, "measured 2026-11-20 10:00 UTC on Intel Xeon (elsewhere)", "from 24 rows, bf16 from 48", "timed against CPU mode's kernel"}},
		{"an unreadable stored calibration is named, not fatal", bad,
			[][2]string{{"q4_0", why}, {"q8_0", why}}, []string{"not valid JSON"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("TILELAB_AMX_CALIBRATION", tt.file)
			s := newSession(t)
			r := mustExec(t, s, "calibrate amx types=q4_0,q8_0\nprint after")
			if ev := r.events[len(r.events)-1]; ev != "stdout: after\n" {
				t.Errorf("the cell did not go on after calibrate: last event %q", ev)
			}
			tab := s.Last().Tables[0]
			var got [][2]string
			for _, row := range tab.Rows {
				got = append(got, [2]string{row[0].(string), row[len(row)-1].(string)})
			}
			if tt.file == good && tab.Rows[0][7] != "avx512-vnni" {
				t.Errorf("the stored point's cpu kernel is %v, want avx512-vnni", tab.Rows[0][7])
			}
			if !reflect.DeepEqual(got, tt.rows) {
				t.Errorf("rows (type, note) = %q, want %q", got, tt.rows)
			}
			notes := strings.Join(tab.Notes, "\n")
			for _, n := range tt.notes {
				if !strings.Contains(notes, n) {
					t.Errorf("notes %q lack %q", notes, n)
				}
			}
		})
	}
	t.Run("help says it is not an error", func(t *testing.T) {
		r := mustExec(t, newSession(t), "help calibrate")
		if txt := strings.Join(strings.Fields(r.text()), " "); !strings.Contains(txt, "without usable AMX nothing is timed") {
			t.Errorf("help calibrate:\n%s", txt)
		}
	})
}

func TestWorkTooLargeForMemoryIsRefused(t *testing.T) {
	if _, ok := memTotalBytes(); !ok {
		t.Skip("no /proc/meminfo here: the guard cannot know the machine's memory, and these cases would exhaust it")
	}
	model := testdata(t, "models/tiny-qwen3moe-q4_0.gguf")
	tests := []struct{ name, code, want string }{
		{"a context whose KV cache cannot fit is an error pointing at ctx", "load " + model + " ctx=1G", "a KV cache of ctx=1073741824 tokens would take"},
		{"a matmul shape that cannot fit is a row saying so", "matmul m=1M n=1M k=1M type=q8_0 backend=cpu", "this shape would take"},
		{"a tiles shape that cannot fit is an error", "tiles m=1M n=1M k=1M", "this shape would take"},
		{"a bench test that cannot fit is an error pointing at pp", "load " + model + "\nbench pp=1G tg=1 mode=cpu", "a test of pp=1073741824 tg=1 would take"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSession(t)
			r, err := exec(t, s, "set reps=1 warmup=0\n"+tt.code)
			got := r.text()
			if err != nil {
				got = err.Error()
				var e *Error
				if errors.As(err, &e) && !strings.HasPrefix(e.Src[e.Col:], "1G") && !strings.HasPrefix(e.Src[e.Col:], "1M") {
					t.Errorf("the error points at %q, not at the value that is too large", e.Src[e.Col:])
				}
			}
			if !strings.Contains(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			mustExec(t, s, "get threads") // the session is still usable
		})
	}
}
