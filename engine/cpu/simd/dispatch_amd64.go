package simd

// fastFamilies lists the assembly families this CPU can run, fastest first.
func fastFamilies() []kernels { return nil }
