package serve

import (
	"bytes"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/mobileone-go/mobileone"
	"github.com/mobileone-go/mobileone/format/npy"
	"github.com/mobileone-go/mobileone/imageproc"
	"github.com/mobileone-go/mobileone/internal/zoo"
	"github.com/mobileone-go/mobileone/quant"
	"github.com/mobileone-go/mobileone/tensor"
)

// sampleImages are built-in samples, preprocessed for the built-in model:
// calibration images for quant.Calibrate.
type sampleImages struct {
	t   testing.TB
	pre imageproc.Params
	idx []int
}

func (s sampleImages) Len() int { return len(s.idx) }

func (s sampleImages) Image(i int) ([]float32, error) {
	img, _, err := imageproc.Decode(bytes.NewReader(samplePNG(s.t, s.idx[i])), 0)
	if err != nil {
		return nil, err
	}
	return imageproc.Preprocess(img, s.pre).Data, nil
}

// int8Model quantises the built-in Fashion-MNIST model on four of its
// samples (a few milliseconds; the accuracy is not the point here).
func int8Model(t testing.TB, fashion *mobileone.Model) *quant.Model {
	t.Helper()
	cal, err := quant.Calibrate(fashion, sampleImages{t, fashion.Preprocessing(), []int{0, 3, 5, 8}})
	if err != nil {
		t.Fatal(err)
	}
	q, err := cal.Quantize(quant.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// int8Single is the int8 plan's own answer for one image.
func int8Single(t testing.TB, q *quant.Model, x []float32) []float32 {
	t.Helper()
	p, err := q.NewPlan(1, 28, 28)
	if err != nil {
		t.Fatal(err)
	}
	y, err := p.Run(x)
	if err != nil {
		t.Fatal(err)
	}
	return slices.Clone(y)
}

// An int8 model is served next to a float one: /v1/models says which is
// which, and classify and logits answer what the int8 plan answers for each
// image alone, bit for bit, whatever batch the image ran in.
func TestServeInt8(t *testing.T) {
	fashion, _ := testModels(t)
	q := int8Model(t, fashion)
	s, err := New([]Model{
		{Name: "fashion-mnist", Model: fashion, Weights: "built-in"},
		{Name: "fashion-int8", Int8: q, Weights: "fm.int8.safetensors"},
	}, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	var list struct{ Models []ModelInfo }
	w := do(s, "GET", "/v1/models", "", nil)
	decodeJSON(t, w, &list)
	if w.Code != 200 || len(list.Models) != 2 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	qi, fi := list.Models[0], list.Models[1]
	if qi.Name != "fashion-int8" || qi.Precision != "int8" || qi.Input != [3]int{1, 28, 28} || qi.Classes != 10 ||
		qi.Weights != "fm.int8.safetensors" || qi.Parameters != fi.Parameters || qi.Preprocess != fi.Preprocess {
		t.Errorf("int8 model: %+v (float: %+v)", qi, fi)
	}
	if fi.Name != "fashion-mnist" || fi.Precision != "float32" {
		t.Errorf("float model: %+v", fi)
	}

	// The int8 plan itself: a batch of n images gives each image's logits
	// alone, bit for bit (the batcher relies on it).
	const n = 5
	x := randTensor(11, n, 1, 28, 28)
	var singles []float32
	for i := range n {
		singles = append(singles, int8Single(t, q, x.Data[i*28*28:(i+1)*28*28])...)
	}
	pn, err := q.NewPlan(n, 28, 28)
	if err != nil {
		t.Fatal(err)
	}
	if pn.Outputs() != 10 {
		t.Errorf("int8 plan: %d outputs, want 10", pn.Outputs())
	}
	batch, err := pn.Run(x.Data)
	if err != nil {
		t.Fatal(err)
	}
	if !sameBits(batch, singles) {
		t.Errorf("int8 plan: a batch of %d gives %v, the images alone %v", n, batch, singles)
	}
	fl := singleLogits(t, fashion, x.Data[:28*28], 1, 28, 28)
	if sameBits(fl, singles[:10]) {
		t.Error("the int8 model's logits are the float model's, bit for bit: is it running the float engine?")
	}

	// logits: an (N, 1, 28, 28) tensor, and one image (the fast path).
	w = do(s, "POST", "/v1/models/fashion-int8/logits", "application/octet-stream", npyBytes(t, x))
	if w.Code != 200 {
		t.Fatalf("logits: %d %s", w.Code, w.Body)
	}
	y, err := npy.Read(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !tensor.SameShape(y.Shape, []int{n, 10}) || !sameBits(y.Data, singles) {
		t.Errorf("logits %v %v, want (%d, 10) %v", y.Shape, y.Data, n, singles)
	}
	one := &tensor.Tensor{Shape: []int{1, 1, 28, 28}, Data: x.Data[2*28*28 : 3*28*28]}
	w = do(s, "POST", "/v1/models/fashion-int8/logits", "application/octet-stream", npyBytes(t, one))
	if y, err := npy.Read(w.Body); w.Code != 200 || err != nil || !sameBits(y.Data, singles[20:30]) {
		t.Errorf("logits of one image: %d %v, want %v", w.Code, err, singles[20:30])
	}

	// classify: the int8 file's preprocessing, a raw body and a multipart
	// body of several images.
	img := samplePNG(t, 9)
	w = do(s, "POST", "/v1/models/fashion-int8/classify?top=3&logits=true", "image/png", img)
	var res classifyJSON
	decodeJSON(t, w, &res)
	if w.Code != 200 || res.Model != "fashion-int8" || len(res.Results) != 1 || len(res.Results[0].Top) != 3 {
		t.Fatalf("classify: %d %s", w.Code, w.Body)
	}
	want := int8Single(t, q, imageX(t, img, q.Preprocessing()))
	if !sameBits(res.Results[0].Logits, want) {
		t.Errorf("classify logits %v, int8 plan %v", res.Results[0].Logits, want)
	}
	for i, p := range mobileone.TopK(want, q.ClassNames(), 3) {
		if got := res.Results[0].Top[i]; got.Index != p.Index || got.Label != p.Label || got.Logit != p.Logit {
			t.Errorf("top %d: %+v, want %+v", i, got, p)
		}
	}
	if res.Results[0].Top[0].Label != "Ankle boot" {
		t.Errorf("the int8 model calls the ankle boot sample a %q", res.Results[0].Top[0].Label)
	}
	idx := []int{1, 2, 4, 6, 7}
	pngs := make([][]byte, len(idx))
	parts := make([]form, len(idx))
	for i, k := range idx {
		pngs[i], parts[i] = samplePNG(t, k), form{"f", zoo.Samples()[k].Name}
	}
	body, ct := multipartBody(t, parts, pngs)
	r := httptest.NewRequest("POST", "/v1/models/fashion-int8/classify?top=1&logits=1", bytes.NewReader(body))
	r.Header.Set("Content-Type", ct)
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, r)
	res = classifyJSON{}
	decodeJSON(t, rec, &res)
	if rec.Code != 200 || len(res.Results) != len(idx) {
		t.Fatalf("multipart classify: %d %s", rec.Code, rec.Body)
	}
	for i, k := range idx {
		if want := int8Single(t, q, imageX(t, pngs[i], q.Preprocessing())); !sameBits(res.Results[i].Logits, want) {
			t.Errorf("sample %d (batch size %d): logits %v, int8 plan %v", k, res.Timing.BatchSizes[i], res.Results[i].Logits, want)
		}
	}
}

// imageX decodes and preprocesses an image.
func imageX(t testing.TB, b []byte, p imageproc.Params) []float32 {
	t.Helper()
	img, _, err := imageproc.Decode(bytes.NewReader(b), 0)
	if err != nil {
		t.Fatal(err)
	}
	return imageproc.Preprocess(img, p).Data
}
