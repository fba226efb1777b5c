package detect

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEvaluateKnownCases(t *testing.T) {
	g := func(img, cat int, x, y, w, h float64) GroundTruth {
		return GroundTruth{ImageID: img, CategoryID: cat, BBox: [4]float64{x, y, w, h}}
	}
	d := func(img, cat int, x, y, w, h, s float64) Result {
		return Result{ImageID: img, CategoryID: cat, BBox: [4]float64{x, y, w, h}, Score: s}
	}
	crowd := func(x GroundTruth) GroundTruth { x.Crowd = true; return x }
	ign := func(x GroundTruth) GroundTruth { x.Ignore = true; return x }
	type want struct {
		field string
		v     float64
	}
	cases := []struct {
		name   string
		images []int
		cats   []int
		gts    []GroundTruth
		dets   []Result
		want   []want
	}{
		{"perfect", []int{1, 2}, []int{1, 2},
			[]GroundTruth{g(1, 1, 0, 0, 50, 50), g(1, 2, 10, 10, 20, 20), g(2, 1, 5, 5, 120, 100)},
			[]Result{d(1, 1, 0, 0, 50, 50, .9), d(1, 2, 10, 10, 20, 20, .8), d(2, 1, 5, 5, 120, 100, .7)},
			[]want{{"AP", 1}, {"AP50", 1}, {"AP75", 1}, {"APs", 1}, {"APm", 1}, {"APl", 1}, {"AR1", 1}, {"AR100", 1}, {"ARs", 1}}},
		{"false positive ranked above", []int{1}, []int{1},
			[]GroundTruth{g(1, 1, 0, 0, 50, 50)},
			[]Result{d(1, 1, 100, 100, 50, 50, .9), d(1, 1, 0, 0, 50, 50, .8)},
			[]want{{"AP", .5}, {"AP50", .5}, {"AR100", 1}, {"AR1", 0}, {"APm", .5}}},
		{"false positive ranked below", []int{1}, []int{1},
			[]GroundTruth{g(1, 1, 0, 0, 50, 50)},
			[]Result{d(1, 1, 100, 100, 50, 50, .7), d(1, 1, 0, 0, 50, 50, .8)},
			[]want{{"AP", 1}, {"AR1", 1}}},
		{"missed object", []int{1}, []int{1},
			[]GroundTruth{g(1, 1, 0, 0, 50, 50), g(1, 1, 100, 100, 50, 50)},
			[]Result{d(1, 1, 0, 0, 50, 50, .8)},
			[]want{{"AP", 51.0 / 101}, {"AR100", .5}}},
		{"duplicate detection is a false positive", []int{1}, []int{1},
			[]GroundTruth{g(1, 1, 0, 0, 50, 50)},
			[]Result{d(1, 1, 0, 0, 50, 50, .9), d(1, 1, 1, 1, 50, 50, .8)},
			[]want{{"AP", 1}, {"AR100", 1}}},
		{"IoU 0.8 counts up to threshold .80", []int{1}, []int{1},
			[]GroundTruth{g(1, 1, 0, 0, 10, 10)},
			[]Result{d(1, 1, 0, 0, 10, 8, .9)},
			[]want{{"AP", .7}, {"AP50", 1}, {"AP75", 1}, {"AR100", .7}}},
		{"crowd region absorbs detections", []int{1}, []int{1},
			[]GroundTruth{g(1, 1, 0, 0, 50, 50), crowd(g(1, 1, 100, 100, 200, 200))},
			// both inside the crowd region: IoU = intersection / detection area = 1
			[]Result{d(1, 1, 110, 110, 20, 20, .95), d(1, 1, 150, 150, 30, 30, .9), d(1, 1, 0, 0, 50, 50, .8)},
			[]want{{"AP", 1}, {"AR100", 1}}},
		{"without the crowd flag the same detections are false positives", []int{1}, []int{1},
			[]GroundTruth{g(1, 1, 0, 0, 50, 50), g(1, 1, 100, 100, 200, 200)},
			[]Result{d(1, 1, 110, 110, 20, 20, .95), d(1, 1, 150, 150, 30, 30, .9), d(1, 1, 0, 0, 50, 50, .8)},
			// recall .5 reached at the third detection, precision 1/3
			[]want{{"AP", 51.0 / 101 / 3}, {"AR100", .5}}},
		{"ignored (difficult) object: its detection neither helps nor hurts", []int{1}, []int{1},
			[]GroundTruth{g(1, 1, 0, 0, 50, 50), ign(g(1, 1, 100, 100, 50, 50))},
			[]Result{d(1, 1, 100, 100, 50, 50, .95), d(1, 1, 0, 0, 50, 50, .8)},
			[]want{{"AP", 1}, {"AR100", 1}}},
		{"area ranges", []int{1}, []int{1},
			[]GroundTruth{g(1, 1, 0, 0, 10, 10), g(1, 1, 100, 100, 100, 100)},
			// a small false positive above both true positives
			[]Result{d(1, 1, 50, 50, 10, 10, .9), d(1, 1, 0, 0, 10, 10, .8), d(1, 1, 100, 100, 100, 100, .7)},
			[]want{{"AP", 2.0 / 3}, {"APs", .5}, {"APm", -1}, {"APl", 1}, {"ARs", 1}, {"ARm", -1}, {"ARl", 1}}},
		{"images without ground truth", []int{1, 2, 3}, []int{1},
			[]GroundTruth{g(1, 1, 0, 0, 50, 50)},
			// image 2: a false positive ranked above; image 3: nothing
			[]Result{d(2, 1, 0, 0, 50, 50, .9), d(1, 1, 0, 0, 50, 50, .8)},
			[]want{{"AP", .5}, {"AR100", 1}}},
		{"maxDets: one detection per image", []int{1}, []int{1},
			[]GroundTruth{g(1, 1, 0, 0, 50, 50), g(1, 1, 100, 100, 50, 50)},
			[]Result{d(1, 1, 0, 0, 50, 50, .9), d(1, 1, 100, 100, 50, 50, .8)},
			[]want{{"AR1", .5}, {"AR10", 1}, {"AP", 1}}},
		{"no detections at all", []int{1}, []int{1},
			[]GroundTruth{g(1, 1, 0, 0, 50, 50)}, nil,
			[]want{{"AP", 0}, {"AR100", 0}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := Evaluate(c.images, c.cats, c.gts, c.dets, nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(r)
			var m map[string]any
			_ = json.Unmarshal(b, &m)
			for _, w := range c.want {
				if got := m[w.field].(float64); math.Abs(got-w.v) > 1e-12 {
					t.Errorf("%s = %v, want %v", w.field, got, w.v)
				}
			}
		})
	}
}

func TestEvaluatePerClass(t *testing.T) {
	gts := []GroundTruth{
		{ImageID: 1, CategoryID: 1, BBox: [4]float64{0, 0, 40, 40}},
		{ImageID: 1, CategoryID: 2, BBox: [4]float64{50, 50, 40, 40}}, // never detected
	}
	dets := []Result{
		{ImageID: 1, CategoryID: 1, BBox: [4]float64{0, 0, 40, 40}, Score: .9},
		{ImageID: 1, CategoryID: 3, BBox: [4]float64{0, 0, 40, 40}, Score: .9}, // no ground truth of category 3
	}
	r, err := Evaluate([]int{1}, []int{3, 1, 2}, gts, dets, map[int]string{1: "a", 2: "b", 3: "c"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]float64{1: 1, 2: 0, 3: -1}
	if len(r.PerClass) != 3 {
		t.Fatalf("%d classes", len(r.PerClass))
	}
	for _, c := range r.PerClass {
		if math.Abs(c.AP-want[c.CategoryID]) > 1e-12 {
			t.Errorf("category %d (%s): AP %v, want %v", c.CategoryID, c.Name, c.AP, want[c.CategoryID])
		}
	}
	if math.Abs(r.AP-0.5) > 1e-12 {
		t.Errorf("AP %v, want 0.5 (mean over the categories with ground truth)", r.AP)
	}
	if l := r.Lines(); len(l) != 12 || !strings.Contains(l[0], "= 0.500") {
		t.Errorf("summary lines %q", l)
	}
}

func TestEvaluateRefused(t *testing.T) {
	gts := []GroundTruth{{ImageID: 1, CategoryID: 1, BBox: [4]float64{0, 0, 4, 4}}}
	for _, c := range []struct {
		name string
		gts  []GroundTruth
		dets []Result
		msg  string
	}{
		{"unknown image", gts, []Result{{ImageID: 9, CategoryID: 1, Score: 1}}, "image id 9"},
		{"unknown category", gts, []Result{{ImageID: 1, CategoryID: 7, Score: 1}}, "category id 7"},
		{"nan score", gts, []Result{{ImageID: 1, CategoryID: 1, Score: math.NaN()}}, "not finite"},
		{"gt unknown category", []GroundTruth{{ImageID: 1, CategoryID: 5}}, nil, "category id 5"},
	} {
		_, err := Evaluate([]int{1}, []int{1}, c.gts, c.dets, nil)
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: error %v, want one naming %q", c.name, err, c.msg)
		}
	}
}

func TestResultsRoundTrip(t *testing.T) {
	dets := []Detection{{Box: Box{1, 2, 11, 22}, Score: 0.5, Label: 2}, {Box: Box{0, 0, 4, 4}, Score: 0.25, Label: 1}}
	res, err := ToResults(42, dets, []int{0, 7, 9})
	if err != nil {
		t.Fatal(err)
	}
	if res[0] != (Result{ImageID: 42, CategoryID: 9, BBox: [4]float64{1, 2, 10, 20}, Score: 0.5}) || res[1].CategoryID != 7 {
		t.Errorf("results %+v", res)
	}
	if _, err := ToResults(1, []Detection{{Label: 3}}, []int{0, 7, 9}); err == nil {
		t.Error("label outside the categories accepted")
	}
	p := filepath.Join(t.TempDir(), "res.json")
	var buf bytes.Buffer
	if err := WriteResults(&buf, res); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	back, err := ReadResults(p)
	if err != nil || len(back) != 2 || back[0] != res[0] || back[1] != res[1] {
		t.Errorf("read back %+v %v", back, err)
	}
	for _, c := range []struct{ body, msg string }{
		{`[{"image_id":1,"category_id":1,"bbox":[1,2,3],"score":1}]`, "result 0"},
		{`[{"image_id":1,`, "corrupt JSON"},
	} {
		if err := os.WriteFile(p, []byte(c.body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadResults(p); err == nil || !strings.Contains(err.Error(), c.msg) || !strings.Contains(err.Error(), "res.json") {
			t.Errorf("%s: %v", c.body, err)
		}
	}
}
