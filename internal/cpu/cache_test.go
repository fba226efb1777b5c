package cpu

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
	}{
		{"2048K\n", 2 << 20},
		{"1M", 1 << 20},
		{"1048576", 1 << 20},
		{"", 0},
		{"K", 0},
		{"-4K", 0},
		{"12Q", 0},
		{"99999999999999G", 0},
	} {
		if got := parseSize(c.in); got != c.want {
			t.Errorf("parseSize(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestReadL2(t *testing.T) {
	dir := t.TempDir()
	write := func(index, level, typ, size string) {
		d := filepath.Join(dir, index)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, v := range map[string]string{"level": level, "type": typ, "size": size} {
			if err := os.WriteFile(filepath.Join(d, name), []byte(v+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := readL2(dir); got != 0 {
		t.Fatalf("empty dir: %d, want 0", got)
	}
	write("index0", "1", "Data", "48K")
	write("index1", "1", "Instruction", "32K")
	write("index2", "2", "Unified", "1024K")
	write("index3", "3", "Unified", "32768K")
	if got := readL2(dir); got != 1<<20 {
		t.Fatalf("readL2 = %d, want %d", got, 1<<20)
	}
	if L2Bytes < 0 {
		t.Fatalf("L2Bytes = %d", L2Bytes)
	}
}
