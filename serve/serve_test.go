package serve

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mobileone-go/mobileone"
	"github.com/mobileone-go/mobileone/format/npy"
	"github.com/mobileone-go/mobileone/imageproc"
	"github.com/mobileone-go/mobileone/internal/zoo"
	"github.com/mobileone-go/mobileone/quant"
	"github.com/mobileone-go/mobileone/tensor"
)

// testModels are the built-in Fashion-MNIST model (grey 28×28, 10
// classes) and a small random RGB model (32×32, 7 classes, SE blocks).
func testModels(t testing.TB) (fashion, tiny *mobileone.Model) {
	t.Helper()
	fashion, err := zoo.Default()
	if err != nil {
		t.Fatal(err)
	}
	cfg := mobileone.Config{Name: "", Channels: [5]int{16, 16, 32, 32, 48}, Blocks: [4]int{1, 1, 2, 1}, K: 2,
		SEPairs: [4]int{0, 0, 1, 1}, NumClasses: 7, InChannels: 3, StemStride: 2}
	tiny, err = mobileone.New(cfg, true, 7)
	if err != nil {
		t.Fatal(err)
	}
	tiny.Preprocess = &imageproc.Params{ResizeShort: 36, Crop: 32, Mean: imageproc.ImageNetMean, Std: imageproc.ImageNetStd}
	return fashion, tiny
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestServer(t testing.TB, o Options) (*Server, *mobileone.Model, *mobileone.Model) {
	t.Helper()
	fashion, tiny := testModels(t)
	if o.Logger == nil {
		o.Logger = quietLogger()
	}
	s, err := New([]Model{
		{Name: "fashion-mnist", Model: fashion, Weights: "built-in"},
		{Name: "tiny", Model: tiny, Weights: "random (seed 7)", Note: "random weights"},
	}, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, fashion, tiny
}

// do sends a request to h and returns the recorded answer.
func do(h http.Handler, method, target, contentType string, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, bytes.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func samplePNG(t testing.TB, i int) []byte {
	t.Helper()
	s := zoo.Samples()
	if len(s) != 10 {
		t.Fatalf("%d built-in samples", len(s))
	}
	return s[i].PNG
}

func encodePNG(t testing.TB, w, h int, seed uint64) []byte {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.NRGBA{uint8(r.IntN(256)), uint8(x * 7), uint8(y * 5), 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func npyBytes(t testing.TB, x *tensor.Tensor) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := npy.Write(&b, x); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func randTensor(seed uint64, shape ...int) *tensor.Tensor {
	r := rand.New(rand.NewPCG(seed, 3))
	x := tensor.New(shape...)
	for i := range x.Data {
		x.Data[i] = float32(r.NormFloat64())
	}
	return x
}

type form struct{ field, file string }

// multipartBody encodes files (and plain fields, where file is "") with
// the given contents.
func multipartBody(t testing.TB, parts []form, contents [][]byte) ([]byte, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for i, p := range parts {
		var w io.Writer
		var err error
		if p.file == "" {
			w, err = mw.CreateFormField(p.field)
		} else {
			w, err = mw.CreateFormFile(p.field, p.file)
		}
		if err != nil {
			t.Fatal(err)
		}
		w.Write(contents[i])
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), mw.FormDataContentType()
}

type classifyJSON struct {
	Model   string
	Results []struct {
		File string
		Top  []struct {
			Index int
			Label string
			Prob  float64
			Logit float32
		}
		Logits []float32
	}
	Timing struct {
		DecodeMS    float64 `json:"decode_ms"`
		QueueMS     float64 `json:"queue_ms"`
		InferenceMS float64 `json:"inference_ms"`
		TotalMS     float64 `json:"total_ms"`
		BatchSizes  []int   `json:"batch_sizes"`
	}
}

func decodeJSON(t testing.TB, w *httptest.ResponseRecorder, v any) {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json; body %q", ct, w.Body.String())
	}
	if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
		t.Fatalf("%v: %q", err, w.Body.String())
	}
}

// singleLogits is the library's own answer for one image: Forward on a
// batch of one.
func singleLogits(t testing.TB, m *mobileone.Model, x []float32, c, h, w int) []float32 {
	t.Helper()
	y, err := m.Forward(&tensor.Tensor{Shape: []int{1, c, h, w}, Data: x})
	if err != nil {
		t.Fatal(err)
	}
	return y.Data
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func TestModelsHealthReady(t *testing.T) {
	s, fashion, _ := newTestServer(t, Options{})
	w := do(s, "GET", "/v1/models", "", nil)
	var list struct{ Models []ModelInfo }
	decodeJSON(t, w, &list)
	if w.Code != 200 || len(list.Models) != 2 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	f, tiny := list.Models[0], list.Models[1]
	if f.Name != "fashion-mnist" || f.Input != [3]int{1, 28, 28} || f.Classes != 10 || f.Precision != "float32" ||
		f.Weights != "built-in" || f.Parameters != fashion.Params() || f.MaxBatch != 8 || !f.Preprocess.Gray {
		t.Errorf("fashion-mnist: %+v", f)
	}
	if tiny.Name != "tiny" || tiny.Variant != "custom" || tiny.Input != [3]int{3, 32, 32} || tiny.Classes != 7 ||
		tiny.Note != "random weights" || tiny.Preprocess.Crop != 32 || tiny.Preprocess.ResizeShort != 36 {
		t.Errorf("tiny: %+v", tiny)
	}
	w = do(s, "GET", "/v1/models/tiny", "", nil)
	var one ModelInfo
	decodeJSON(t, w, &one)
	if w.Code != 200 || one.Name != "tiny" {
		t.Errorf("GET /v1/models/tiny: %d %s", w.Code, w.Body)
	}
	for _, tc := range []struct {
		path string
		want int
		body string
	}{{"/healthz", 200, `"ok"`}, {"/readyz", 200, `"ready"`}} {
		if w := do(s, "GET", tc.path, "", nil); w.Code != tc.want || !strings.Contains(w.Body.String(), tc.body) {
			t.Errorf("%s: %d %s", tc.path, w.Code, w.Body)
		}
	}
	s.Drain()
	if w := do(s, "GET", "/readyz", "", nil); w.Code != 503 || !strings.Contains(w.Body.String(), "draining") {
		t.Errorf("readyz while draining: %d %s", w.Code, w.Body)
	}
	if w := do(s, "GET", "/healthz", "", nil); w.Code != 200 {
		t.Errorf("healthz while draining: %d", w.Code)
	}
	// A draining server still answers the requests that come.
	if w := do(s, "POST", "/v1/models/fashion-mnist/classify", "image/png", samplePNG(t, 0)); w.Code != 200 {
		t.Errorf("classify while draining: %d %s", w.Code, w.Body)
	}
	if w := do(s, "HEAD", "/healthz", "", nil); w.Code != 200 {
		t.Errorf("HEAD /healthz: %d", w.Code)
	}
}

func TestLoading(t *testing.T) {
	h := Loading()
	for _, tc := range []struct {
		path string
		want int
	}{{"/healthz", 200}, {"/readyz", 503}, {"/v1/models", 503}, {"/v1/models/x/classify", 503}} {
		w := do(h, "GET", tc.path, "", nil)
		if w.Code != tc.want || !json.Valid(w.Body.Bytes()) {
			t.Errorf("%s while loading: %d %s", tc.path, w.Code, w.Body)
		}
		if tc.want == 503 && w.Header().Get("Retry-After") == "" && tc.path != "/readyz" {
			t.Errorf("%s while loading: no Retry-After", tc.path)
		}
	}
}

// classify answers what the library answers for the same image, bit for
// bit, for a raw body and for multipart bodies of several images.
func TestClassify(t *testing.T) {
	s, fashion, tiny := newTestServer(t, Options{})
	img := samplePNG(t, 9)
	w := do(s, "POST", "/v1/models/fashion-mnist/classify?top=3&logits=true", "image/png", img)
	var res classifyJSON
	decodeJSON(t, w, &res)
	if w.Code != 200 || res.Model != "fashion-mnist" || len(res.Results) != 1 || len(res.Results[0].Top) != 3 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	dec, _, err := imageproc.Decode(bytes.NewReader(img), 0)
	if err != nil {
		t.Fatal(err)
	}
	want, err := fashion.Classify(dec, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range res.Results[0].Top {
		if p.Index != want[i].Index || p.Label != want[i].Label || p.Logit != want[i].Logit || p.Prob != want[i].Prob {
			t.Errorf("top %d: %+v, library %+v", i, p, want[i])
		}
	}
	if want[0].Label != "Ankle boot" {
		t.Errorf("the ankle boot sample is a %q", want[0].Label)
	}
	x := imageproc.Preprocess(dec, fashion.Preprocessing())
	if l := singleLogits(t, fashion, x.Data, 1, 28, 28); !sameBits(res.Results[0].Logits, l) {
		t.Errorf("logits %v, library %v", res.Results[0].Logits, l)
	}
	tm := res.Timing
	if tm.TotalMS <= 0 || tm.InferenceMS <= 0 || tm.TotalMS < tm.InferenceMS || len(tm.BatchSizes) != 1 {
		t.Errorf("timing %+v", tm)
	}
	if st := w.Header().Get("Server-Timing"); !strings.Contains(st, "inference;dur=") {
		t.Errorf("Server-Timing %q", st)
	}
	// top larger than the classes: all of them; default 5.
	for _, tc := range []struct {
		query string
		n     int
	}{{"?top=50", 10}, {"", 5}, {"?top=1&logits=false", 1}} {
		w := do(s, "POST", "/v1/models/fashion-mnist/classify"+tc.query, "", img)
		var r classifyJSON
		decodeJSON(t, w, &r)
		if w.Code != 200 || len(r.Results[0].Top) != tc.n || r.Results[0].Logits != nil {
			t.Errorf("%s: %d, %d classes, logits %v", tc.query, w.Code, len(r.Results[0].Top), r.Results[0].Logits)
		}
	}

	// Multipart: several RGB images of different sizes, in order, named.
	pngs := [][]byte{encodePNG(t, 40, 30, 1), encodePNG(t, 20, 50, 2), encodePNG(t, 33, 33, 3)}
	body, ct := multipartBody(t, []form{{"a", "one.png"}, {"b", "two.png"}, {"a", "three.png"}}, pngs)
	w = do(s, "POST", "/v1/models/tiny/classify?top=7&logits=1", ct, body)
	res = classifyJSON{}
	decodeJSON(t, w, &res)
	if w.Code != 200 || len(res.Results) != 3 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	for i, r := range res.Results {
		if want := []string{"one.png", "two.png", "three.png"}[i]; r.File != want {
			t.Errorf("result %d is %q, want %q", i, r.File, want)
		}
		dec, _, err := imageproc.Decode(bytes.NewReader(pngs[i]), 0)
		if err != nil {
			t.Fatal(err)
		}
		x := imageproc.Preprocess(dec, tiny.Preprocessing())
		if l := singleLogits(t, tiny, x.Data, 3, 32, 32); !sameBits(r.Logits, l) {
			t.Errorf("image %d: logits %v, library %v", i, r.Logits, l)
		}
		if r.Top[0].Logit != slicesMax(r.Logits) || r.Top[0].Label != fmt.Sprintf("class %d", r.Top[0].Index) {
			t.Errorf("image %d: top %+v, logits %v", i, r.Top[0], r.Logits)
		}
	}
}

func slicesMax(x []float32) float32 {
	m := float32(math.Inf(-1))
	for _, v := range x {
		m = max(m, v)
	}
	return m
}

// logits: .npy in, .npy or JSON out, bit-identical to the library's
// Forward of each image alone.
func TestLogits(t *testing.T) {
	s, _, tiny := newTestServer(t, Options{})
	x := randTensor(5, 3, 3, 32, 32)
	var want []float32
	for i := range 3 {
		want = append(want, singleLogits(t, tiny, x.Data[i*3*32*32:(i+1)*3*32*32], 3, 32, 32)...)
	}
	w := do(s, "POST", "/v1/models/tiny/logits", "application/octet-stream", npyBytes(t, x))
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	y, err := npy.Read(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !tensor.SameShape(y.Shape, []int{3, 7}) || !sameBits(y.Data, want) {
		t.Errorf("logits %v %v, want (3, 7) %v", y.Shape, y.Data, want)
	}
	// JSON by query or Accept header; a (C, H, W) tensor is one image.
	for _, tc := range []struct{ query, accept string }{{"?format=json", ""}, {"", "application/json"}} {
		one := &tensor.Tensor{Shape: []int{3, 32, 32}, Data: x.Data[3*32*32 : 2*3*32*32]}
		r := httptest.NewRequest("POST", "/v1/models/tiny/logits"+tc.query, bytes.NewReader(npyBytes(t, one)))
		if tc.accept != "" {
			r.Header.Set("Accept", tc.accept)
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		var res struct {
			Model  string
			Shape  []int
			Logits [][]float32
			Timing struct {
				TotalMS float64 `json:"total_ms"`
			}
		}
		decodeJSON(t, w, &res)
		if w.Code != 200 || res.Model != "tiny" || !tensor.SameShape(res.Shape, []int{1, 7}) || len(res.Logits) != 1 ||
			!sameBits(res.Logits[0], want[7:14]) || res.Timing.TotalMS <= 0 {
			t.Errorf("%s%s: %d %s", tc.query, tc.accept, w.Code, w.Body)
		}
	}
}

// Finite inputs so large that the logits overflow still get valid JSON:
// non-finite numbers are written as null.
func TestLogitsOverflowJSON(t *testing.T) {
	s, _, _ := newTestServer(t, Options{})
	x := randTensor(9, 1, 3, 32, 32)
	for i := range x.Data {
		x.Data[i] *= 1e37
	}
	w := do(s, "POST", "/v1/models/tiny/logits?format=json", "", npyBytes(t, x))
	var res struct{ Logits [][]*float64 }
	decodeJSON(t, w, &res)
	if w.Code != 200 || len(res.Logits) != 1 || len(res.Logits[0]) != 7 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	b, err := json.Marshal(struct {
		A floats32
		B float32js
		C float64js
	}{floats32{1.5, float32(math.NaN()), float32(math.Inf(-1))}, float32js(math.Inf(1)), float64js(0.25)})
	if err != nil || string(b) != `{"A":[1.5,null,null],"B":null,"C":0.25}` {
		t.Errorf("%s %v", b, err)
	}
}

// writeNpyRaw writes an .npy header with any descr and shape, then data.
func writeNpyRaw(descr, shape string, data []byte) []byte {
	h := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape)
	for (10+len(h)+1)%64 != 0 {
		h += " "
	}
	h += "\n"
	b := []byte("\x93NUMPY\x01\x00")
	b = append(b, byte(len(h)), byte(len(h)>>8))
	b = append(b, h...)
	return append(b, data...)
}

// Every bad request gets a 4xx with a one-line JSON error naming the
// problem.
func TestBadRequests(t *testing.T) {
	s, _, _ := newTestServer(t, Options{MaxBodyBytes: 64 << 10, MaxPixels: 100 * 100, MaxImages: 2})
	png := samplePNG(t, 1)
	fileBody, fileCT := multipartBody(t, []form{{"top", ""}}, [][]byte{[]byte("3")})
	threeBody, threeCT := multipartBody(t, []form{{"a", "1.png"}, {"a", "2.png"}, {"a", "3.png"}}, [][]byte{png, png, png})
	emptyPart, emptyPartCT := multipartBody(t, []form{{"a", "1.png"}}, [][]byte{nil})
	badPart, badPartCT := multipartBody(t, []form{{"a", "ok.png"}, {"b", "bad.png"}}, [][]byte{png, []byte("GIF89a")})
	noFiles, noFilesCT := multipartBody(t, nil, nil)
	big := encodePNG(t, 101, 100, 1)
	nan := randTensor(1, 1, 1, 28, 28)
	nan.Data[17] = float32(math.NaN())
	inf := randTensor(1, 1, 28, 28)
	inf.Data[3] = float32(math.Inf(1))
	good := npyBytes(t, randTensor(1, 1, 1, 28, 28))
	const classify, logits = "/v1/models/fashion-mnist/classify", "/v1/models/fashion-mnist/logits"
	for _, tc := range []struct {
		name, method, path, ct string
		body                   []byte
		status                 int
		msg                    string
	}{
		{"unknown model", "POST", "/v1/models/resnet/classify", "", png, 404, `unknown model "resnet" (serving: fashion-mnist, tiny)`},
		{"unknown model logits", "POST", "/v1/models/resnet/logits", "", good, 404, `unknown model "resnet"`},
		{"unknown model info", "GET", "/v1/models/resnet", "", nil, 404, `unknown model "resnet"`},
		{"no route", "GET", "/v2/models", "", nil, 404, "no route GET /v2/models"},
		{"GET classify", "GET", classify, "", nil, 405, "use POST"},
		{"PUT logits", "PUT", logits, "", good, 405, "use POST"},
		{"POST models", "POST", "/v1/models", "", nil, 405, "use GET"},
		{"OPTIONS without CORS", "OPTIONS", classify, "", nil, 405, "use POST"},
		{"empty body", "POST", classify, "image/png", nil, 400, "empty body: send an image"},
		{"not an image", "POST", classify, "image/png", []byte("hello, world"), 415, `not an image (or an unsupported format): unrecognised header "hello, world"`},
		{"truncated image", "POST", classify, "image/png", png[:len(png)/2], 400, "truncated png image (28x28)"},
		{"corrupt image", "POST", classify, "", append(append([]byte{}, png[:40]...), bytes.Repeat([]byte{0xff}, 200)...), 400, "png image"},
		{"too many pixels", "POST", classify, "", big, 413, "png image is 101x100 = 0.0 MP, over the 0.01 MP limit"},
		{"body too large", "POST", classify, "", make([]byte, 65<<10), 413, "request body over the 64 KiB limit"},
		{"top zero", "POST", classify + "?top=0", "", png, 400, `top="0": want a whole number`},
		{"top word", "POST", classify + "?top=five", "", png, 400, `top="five"`},
		{"logits flag", "POST", classify + "?logits=maybe", "", png, 400, `logits="maybe": want true or false`},
		{"unknown parameter", "POST", classify + "?tpo=3", "", png, 400, `unknown query parameter "tpo" (known: top, logits)`},
		{"multipart field", "POST", classify, fileCT, fileBody, 400, `multipart field "top" is not a file`},
		{"multipart too many", "POST", classify, threeCT, threeBody, 413, "more than 2 images in one request"},
		{"multipart empty file", "POST", classify, emptyPartCT, emptyPart, 400, `image "1.png" is empty`},
		{"multipart bad file", "POST", classify, badPartCT, badPart, 400, `image "bad.png": bad gif header: gif: reading header: unexpected EOF`},
		{"multipart no files", "POST", classify, noFilesCT, noFiles, 400, "multipart body without image files"},
		{"multipart no boundary", "POST", classify, "multipart/form-data", png, 400, "multipart/form-data body without a boundary"},
		{"multipart malformed", "POST", classify, "multipart/form-data; boundary=xyz", []byte("--xyz\r\nnonsense"), 400, "malformed multipart body"},
		{"logits empty", "POST", logits, "", nil, 400, "empty body: send a float32 .npy tensor (N, 1, 28, 28)"},
		{"logits not npy", "POST", logits, "", png, 400, "body is not a float32 .npy tensor (N, 1, 28, 28): npy: bad magic"},
		{"logits float64", "POST", logits, "", writeNpyRaw("<f8", "(1, 1, 28, 28)", make([]byte, 8*784)), 400, "npy: dtype '<f8' is not float32"},
		{"logits truncated", "POST", logits, "", good[:len(good)-5], 400, "npy: data has 3131 bytes, shape (1, 1, 28, 28) needs 3136"},
		{"logits channels", "POST", logits, "", npyBytes(t, randTensor(1, 1, 3, 28, 28)), 400, `tensor shape (1, 3, 28, 28): model "fashion-mnist" takes (N, 1, 28, 28)`},
		{"logits size", "POST", logits, "", npyBytes(t, randTensor(1, 2, 1, 32, 32)), 400, "tensor shape (2, 1, 32, 32)"},
		{"logits rank", "POST", logits, "", npyBytes(t, randTensor(1, 28, 28)), 400, "tensor shape (28, 28)"},
		{"logits no images", "POST", logits, "", writeNpyRaw("<f4", "(0, 1, 28, 28)", nil), 400, "tensor shape (0, 1, 28, 28) has no images"},
		{"logits too many", "POST", logits, "", npyBytes(t, randTensor(1, 3, 1, 28, 28)), 413, "more than 2 images in one request"},
		{"logits NaN", "POST", logits, "", npyBytes(t, nan), 400, "tensor value 17 is NaN: inputs must be finite"},
		{"logits Inf", "POST", logits, "", npyBytes(t, inf), 400, "tensor value 3 is +Inf"},
		{"logits format", "POST", logits + "?format=xml", "", good, 400, `format="xml": want npy or json`},
		{"logits too large", "POST", logits, "", writeNpyRaw("<f4", "(30, 1, 28, 28)", make([]byte, 30*784*4)), 413, "request body over the 64 KiB limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := do(s, tc.method, tc.path, tc.ct, tc.body)
			checkError(t, w, tc.status, tc.msg)
		})
	}
}

// A body without Content-Length (chunked) is cut at the limit while it is
// read: still a 413.
func TestStreamedBodyLimit(t *testing.T) {
	s, _, _ := newTestServer(t, Options{MaxBodyBytes: 4 << 10})
	for _, tc := range []struct{ path, ct string }{
		{"/v1/models/fashion-mnist/classify", ""},
		{"/v1/models/fashion-mnist/classify", "multipart/form-data; boundary=b"},
		{"/v1/models/fashion-mnist/logits", ""},
	} {
		body := writeNpyRaw("<f4", "(3, 1, 28, 28)", make([]byte, 3*784*4))
		if tc.ct != "" {
			body = append([]byte("--b\r\nContent-Disposition: form-data; name=\"a\"; filename=\"a.png\"\r\n\r\n"), body...)
		}
		r := httptest.NewRequest("POST", tc.path, io.MultiReader(bytes.NewReader(body)))
		r.ContentLength = -1
		if tc.ct != "" {
			r.Header.Set("Content-Type", tc.ct)
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		checkError(t, w, 413, "request body over the 4 KiB limit")
	}
}

// A client that sends its body too slowly gets a 408 when the server's read
// timeout passes (the real server on a loopback port).
func TestSlowClient(t *testing.T) {
	s, _, _ := newTestServer(t, Options{})
	srv := httptest.NewUnstartedServer(s)
	srv.Config.ReadTimeout = 200 * time.Millisecond
	srv.Start()
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/models/fashion-mnist/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 408 || !strings.Contains(string(body), `"error":"reading the body: timed out"`) {
		t.Errorf("%d %s", resp.StatusCode, body)
	}
}

// checkError checks an error answer: status, JSON content type, one line
// {"error": "..."} containing msg.
func checkError(t *testing.T, w *httptest.ResponseRecorder, status int, msg string) {
	t.Helper()
	body := w.Body.String()
	var e struct{ Error string }
	if w.Code != status || w.Header().Get("Content-Type") != "application/json" ||
		strings.Count(strings.TrimSuffix(body, "\n"), "\n") != 0 || json.Unmarshal(w.Body.Bytes(), &e) != nil ||
		!strings.Contains(e.Error, msg) {
		t.Errorf("got %d %q, want %d with error containing %q", w.Code, body, status, msg)
	}
	if status == 405 && w.Header().Get("Allow") == "" {
		t.Errorf("405 without Allow")
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !poll(cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// poll reports whether cond became true within 60 s (CI machines under
// the race detector and other packages' tests can be slow).
func poll(cond func() bool) bool {
	for deadline := time.Now().Add(60 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// hold makes the engine busy until the returned release is called, or
// until the test ends, whichever is first: a test that fails while it
// holds the engine fails instead of hanging the server's Close.
func hold(t *testing.T, s *Server) (release func()) {
	s.compute.Lock()
	var once sync.Once
	release = func() { once.Do(s.compute.Unlock) }
	t.Cleanup(release) // runs before the server's Close (cleanups are LIFO)
	return release
}

type answer struct {
	code int
	body string
	hdr  http.Header
}

func goDo(s http.Handler, path string, body []byte) chan answer {
	ch := make(chan answer, 1)
	go func() {
		w := do(s, "POST", path, "", body)
		ch <- answer{w.Code, w.Body.String(), w.Header()}
	}()
	return ch
}

// A full queue, too many requests in flight, a timeout and a closed server
// are 503s with Retry-After; what was accepted is answered.
func TestOverload(t *testing.T) {
	png := samplePNG(t, 2)
	const path = "/v1/models/fashion-mnist/classify"
	t.Run("queue full", func(t *testing.T) {
		s, _, _ := newTestServer(t, Options{QueueSize: 2, MaxImages: 1})
		b := s.models["fashion-mnist"].b
		release := hold(t, s) // the engine is busy
		first := goDo(s, path, png)
		waitFor(t, "the first request's batch to wait for the engine", func() bool {
			return s.inFlight.Load() == 1 && b.waiting.Load() == 1
		})
		queued := []chan answer{goDo(s, path, png), goDo(s, path, png)}
		waitFor(t, "two queued images", func() bool { return b.queued.Load() == 2 })
		w := do(s, "POST", path, "", png)
		checkError(t, w, 503, `model "fashion-mnist": queue full (2 images waiting): retry later`)
		if w.Header().Get("Retry-After") != "1" {
			t.Errorf("Retry-After %q", w.Header().Get("Retry-After"))
		}
		release()
		for _, ch := range append(queued, first) {
			if a := <-ch; a.code != 200 {
				t.Errorf("accepted request: %d %s", a.code, a.body)
			}
		}
	})
	t.Run("in flight", func(t *testing.T) {
		s, _, _ := newTestServer(t, Options{MaxInFlight: 1})
		release := hold(t, s)
		first := goDo(s, path, png)
		waitFor(t, "a request in flight", func() bool { return s.inFlight.Load() == 1 })
		checkError(t, do(s, "POST", path, "", png), 503, "1 requests in flight, the limit: retry later")
		release()
		if a := <-first; a.code != 200 {
			t.Errorf("first request: %d %s", a.code, a.body)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		// (250 ms: the answer after the timeout must come within it on a
		// loaded CI machine too)
		s, _, _ := newTestServer(t, Options{Timeout: 250 * time.Millisecond})
		release := hold(t, s)
		t0 := time.Now()
		w := do(s, "POST", path, "", png)
		checkError(t, w, 503, "no answer within the 250ms timeout (server overloaded)")
		if d := time.Since(t0); d > 2*time.Second {
			t.Errorf("timed out after %v", d)
		}
		release()
		if w := do(s, "POST", path, "", png); w.Code != 200 {
			t.Errorf("after the timeout: %d %s", w.Code, w.Body)
		}
	})
	t.Run("closed", func(t *testing.T) {
		s, _, _ := newTestServer(t, Options{})
		b := s.models["fashion-mnist"].b
		release := hold(t, s)
		first := goDo(s, path, png)
		waitFor(t, "the first request's batch to wait for the engine", func() bool {
			return s.inFlight.Load() == 1 && b.waiting.Load() == 1
		})
		second := goDo(s, path, png)
		waitFor(t, "a queued image", func() bool { return b.queued.Load() == 1 })
		closed := make(chan struct{})
		go func() { s.Close(); close(closed) }()
		waitFor(t, "the server to stop taking jobs", func() bool { b.mu.RLock(); defer b.mu.RUnlock(); return b.stopped })
		release()
		<-closed
		if a := <-first; a.code != 200 {
			t.Errorf("request in its batch at close: %d %s", a.code, a.body)
		}
		if a := <-second; a.code != 503 || !strings.Contains(a.body, "server shutting down") {
			t.Errorf("request queued at close: %d %s", a.code, a.body)
		}
		checkError(t, do(s, "POST", path, "", png), 503, "server shutting down")
	})
}

func TestCORS(t *testing.T) {
	s, _, _ := newTestServer(t, Options{})
	if w := do(s, "GET", "/v1/models", "", nil); w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("CORS header without CORSOrigin")
	}
	s, _, _ = newTestServer(t, Options{CORSOrigin: "https://example.org"})
	if w := do(s, "GET", "/v1/models", "", nil); w.Header().Get("Access-Control-Allow-Origin") != "https://example.org" {
		t.Errorf("no CORS header with CORSOrigin")
	}
	r := httptest.NewRequest("OPTIONS", "/v1/models/tiny/classify", nil)
	r.Header.Set("Origin", "https://example.org")
	r.Header.Set("Access-Control-Request-Method", "POST")
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	if w.Code != 204 || !strings.Contains(w.Header().Get("Access-Control-Allow-Methods"), "POST") {
		t.Errorf("preflight: %d %v", w.Code, w.Header())
	}
}

func TestMetrics(t *testing.T) {
	s, _, _ := newTestServer(t, Options{})
	do(s, "POST", "/v1/models/fashion-mnist/classify", "", samplePNG(t, 3))
	do(s, "POST", "/v1/models/fashion-mnist/classify", "", []byte("junk"))
	do(s, "POST", "/v1/models/nope/classify", "", []byte("junk"))
	w := do(s, "GET", "/metrics", "", nil)
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
		t.Fatalf("%d %v", w.Code, w.Header())
	}
	for _, want := range []string{
		`mobileone_http_requests_total{code="200",handler="classify",model="fashion-mnist"} 1`,
		`mobileone_http_requests_total{code="415",handler="classify",model="fashion-mnist"} 1`,
		`mobileone_http_requests_total{code="404",handler="classify",model=""} 1`,
		`mobileone_http_request_duration_seconds_bucket{handler="classify",model="fashion-mnist",le="0.00025"}`,
		`mobileone_batch_size_bucket{model="fashion-mnist",le="1"} 1`,
		`mobileone_batch_size_count{model="tiny"} 0`,
		`mobileone_batch_duration_seconds_count{model="fashion-mnist"} 1`,
		`mobileone_queue_wait_seconds_count{model="fashion-mnist"} 1`,
		`mobileone_queue_depth{model="fashion-mnist"} 0`,
		`mobileone_queue_capacity{model="tiny"} 128`,
		`mobileone_images_total{endpoint="classify",model="fashion-mnist"} 1`,
		"mobileone_http_requests_in_flight 1", // this request
		"mobileone_ready 1",
		"go_goroutines ",
		"process_resident_memory_bytes ",
	} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// A panic in a handler (a bug) is a JSON 500, logged, and the server
// goes on.
func TestPanicIs500(t *testing.T) {
	var log bytes.Buffer
	s, _, _ := newTestServer(t, Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	h := s.observe(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	checkError(t, do(h, "GET", "/x", "", nil), 500, "internal error")
	if !strings.Contains(log.String(), "boom") {
		t.Errorf("the panic was not logged: %s", log.String())
	}
}

func TestNewErrors(t *testing.T) {
	fashion, _ := testModels(t)
	for _, tc := range []struct {
		models []Model
		opts   Options
		msg    string
	}{
		{nil, Options{}, "no models"},
		{[]Model{{Name: "a/b", Model: fashion}}, Options{}, `model name "a/b"`},
		{[]Model{{Name: "a", Model: fashion}, {Name: "a", Model: fashion}}, Options{}, `two models named "a"`},
		{[]Model{{Name: "a"}}, Options{}, `model "a" is nil`},
		{[]Model{{Name: "a", Model: fashion, Int8: &quant.Model{}}}, Options{}, `model "a": set Model (float) or Int8, not both`},
		{[]Model{{Name: "a", Model: fashion}}, Options{MaxBatch: 300}, "max batch"},
		{[]Model{{Name: "a", Model: fashion}}, Options{QueueSize: 4, MaxImages: 5}, "max images per request"},
	} {
		tc.opts.Logger = quietLogger()
		if _, err := New(tc.models, tc.opts); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("New: %v, want an error containing %q", err, tc.msg)
		}
	}
}

// Steady-state batches allocate nothing: the plans, the batch buffer and
// the metrics' observers are made once.
func TestBatchAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool (the kernels' scratch buffers) allocate")
	}
	s, _, _ := newTestServer(t, Options{})
	b := s.models["tiny"].b
	req := newPending(t.Context(), 1<<30) // never done
	jobs := make([]*job, 5)
	for i := range jobs {
		jobs[i] = &job{x: randTensor(uint64(i), 3*32*32).Data, out: make([]float32, 7), req: req}
	}
	run := func() {
		b.batch = append(b.batch, jobs...)
		b.run()
	}
	run()
	if n := testing.AllocsPerRun(20, run); n != 0 {
		t.Errorf("a batch of 5 allocates %v times", n)
	}
}

// The real server on a loopback port: many goroutines send classify and
// logits requests at once, and every answer is the library's own output for
// that image alone, bit for bit, although the images ran in batches.
func TestConcurrentLoopback(t *testing.T) {
	s, fashion, tiny := newTestServer(t, Options{MaxBatch: 8})
	srv := httptest.NewServer(s) // 127.0.0.1
	defer srv.Close()
	// The library's answers.
	samples := zoo.Samples()
	fashionWant := make([][]float32, len(samples))
	for i, smp := range samples {
		dec, _, err := imageproc.Decode(bytes.NewReader(smp.PNG), 0)
		if err != nil {
			t.Fatal(err)
		}
		fashionWant[i] = singleLogits(t, fashion, imageproc.Preprocess(dec, fashion.Preprocessing()).Data, 1, 28, 28)
	}
	const per = 3 * 32 * 32
	inputs := randTensor(11, 24, 3, 32, 32)
	tinyWant := make([][]float32, 24)
	for i := range tinyWant {
		tinyWant[i] = singleLogits(t, tiny, inputs.Data[i*per:(i+1)*per], 3, 32, 32)
	}

	// Hold the engine so that the first requests pile up into full
	// batches, then let it go while the rest keep coming.
	release := hold(t, s)
	go func() {
		defer release()
		if !poll(func() bool { return s.models["tiny"].b.queued.Load() >= 8 }) {
			t.Error("timed out waiting for 8 queued images")
		}
	}()
	const workers, rounds = 32, 6
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	client := srv.Client()
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range rounds {
				i := (g*rounds + k) % 24
				if (g+k)%2 == 0 { // logits of 1..3 images of tiny
					n := 1 + i%3
					i = min(i, 24-n)
					x := &tensor.Tensor{Shape: []int{n, 3, 32, 32}, Data: inputs.Data[i*per : (i+n)*per]}
					resp, err := client.Post(srv.URL+"/v1/models/tiny/logits", "application/octet-stream", bytes.NewReader(npyBytes(t, x)))
					if err != nil {
						errs <- err
						continue
					}
					y, err := npy.Read(resp.Body)
					resp.Body.Close()
					if err != nil || resp.StatusCode != 200 {
						errs <- fmt.Errorf("logits: %d %v", resp.StatusCode, err)
						continue
					}
					for j := range n {
						if !sameBits(y.Data[j*7:(j+1)*7], tinyWant[i+j]) {
							errs <- fmt.Errorf("tiny image %d: %v, alone %v", i+j, y.Data[j*7:(j+1)*7], tinyWant[i+j])
						}
					}
					continue
				}
				j := i % 10 // classify one of the samples
				resp, err := client.Post(srv.URL+"/v1/models/fashion-mnist/classify?logits=true", "image/png", bytes.NewReader(samples[j].PNG))
				if err != nil {
					errs <- err
					continue
				}
				var res classifyJSON
				err = json.NewDecoder(resp.Body).Decode(&res)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || len(res.Results) != 1 {
					errs <- fmt.Errorf("classify: %d %v", resp.StatusCode, err)
					continue
				}
				if !sameBits(res.Results[0].Logits, fashionWant[j]) {
					errs <- fmt.Errorf("sample %d: %v, alone %v", j, res.Results[0].Logits, fashionWant[j])
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Batching did happen.
	w := do(s, "GET", "/metrics", "", nil)
	for _, m := range []string{"tiny", "fashion-mnist"} {
		count, sum := metricValue(w.Body.String(), `mobileone_batch_size_count{model="`+m+`"}`),
			metricValue(w.Body.String(), `mobileone_batch_size_sum{model="`+m+`"}`)
		t.Logf("%s: %v images in %v batches", m, sum, count)
		if count == 0 || sum <= count {
			t.Errorf("%s: %v images in %v batches: no batching", m, sum, count)
		}
	}
}

func metricValue(text, name string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return -1
}
