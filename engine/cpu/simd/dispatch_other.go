//go:build !amd64

package simd

// fastFamilies lists the assembly families this CPU can run: none off amd64.
func fastFamilies() []kernels { return nil }

func init() { chooseFromEnv() }
