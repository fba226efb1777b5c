package detect

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
)

// GroundTruth is one annotated object for Evaluate.
type GroundTruth struct {
	ImageID, CategoryID int
	BBox                [4]float64 // x, y, w, h in pixels of the original image
	Area                float64    // the annotation's area (COCO: the segment's); 0: w×h
	Crowd               bool       // iscrowd: ignored, absorbs any number of detections, IoU = intersection / detection area
	// Ignore marks an object that neither counts as missed nor makes a
	// detection matched to it a false positive, with ordinary IoU (Pascal
	// VOC's "difficult"). pycocotools has no such input (its ignore flag is
	// iscrowd); with Ignore false everywhere Evaluate is exactly COCOeval.
	Ignore bool
}

// Result is one detection in COCO's results format (the JSON of
// loadRes: image_id, category_id, bbox as x, y, w, h, score).
type Result struct {
	ImageID    int        `json:"image_id"`
	CategoryID int        `json:"category_id"`
	BBox       [4]float64 `json:"bbox"`
	Score      float64    `json:"score"`
}

// AreaRanges are COCO's area ranges: all, small (< 32²), medium, large (> 96²);
// both ends inclusive, as pycocotools compares.
var AreaRanges = [4][2]float64{{0, 1e10}, {0, 32 * 32}, {32 * 32, 96 * 96}, {96 * 96, 1e10}}

// MaxDets are COCO's limits on detections per image and category.
var MaxDets = [3]int{1, 10, 100}

// IoUThresholds returns .50:.05:.95 as numpy's linspace computes them.
func IoUThresholds() []float64 {
	t := make([]float64, 10)
	step := (0.95 - 0.5) / 9
	for i := range 9 {
		t[i] = float64(i)*step + 0.5
	}
	t[9] = 0.95
	return t
}

// recallThresholds returns 0:.01:1 as numpy's linspace computes them.
func recallThresholds() []float64 {
	r := make([]float64, 101)
	for i := range 100 {
		r[i] = float64(i) * (1.0 / 100)
	}
	r[100] = 1
	return r
}

// ClassAP is one category's AP over IoU .50:.95 (all areas, 100 detections).
type ClassAP struct {
	CategoryID int     `json:"category_id"`
	Name       string  `json:"name,omitempty"`
	AP         float64 `json:"ap"`
	AP50       float64 `json:"ap50"`
}

// Report is COCO's summary: the 12 numbers COCOeval.summarize prints, in
// its order in Stats, and per-category AP. -1 means no ground truth to
// score (COCO prints -1 for it).
type Report struct {
	AP       float64   `json:"AP"`
	AP50     float64   `json:"AP50"`
	AP75     float64   `json:"AP75"`
	APSmall  float64   `json:"APs"`
	APMedium float64   `json:"APm"`
	APLarge  float64   `json:"APl"`
	AR1      float64   `json:"AR1"`
	AR10     float64   `json:"AR10"`
	AR100    float64   `json:"AR100"`
	ARSmall  float64   `json:"ARs"`
	ARMedium float64   `json:"ARm"`
	ARLarge  float64   `json:"ARl"`
	Stats    []float64 `json:"stats"`
	PerClass []ClassAP `json:"per_class"`
	Images   int       `json:"images"`
	Results  int       `json:"detections"`
}

// Lines returns the summary as COCOeval.summarize prints it.
func (r *Report) Lines() []string {
	names := []string{
		"Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]",
		"Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ]",
		"Average Precision  (AP) @[ IoU=0.75      | area=   all | maxDets=100 ]",
		"Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ]",
		"Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ]",
		"Average Precision  (AP) @[ IoU=0.50:0.95 | area= large | maxDets=100 ]",
		"Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ]",
		"Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets= 10 ]",
		"Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]",
		"Average Recall     (AR) @[ IoU=0.50:0.95 | area= small | maxDets=100 ]",
		"Average Recall     (AR) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ]",
		"Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ]",
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = fmt.Sprintf(" %s = %0.3f", n, r.Stats[i])
	}
	return out
}

// bbIoU is maskApi.c's bbIou for one pair: boxes x, y, w, h; for a crowd
// ground truth the union is the detection's area.
func bbIoU(d, g [4]float64, crowd bool) float64 {
	w := min(d[0]+d[2], g[0]+g[2]) - max(d[0], g[0])
	if w <= 0 {
		return 0
	}
	h := min(d[1]+d[3], g[1]+g[3]) - max(d[1], g[1])
	if h <= 0 {
		return 0
	}
	i := w * h
	u := d[2] * d[3]
	if !crowd {
		u += g[2]*g[3] - i
	}
	return i / u
}

// evalImg is COCOeval.evaluateImg's output for one (image, category, area range).
type evalImg struct {
	scores  []float64 // detections by decreasing score, at most MaxDets[last]
	matched [][]bool  // [threshold][detection]
	dtIg    [][]bool  // [threshold][detection]
	gtIg    []bool
}

// Evaluate scores detections with COCO's detection metric, following
// pycocotools' COCOeval (iouType "bbox") step by step: for every image and
// category, detections sorted by score (stable) and cut at 100, matched
// greedily to the best still-free ground truth at each IoU threshold
// .50:.05:.95 (non-ignored ground truths first; a crowd region can absorb
// any number of detections), ground truths outside an area range and crowd
// regions ignored, unmatched detections outside the range ignored;
// precision interpolated at 101 recall points with the precision
// envelope; AP and AR averaged over thresholds and categories that have
// ground truth in the range.
//
// images and categories are the ids to evaluate (the ground-truth file's);
// a result or ground truth naming another id is an error.
func Evaluate(images, categories []int, gts []GroundTruth, dets []Result, names map[int]string) (*Report, error) {
	imgSet := map[int]bool{}
	for _, id := range images {
		imgSet[id] = true
	}
	catIdx := map[int]int{}
	cats := append([]int(nil), categories...)
	sort.Ints(cats)
	for i, c := range cats {
		catIdx[c] = i
	}
	imgs := make([]int, 0, len(imgSet))
	for id := range imgSet {
		imgs = append(imgs, id)
	}
	sort.Ints(imgs)
	type key struct{ img, cat int }
	gtBy := map[key][]GroundTruth{}
	dtBy := map[key][]Result{}
	for i, g := range gts {
		if !imgSet[g.ImageID] {
			return nil, fmt.Errorf("detect: ground truth %d: unknown image id %d", i, g.ImageID)
		}
		if _, ok := catIdx[g.CategoryID]; !ok {
			return nil, fmt.Errorf("detect: ground truth %d: unknown category id %d", i, g.CategoryID)
		}
		if g.Area == 0 {
			g.Area = g.BBox[2] * g.BBox[3]
		}
		k := key{g.ImageID, g.CategoryID}
		gtBy[k] = append(gtBy[k], g)
	}
	for i, d := range dets {
		if !imgSet[d.ImageID] {
			return nil, fmt.Errorf("detect: detection %d: image id %d is not in the ground truth", i, d.ImageID)
		}
		if _, ok := catIdx[d.CategoryID]; !ok {
			return nil, fmt.Errorf("detect: detection %d: unknown category id %d", i, d.CategoryID)
		}
		for _, v := range append(d.BBox[:], d.Score) {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("detect: detection %d: bbox %v score %v not finite", i, d.BBox, d.Score)
			}
		}
		k := key{d.ImageID, d.CategoryID}
		dtBy[k] = append(dtBy[k], d)
	}
	thr, recThr := IoUThresholds(), recallThresholds()
	T, R, K, A, M := len(thr), len(recThr), len(cats), len(AreaRanges), len(MaxDets)
	maxDet := MaxDets[M-1]
	// precision[t][r][k][a][m], recall[t][k][a][m]; -1 where no ground truth
	prec := make([]float64, T*R*K*A*M)
	rec := make([]float64, T*K*A*M)
	for i := range prec {
		prec[i] = -1
	}
	for i := range rec {
		rec[i] = -1
	}
	for ki, cat := range cats {
		for ai, rng := range AreaRanges {
			var evs []*evalImg
			for _, img := range imgs {
				k := key{img, cat}
				if e := evaluateImg(gtBy[k], dtBy[k], rng, maxDet, thr); e != nil {
					evs = append(evs, e)
				}
			}
			for mi, md := range MaxDets {
				accumulate(evs, md, thr, recThr, func(t, r int, v float64) {
					prec[(((t*R+r)*K+ki)*A+ai)*M+mi] = v
				}, func(t int, v float64) {
					rec[((t*K+ki)*A+ai)*M+mi] = v
				})
			}
		}
	}
	mean := func(vals []float64) float64 {
		s, n := 0.0, 0
		for _, v := range vals {
			if v > -1 {
				s += v
				n++
			}
		}
		if n == 0 {
			return -1
		}
		return s / float64(n)
	}
	// summarize: ap over thresholds (all or one), recall points, categories
	ap := func(tSel int, ai, mi int, kSel int) float64 {
		var vals []float64
		for t := range T {
			if tSel >= 0 && t != tSel {
				continue
			}
			for r := range R {
				for k := range K {
					if kSel >= 0 && k != kSel {
						continue
					}
					vals = append(vals, prec[(((t*R+r)*K+k)*A+ai)*M+mi])
				}
			}
		}
		return mean(vals)
	}
	ar := func(ai, mi int) float64 {
		var vals []float64
		for t := range T {
			for k := range K {
				vals = append(vals, rec[((t*K+k)*A+ai)*M+mi])
			}
		}
		return mean(vals)
	}
	t50, t75 := 0, 5
	last := M - 1
	r := &Report{
		AP: ap(-1, 0, last, -1), AP50: ap(t50, 0, last, -1), AP75: ap(t75, 0, last, -1),
		APSmall: ap(-1, 1, last, -1), APMedium: ap(-1, 2, last, -1), APLarge: ap(-1, 3, last, -1),
		AR1: ar(0, 0), AR10: ar(0, 1), AR100: ar(0, 2),
		ARSmall: ar(1, last), ARMedium: ar(2, last), ARLarge: ar(3, last),
		Images: len(imgs), Results: len(dets),
	}
	r.Stats = []float64{r.AP, r.AP50, r.AP75, r.APSmall, r.APMedium, r.APLarge, r.AR1, r.AR10, r.AR100, r.ARSmall, r.ARMedium, r.ARLarge}
	for ki, c := range cats {
		r.PerClass = append(r.PerClass, ClassAP{CategoryID: c, Name: names[c], AP: ap(-1, 0, last, ki), AP50: ap(t50, 0, last, ki)})
	}
	return r, nil
}

func evaluateImg(gt []GroundTruth, dt []Result, rng [2]float64, maxDet int, thr []float64) *evalImg {
	if len(gt) == 0 && len(dt) == 0 {
		return nil
	}
	ig := func(g GroundTruth) bool { return g.Ignore || g.Crowd || g.Area < rng[0] || g.Area > rng[1] }
	// ground truths: not ignored first (stable); detections by score (stable), at most maxDet
	g := append([]GroundTruth(nil), gt...)
	sort.SliceStable(g, func(i, j int) bool { return !ig(g[i]) && ig(g[j]) })
	d := append([]Result(nil), dt...)
	sort.SliceStable(d, func(i, j int) bool { return d[i].Score > d[j].Score })
	if len(d) > maxDet {
		d = d[:maxDet]
	}
	e := &evalImg{scores: make([]float64, len(d)), gtIg: make([]bool, len(g))}
	for i := range g {
		e.gtIg[i] = ig(g[i])
	}
	for i := range d {
		e.scores[i] = d[i].Score
	}
	ious := make([][]float64, len(d))
	for i := range d {
		ious[i] = make([]float64, len(g))
		for j := range g {
			ious[i][j] = bbIoU(d[i].BBox, g[j].BBox, g[j].Crowd)
		}
	}
	for range thr {
		e.matched = append(e.matched, make([]bool, len(d)))
		e.dtIg = append(e.dtIg, make([]bool, len(d)))
	}
	for ti, t := range thr {
		gtm := make([]bool, len(g))
		for di := range d {
			iou := min(t, 1-1e-10)
			m := -1
			for gi := range g {
				if gtm[gi] && !g[gi].Crowd {
					continue
				}
				if m > -1 && !e.gtIg[m] && e.gtIg[gi] {
					break
				}
				if ious[di][gi] < iou {
					continue
				}
				iou, m = ious[di][gi], gi
			}
			if m == -1 {
				continue
			}
			e.dtIg[ti][di] = e.gtIg[m]
			e.matched[ti][di] = true
			gtm[m] = true
		}
		for di := range d {
			a := d[di].BBox[2] * d[di].BBox[3] // loadRes: area of a bbox result = w × h
			if !e.matched[ti][di] && (a < rng[0] || a > rng[1]) {
				e.dtIg[ti][di] = true
			}
		}
	}
	return e
}

// accumulate is COCOeval.accumulate for one (category, area range, maxDet).
func accumulate(evs []*evalImg, maxDet int, thr, recThr []float64, setP func(t, r int, v float64), setR func(t int, v float64)) {
	if len(evs) == 0 {
		return
	}
	type det struct {
		score float64
		e     *evalImg
		i     int
	}
	var ds []det
	npig := 0
	for _, e := range evs {
		for i := range min(maxDet, len(e.scores)) {
			ds = append(ds, det{e.scores[i], e, i})
		}
		for _, ig := range e.gtIg {
			if !ig {
				npig++
			}
		}
	}
	if npig == 0 {
		return
	}
	slices.SortStableFunc(ds, func(a, b det) int { return cmp.Compare(b.score, a.score) })
	eps := math.Nextafter(1, 2) - 1 // np.spacing(1)
	for ti := range thr {
		tp, fp := 0.0, 0.0
		var rc, pr []float64
		for _, x := range ds {
			if x.e.dtIg[ti][x.i] {
				// neither: cumulative sums unchanged, but the point still counts
			} else if x.e.matched[ti][x.i] {
				tp++
			} else {
				fp++
			}
			rc = append(rc, tp/float64(npig))
			pr = append(pr, tp/(fp+tp+eps))
		}
		nd := len(rc)
		if nd > 0 {
			setR(ti, rc[nd-1])
		} else {
			setR(ti, 0)
		}
		for i := nd - 1; i > 0; i-- {
			if pr[i] > pr[i-1] {
				pr[i-1] = pr[i]
			}
		}
		for ri, rt := range recThr {
			pi := sort.SearchFloat64s(rc, rt) // searchsorted side left: first rc >= rt
			if pi >= nd {
				for rj := ri; rj < len(recThr); rj++ {
					setP(ti, rj, 0)
				}
				break
			}
			setP(ti, ri, pr[pi])
		}
	}
}
