package detect

import (
	"context"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mobileone-go/mobileone/data"
	"github.com/mobileone-go/mobileone/dense/canvas"
	"github.com/mobileone-go/mobileone/imageproc"
)

func squares(t testing.TB, n int) data.Dataset {
	t.Helper()
	imgs := make([]*imageproc.Image8, n)
	labels := make([]int, n)
	for i := range imgs {
		m := imageproc.NewImage8(28, 28, 1)
		s := 10 + i%16
		for y := 2; y < 2+s; y++ {
			for x := 2; x < 2+s; x++ {
				m.Pix[y*28+x] = 200
			}
		}
		imgs[i], labels[i] = m, i%10
	}
	ds, err := data.NewMemory(imgs, labels, data.FashionMNISTClasses)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// The canvases set as `mobileone data canvases` writes it loads with Open.
func TestOpenCanvases(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "canvases")
	cfg := canvas.Config{Options: canvas.Options{Size: 48, MinItems: 1, MaxItems: 3, MinScale: 0.8, MaxScale: 1.6}, Train: 4, Val: 2, Seed: 3}
	if err := canvas.Build(context.Background(), dir, squares(t, 30), squares(t, 10), cfg, nil); err != nil {
		t.Fatal(err)
	}
	train, val, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if train.Len() != 4 || val.Len() != 2 || train.Split != "train" || val.Split != "val" {
		t.Fatalf("splits %d %d", train.Len(), val.Len())
	}
	if len(train.Classes) != 11 || train.Classes[1] != canvas.Classes()[1] || train.CategoryIDs[10] != 10 {
		t.Errorf("classes %v ids %v", train.Classes, train.CategoryIDs)
	}
	n := 0
	for i := range train.Len() {
		img, s, err := train.Get(i)
		if err != nil {
			t.Fatal(err)
		}
		if img.Width != 48 || img.Height != 48 || img.Channels != 3 {
			t.Errorf("image %d: %dx%dx%d", i, img.Width, img.Height, img.Channels)
		}
		for _, o := range s.Objects {
			n++
			if !o.Box.Valid() || o.Box[2] > 48 || o.Box[3] > 48 || o.Label < 1 || o.Label > 10 || o.Crowd {
				t.Errorf("image %d: object %+v", i, o)
			}
		}
	}
	if n == 0 {
		t.Error("no objects")
	}
	// the training path: augment, resize to the network input, match and score with the loss
	anchors, err := SSDLiteBoxes().Generate(64, 64, [][2]int{{4, 4}, {2, 2}, {1, 1}, {1, 1}, {1, 1}, {1, 1}})
	if err != nil {
		t.Fatal(err)
	}
	var targets []Target
	for i := range train.Len() {
		img, s, err := train.Get(i)
		if err != nil {
			t.Fatal(err)
		}
		img, objs := SSDRecipe([3]uint8{123, 117, 104}).Apply(img, s.Objects, data.NewRNG(data.SampleSeed(5, 0, i)))
		img, objs = Resize(img, objs, 64, 64)
		inside(t, "canvas training sample", img, objs)
		s.Objects = objs
		targets = append(targets, s.Target())
	}
	logits := make([]float32, len(targets)*len(anchors)*11)
	regs := make([]float32, len(targets)*len(anchors)*4)
	l, err := SSDLoss(anchors, targets, logits, regs, 11, LossOptions{}, nil, nil)
	if err != nil || l.Positives == 0 || l.Total() <= 0 {
		t.Errorf("loss on canvases: %+v %v", l, err)
	}
	imgs, cats, gts := val.GroundTruth()
	if len(imgs) != 2 || len(cats) != 10 {
		t.Errorf("ground truth: %d images %d categories", len(imgs), len(cats))
	}
	// perfect detections score 1
	var res []Result
	for _, g := range gts {
		res = append(res, Result{ImageID: g.ImageID, CategoryID: g.CategoryID, BBox: g.BBox, Score: 1})
	}
	r, err := Evaluate(imgs, cats, gts, res, val.Names())
	if err != nil {
		t.Fatal(err)
	}
	if r.AP < 0.999999 {
		t.Errorf("AP of the ground truth itself: %v", r.AP)
	}
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func writePNG(t *testing.T, path string, w, h int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, image.NewNRGBA(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
}

const cocoOK = `{"images":[{"id":7,"file_name":"a.png","width":40,"height":30},{"id":9,"file_name":"b.png","width":40,"height":30}],
"categories":[{"id":18,"name":"dog"},{"id":3,"name":"car"}],
"annotations":[{"id":1,"image_id":7,"category_id":18,"bbox":[1,2,10,5],"area":40,"iscrowd":0},
{"id":2,"image_id":7,"category_id":3,"bbox":[30,20,20,20],"area":0,"iscrowd":1},
{"id":3,"image_id":7,"category_id":3,"bbox":[5,5,0,4],"area":0,"iscrowd":0}]}`

func TestReadCOCO(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"annotations/instances_val2017.json": cocoOK})
	writePNG(t, filepath.Join(dir, "val2017", "a.png"), 40, 30)
	writePNG(t, filepath.Join(dir, "val2017", "b.png"), 40, 30)
	train, val, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if train != nil || val == nil {
		t.Fatalf("train %v val %v", train, val)
	}
	// categories sorted by id: car (3) = 1, dog (18) = 2
	if strings.Join(val.Classes, ",") != "background,car,dog" || val.CategoryIDs[1] != 3 || val.CategoryIDs[2] != 18 {
		t.Errorf("classes %v ids %v", val.Classes, val.CategoryIDs)
	}
	if val.Len() != 2 || val.Samples[1].ID != 9 || len(val.Samples[1].Objects) != 0 {
		t.Errorf("images without boxes must be kept: %+v", val.Samples)
	}
	obj := val.Samples[0].Objects
	if len(obj) != 2 {
		t.Fatalf("objects %+v", obj)
	}
	if obj[0].Box != (Box{1, 2, 11, 7}) || obj[0].Label != 2 || obj[0].Area != 40 {
		t.Errorf("object 0 %+v", obj[0])
	}
	if obj[1].Box != (Box{30, 20, 40, 30}) || !obj[1].Crowd || obj[1].Label != 1 || obj[1].Area != 400 {
		t.Errorf("crowd object (clipped) %+v", obj[1])
	}
	if len(val.Warnings) != 1 || !strings.Contains(val.Warnings[0], "annotation 2 (id 3)") {
		t.Errorf("warnings %q", val.Warnings)
	}
	if tg := val.Samples[0].Target(); len(tg.Boxes) != 1 || tg.Labels[0] != 2 {
		t.Errorf("target without the crowd region: %+v", tg)
	}
	if _, s, err := val.Get(1); err != nil || s.ID != 9 {
		t.Errorf("Get: %v %+v", err, s)
	}
}

func TestReadCOCORefused(t *testing.T) {
	ann := func(a string) string {
		return `{"images":[{"id":1,"file_name":"a.png","width":40,"height":30}],"categories":[{"id":1,"name":"x"}],"annotations":[` + a + `]}`
	}
	for _, c := range []struct{ name, body, msg string }{
		{"corrupt", `{"images":[`, "corrupt JSON"},
		{"unknown image", ann(`{"id":5,"image_id":2,"category_id":1,"bbox":[1,1,2,2]}`), "id 5): unknown image id 2"},
		{"unknown category", ann(`{"id":5,"image_id":1,"category_id":4,"bbox":[1,1,2,2]}`), "unknown category id 4"},
		{"outside", ann(`{"id":5,"image_id":1,"category_id":1,"bbox":[50,1,2,2]}`), "outside the 40x30 image"},
		{"negative", ann(`{"id":5,"image_id":1,"category_id":1,"bbox":[1,1,-2,2]}`), "negative side"},
		{"short bbox", ann(`{"id":5,"image_id":1,"category_id":1,"bbox":[1,1,2]}`), "want [x, y, w, h]"},
		{"missing image", `{"images":[{"id":1,"file_name":"a.png","width":40,"height":30},{"id":2,"file_name":"zz.png","width":4,"height":4}],"categories":[{"id":1,"name":"x"}]}`, "zz.png"},
		{"duplicate image", `{"images":[{"id":1,"file_name":"a.png","width":40,"height":30},{"id":1,"file_name":"a.png","width":4,"height":4}],"categories":[{"id":1,"name":"x"}]}`, "image id 1 appears twice"},
		{"no size", `{"images":[{"id":1,"file_name":"a.png"}],"categories":[{"id":1,"name":"x"}]}`, "size 0x0"},
	} {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"ann.json": c.body})
		writePNG(t, filepath.Join(dir, "a.png"), 40, 30)
		_, err := ReadCOCO(filepath.Join(dir, "ann.json"))
		if err == nil || !strings.Contains(err.Error(), c.msg) || !strings.Contains(err.Error(), "ann.json") {
			t.Errorf("%s: error %v, want one naming ann.json and %q", c.name, err, c.msg)
		}
	}
	// an image whose size differs from the annotations: Get refuses it
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"ann.json": ann("")})
	writePNG(t, filepath.Join(dir, "a.png"), 20, 30)
	ds, err := ReadCOCO(filepath.Join(dir, "ann.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ds.Get(0); err == nil || !strings.Contains(err.Error(), "a.png: image is 20x30") {
		t.Errorf("Get: %v", err)
	}
}

func vocXMLDoc(objs string) string {
	return `<annotation><filename>im1.png</filename><size><width>50</width><height>40</height><depth>3</depth></size>` + objs + `</annotation>`
}

func TestReadVOC(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"ImageSets/Main/train.txt": "im1\n",
		"Annotations/im1.xml": vocXMLDoc(`<object><name>dog</name><difficult>0</difficult><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>10</xmax><ymax>20</ymax></bndbox></object>` +
			`<object><name>cat</name><difficult>1</difficult><bndbox><xmin>11</xmin><ymin>12</ymin><xmax>50</xmax><ymax>40</ymax></bndbox></object>`),
	})
	writePNG(t, filepath.Join(dir, "JPEGImages", "im1.png"), 50, 40)
	train, val, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if val != nil || train.Len() != 1 {
		t.Fatalf("splits %v %v", train, val)
	}
	o := train.Samples[0].Objects
	if len(o) != 2 || o[0].Box != (Box{0, 1, 10, 20}) || train.Classes[o[0].Label] != "dog" || o[0].Difficult || !o[1].Difficult || o[1].Box != (Box{10, 11, 50, 40}) {
		t.Errorf("objects %+v", o)
	}
	if tg := train.Samples[0].Target(); len(tg.Boxes) != 1 {
		t.Errorf("difficult object in the target: %+v", tg)
	}
	_, _, gts := train.GroundTruth()
	if !gts[1].Ignore || gts[1].Crowd {
		t.Errorf("difficult → ignored: %+v", gts[1])
	}
	for _, c := range []struct{ name, xml, msg string }{
		{"corrupt", "<annotation><size>", "corrupt XML"},
		{"unknown class", vocXMLDoc(`<object><name>dragon</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>3</xmax><ymax>3</ymax></bndbox></object>`), `unknown class "dragon"`},
		{"outside", vocXMLDoc(`<object><name>dog</name><bndbox><xmin>60</xmin><ymin>1</ymin><xmax>70</xmax><ymax>3</ymax></bndbox></object>`), "outside"},
		{"inverted", vocXMLDoc(`<object><name>dog</name><bndbox><xmin>9</xmin><ymin>1</ymin><xmax>3</xmax><ymax>3</ymax></bndbox></object>`), "negative side"},
	} {
		writeFiles(t, dir, map[string]string{"Annotations/im1.xml": c.xml})
		_, err := ReadVOC(dir, "train", nil)
		if err == nil || !strings.Contains(err.Error(), c.msg) || !strings.Contains(err.Error(), "im1.xml") {
			t.Errorf("%s: error %v, want one naming im1.xml and %q", c.name, err, c.msg)
		}
	}
	if _, _, err := Open(t.TempDir()); err == nil || !strings.Contains(err.Error(), "instances_") {
		t.Errorf("empty folder: %v", err)
	}
}
