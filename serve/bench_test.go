package serve

import (
	"bytes"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mobileone-go/mobileone"
	"github.com/mobileone-go/mobileone/internal/kernel"
	"github.com/mobileone-go/mobileone/model"
)

// BenchmarkLogitsS0 measures the server's own overhead per image: the
// engine alone (Plan.Run at batch 8, two threads) against the logits
// handler driven directly (no network) by 64 goroutines posting one S0
// 224×224 image each. The load benchmark over loopback is bench/serve/run.sh.
//
//	go test -run '^$' -bench LogitsS0 -benchtime 1600x ./serve
func BenchmarkLogitsS0(b *testing.B) {
	kernel.SetThreads(2)
	defer kernel.SetThreads(0)
	cfg, _ := model.Variant("s0")
	m, err := mobileone.New(cfg, true, 1)
	if err != nil {
		b.Fatal(err)
	}
	s, err := New([]Model{{Name: "s0", Model: m}}, Options{Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	body := npyBytes(b, randTensor(1, 1, 3, 224, 224))
	b.Run("engine", func(b *testing.B) {
		p, err := model.NewPlan(m.Model, 8, 224, 224)
		if err != nil {
			b.Fatal(err)
		}
		x := randTensor(1, 8, 3, 224, 224).Data
		p.Run(x)
		b.ResetTimer()
		t0 := time.Now()
		for i := 0; i < b.N; i += 8 {
			p.Run(x)
		}
		b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "images/s")
	})
	b.Run("handler", func(b *testing.B) {
		var next atomic.Int64
		var wg sync.WaitGroup
		b.ResetTimer()
		t0 := time.Now()
		for range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(b.N) {
					w := httptest.NewRecorder()
					s.ServeHTTP(w, httptest.NewRequest("POST", "/v1/models/s0/logits", bytes.NewReader(body)))
					if w.Code != 200 {
						b.Error(w.Code, w.Body.String())
						return
					}
				}
			}()
		}
		wg.Wait()
		b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "images/s")
	})
}
