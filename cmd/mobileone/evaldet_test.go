package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mobileone-go/mobileone/detect"
)

// writeCOCOFolder writes a 3-image COCO-format val split (category ids 3
// and 7, an image without objects, a crowd region) under dir.
func writeCOCOFolder(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "annotations"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name string
		w, h int
	}{{"a.png", 80, 60}, {"b.png", 50, 90}, {"c.png", 64, 64}} {
		writePNG(t, filepath.Join(dir, "images", f.name), f.w, f.h)
	}
	ann := `{"images": [{"id": 11, "file_name": "a.png", "width": 80, "height": 60},
	                   {"id": 12, "file_name": "b.png", "width": 50, "height": 90},
	                   {"id": 13, "file_name": "c.png", "width": 64, "height": 64}],
	 "categories": [{"id": 3, "name": "circle"}, {"id": 7, "name": "square"}],
	 "annotations": [{"id": 1, "image_id": 11, "category_id": 3, "bbox": [5, 5, 30, 20], "area": 600, "iscrowd": 0},
	                 {"id": 2, "image_id": 11, "category_id": 7, "bbox": [40, 10, 35, 45], "area": 1575, "iscrowd": 0},
	                 {"id": 3, "image_id": 12, "category_id": 7, "bbox": [0, 0, 50, 90], "area": 4500, "iscrowd": 1},
	                 {"id": 4, "image_id": 12, "category_id": 3, "bbox": [10, 20, 20, 20], "area": 400, "iscrowd": 0}]}`
	if err := os.WriteFile(filepath.Join(dir, "annotations", "instances_val.json"), []byte(ann), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestEvalDetect: the JSON report is COCO's metric of exactly the
// detections --save-detections wrote (re-scored with detect.Evaluate from
// the file), their boxes inside their images and categories the data's
// ids; class-count mismatches and missing flags are errors.
func TestEvalDetect(t *testing.T) {
	dir := t.TempDir()
	writeCOCOFolder(t, filepath.Join(dir, "data"))
	ck := writeDetCheckpoint(t, dir, 3, map[string]string{"size": "64"}, nil)
	saved := filepath.Join(dir, "results.json")
	code, stdout, stderr := cli("eval", "--task", "detect", "-w", ck, "--data", filepath.Join(dir, "data"), "--save-detections", saved, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rep detect.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("%q: %v", stdout, err)
	}
	res, err := detect.ReadResults(saved)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) == 0 || rep.Results != len(res) || rep.Images != 3 {
		t.Errorf("report: %d detections of %d images, file %d", rep.Results, rep.Images, len(res))
	}
	size := map[int][2]float64{11: {80, 60}, 12: {50, 90}, 13: {64, 64}}
	for _, r := range res {
		s, ok := size[r.ImageID]
		if !ok || (r.CategoryID != 3 && r.CategoryID != 7) {
			t.Fatalf("result %+v: unknown image or category", r)
		}
		if r.BBox[0] < 0 || r.BBox[1] < 0 || r.BBox[0]+r.BBox[2] > s[0]+1e-3 || r.BBox[1]+r.BBox[3] > s[1]+1e-3 {
			t.Errorf("result %+v outside its %vx%v image", r, s[0], s[1])
		}
	}
	ds, err := detect.OpenSplit(filepath.Join(dir, "data"), "val")
	if err != nil {
		t.Fatal(err)
	}
	imgs, cats, gts := ds.GroundTruth()
	again, err := detect.Evaluate(imgs, cats, gts, res, ds.Names())
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range again.Stats {
		if math.Abs(v-rep.Stats[i]) > 1e-6 {
			t.Errorf("stat %d: %g in the report, %g from the saved detections", i, rep.Stats[i], v)
		}
	}
	if len(rep.PerClass) != 2 || rep.PerClass[0].Name != "circle" {
		t.Errorf("per-class AP: %+v", rep.PerClass)
	}
	// text output: COCO's summary lines
	code, stdout, _ = cli("eval", "--task", "detect", "-w", ck, "--data", filepath.Join(dir, "data"))
	if code != 0 || !strings.Contains(stdout, "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]") {
		t.Errorf("text output: exit %d, %q", code, stdout)
	}

	wrong := writeDetCheckpoint(t, t.TempDir(), 5, nil, nil)
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no weights", []string{"--data", dir}, "-w is required"},
		{"no data", []string{"-w", ck}, "--data DIR is required"},
		{"classes", []string{"-w", wrong, "--data", filepath.Join(dir, "data")}, "has 3 classes with the background"},
		{"no split", []string{"-w", ck, "--data", filepath.Join(dir, "data"), "--split", "train"}, "split \"train\""},
	} {
		code, _, stderr := cli(append([]string{"eval", "--task", "detect"}, c.args...)...)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: exit %d, stderr %q, want it to mention %q", c.name, code, stderr, c.want)
		}
	}
}
