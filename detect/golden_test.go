package detect

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// Golden data from tools/reference/det_ref.py (torchvision 0.14).

func loadJSON(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "golden", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func toBoxes(v [][]float64) []Box {
	out := make([]Box, len(v))
	for i, r := range v {
		out[i] = Box{float32(r[0]), float32(r[1]), float32(r[2]), float32(r[3])}
	}
	return out
}

func flat32(v any) []float32 {
	var out []float32
	var rec func(any)
	rec = func(x any) {
		switch x := x.(type) {
		case []any:
			for _, e := range x {
				rec(e)
			}
		case float64:
			out = append(out, float32(x))
		}
	}
	rec(v)
	return out
}

// close reports |a - b| <= atol + rtol |b|.
func close32(a, b float32, rtol, atol float64) bool {
	return math.Abs(float64(a)-float64(b)) <= atol+rtol*math.Abs(float64(b))
}

func TestGoldenBoxes(t *testing.T) {
	var g struct {
		Clip                                   float64
		GT, Proposals, Encoded, Codes, Decoded [][]float64
		IoUa                                   [][]float64 `json:"iou_a"`
		IoUb                                   [][]float64 `json:"iou_b"`
		IoUm                                   [][]float64 `json:"iou"`
	}
	loadJSON(t, "boxes.json", &g)
	if float32(g.Clip) != SSDCoder.Clip {
		t.Errorf("clip %v, torchvision %v", SSDCoder.Clip, g.Clip)
	}
	gt, pr, dec := toBoxes(g.GT), toBoxes(g.Proposals), toBoxes(g.Decoded)
	if len(gt) == 0 || len(dec) != len(gt) || len(g.IoUm) == 0 {
		t.Fatal("boxes.json: empty cases")
	}
	for i := range gt {
		e := SSDCoder.Encode(gt[i], pr[i])
		for c := range 4 {
			if !close32(e[c], float32(g.Encoded[i][c]), 1e-5, 1e-5) {
				t.Errorf("encode %d: %v, torchvision %v", i, e, g.Encoded[i])
				break
			}
		}
		d := SSDCoder.Decode([4]float32(toBoxes(g.Codes[i : i+1])[0]), pr[i])
		for c := range 4 {
			if !close32(d[c], dec[i][c], 1e-5, 1e-4) {
				t.Errorf("decode %d (codes %v): %v, torchvision %v", i, g.Codes[i], d, dec[i])
				break
			}
		}
	}
	m := IoUMatrix(toBoxes(g.IoUa), toBoxes(g.IoUb))
	for i := range m {
		for j := range m[i] {
			if !close32(m[i][j], float32(g.IoUm[i][j]), 1e-6, 1e-7) {
				t.Errorf("iou[%d][%d] = %v, torchvision %v", i, j, m[i][j], g.IoUm[i][j])
			}
		}
	}
}

func TestGoldenDefaultBoxesAndMatch(t *testing.T) {
	var g struct {
		Scales []float64
		Cases  []struct {
			Image   [2]int
			Feats   [][2]int
			Anchors [][]float64
			GT      [][]float64
			Matches []int
		}
		StepsCase struct {
			Image        [2]int
			Feats        [][2]int
			AspectRatios [][]int   `json:"aspect_ratios"`
			Scales       []float64 // 7
			Steps        []int
			Anchors      [][]float64
		} `json:"steps_case"`
	}
	loadJSON(t, "anchors.json", &g)
	sc := g.StepsCase
	ssd := DefaultBoxes{AspectRatios: sc.AspectRatios, Scales: sc.Scales, Steps: sc.Steps, Clip: true}
	anc, err := ssd.Generate(sc.Image[0], sc.Image[1], sc.Feats)
	if err != nil {
		t.Fatal(err)
	}
	if want := toBoxes(sc.Anchors); len(anc) != len(want) || len(want) == 0 {
		t.Errorf("steps case: %d anchors, torchvision %d", len(anc), len(want))
	} else {
		for i := range anc {
			for k := range 4 {
				if !close32(anc[i][k], want[i][k], 1e-6, 1e-4) {
					t.Fatalf("steps case anchor %d: %v, torchvision %v", i, anc[i], want[i])
				}
			}
		}
	}
	d := SSDLiteBoxes()
	for k, s := range d.scales() {
		if s != g.Scales[k] {
			t.Errorf("scale %d = %v, torchvision %v", k, s, g.Scales[k])
		}
	}
	for ci, c := range g.Cases {
		anc, err := d.Generate(c.Image[0], c.Image[1], c.Feats)
		if err != nil {
			t.Fatal(err)
		}
		want := toBoxes(c.Anchors)
		if len(anc) != len(want) {
			t.Fatalf("case %d: %d anchors, torchvision %d", ci, len(anc), len(want))
		}
		bad := 0
		for i := range anc {
			for k := range 4 {
				if !close32(anc[i][k], want[i][k], 1e-6, 1e-4) {
					bad++
					if bad < 5 {
						t.Errorf("case %d anchor %d: %v, torchvision %v", ci, i, anc[i], want[i])
					}
					break
				}
			}
		}
		m := Match(IoUMatrix(toBoxes(c.GT), want), len(want), 0.5)
		for i := range m {
			if m[i] != c.Matches[i] {
				t.Errorf("case %d anchor %d matched %d, torchvision %d", ci, i, m[i], c.Matches[i])
			}
		}
	}
}

type lossCase struct {
	Anchors [][]float64
	Classes int
	Targets []struct {
		Boxes  [][]float64
		Labels []int
	}
	Logits, Regressions, GradLogits, GradRegressions any
	Matched                                          [][]int
	BboxLoss                                         float64 `json:"bbox_loss"`
	ClsLoss                                          float64 `json:"cls_loss"`
}

func TestGoldenLoss(t *testing.T) {
	var raw map[string]json.RawMessage
	loadJSON(t, "loss.json", &raw)
	var main, tiny lossCase
	var grads map[string]any
	if err := json.Unmarshal(raw["tiny"], &tiny); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(raw)
	_ = json.Unmarshal(b, &main)
	_ = json.Unmarshal(b, &grads)
	var tinyRaw map[string]any
	_ = json.Unmarshal(raw["tiny"], &tinyRaw)
	for _, c := range []struct {
		name string
		g    lossCase
		raw  map[string]any
	}{{"three images, one without boxes", main, grads}, {"more hard negatives wanted than there are", tiny, tinyRaw}} {
		t.Run(c.name, func(t *testing.T) { checkLoss(t, c.g, c.raw) })
	}
}

func checkLoss(t *testing.T, g lossCase, raw map[string]any) {
	anc := toBoxes(g.Anchors)
	var tg []Target
	for _, x := range g.Targets {
		tg = append(tg, Target{Boxes: toBoxes(x.Boxes), Labels: x.Labels})
	}
	logits, regs := flat32(raw["logits"]), flat32(raw["regressions"])
	if len(anc) == 0 || len(logits) == 0 {
		t.Fatal("empty case")
	}
	gl, gr := make([]float32, len(logits)), make([]float32, len(regs))
	l, err := SSDLoss(anc, tg, logits, regs, g.Classes, LossOptions{}, gl, gr)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(l.Box-g.BboxLoss) > 1e-5*g.BboxLoss || math.Abs(l.Class-g.ClsLoss) > 1e-5*g.ClsLoss {
		t.Errorf("loss box %v class %v, torchvision %v %v", l.Box, l.Class, g.BboxLoss, g.ClsLoss)
	}
	for i, x := range tg {
		if len(x.Boxes) == 0 {
			continue
		}
		m := Match(IoUMatrix(x.Boxes, anc), len(anc), 0.5)
		for k := range m {
			if m[k] != g.Matched[i][k] {
				t.Fatalf("image %d anchor %d matched %d, torchvision %d", i, k, m[k], g.Matched[i][k])
			}
		}
	}
	for name, p := range map[string][2][]float32{"logits": {gl, flat32(raw["grad_logits"])}, "regressions": {gr, flat32(raw["grad_regressions"])}} {
		got, want := p[0], p[1]
		if len(got) != len(want) {
			t.Fatalf("%s gradient: %d values, torchvision %d", name, len(got), len(want))
		}
		bad := 0
		for i := range got {
			if !close32(got[i], want[i], 1e-4, 1e-7) {
				if bad++; bad < 5 {
					t.Errorf("d loss/d %s[%d] = %v, torchvision %v", name, i, got[i], want[i])
				}
			}
		}
	}
	t.Logf("box %.6f class %.6f positives %d (torchvision %.6f %.6f)", l.Box, l.Class, l.Positives, g.BboxLoss, g.ClsLoss)
}

func TestGoldenPostprocess(t *testing.T) {
	var g struct {
		Anchors     [][]float64
		Image       [2]int
		Original    [][2]int
		ScoreThresh float32 `json:"score_thresh"`
		TopK        int
		NMSThresh   float32 `json:"nms_thresh"`
		Detections  int
		Out         []struct {
			Boxes  [][]float64
			Scores []float64
			Labels []int
		}
	}
	loadJSON(t, "post.json", &g)
	var raw map[string]any
	loadJSON(t, "post.json", &raw)
	anc := toBoxes(g.Anchors)
	logits, regs := flat32(raw["logits"]), flat32(raw["regressions"])
	a := len(anc)
	classes := len(logits) / len(g.Out) / a
	for i, want := range g.Out {
		dets, err := Postprocess(logits[i*a*classes:(i+1)*a*classes], regs[i*a*4:(i+1)*a*4], anc, classes, g.Image[0], g.Image[1],
			PostOptions{ScoreThresh: g.ScoreThresh, TopK: g.TopK, NMSThresh: g.NMSThresh, MaxDetections: g.Detections})
		if err != nil {
			t.Fatal(err)
		}
		Rescale(dets, g.Image[0], g.Image[1], g.Original[i][0], g.Original[i][1])
		if len(dets) != len(want.Scores) {
			t.Fatalf("image %d: %d detections, torchvision %d", i, len(dets), len(want.Scores))
		}
		wb := toBoxes(want.Boxes)
		for k, d := range dets {
			ok := d.Label == want.Labels[k] && close32(d.Score, float32(want.Scores[k]), 1e-5, 1e-7)
			for c := range 4 {
				ok = ok && close32(d.Box[c], wb[k][c], 1e-5, 1e-4)
			}
			if !ok {
				t.Errorf("image %d detection %d: %v %v %d, torchvision %v %v %d", i, k, d.Box, d.Score, d.Label, wb[k], want.Scores[k], want.Labels[k])
			}
		}
	}
}

func TestGoldenNMS(t *testing.T) {
	var g struct {
		Cases []struct {
			Boxes   [][]float64
			Scores  []float64
			Idxs    []int
			IoU     float32
			Keep    []int
			Batched bool
		}
	}
	loadJSON(t, "nms.json", &g)
	for ci, c := range g.Cases {
		sc := make([]float32, len(c.Scores))
		for i, s := range c.Scores {
			sc[i] = float32(s)
		}
		var keep []int
		if c.Batched {
			keep = BatchedNMS(toBoxes(c.Boxes), sc, c.Idxs, c.IoU)
		} else {
			keep = NMS(toBoxes(c.Boxes), sc, c.IoU)
		}
		if len(keep) != len(c.Keep) {
			t.Errorf("case %d (%d boxes, iou %v): kept %d, torchvision %d", ci, len(c.Boxes), c.IoU, len(keep), len(c.Keep))
			continue
		}
		for i := range keep {
			if keep[i] != c.Keep[i] {
				t.Errorf("case %d (%d boxes): keep[%d] = %d, torchvision %d", ci, len(c.Boxes), i, keep[i], c.Keep[i])
				break
			}
		}
	}
}

func TestGoldenPhotometric(t *testing.T) {
	var raw struct {
		Image any
		Cases []struct {
			Op     string
			Factor float64
			Out    any
		}
	}
	loadJSON(t, "photometric.json", &raw)
	img := flat32(raw.Image)
	if len(img) == 0 || len(raw.Cases) == 0 {
		t.Fatal("empty photometric.json")
	}
	ops := map[string]func([]float64, float64){"brightness": adjustBrightness, "contrast": adjustContrast,
		"saturation": adjustSaturation, "hue": adjustHue}
	for _, c := range raw.Cases {
		f := make([]float64, len(img))
		for i, v := range img {
			f[i] = float64(v)
		}
		ops[c.Op](f, c.Factor)
		want := flat32(c.Out)
		for i := range f {
			if math.Abs(f[i]-float64(want[i])) > 2e-6 {
				t.Errorf("%s %v: value %d = %v, torchvision %v", c.Op, c.Factor, i, f[i], want[i])
				break
			}
		}
	}
}
