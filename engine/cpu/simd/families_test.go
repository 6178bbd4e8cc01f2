package simd

// families lists the kernel families this machine can run: the generic one and every faster one it supports.
func families() []kernels {
	return append([]kernels{generic}, fastFamilies()...)
}

// use switches to a family for one test and returns the function that switches back.
func use(k kernels) func() {
	saved := impl
	impl = k
	return func() { impl = saved }
}
