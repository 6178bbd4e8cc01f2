package sched

import (
	"fmt"
	"testing"
)

func TestEveryPlanComputesEachAccumulatorOncePerStepFromLoadedOperands(t *testing.T) {
	for _, a := range Arrangements {
		t.Run(fmt.Sprintf("%dx%d", a[0], a[1]), func(t *testing.T) {
			p, err := For(a[0], a[1])
			if err != nil {
				t.Fatal(err)
			}
			holds := map[int]string{} // register -> what it holds now
			dots := map[[2]int]int{}
			for _, op := range p.Step {
				switch op.Kind {
				case LoadA:
					if p.Roles[op.Tile] != ATile {
						t.Fatalf("A loaded into register %d whose role is %d", op.Tile, p.Roles[op.Tile])
					}
					holds[op.Tile] = fmt.Sprint("A", op.Index)
				case LoadB:
					if p.Roles[op.Tile] != BTile {
						t.Fatalf("B loaded into register %d whose role is %d", op.Tile, p.Roles[op.Tile])
					}
					holds[op.Tile] = fmt.Sprint("B", op.Index)
				case Dot:
					if holds[op.A] != fmt.Sprint("A", op.MI) || holds[op.B] != fmt.Sprint("B", op.NI) {
						t.Fatalf("dot (%d,%d) reads %q and %q", op.MI, op.NI, holds[op.A], holds[op.B])
					}
					if op.Tile != p.AccTile(op.MI, op.NI) || p.Roles[op.Tile] != Acc {
						t.Fatalf("dot (%d,%d) accumulates into register %d", op.MI, op.NI, op.Tile)
					}
					dots[[2]int{op.MI, op.NI}]++
				}
			}
			if len(dots) != a[0]*a[1] {
				t.Fatalf("%d accumulators computed, want %d", len(dots), a[0]*a[1])
			}
			for k, n := range dots {
				if n != 1 {
					t.Fatalf("accumulator %v computed %d times", k, n)
				}
			}
		})
	}
	for _, bad := range [][2]int{{0, 1}, {3, 2}, {5, 1}} {
		if _, err := For(bad[0], bad[1]); err == nil {
			t.Errorf("arrangement %v was accepted", bad)
		}
	}
}
