package detect

import (
	"os"
	"path/filepath"
	"testing"
)

// Whatever the bytes, the readers return a Dataset or an error, never panic.
func FuzzReadCOCO(f *testing.F) {
	f.Add([]byte(cocoOK))
	f.Add([]byte(`{"images":[{"id":1,"file_name":"a.png","width":40,"height":30}],"categories":[{"id":1}],"annotations":[{"image_id":1,"category_id":1,"bbox":[1e308,-1e308,1e308,1]}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		writePNG(t, filepath.Join(dir, "a.png"), 40, 30)
		p := filepath.Join(dir, "ann.json")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if ds, err := ReadCOCO(p); err == nil {
			for _, s := range ds.Samples {
				for _, o := range s.Objects {
					if !o.Box.Valid() || o.Box[2] > float32(s.Width) || o.Box[3] > float32(s.Height) || o.Box[0] < 0 || o.Box[1] < 0 {
						t.Fatalf("accepted box %v in a %dx%d image", o.Box, s.Width, s.Height)
					}
				}
			}
		}
	})
}

func FuzzReadVOC(f *testing.F) {
	f.Add([]byte(vocXMLDoc(`<object><name>dog</name><difficult>1</difficult><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>10</xmax><ymax>20</ymax></bndbox></object>`)))
	f.Add([]byte(`<annotation><size><width>-1</width></size></annotation>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"ImageSets/Main/val.txt": "im1\n", "Annotations/im1.xml": string(b)})
		writePNG(t, filepath.Join(dir, "JPEGImages", "im1.png"), 50, 40)
		writePNG(t, filepath.Join(dir, "JPEGImages", "im1.jpg"), 50, 40)
		_, _ = ReadVOC(dir, "val", nil)
	})
}
