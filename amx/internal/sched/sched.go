// Package sched lays out the eight AMX tile registers for an accumulator arrangement and orders the loads and dot
// products of one K step. The kernel generator turns a Plan into assembly and the emulator interprets the same
// Plan, so the emulated kernels execute the very instruction sequence the hardware runs.
package sched

import "fmt"

// Role says what a tile register holds.
type Role uint8

// The roles a tile register can take.
const (
	Unused Role = iota
	Acc         // an accumulator (C) tile
	ATile       // activation rows: Rows x KStep bytes
	BTile       // packed weights: KStep/4 x 64 bytes
)

// OpKind is one step of the K loop.
type OpKind uint8

// The operations of a K step.
const (
	LoadA OpKind = iota // load A tile Index (tile rows mi) into Tile
	LoadB               // load B tile Index (weight panel ni) into Tile
	Dot                 // Tile (the accumulator of MI, NI) += tile A · tile B
)

// Op is one instruction of the K step.
type Op struct {
	Kind   OpKind
	Tile   int // destination register (load) or accumulator (dot)
	Index  int // mi for LoadA, ni for LoadB
	MI, NI int // Dot: the accumulator's position
	A, B   int // Dot: the operand registers
}

// Plan is a register layout and K-step schedule for an arrangement of MT x NT accumulators.
type Plan struct {
	MT, NT int     // accumulator tiles down (M) and across (N)
	Roles  [8]Role // what each tile register holds
	Step   []Op
}

// AccTile is the register of the accumulator at (mi, ni).
func (p Plan) AccTile(mi, ni int) int { return mi*p.NT + ni }

// For builds the plan of an MT x NT arrangement. Accumulators take registers 0..MT*NT-1; the operand side with
// fewer tiles is held in registers for the whole step and the other side rotates through those left.
func For(mt, nt int) (Plan, error) {
	if mt < 1 || nt < 1 || mt*nt > 4 {
		return Plan{}, fmt.Errorf("sched: arrangement %dx%d needs 1 to 4 accumulator tiles", mt, nt)
	}
	p := Plan{MT: mt, NT: nt}
	acc := mt * nt
	for t := 0; t < acc; t++ {
		p.Roles[t] = Acc
	}
	held, rot := mt, nt
	heldRole, rotRole, heldLoad, rotLoad := ATile, BTile, LoadA, LoadB
	if mt > nt {
		held, rot = nt, mt
		heldRole, rotRole, heldLoad, rotLoad = BTile, ATile, LoadB, LoadA
	}
	free := 8 - acc - held
	if free < 1 {
		return Plan{}, fmt.Errorf("sched: arrangement %dx%d leaves no tile for operands", mt, nt)
	}
	for i := 0; i < held; i++ {
		p.Roles[acc+i] = heldRole
		p.Step = append(p.Step, Op{Kind: heldLoad, Tile: acc + i, Index: i})
	}
	slots := make([]int, 0, free)
	for t := acc + held; t < 8 && len(slots) < rot; t++ {
		p.Roles[t] = rotRole
		slots = append(slots, t)
	}
	for j := 0; j < rot; j++ {
		s := slots[j%len(slots)]
		p.Step = append(p.Step, Op{Kind: rotLoad, Tile: s, Index: j})
		for i := 0; i < held; i++ {
			mi, ni, a, b := i, j, acc+i, s
			if mt > nt {
				mi, ni, a, b = j, i, s, acc+i
			}
			p.Step = append(p.Step, Op{Kind: Dot, Tile: p.AccTile(mi, ni), MI: mi, NI: ni, A: a, B: b})
		}
	}
	return p, nil
}

// Arrangements lists the accumulator arrangements the kernels are generated for, as MT x NT.
var Arrangements = [][2]int{{2, 2}, {1, 4}, {4, 1}, {1, 2}, {2, 1}, {1, 1}}
