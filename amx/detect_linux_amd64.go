package amx

import (
	"fmt"

	"golang.org/x/sys/cpu"
	"golang.org/x/sys/unix"
)

// xgetbv0 returns XCR0 (XGETBV with ECX = 0).
//
//go:noescape
func xgetbv0() (eax, edx uint32)

// The Linux constants x/sys/unix lacks (arch/x86/include/uapi/asm/prctl.h and the XSAVE feature numbers).
const (
	archReqXcompPerm  = 0x1023
	xfeatureXTileData = 18
)

func osSupportsTiles() bool {
	if !cpu.X86.HasOSXSAVE {
		return false
	}
	eax, _ := xgetbv0()
	const tileBits = 1<<17 | 1<<18 // XTILECFG, XTILEDATA
	return eax&tileBits == tileBits
}

func requestTilePermission() error {
	_, _, errno := unix.Syscall(unix.SYS_ARCH_PRCTL, archReqXcompPerm, xfeatureXTileData, 0)
	if errno != 0 {
		return fmt.Errorf("arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA): %w", errno)
	}
	return nil
}

func hasTileAsm() bool { return true }

func hasVNNIAsm() bool {
	return cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VNNI && cpu.X86.HasOSXSAVE
}
