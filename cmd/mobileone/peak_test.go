package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestBenchPeak: bench --peak reports a positive rate per instruction
// family (none in a pure-Go build) and refuses a model.
func TestBenchPeak(t *testing.T) {
	code, out, errs := cli("bench", "--peak", "--threads", "1", "--json")
	if code != 0 {
		t.Fatalf("bench --peak: exit %d: %s", code, errs)
	}
	var res struct {
		Threads  int
		Families []struct {
			Name  string
			GMACs float64 `json:"gmac_per_s"`
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Families {
		if f.Name == "" || !(f.GMACs > 0) {
			t.Errorf("%+v", f)
		}
	}
	if res.Threads != 1 {
		t.Errorf("threads %d", res.Threads)
	}
	if code, _, errs := cli("bench", "--peak", "-m", "s0"); code == 0 || !strings.Contains(errs, "not a model") {
		t.Errorf("bench --peak -m s0: exit %d, %q", code, errs)
	}
}
