package amx

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"tilelab/amx/internal/sched"
)

// TileConfig is how a tile kernel uses the eight tile registers. The workbench sweeps it; DefaultConfig is the
// best one measured on the accelerator machine (see NOTES.md).
type TileConfig struct {
	Rows  int // rows of activations (M) in each A and accumulator tile, 1..16
	KStep int // bytes of K each tile load covers, 32 or 64 (int8: that many K values; bf16: half as many)
	MT    int // accumulator tiles down (M)
	NT    int // accumulator tiles across (N); MT*NT <= 4
	// Group is how many K values (int8 only) stay in the accumulators before the weight and activation scales are
	// applied: 32 keeps the Q8_0/Q4_0 blocks exactly; a multiple of 64 requantizes weights at repacking to one
	// scale per Group values (fewer passes of scales, some precision lost); 0 keeps the whole K in the tiles. It
	// is fixed when weights are repacked, and a kernel uses the group of the weights it gets.
	Group int
	// Chunk is how many K values (bf16 only) stay in the accumulators before the partial sums go to memory and
	// the next row block takes the tiles, so one chunk of weights serves every row block of a call from L1:
	// 0 keeps the whole K in the tiles; otherwise a multiple of 32.
	Chunk int
}

// DefaultConfig is the tile configuration int8 kernels use unless told otherwise, and its Group the one weights
// are repacked with: the fastest int8 configuration of the sweep in NOTES.md among those that keep per-group
// scales (512 K values per scale rather than one per row).
var DefaultConfig = TileConfig{Rows: 16, KStep: 64, MT: 1, NT: 2, Group: 512}

// DefaultConfigBF16 is the tile configuration bf16 kernels use unless told otherwise: 1x2 with 256-value chunks,
// the int8 default's structure (one activation tile per two dot products from L2, a chunk of two weight panels,
// 16 KiB, reused from L1 by every row block). On the accelerator (NOTES.md, 2026-11-26 fourth part), against 2x1
// with the whole K (the default before, itself faster than 2x2 in 9 of 12 runs at 512x2048x4096): as fast with
// the weights in cache (1.454 against 1.521 ms, 1.407/1.421, 1.523/1.521, 1.419/1.429) and faster with them
// coming from memory, as in a prefill (2.085/2.102, 2.134/2.387, 1.973/2.567, 2.003/2.106; two hosts).
var DefaultConfigBF16 = TileConfig{Rows: 16, KStep: 64, MT: 1, NT: 2, Chunk: 256}

// String formats the configuration as ParseTileConfig reads it: "16x64 2x2 g32" (rows x K-step bytes,
// arrangement, group; "gK" for the whole K), with " c256" when a bf16 chunk is set.
func (c TileConfig) String() string {
	g := "gK"
	if c.Group > 0 {
		g = "g" + strconv.Itoa(c.Group)
	}
	s := fmt.Sprintf("%dx%d %dx%d %s", c.Rows, c.KStep, c.MT, c.NT, g)
	if c.Chunk > 0 {
		s += " c" + strconv.Itoa(c.Chunk)
	}
	return s
}

// bf16String is the part of the configuration a bf16 kernel uses.
func (c TileConfig) bf16String() string {
	s := fmt.Sprintf("%dx%d %dx%d", c.Rows, c.KStep, c.MT, c.NT)
	if c.Chunk > 0 {
		s += " c" + strconv.Itoa(c.Chunk)
	}
	return s
}

// ParseTileConfig reads "16x64 2x2 g32 c256"; the group may be left out (then 32), and the chunk (then 0). Every
// field must be read whole ("16x64x3" is an error, not 16x64), and a configuration the kernels cannot run is an
// error naming the field; on error the configuration returned is the zero value.
func ParseTileConfig(s string) (TileConfig, error) {
	c, err := parseTileConfig(s)
	if err == nil {
		err = c.Validate()
	}
	if err != nil {
		return TileConfig{}, fmt.Errorf("tile configuration %q: %w", s, err)
	}
	return c, nil
}

func parseTileConfig(s string) (TileConfig, error) {
	var c TileConfig
	f := strings.Fields(s)
	if len(f) < 2 || len(f) > 4 {
		return c, errors.New(`want "ROWSxKSTEP MTxNT [gGROUP [cCHUNK]]", e.g. "16x64 2x2 g32"`)
	}
	var ok bool
	if c.Rows, c.KStep, ok = pairOf(f[0]); !ok {
		return c, fmt.Errorf("%q is not ROWSxKSTEP such as 16x64", f[0])
	}
	if c.MT, c.NT, ok = pairOf(f[1]); !ok {
		return c, fmt.Errorf("%q is not an arrangement such as 2x2", f[1])
	}
	c.Group = 32
	if len(f) >= 3 {
		g, isGroup := strings.CutPrefix(f[2], "g")
		n, err := strconv.Atoi(g)
		switch {
		case isGroup && (g == "K" || g == "k"):
			c.Group = 0
		case isGroup && err == nil:
			c.Group = n
		default:
			return c, fmt.Errorf("%q is not a group such as g32, g256 or gK", f[2])
		}
	}
	if len(f) == 4 {
		ch, isChunk := strings.CutPrefix(f[3], "c")
		n, err := strconv.Atoi(ch)
		if !isChunk || err != nil {
			return c, fmt.Errorf("%q is not a bf16 chunk such as c256", f[3])
		}
		c.Chunk = n
	}
	return c, nil
}

// pairOf reads "AxB" as two whole integers.
func pairOf(s string) (a, b int, ok bool) {
	x, y, found := strings.Cut(s, "x")
	a, errA := strconv.Atoi(x)
	b, errB := strconv.Atoi(y)
	return a, b, found && errA == nil && errB == nil
}

// Validate reports the first field the kernels cannot use.
func (c TileConfig) Validate() error {
	if c.Rows < 1 || c.Rows > 16 {
		return fmt.Errorf("tile rows %d: a tile has 1 to 16 rows", c.Rows)
	}
	if c.KStep != 32 && c.KStep != 64 {
		return fmt.Errorf("K step %d bytes: the kernels take 32 or 64", c.KStep)
	}
	found := false
	for _, a := range sched.Arrangements {
		if a == [2]int{c.MT, c.NT} {
			found = true
		}
	}
	if !found {
		return fmt.Errorf("arrangement %dx%d: the kernels are built for %s", c.MT, c.NT, arrangementList())
	}
	if err := checkGroup(c.Group); err != nil {
		return err
	}
	if c.Chunk < 0 || c.Chunk%32 != 0 {
		return fmt.Errorf("bf16 chunk %d: want a multiple of 32, or 0 (whole K)", c.Chunk)
	}
	return nil
}

// checkGroup refuses an int8 scale group the kernels cannot step through: they load 32 or 64 bytes of K at a time
// and the activation quantizer works in runs of 16.
func checkGroup(g int) error {
	if g != 0 && g != 32 && (g < 64 || g%64 != 0) {
		return fmt.Errorf("group %d: want 32, a multiple of 64, or 0 (whole K)", g)
	}
	return nil
}

func arrangementList() string {
	var s []string
	for _, a := range sched.Arrangements {
		s = append(s, fmt.Sprintf("%dx%d", a[0], a[1]))
	}
	return strings.Join(s, ", ")
}

// BlockRows and BlockCols are the output block one kernel call computes.
func (c TileConfig) BlockRows() int { return c.Rows * c.MT }

// BlockCols is the number of output columns (weight rows) one kernel call computes.
func (c TileConfig) BlockCols() int { return 16 * c.NT }

// tileKey names an assembly tile kernel.
type tileKey struct {
	mt, nt int
	int8   bool
	// plain selects, for int8, the earlier kernel (engine.plainInt8), which scales a block's sums before the next
	// block starts; the default kernel scales them during the next block's K steps.
	plain bool
}

// palette builds the 64-byte LDTILECFG operand for the plan: palette 1, then bytes per row (colsb) of each
// tile at 16, and rows of each tile at 48. kstep is in bytes.
func palette(p sched.Plan, rows, kstep int) (cfg [64]byte) {
	cfg[0] = 1
	for t, r := range p.Roles {
		var nr, colsb int
		switch r {
		case sched.Acc:
			nr, colsb = rows, 64
		case sched.ATile:
			nr, colsb = rows, kstep
		case sched.BTile:
			nr, colsb = kstep/4, 64
		}
		cfg[16+2*t] = byte(colsb)
		cfg[16+2*t+1] = byte(colsb >> 8)
		cfg[48+t] = byte(nr)
	}
	return cfg
}
