package kernel

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestNoLegacySSE fails if a generated kernel uses a legacy-SSE (non-VEX)
// instruction on an XMM register. Mixed with AVX code whose vector
// registers have dirty upper halves, each such instruction costs a state
// transition on some Intel cores: a MOVSS loading Conv3's weights made a
// 2×2 plane take 1 µs instead of 35 ns on a Xeon. avo's Load and Store
// pick MOVSS/MOVSD for float arguments; the generators use VEX moves.
func TestNoLegacySSE(t *testing.T) {
	files, err := filepath.Glob("*_amd64.s")
	if err != nil || len(files) == 0 {
		t.Fatalf("no assembly files found (%v)", err)
	}
	xmm := regexp.MustCompile(`\bX([0-9]|1[0-5])\b`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			fields := strings.Fields(line)
			if !strings.HasPrefix(line, "\t") || len(fields) < 2 || strings.HasPrefix(fields[0], "V") ||
				strings.HasPrefix(fields[0], "//") || !xmm.MatchString(line) {
				continue
			}
			t.Errorf("%s:%d: legacy-SSE instruction %q (use its VEX form)", f, i+1, strings.TrimSpace(line))
		}
	}
}
