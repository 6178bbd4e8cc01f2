//go:build !linux

package amx

// fileMapped is false where /proc/self/maps does not exist: Import then keeps only the packing (PlainIfMapped),
// and small batches run the VNNI path over it.
func fileMapped([]byte) bool { return false }
