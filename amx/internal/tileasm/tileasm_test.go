package tileasm

import "testing"

func TestEncoderRefusesOperandsTheHardwareCannotEncode(t *testing.T) {
	if _, err := TileLoadD(0, RBP, R8); err == nil {
		t.Error("rbp as a base without displacement was accepted")
	}
	if _, err := TileLoadD(0, RSI, RSP); err == nil {
		t.Error("rsp as an index was accepted")
	}
	if _, err := Dot("tdpbssd", 1, 1, 2); err == nil {
		t.Error("a dot product with aliased tiles was accepted")
	}
	if _, err := Dot("tdpfoo", 0, 1, 2); err == nil {
		t.Error("an unknown dot product was accepted")
	}
	if _, err := LdTileCfg(R13); err == nil {
		t.Error("ldtilecfg through r13 without displacement was accepted")
	}
	for name, enc := range map[string]func() (Inst, error){
		"tileloadd into tmm8":        func() (Inst, error) { return TileLoadD(8, RSI, R8) },
		"tilestored from tmm -1":     func() (Inst, error) { return TileStoreD(-1, RSI, R8) },
		"tilezero of tmm9":           func() (Inst, error) { return TileZero(9) },
		"tdpbssd into tmm8":          func() (Inst, error) { return Dot("tdpbssd", 8, 1, 2) },
		"tdpbf16ps reading tmm10":    func() (Inst, error) { return Dot("tdpbf16ps", 0, 1, 10) },
		"tileloadd based on reg 16":  func() (Inst, error) { return TileLoadD(0, Reg(16), R8) },
		"ldtilecfg through reg -1":   func() (Inst, error) { return LdTileCfg(Reg(-1)) },
		"tilestored indexed by r 20": func() (Inst, error) { return TileStoreD(0, RSI, Reg(20)) },
	} {
		if in, err := enc(); err == nil {
			t.Errorf("%s was accepted as % x", name, in.Bytes)
		}
	}
}

func TestEncodingsOfKnownInstructions(t *testing.T) {
	// Bytes from GNU as 2.40 (objdump -d), for one instance of each form.
	for _, c := range []struct {
		in   Inst
		want string
	}{
		{must(TileLoadD(4, RSI, R8)), "c4a27b4b2406"},
		{must(TileLoadDT1(4, RSI, R8)), "c4a2794b2406"},
		{must(TileStoreD(3, RBX, R9)), "c4a27a4b1c0b"},
		{must(LdTileCfg(R11)), "c4c2784903"},
		{TileRelease(), "c4e27849c0"},
		{must(TileZero(5)), "c4e27b49e8"},
		{must(Dot("tdpbssd", 0, 4, 6)), "c4e24b5ec4"},
		{must(Dot("tdpbf16ps", 3, 5, 7)), "c4e2425cdd"},
	} {
		if got := hex(c.in.Bytes); got != c.want {
			t.Errorf("%s: % x, want %s", c.in.GNU, c.in.Bytes, c.want)
		}
	}
}

func must(in Inst, err error) Inst {
	if err != nil {
		panic(err)
	}
	return in
}

func hex(b []byte) string {
	const digits = "0123456789abcdef"
	s := make([]byte, 0, 2*len(b))
	for _, x := range b {
		s = append(s, digits[x>>4], digits[x&15])
	}
	return string(s)
}
