// Package simd holds TileLab's fast single-threaded CPU kernels: quantized matrix products (Q4_0 and Q8_0 weights
// against Q8_0 activations), float-weight products (F32, F16, BF16 against float32 activations), activation
// quantization, and the elementwise ops that show up in profiles (RMSNorm, RoPE, softmax, SiLU·up).
//
// Every kernel has a plain-Go implementation, which is the reference the tests hold the fast paths to. On amd64 the
// package picks at start-up, with golang.org/x/sys/cpu, Go-assembly paths for AVX-512 VNNI (VPDPBUSD) or AVX2;
// Variant says which. Callers do the threading (engine/pool): each function computes the range it is given on the
// calling goroutine and allocates nothing.
//
// Sizes are checked before any byte is read: a call with inconsistent lengths or an unsupported type returns an
// error naming the problem and leaves dst untouched.
package simd

import (
	"fmt"
	"os"

	"tilelab/engine/tensor"
)

// Variant names the kernel family in use: "avx512-vnni", "avx2" or "generic".
func Variant() string { return impl.name }

// Supports reports whether MatMul accepts weights of type wt.
func Supports(wt tensor.DType) bool { return wt == tensor.Q4_0 || wt == tensor.Q8_0 }

// SupportsF reports whether MatMulF accepts weights of type wt.
func SupportsF(wt tensor.DType) bool {
	return wt == tensor.F32 || wt == tensor.F16 || wt == tensor.BF16
}

// QK is the number of elements in one Q4_0 or Q8_0 block.
const QK = 32

// kernels is one family of implementations; the generic family fills every slot, and faster ones replace slots.
type kernels struct {
	name string
	// mm computes rows [0,m) × columns [n0,n1) of a quantized product; arguments already checked.
	mmQ4 func(w []byte, k int, a []byte, m int, dst []float32, n, n0, n1 int)
	mmQ8 func(w []byte, k int, a []byte, m int, dst []float32, n, n0, n1 int)
	// mmF computes the same for float weights of the given type.
	mmF func(wt tensor.DType, w []byte, k int, x []float32, m int, dst []float32, n, n0, n1 int)
	// quant quantizes whole rows of blocks.
	quant func(dst []byte, x []float32)
	// softmax computes one row (non-empty, lengths equal); swiglu computes silu(g)·u, or silu(g) for u nil.
	softmax func(dst, x []float32) error
	swiglu  func(dst, g, u []float32)
}

var impl = kernels{
	name:    "generic",
	mmQ4:    matMulQ4Generic,
	mmQ8:    matMulQ8Generic,
	mmF:     matMulFGeneric,
	quant:   quantizeQ8Generic,
	softmax: softmaxGeneric,
	swiglu:  swigluGeneric,
}

// chooseFromEnv lets $TILELAB_SIMD pick a family by name ("generic", "avx2", "avx512-vnni-novbmi", ...) among those
// this CPU can run, for comparisons on one machine; an unknown name is reported once on stderr and ignored.
func chooseFromEnv() {
	want := os.Getenv("TILELAB_SIMD")
	if want == "" || want == impl.name {
		return
	}
	for _, f := range append([]kernels{generic}, fastFamilies()...) {
		if f.name == want {
			impl = f
			return
		}
	}
	fmt.Fprintf(os.Stderr, "simd: TILELAB_SIMD=%q is not a kernel family this CPU runs; keeping %s\n", want, impl.name)
}

// generic is the reference family, kept reachable for tests and for ForceGeneric.
var generic = impl

// ForceGeneric switches every kernel to the plain-Go reference (for comparisons and debugging); it returns a
// function that restores the previous choice. It must not be called while kernels are running.
func ForceGeneric() (restore func()) {
	saved := impl
	impl = generic
	return func() { impl = saved }
}

// QuantizeQ8_0 writes x as ggml block_q8_0 blocks (an fp16 scale d = max|x|/127, then 32 int8 values
// round(x/d)), bit for bit as ggml's reference quantize_row_q8_0_ref does. len(x) must be a multiple of 32 and
// dst must hold len(x)/32 blocks of 34 bytes.
func QuantizeQ8_0(dst []byte, x []float32) error {
	if len(x)%QK != 0 {
		return fmt.Errorf("simd: QuantizeQ8_0: %d values is not a multiple of the block size %d", len(x), QK)
	}
	if need := len(x) / QK * 34; len(dst) < need {
		return fmt.Errorf("simd: QuantizeQ8_0: dst holds %d bytes, %d values need %d", len(dst), len(x), need)
	}
	impl.quant(dst, x)
	return nil
}

// MatMul computes dst[i*n + j] = Σk W[j][k]·A[i][k] for i in [0,m), j in [n0,n1). W is n rows of k elements of type
// wt (Q4_0 or Q8_0, ggml block layout), A is m rows of k elements as Q8_0 blocks (see QuantizeQ8_0). Entries of dst
// outside the range are not written, so workers may share dst.
func MatMul(wt tensor.DType, w []byte, k int, a []byte, m int, dst []float32, n, n0, n1 int) error {
	if !Supports(wt) {
		return fmt.Errorf("simd: MatMul: weight type %v is not supported (q4_0 and q8_0 are)", wt)
	}
	if err := checkShape("MatMul", k, m, n, n0, n1, len(dst)); err != nil {
		return err
	}
	if k%QK != 0 {
		return fmt.Errorf("simd: MatMul: k=%d is not a multiple of the block size %d", k, QK)
	}
	if need := n * wt.RowBytes(k); len(w) < need {
		return fmt.Errorf("simd: MatMul: weights hold %d bytes, %d rows of %d %v elements need %d", len(w), n, k, wt, need)
	}
	if need := m * tensor.Q8_0.RowBytes(k); len(a) < need {
		return fmt.Errorf("simd: MatMul: activations hold %d bytes, %d rows of %d q8_0 elements need %d", len(a), m, k, need)
	}
	if n0 == n1 || m == 0 {
		return nil
	}
	if wt == tensor.Q4_0 {
		impl.mmQ4(w, k, a, m, dst, n, n0, n1)
	} else {
		impl.mmQ8(w, k, a, m, dst, n, n0, n1)
	}
	return nil
}

// MatMulF computes dst[i*n + j] = Σk W[j][k]·X[i][k] for i in [0,m), j in [n0,n1), for weights of type wt (F32, F16
// or BF16; n rows of k elements, little-endian) and float32 activations X (m rows of k).
func MatMulF(wt tensor.DType, w []byte, k int, x []float32, m int, dst []float32, n, n0, n1 int) error {
	if !SupportsF(wt) {
		return fmt.Errorf("simd: MatMulF: weight type %v is not supported (f32, f16 and bf16 are)", wt)
	}
	if err := checkShape("MatMulF", k, m, n, n0, n1, len(dst)); err != nil {
		return err
	}
	if need := n * wt.RowBytes(k); len(w) < need {
		return fmt.Errorf("simd: MatMulF: weights hold %d bytes, %d rows of %d %v elements need %d", len(w), n, k, wt, need)
	}
	if len(x) < m*k {
		return fmt.Errorf("simd: MatMulF: activations hold %d values, %d rows of %d need %d", len(x), m, k, m*k)
	}
	if n0 == n1 || m == 0 {
		return nil
	}
	impl.mmF(wt, w, k, x, m, dst, n, n0, n1)
	return nil
}

func checkShape(op string, k, m, n, n0, n1, dstLen int) error {
	switch {
	case k <= 0:
		return fmt.Errorf("simd: %s: k=%d must be positive", op, k)
	case m < 0 || n < 0:
		return fmt.Errorf("simd: %s: negative size m=%d n=%d", op, m, n)
	case n0 < 0 || n0 > n1 || n1 > n:
		return fmt.Errorf("simd: %s: column range [%d,%d) is not inside [0,%d)", op, n0, n1, n)
	case dstLen < m*n:
		return fmt.Errorf("simd: %s: dst holds %d values, m×n = %d×%d needs %d", op, dstLen, m, n, m*n)
	}
	return nil
}
