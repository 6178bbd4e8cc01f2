package amx

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"unsafe"
)

// fileMapped reports whether b lies inside one file-backed mapping of this process (a line of /proc/self/maps
// with a non-zero inode), as the tensor views of a GGUF opened with gguf.Open do. Heap memory and anonymous
// mappings are not file-backed: keeping a reference to them would keep a second copy of the weight alive.
func fileMapped(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	lo := uint64(uintptr(unsafe.Pointer(&b[0])))
	hi := lo + uint64(len(b))
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		// start-end perms offset dev inode [path]
		fields := bytes.Fields(sc.Bytes())
		if len(fields) < 5 {
			continue
		}
		start, end, ok := bytes.Cut(fields[0], []byte("-"))
		if !ok {
			continue
		}
		s, err1 := strconv.ParseUint(string(start), 16, 64)
		e, err2 := strconv.ParseUint(string(end), 16, 64)
		if err1 != nil || err2 != nil || lo < s || lo >= e {
			continue
		}
		return hi <= e && string(fields[4]) != "0"
	}
	return false
}
