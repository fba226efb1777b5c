package runlog

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

func TestLogAppendResume(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	for e := 1; e <= 4; e++ {
		r := Row{Epoch: e, Seconds: float64(30 * e), LR: 0.1 / float64(e), TrainLoss: 2 / float64(e), TrainAcc: 50 + float64(10*e),
			ValLoss: 2.2 / float64(e), ValAcc: 48 + float64(10*e), ValAccEMA: 49 + float64(10*e), ImagesPerSec: 1000}
		if err := l.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, PlotName))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("plot is not a PNG: %v", err)
	}
	if img.Bounds().Dx() < 600 {
		t.Errorf("plot is %v", img.Bounds())
	}
	// A resumed run at epoch 2 keeps epochs 1-2 only.
	l2, err := Open(dir, 2)
	if err != nil {
		t.Fatal(err)
	}
	if rows := l2.Rows(); len(rows) != 2 || rows[1].Epoch != 2 || rows[1].ValAccEMA != 69 || rows[0].LR != 0.1 {
		t.Errorf("resumed rows %+v", rows)
	}
	os.WriteFile(filepath.Join(dir, CSVName), []byte("epoch,seconds\n1,x\n"), 0o644)
	if _, err := Open(dir, 9); err == nil {
		t.Error("a corrupt log must be an error")
	}
}

// TestDenseLog: a segmentation run's log has its own columns and reads
// back (a resumed run keeps its rows).
func TestDenseLog(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	l.Dense = true
	for e := 1; e <= 3; e++ {
		if err := l.Append(Row{Epoch: e, Seconds: float64(e), TrainLoss: 1 / float64(e), TrainAcc: 80, ValMIoU: 40 + float64(e), ValPixelAcc: 90, Images: 8}); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, CSVName))
	if !bytes.HasPrefix(b, []byte("epoch,seconds,lr,weight_decay,train_loss,train_pixel_acc,images_per_s,images,val_miou,val_pixel_acc\n")) {
		t.Errorf("header: %q", b)
	}
	l2, err := Open(dir, 2)
	if err != nil {
		t.Fatal(err)
	}
	if rows := l2.Rows(); len(rows) != 2 || rows[1].ValMIoU != 42 || rows[1].ValPixelAcc != 90 || rows[1].Images != 8 || rows[1].TrainLoss != 0.5 {
		t.Errorf("rows read back: %+v", rows)
	}
}

// TestDetectLog: a detection run's log has its own columns and reads back.
func TestDetectLog(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	l.Detect = true
	for e := 1; e <= 3; e++ {
		if err := l.Append(Row{Epoch: e, Seconds: float64(e), TrainLoss: 1 / float64(e), ValAP: 30 + float64(e), ValAP50: 70, Images: 8}); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, CSVName))
	if !bytes.HasPrefix(b, []byte("epoch,seconds,lr,weight_decay,train_loss,images_per_s,images,val_ap,val_ap50\n")) {
		t.Errorf("header: %q", b)
	}
	l2, err := Open(dir, 2)
	if err != nil {
		t.Fatal(err)
	}
	if rows := l2.Rows(); len(rows) != 2 || rows[1].ValAP != 32 || rows[1].ValAP50 != 70 || rows[1].Images != 8 || rows[1].TrainLoss != 0.5 {
		t.Errorf("rows read back: %+v", rows)
	}
}
