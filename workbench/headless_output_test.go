package workbench

import (
	"strings"
	"testing"
	"time"
)

func TestTextOutputSendsProgressToStderrAndKeepsStdoutAReport(t *testing.T) {
	var stdout, stderr strings.Builder
	o := TextOutput{Stdout: &stdout, Stderr: &stderr}
	o.Display(textBundle("a table"), "")
	o.Display(textBundle("bench m: starting"), "progress-test-1")
	o.Update(textBundle("bench m: 1/4 pp512"), "progress-test-1") // too soon after the display
	o.Update(textBundle("line one\nline two"), "progress-test-1") // a partial table: never printed
	progressShown.Store("progress-test-1", time.Now().Add(-progressEvery))
	o.Update(textBundle("bench m: 2/4 tg128"), "progress-test-1")
	if got := stdout.String(); got != "a table\n" {
		t.Errorf("stdout = %q, want only the table", got)
	}
	if got, want := stderr.String(), "bench m: starting\nbench m: 2/4 tg128\n"; got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
}
