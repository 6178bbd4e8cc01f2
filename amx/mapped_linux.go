package amx

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"unsafe"
)

// fileMapped reports whether b lies inside file-backed mappings of this process (lines of /proc/self/maps with
// a non-zero inode, one after another when advice given to part of a mapping split it), as the tensor views of a
// GGUF opened with gguf.Open do. Heap memory and anonymous mappings are not file-backed: keeping a reference to
// them would keep a second copy of the weight alive.
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
	covered := lo // b is file-backed up to here; the lines come in address order
	var inode string
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
		if err1 != nil || err2 != nil || e <= covered {
			continue
		}
		if s > covered || string(fields[4]) == "0" || (inode != "" && string(fields[4]) != inode) {
			return false // a gap, an anonymous mapping, or another file
		}
		inode, covered = string(fields[4]), e
		if covered >= hi {
			return true
		}
	}
	return false
}
