//go:build !amd64

package pool

// pause does nothing where there is no spin-wait hint to give.
func pause() {}
