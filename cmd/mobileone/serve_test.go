package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mobileone-go/mobileone"
	"github.com/mobileone-go/mobileone/imageproc"
	"github.com/mobileone-go/mobileone/internal/zoo"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/quant"
)

func TestServeFlags(t *testing.T) {
	code, _, errs := cli("serve", "-h")
	if code != 0 || !strings.Contains(errs, "usage: mobileone serve") {
		t.Fatalf("serve -h: exit %d, %q", code, errs)
	}
	for _, f := range []string{"-w", "-m", "-random-seed", "-addr", "-threads", "-max-batch", "-max-wait", "-queue",
		"-max-inflight", "-max-images", "-max-body-mb", "-max-megapixels", "-decoders", "-timeout", "-read-timeout",
		"-write-timeout", "-idle-timeout", "-drain-delay", "-drain-timeout", "-gc-headroom-mb", "-cors-origin", "-log-format", "-log-level"} {
		if !strings.Contains(errs, "\n  "+f+" ") && !strings.Contains(errs, "\n  "+f+"\n") {
			t.Errorf("serve -h does not explain %s", f)
		}
	}
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--bogus"}, 2, "bogus"},
		{[]string{"extra.png"}, 1, `unexpected argument "extra.png"`},
		{[]string{"--threads", "0"}, 1, "--threads must be 1..1024"},
		{[]string{"--max-batch", "0"}, 1, "--max-batch must be 1..256"},
		{[]string{"--max-wait", "-1ms"}, 1, "--max-wait must not be negative"},
		{[]string{"--queue", "8", "--max-images", "9"}, 1, "--max-images must be 1..--queue (8)"},
		{[]string{"--max-body-mb", "0"}, 1, "--max-body-mb"},
		{[]string{"--max-megapixels", "0"}, 1, "--max-megapixels"},
		{[]string{"--timeout", "65s"}, 1, "--write-timeout (1m5s) must be more than --timeout (1m5s)"},
		{[]string{"--drain-delay", "-1s"}, 1, "--drain-delay must not be negative"},
		{[]string{"--gc-headroom-mb", "-1"}, 1, "--gc-headroom-mb must be 0..1048576, got -1"},
		{[]string{"--log-format", "xml"}, 1, `--log-format "xml"`},
		{[]string{"--log-level", "loud"}, 1, `--log-level "loud"`},
		{[]string{"-m", "s9"}, 1, "s9"},
		{[]string{"-w", "missing.safetensors"}, 1, "missing.safetensors"},
		{[]string{"-w", golden + "/fused.pth.tar", "-m", "s1"}, 1, "s1"},
		{[]string{"-w", "a=" + golden + "/fused.pth.tar", "-w", "a=" + golden + "/unfused.pth.tar"}, 1, `two models named "a"`},
		{[]string{"--addr", "127.0.0.1:99999"}, 1, "invalid port"},
	} {
		// Loopback only, whatever happens: each case fails before or
		// while loading.
		code, _, errs := cli(append([]string{"serve", "--log-level", "error", "--addr", "127.0.0.1:0"}, tc.args...)...)
		if code != tc.code || !strings.Contains(errs, tc.msg) {
			t.Errorf("serve %v: exit %d, %q; want %d and %q", tc.args, code, errs, tc.code, tc.msg)
		}
	}
}

func TestModelName(t *testing.T) {
	for path, want := range map[string]string{
		"dir/mobileone_s1.pth.tar":     "mobileone_s1",
		"s0.safetensors":               "s0",
		"/x/my model (v2).safetensors": "my-model-v2",
		"...":                          "model",
	} {
		if got := modelName(path); got != want {
			t.Errorf("modelName(%q) = %q, want %q", path, got, want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the server's logger and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func getStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// slowRequest sends a classify request's headers and the first half of
// its body on its own connection and returns a function that sends the
// rest and reads the answer: a request in flight for as long as the test
// likes.
func slowRequest(t *testing.T, addr, model string, body []byte) func() (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /v1/models/%s/classify?top=1 HTTP/1.1\r\nHost: %s\r\nContent-Type: image/png\r\nContent-Length: %d\r\n\r\n",
		model, addr, len(body))
	half := len(body) / 2
	if _, err := conn.Write(body[:half]); err != nil {
		t.Fatal(err)
	}
	return func() (int, string) {
		defer conn.Close()
		if _, err := conn.Write(body[half:]); err != nil {
			return 0, err.Error()
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
}

// The serve loop in-process with two checkpoints, one named by -w NAME=,
// one after its file; a signal drains it and it returns without error.
func TestServeInProcess(t *testing.T) {
	var logs syncBuffer
	c, log, err := parseServe([]string{"--addr", "127.0.0.1:0", "--threads", "2", "--drain-delay", "100ms",
		"-w", "tiny=" + golden + "/fused.pth.tar", "-w", golden + "/unfused.pth.tar", "--log-format", "json",
		"--gc-headroom-mb", "1"}, &logs)
	if err != nil {
		t.Fatal(err)
	}
	defer debug.SetGCPercent(gcPercent())
	sigs := make(chan os.Signal, 1)
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- runServer(c, log, sigs, func(a net.Addr) { addrc <- a }) }()
	base := "http://" + (<-addrc).String()
	waitReady(t, base)
	resp, err := http.Get(base + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Models []struct{ Name, Weights string }
	}
	json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if len(list.Models) != 2 || list.Models[0].Name != "tiny" || list.Models[0].Weights != "fused.pth.tar" ||
		list.Models[1].Name != "unfused" || list.Models[1].Weights != "unfused.pth.tar" {
		t.Errorf("models %+v", list.Models)
	}
	// 1 MiB of room is a small part of the live heap (the models, and
	// whatever this test process holds): below Go's default 100.
	if p := gcPercent(); p < minGCPercent || p >= 100 {
		t.Errorf("--gc-headroom-mb 1: the garbage collector's target is %d, want %d..99 (live heap %d MiB)", p, minGCPercent, liveHeap()>>20)
	}
	sigs <- syscall.SIGTERM
	if err := <-done; err != nil {
		t.Fatalf("serve: %v\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), `"msg":"drained: every request in flight was answered; exiting"`) {
		t.Errorf("log: %s", logs.String())
	}
}

// --gc-headroom-mb sets GOGC to about that room over the live heap,
// within [10, 100]; by default unless the environment sets GOGC, given
// whatever it sets.
func TestServeGCHeadroom(t *testing.T) {
	for _, tc := range []struct {
		live, headroom uint64
		want           int
	}{
		{256 << 20, 64 << 20, 25}, // S0's plans: a quarter
		{100 << 20, 64 << 20, 64}, // between
		{16 << 20, 64 << 20, 100}, // a small model: Go's default, no more
		{2 << 30, 64 << 20, 10},   // a large one: the floor
		{0, 64 << 20, 100},        // (no reading)
	} {
		if got := gcPercentFor(tc.live, tc.headroom); got != tc.want {
			t.Errorf("gcPercentFor(%d MiB live, %d MiB): %d, want %d", tc.live>>20, tc.headroom>>20, got, tc.want)
		}
	}
	if liveHeap() == 0 {
		t.Error("runtime/metrics gives no live heap")
	}
	parse := func(args ...string) int {
		t.Helper()
		c, _, err := parseServe(args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		return c.gcHeadroomMiB
	}
	t.Setenv("GOGC", "")
	if h := parse(); h != defaultGCHeadroomMiB {
		t.Errorf("no flag, no GOGC: %d MiB, want %d", h, defaultGCHeadroomMiB)
	}
	t.Setenv("GOGC", "150")
	if h := parse(); h != 0 {
		t.Errorf("no flag, GOGC=150: %d MiB, want 0 (Go's setting, from the environment)", h)
	}
	if h := parse("--gc-headroom-mb", "40"); h != 40 {
		t.Errorf("--gc-headroom-mb 40, GOGC=150: %d, want 40", h)
	}
}

func waitReady(t *testing.T, base string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the server did not become ready")
		}
	}
}

// TestServeHelperProcess is the server of TestServeSIGTERM when run with
// MOBILEONE_SERVE_ARGS set (its arguments, separated by newlines); in a
// normal test run it does nothing.
func TestServeHelperProcess(t *testing.T) {
	args := os.Getenv("MOBILEONE_SERVE_ARGS")
	if args == "" {
		return
	}
	os.Exit(run(append([]string{"serve"}, strings.Split(args, "\n")...), os.Stdout, os.Stderr))
}

// The real command in a subprocess gets SIGTERM while clients are sending
// requests and one request is half-sent: /readyz turns 503 at once, the
// clients (like a load balancer) stop sending new requests, every request
// in flight is answered 200, and the process exits 0.
func TestServeSIGTERM(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGTERM on Windows")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeHelperProcess$")
	cmd.Env = append(os.Environ(), "MOBILEONE_SERVE_ARGS="+strings.Join([]string{
		"--addr", "127.0.0.1:0", "--threads", "2", "--drain-delay", "500ms", "--log-format", "json", "--log-level", "debug"}, "\n"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var logs syncBuffer
	addrc := make(chan string, 1)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs.Write(append(sc.Bytes(), '\n'))
			var l struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "listening" {
				addrc <- l.Addr
			}
		}
	}()
	var addr string
	select {
	case addr = <-addrc:
	case <-time.After(20 * time.Second):
		t.Fatalf("no listening address in the log:\n%s", logs.String())
	}
	base := "http://" + addr
	waitReady(t, base)

	samples := zoo.Samples()
	// Clients send requests until they see /readyz answer 503.
	var draining atomic.Bool
	var wg sync.WaitGroup
	var answered atomic.Int64
	errs := make(chan string, 1000)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{}
			for i := 0; !draining.Load(); i++ {
				s := samples[(g+i)%len(samples)]
				resp, err := client.Post(base+"/v1/models/fashion-mnist/classify", "image/png", bytes.NewReader(s.PNG))
				if err != nil {
					errs <- err.Error()
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Sprintf("%d %s", resp.StatusCode, b)
				}
				answered.Add(1)
			}
		}()
	}
	boot := samples[9].PNG
	finish := slowRequest(t, addr, "fashion-mnist", boot)
	time.Sleep(100 * time.Millisecond) // the clients are busy
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); getStatus(t, base+"/readyz") != 503; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("/readyz did not turn 503 after SIGTERM")
		}
	}
	draining.Store(true)
	wg.Wait()
	// After the drain delay the listener closes, and the half-sent request
	// is still in flight; send the rest.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err != nil {
			break
		} else {
			c.Close()
		}
		if time.Now().After(deadline) {
			t.Fatal("the listener is still open 5 s after SIGTERM")
		}
	}
	code, body := finish()
	if code != 200 || !strings.Contains(body, `"label":"Ankle boot"`) {
		t.Errorf("request in flight at SIGTERM: %d %s", code, body)
	}
	<-scanned // all of stderr, before Wait closes the pipe
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit: %v\n%s", err, logs.String())
	}
	close(errs)
	for e := range errs {
		t.Errorf("client: %s", e)
	}
	t.Logf("%d requests answered while the clients ran", answered.Load())
	if answered.Load() == 0 {
		t.Error("no requests were answered")
	}
	for _, want := range []string{`"msg":"draining: /readyz now answers 503"`, `"signal":"terminated"`,
		`"msg":"drained: every request in flight was answered; exiting"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs.String())
		}
	}
}

// sampleCalib is the built-in samples, preprocessed for the built-in
// model, as quant.Images.
type sampleCalib struct{ pre imageproc.Params }

func (s sampleCalib) Len() int { return 4 }
func (s sampleCalib) Image(i int) ([]float32, error) {
	img, _, err := imageproc.Decode(bytes.NewReader(zoo.Samples()[2*i].PNG), 0)
	if err != nil {
		return nil, err
	}
	return imageproc.Preprocess(img, s.pre).Data, nil
}

// An int8 file (quantised here on four samples) is served next to a float
// checkpoint: /v1/models gives their precisions and classify answers what
// the int8 plan answers for the image alone; -m does not apply to it.
func TestServeInt8File(t *testing.T) {
	fm, err := zoo.Default()
	if err != nil {
		t.Fatal(err)
	}
	cal, err := quant.Calibrate(fm, sampleCalib{fm.Preprocessing()})
	if err != nil {
		t.Fatal(err)
	}
	q, err := cal.Quantize(quant.Options{})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "fm.int8.safetensors")
	if err := q.Save(file); err != nil {
		t.Fatal(err)
	}
	code, _, errs := cli("serve", "--log-level", "error", "--addr", "127.0.0.1:0", "-w", file, "-m", "s0")
	if code != 1 || !strings.Contains(errs, "is an int8 model, which stores its settings: -m does not apply") {
		t.Errorf("serve -w INT8 -m s0: exit %d, %q", code, errs)
	}

	var logs syncBuffer
	c, log, err := parseServe([]string{"--addr", "127.0.0.1:0", "--threads", "2", "--max-batch", "4",
		"-w", file, "-w", "float=" + golden + "/fused.pth.tar"}, &logs)
	if err != nil {
		t.Fatal(err)
	}
	sigs := make(chan os.Signal, 1)
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- runServer(c, log, sigs, func(a net.Addr) { addrc <- a }) }()
	base := "http://" + (<-addrc).String()
	waitReady(t, base)
	defer func() {
		sigs <- syscall.SIGTERM
		if err := <-done; err != nil {
			t.Errorf("serve: %v\n%s", err, logs.String())
		}
	}()
	resp, err := http.Get(base + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Models []struct {
			Name, Weights, Precision string
			Classes                  int
		}
	}
	json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if len(list.Models) != 2 || list.Models[0].Name != "float" || list.Models[0].Precision != "float32" ||
		list.Models[1].Name != "fm.int8" || list.Models[1].Precision != "int8" ||
		list.Models[1].Weights != "fm.int8.safetensors" || list.Models[1].Classes != 10 {
		t.Errorf("models %+v", list.Models)
	}

	back, err := quant.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	png := zoo.Samples()[7].PNG
	img, _, err := imageproc.Decode(bytes.NewReader(png), 0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := back.NewPlan(1, 28, 28)
	if err != nil {
		t.Fatal(err)
	}
	want, err := p.Run(imageproc.Preprocess(img, back.Preprocessing()).Data)
	if err != nil {
		t.Fatal(err)
	}
	resp, err = http.Post(base+"/v1/models/fm.int8/classify?top=1&logits=true", "image/png", bytes.NewReader(png))
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Results []struct {
			Top []struct {
				Index int
				Label string
			}
			Logits []float32
		}
	}
	json.NewDecoder(resp.Body).Decode(&res)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(res.Results) != 1 || !slices.Equal(res.Results[0].Logits, want) {
		t.Fatalf("classify: %d %+v, int8 plan %v", resp.StatusCode, res, want)
	}
	if top := mobileone.TopK(want, back.ClassNames(), 1)[0]; res.Results[0].Top[0].Label != top.Label {
		t.Errorf("top %+v, int8 plan %+v", res.Results[0].Top[0], top)
	}
}

// TestServeBF16: --precision bf16 serves the float models in bfloat16:
// /v1/models says so and classify answers the bfloat16 plan's logits for
// the image, bit for bit; a bad --precision is refused.
func TestServeBF16(t *testing.T) {
	if _, _, err := parseServe([]string{"--precision", "fp16"}, io.Discard); err == nil || !strings.Contains(err.Error(), "want float32 or bf16") {
		t.Errorf("--precision fp16: %v", err)
	}
	var logs syncBuffer
	c, log, err := parseServe([]string{"--addr", "127.0.0.1:0", "--threads", "2", "--max-batch", "4", "--precision", "bf16"}, &logs)
	if err != nil {
		t.Fatal(err)
	}
	sigs := make(chan os.Signal, 1)
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- runServer(c, log, sigs, func(a net.Addr) { addrc <- a }) }()
	base := "http://" + (<-addrc).String()
	waitReady(t, base)
	defer func() {
		sigs <- syscall.SIGTERM
		if err := <-done; err != nil {
			t.Errorf("serve: %v\n%s", err, logs.String())
		}
	}()
	resp, err := http.Get(base + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Models []struct{ Name, Precision string }
	}
	json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if len(list.Models) != 1 || list.Models[0].Precision != "bf16" {
		t.Errorf("models %+v", list.Models)
	}
	m, err := zoo.Default()
	if err != nil {
		t.Fatal(err)
	}
	png := zoo.Samples()[3].PNG
	img, _, err := imageproc.Decode(bytes.NewReader(png), 0)
	if err != nil {
		t.Fatal(err)
	}
	x := imageproc.Preprocess(img, m.Preprocessing())
	want := map[string][]float32{}
	for _, p := range []string{"float32", "bf16"} {
		pl, err := model.NewPlanWith(m.Model, 1, 28, 28, model.PlanOptions{Precision: p})
		if err != nil {
			t.Fatal(err)
		}
		y, err := pl.Run(x.Data)
		if err != nil {
			t.Fatal(err)
		}
		want[p] = append([]float32(nil), y...)
	}
	if slices.Equal(want["float32"], want["bf16"]) {
		t.Fatal("bf16 and float32 plans agree bit for bit: the test cannot tell them apart")
	}
	resp, err = http.Post(base+"/v1/models/"+list.Models[0].Name+"/classify?logits=true", "image/png", bytes.NewReader(png))
	if err != nil {
		t.Fatal(err)
	}
	var res struct{ Results []struct{ Logits []float32 } }
	json.NewDecoder(resp.Body).Decode(&res)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(res.Results) != 1 || !slices.Equal(res.Results[0].Logits, want["bf16"]) {
		t.Fatalf("classify: %d %+v, bf16 plan %v", resp.StatusCode, res, want["bf16"])
	}
}
