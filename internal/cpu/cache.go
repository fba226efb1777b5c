package cpu

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// L2Bytes is the size of one core's level-2 cache as the operating system
// reports it, or 0 when unknown (not Linux, no sysfs, unreadable). Kernels use
// it to size their cache blocks and keep a fixed default when it is 0.
var L2Bytes = readL2("/sys/devices/system/cpu/cpu0/cache")

// readL2 scans dir/index*/ for the unified (or data) level-2 cache and parses
// its size ("2048K", "1M", "1048576").
func readL2(dir string) int {
	idx, _ := filepath.Glob(filepath.Join(dir, "index*"))
	for _, d := range idx {
		if strings.TrimSpace(readSmall(filepath.Join(d, "level"))) != "2" {
			continue
		}
		if t := strings.TrimSpace(readSmall(filepath.Join(d, "type"))); t == "Instruction" {
			continue
		}
		if n := parseSize(readSmall(filepath.Join(d, "size"))); n > 0 {
			return n
		}
	}
	return 0
}

func readSmall(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var b [64]byte
	n, _ := f.Read(b[:])
	return string(b[:n])
}

// parseSize reads sysfs cache sizes: a decimal number with an optional K, M
// or G suffix (binary units). It returns 0 for anything else.
func parseSize(s string) int {
	s = strings.TrimSpace(s)
	mul := 1
	if s != "" {
		switch s[len(s)-1] {
		case 'K', 'k':
			mul = 1 << 10
		case 'M', 'm':
			mul = 1 << 20
		case 'G', 'g':
			mul = 1 << 30
		}
		if mul != 1 {
			s = s[:len(s)-1]
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 || n > (1<<40)/mul {
		return 0
	}
	return n * mul
}
