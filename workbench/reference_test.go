package workbench

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated command reference in docs/language.md")

const (
	refBegin = "<!-- BEGIN GENERATED REFERENCE: go test ./workbench -run TestLanguageDoc -update -->\n"
	refEnd   = "<!-- END GENERATED REFERENCE -->\n"
)

// TestLanguageDoc keeps docs/language.md's command reference equal to what the declarations say.
func TestLanguageDoc(t *testing.T) {
	path := filepath.Join("..", "docs", "language.md")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	i, j := strings.Index(doc, refBegin), strings.Index(doc, refEnd)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the generated reference markers", path)
	}
	want := doc[:i+len(refBegin)] + "\n" + Reference() + doc[j:]
	if want == doc {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s is out of date with the command declarations; run: go test ./workbench -run TestLanguageDoc -update", path)
}

// TestReferenceTablesHaveFourColumns guards the Markdown: a bare '|' in a cell (a kind like on|off) splits it
// into an extra column, and renderers then drop or shift cells.
func TestReferenceTablesHaveFourColumns(t *testing.T) {
	bare := regexp.MustCompile(`(^|[^\\])\|`)
	for _, line := range strings.Split(Reference(), "\n") {
		if !strings.HasPrefix(line, "|") {
			continue
		}
		if n := len(bare.FindAllString(line, -1)); n != 5 {
			t.Errorf("table row with %d cell separators, want 5: %s", n, line)
		}
	}
}
