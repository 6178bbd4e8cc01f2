package workbench

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tilelab/kernel"
)

// loadedSession returns a session with the tiny Qwen3-MoE test model loaded as moe (AMX off).
func loadedSession(t *testing.T) *Session {
	t.Helper()
	s := newSession(t)
	mustExec(t, s, "load "+testdata(t, "models/tiny-qwen3moe-q4_0.gguf")+" as=moe threads=2 ctx=256")
	return s
}

func TestLoadAndModels(t *testing.T) {
	s := loadedSession(t)
	last := s.Last()
	if len(last.Tables) != 2 || last.Tables[0].Rows[0][0] != "moe" || last.Tables[0].Rows[0][1] != "qwen3moe" {
		t.Fatalf("load showed %v", last.Tables[0].Rows)
	}
	r := mustExec(t, s, "models")
	if !strings.Contains(r.text(), "moe   qwen3moe") {
		t.Errorf("models:\n%s", r.text())
	}
	if got, _, _ := s.Complete("placement m", 11); len(got) != 3 || got[0] != "moe" {
		t.Errorf("completion of a model name = %q, want moe first", got)
	}
}

func TestLoadErrors(t *testing.T) {
	s := newSession(t)
	os.WriteFile(filepath.Join(s.opts.Dir, "text.gguf"), []byte(strings.Repeat("not a model ", 20)), 0o644)
	model := testdata(t, "models/tiny-qwen3moe-q4_0.gguf")
	tests := []struct{ name, code, want string }{
		{"a missing file is named", "load nothere.gguf", "no such file: nothere.gguf"},
		{"a file that is not GGUF is refused", "load text.gguf", "cannot read text.gguf"},
		{"a folder is not a model", "load .", "is a folder"},
		{"GPU layers without a GPU are refused", "load " + model + " ngl=2", "cannot load"},
		{"quant does not apply to files", "load " + model + " quant=q8_0", "do not apply to the file"},
		{"a misspelt amx mode gets a suggestion", "load " + model + " amx=al", "did you mean 'all'?"},
		{"an empty name is refused, since commands read a missing name as the last model", "load " + model + ` as=""`, "a model needs a name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := exec(t, s, tt.code)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
	if len(s.models.order) != 0 || len(s.models.files) != 0 {
		t.Errorf("failed loads left models %v and files %d behind", s.models.order, len(s.models.files))
	}
}

func TestGenerateRefusesSamplingOutOfRange(t *testing.T) {
	s := loadedSession(t)
	tests := []struct{ name, code, want string }{
		{"a negative temperature is refused", `generate "x" temp=-1`, "bad value '-1' for temp: must be at least 0"},
		{"top_p above 1 is refused", `generate "x" top_p=2`, "bad value '2' for top_p: must be above 0 and at most 1"},
		{"top_p of 0 is refused", `generate "x" top_p=0`, "must be above 0 and at most 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := exec(t, s, tt.code); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestModelCommandsNeedAModel(t *testing.T) {
	for _, code := range []string{"placement", "buffers", "ops", "profile", `generate "hi"`} {
		t.Run(code+" without a model says to load one", func(t *testing.T) {
			_, err := exec(t, newSession(t), code)
			if err == nil || !strings.Contains(err.Error(), "no model is loaded; load one first") {
				t.Errorf("err = %v", err)
			}
		})
	}
}

func TestPlacementFilters(t *testing.T) {
	s := loadedSession(t)
	tests := []struct {
		code string
		rows int
	}{
		{"placement moe match=exps layer=0", 3},
		{"placement match=exps layer=0..1", 6},
		{"placement buffer=CPU match=output_norm", 1},
		{"placement buffer=AMX", 0},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			mustExec(t, s, tt.code)
			if got := len(s.Last().Tables[0].Rows); got != tt.rows {
				t.Errorf("%d rows, want %d", got, tt.rows)
			}
		})
	}
}

func TestUnknownModelSuggests(t *testing.T) {
	s := loadedSession(t)
	_, err := exec(t, s, "buffers mo")
	if err == nil || !strings.Contains(err.Error(), "no model named 'mo' is loaded; did you mean 'moe'?") {
		t.Errorf("err = %v", err)
	}
}

func TestBuffersDrawsAChart(t *testing.T) {
	s := loadedSession(t)
	r := mustExec(t, s, "buffers")
	if len(s.Last().Charts) != 1 || !strings.Contains(r.bundles[len(r.bundles)-1].Data["image/svg+xml"].(string), "<svg") {
		t.Error("buffers drew no chart")
	}
}

func TestOpsTracesEveryOp(t *testing.T) {
	s := loadedSession(t)
	mustExec(t, s, "ops tokens=2")
	seen := map[string]bool{}
	for _, row := range s.Last().Tables[0].Rows {
		seen[row[0].(string)] = true
		if row[2] != "CPU" || row[4] == "" {
			t.Errorf("op row %v: want CPU with a reason", row)
		}
	}
	for _, op := range []string{"MUL_MAT", "MUL_MAT_ID", "RMS_NORM", "GET_ROWS"} {
		if !seen[op] {
			t.Errorf("ops lacks %s", op)
		}
	}
	if _, err := exec(t, s, "ops tokens=100000"); err == nil || !strings.Contains(err.Error(), "more than the model's batch") {
		t.Errorf("a batch too large: err = %v", err)
	}
}

func TestGenerateStreams(t *testing.T) {
	s := loadedSession(t)
	r := mustExec(t, s, `generate "Once upon a time" n=4`)
	if len(r.events) < 3 || r.events[0] != "stdout: Once upon a time" {
		t.Fatalf("events %q", r.events)
	}
	row := s.Last().Tables[0].Rows[0]
	if row[0] != 4 || row[2].(int) < 1 {
		t.Errorf("generate stats %v: want 4 prompt tokens and some generated", row)
	}
}

func TestProfileShares(t *testing.T) {
	s := loadedSession(t)
	for _, code := range []string{"profile pp=8 by=op", "profile tg=2 by=kernel", "profile pp=4 tg=2 by=backend"} {
		t.Run(code+" shares add up to 100%", func(t *testing.T) {
			mustExec(t, s, code)
			var sum float64
			for _, row := range s.Last().Tables[0].Rows {
				sum += row[3].(float64)
			}
			if sum < 99.9 || sum > 100.1 {
				t.Errorf("shares add up to %.2f%%", sum)
			}
		})
	}
}

func TestProfileShowsTheAMXPeakColumnOnlyWithSomethingInIt(t *testing.T) {
	s := loadedSession(t)
	// Grouped by op, no row is pure tile work, so the column would be empty on any machine.
	mustExec(t, s, "profile pp=8 by=op")
	tab := s.Last().Tables[0]
	for _, c := range tab.Columns {
		if strings.HasPrefix(c.Name, "AMX peak") {
			t.Errorf("profile by op has an always-empty column %q", c.Name)
		}
	}
	if n := len(tab.Columns); n != len(tab.Rows[0]) {
		t.Errorf("%d columns for rows of %d cells", n, len(tab.Rows[0]))
	}
}

func TestProfileAccountingDoesNotClaimZeroOverhead(t *testing.T) {
	s := loadedSession(t)
	mustExec(t, s, "profile pp=8")
	notes := strings.Join(s.Last().Tables[0].Notes, "\n")
	if strings.Contains(notes, "overhead 0s") || !strings.Contains(notes, "the rest is outside the ops") {
		t.Errorf("notes:\n%s", notes)
	}
}

func TestProfileInterrupted(t *testing.T) {
	s := loadedSession(t)
	ctx, cancel := context.WithCancel(context.Background())
	r := &recorder{}
	cancel()
	err := s.run(ctx, mustStmt(t, "profile tg=4"), "profile tg=4", r, &scope{vars: s.vars})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	// The session is still usable.
	mustExec(t, s, "profile pp=2")
}

// cancelOnUpdate interrupts the cell at the first progress update whose text contains at.
type cancelOnUpdate struct {
	recorder
	at     string
	cancel context.CancelFunc
}

func (r *cancelOnUpdate) Update(b kernel.Bundle, id string) {
	r.recorder.Update(b, id)
	if txt, _ := b.Data["text/plain"].(string); strings.Contains(txt, r.at) {
		r.cancel()
	}
}

func TestProfileInterruptedKeepsTheTokensItMeasured(t *testing.T) {
	s := loadedSession(t)
	ctx, cancel := context.WithCancel(context.Background())
	r := &cancelOnUpdate{at: "1/8 tokens", cancel: cancel}
	err := s.run(ctx, mustStmt(t, "profile tg=8"), "profile tg=8", r, &scope{vars: s.vars})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	last := s.Last()
	if last == nil || !last.Partial || !strings.Contains(last.Command, "profile") {
		t.Fatalf("the interrupted profile kept %+v", last)
	}
	if notes := strings.Join(last.Tables[0].Notes, " "); !strings.Contains(notes, "interrupted: 1 of 8 generated tokens measured") {
		t.Errorf("notes %q", notes)
	}
	if len(last.Tables[0].Rows) == 0 {
		t.Error("the measured token's ops are missing")
	}
}

func TestCompareAndUnload(t *testing.T) {
	s := loadedSession(t)
	model := testdata(t, "models/tiny-qwen3moe-q4_0.gguf")
	mustExec(t, s, "load "+model+" as=attn amx=attn threads=1")
	mustExec(t, s, "compare placement a=moe b=attn")
	rows := s.Last().Tables[0].Rows
	if len(rows) != 16 { // 4 layers × q, k, v, output
		t.Errorf("%d tensors moved, want the 16 attention projections", len(rows))
	}
	for _, row := range rows {
		if row[2] != "CPU" || row[3] != "AMX" || !strings.Contains(row[0].(string), "attn_") {
			t.Errorf("move %v", row)
		}
	}
	mustExec(t, s, "unload attn\nunload moe")
	if len(s.models.order) != 0 || len(s.models.files) != 0 {
		t.Errorf("unload left %v and %d files", s.models.order, len(s.models.files))
	}
}
