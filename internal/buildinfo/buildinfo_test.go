package buildinfo

import (
	"regexp"
	"testing"
)

func TestCommitIsARevisionOrSaysUnknown(t *testing.T) {
	c := Commit()
	if !regexp.MustCompile(`^([0-9a-f]{1,12}(\+dirty)?|unknown(\+dirty)?)$`).MatchString(c) {
		t.Fatalf("Commit() = %q, want 12 hex digits (optionally +dirty) or unknown", c)
	}
}
