package amx

import (
	"strings"
	"testing"
)

func TestTileConfigParsesWhatItPrints(t *testing.T) {
	for _, c := range []TileConfig{DefaultConfig, {Rows: 8, KStep: 32, MT: 1, NT: 4, Group: 0}, {Rows: 16, KStep: 64, MT: 4, NT: 1, Group: 256, Chunk: 512}} {
		t.Run(c.String()+" round-trips", func(t *testing.T) {
			got, err := ParseTileConfig(c.String())
			if err != nil {
				t.Fatal(err)
			}
			if got != c {
				t.Fatalf("parsed %+v, want %+v", got, c)
			}
		})
	}
}

func TestTileConfigRejectsWhatTheKernelsCannotRun(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"17x64 2x2", "1 to 16 rows"},
		{"16x48 2x2", "32 or 64"},
		{"16x64 3x2", "arrangement 3x2"},
		{"16x64 2x2 g96", "group 96"},
		{"16x64 2x2 g32 c48", "chunk 48"},
		{"16x64", "want"},
		{"16x64 2x2 q32", "not a group"},
		{"16x64x3 2x2", `"16x64x3" is not ROWSxKSTEP`},
		{"16x64 2x2abc", `"2x2abc" is not an arrangement`},
		{"16x 2x2", `"16x" is not ROWSxKSTEP`},
		{"16x64 2x2 g32 c256 c512", "want"},
		{"16x64 2x2 c256", "not a group"},
		{"16x64 2x2 K", "not a group"},
	} {
		t.Run(c.in+" is refused naming "+c.want, func(t *testing.T) {
			got, err := ParseTileConfig(c.in)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one naming %q", err, c.want)
			}
			if got != (TileConfig{}) {
				t.Fatalf("a refused configuration came back as %+v, want the zero value", got)
			}
		})
	}
}
