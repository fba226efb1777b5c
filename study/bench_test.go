package study

import (
	"testing"
	"time"
)

// TestModelBench: rounds of one warm-up plus runs, each round sorted and
// trimmed; the summary's minimum, median, trimmed mean and p90 by hand.
func TestModelBench(t *testing.T) {
	// Each round: a 50 ms warm-up, then 1..10 ms and a 100 ms outlier.
	ms := func(v int) time.Duration { return time.Duration(v) * time.Millisecond }
	seq := []time.Duration{ms(50)}
	for i := 1; i <= 10; i++ {
		seq = append(seq, ms(i))
	}
	seq = append(seq, ms(100))
	k := 0
	run := func() time.Duration {
		d := seq[k%len(seq)]
		k++
		return d
	}
	all, kept := ModelBench(run, Method{Rounds: 2, Runs: 11, Trim: 2})
	if len(all) != 22 || len(kept) != 14 || k != 24 {
		t.Fatalf("%d timed, %d kept, %d calls", len(all), len(kept), k)
	}
	s := Summarize(all, kept)
	// all = 1,1,2,2,…,10,10,100,100 (the warm-ups left out): minimum 1,
	// median all[11] = 6, p90 all[19] = 10; kept = 3..9 twice, mean 6 (the
	// untrimmed mean would be 14.1).
	if s.MinMS != 1 || s.MedianMS != 6 || s.P90MS != 10 || s.MeanMS != 6 {
		t.Errorf("summary %+v", s)
	}
	for _, bad := range []Method{{0, 5, 1}, {1, 0, 0}, {1, 4, 2}, {1, 5, -1}} {
		if bad.Check() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if (Method{5, 10, 2}).Check() != nil {
		t.Error("the default method refused")
	}
}
