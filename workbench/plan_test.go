package workbench

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	testdataset "tilelab/internal/testdata"
)

// testdata finds ../shared/testdata beside the module root, or $TILELAB_TESTDATA.
func testdata(t *testing.T, rel string) string {
	t.Helper()
	return testdataset.Path(t, rel)
}

func TestPlanFile(t *testing.T) {
	model := testdata(t, "models/tiny-qwen3moe-q4_0.gguf")
	s := newSession(t)
	r := mustExec(t, s, "plan "+model+" amx=off ngl=0,2")
	last := s.Last()
	if last == nil || len(last.Tables) != 1 || len(last.Charts) != 1 {
		t.Fatalf("plan kept %+v", last)
	}
	txt := r.text()
	for _, want := range []string{"amx=off ngl=0 ", "amx=off ngl=2 gpu=on", "CUDA0", "CUDA_Host", "CPU"} {
		if !strings.Contains(txt, want) {
			t.Errorf("plan output lacks %q:\n%s", want, txt)
		}
	}
	// Every plan holds the whole model: the sizes of each plan's buffer types add up to the same total.
	sums := map[string]float64{}
	for _, row := range last.Tables[0].Rows {
		sums[row[0].(string)] += row[3].(float64)
	}
	if len(sums) != 2 || sums["amx=off ngl=0"] != sums["amx=off ngl=2 gpu=on"] {
		t.Errorf("plans hold different totals: %v", sums)
	}
	if _, ok := r.bundles[len(r.bundles)-1].Data["image/svg+xml"]; !ok {
		t.Error("plan drew no chart")
	}
}

func TestPlanTensors(t *testing.T) {
	model := testdata(t, "models/tiny-qwen3moe-q4_0.gguf")
	s := newSession(t)
	mustExec(t, s, "plan "+model+" amx=off tensors=on")
	tables := s.Last().Tables
	if len(tables) != 2 || len(tables[1].Rows) < 10 {
		t.Fatalf("tensors=on gave %d tables", len(tables))
	}
	for _, row := range tables[1].Rows {
		if row[5] != "CPU" || row[7] == "" {
			t.Errorf("tensor %v: want CPU with a reason", row)
		}
	}
}

func TestPlanErrors(t *testing.T) {
	s := newSession(t)
	notGGUF := filepath.Join(s.opts.Dir, "notes.gguf")
	os.WriteFile(notGGUF, []byte("this is not a model, just some text long enough to read"), 0o644)
	model := testdata(t, "models/tiny-qwen3moe-q4_0.gguf")
	tests := []struct{ name, code, want string }{
		{"a missing file is named", "plan nothere.gguf amx=off", "no such file: nothere.gguf"},
		{"a file that is not GGUF is refused", "plan notes.gguf amx=off", "cannot read notes.gguf"},
		{"quant does not apply to files", "plan " + model + " amx=off quant=q8_0", "quant= and layers= do not apply"},
		{"a bad amx mode gets a suggestion", "plan " + model + " amx=attention", "did you mean 'attn'?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := exec(t, s, tt.code)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestPlanOfSeveralQuantsIsTitledForAll(t *testing.T) {
	s := newSession(t)
	mustExec(t, s, "plan synth:tiny-moe quant=q4_0,q8_0")
	title := s.Last().Tables[0].Title
	if strings.Contains(title, "q8_0") || !strings.Contains(title, "synth:tiny-moe (qwen3moe)") {
		t.Errorf("title %q names one quant of two (the rows name each)", title)
	}
	var quants []string
	for _, row := range s.Last().Tables[0].Rows {
		quants = append(quants, strings.Fields(row[0].(string))[0])
	}
	if !slices.Contains(quants, "q4_0") || !slices.Contains(quants, "q8_0") {
		t.Errorf("rows are labelled %v, want both quants", quants)
	}
}
