//go:build !(linux && amd64)

package amx

func osSupportsTiles() bool        { return false }
func requestTilePermission() error { return nil }
func hasTileAsm() bool             { return false }
func hasVNNIAsm() bool             { return false }
