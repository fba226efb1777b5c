package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mobileone-go/mobileone/data"
)

func TestDataCanvases(t *testing.T) {
	if _, err := os.Stat(filepath.Join(data.FashionMNISTDir, "t10k-images-idx3-ubyte.gz")); err != nil {
		t.Skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
	}
	root := t.TempDir()
	a, b := filepath.Join(root, "a"), filepath.Join(root, "b")
	for _, dir := range []string{a, b} {
		code, out, errs := cli("data", "canvases", "-o", dir, "--train", "3", "--val", "2", "--size", "64", "--seed", "5")
		if code != 0 || !strings.Contains(out, "wrote 3 train and 2 val") {
			t.Fatalf("exit %d: %s%s", code, out, errs)
		}
	}
	for _, rel := range []string{"JPEGImages/train_000002.png", "JPEGImages/val_000001.png", "SegmentationClass/val_000001.png",
		"SegmentationObject/train_000000.png", "annotations/instances_train.json", "annotations/instances_val.json",
		"ImageSets/Segmentation/train.txt", "labels.txt"} {
		x, err := os.ReadFile(filepath.Join(a, rel))
		if err != nil {
			t.Fatal(err)
		}
		if y, _ := os.ReadFile(filepath.Join(b, rel)); !bytes.Equal(x, y) {
			t.Errorf("%s: differs between two runs with the same seed", rel)
		}
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		err  string
	}{
		{"existing folder", []string{"-o", a, "--train", "1", "--val", "0"}, 1, "mobileone data canvases: " + a + " exists and is not empty"},
		{"no -o", []string{"--train", "1"}, 2, "-o DIR is required"},
		{"missing Fashion-MNIST", []string{"-o", filepath.Join(root, "c"), "--train", "1", "--fashion-mnist-dir", root}, 1, "train-images-idx3-ubyte"},
		{"bad items", []string{"-o", filepath.Join(root, "d"), "--min-items", "4", "--max-items", "2"}, 1, "items per canvas"},
		{"unknown", []string{"-o", filepath.Join(root, "e"), "extra"}, 1, "unexpected argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := cli(append([]string{"data", "canvases"}, tc.args...)...)
			if code != tc.code || !strings.Contains(errs, tc.err) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errs, tc.code, tc.err)
			}
		})
	}
	if entries, _ := os.ReadDir(root); len(entries) != 2 {
		t.Errorf("%d entries in the test folder, want a and b only", len(entries))
	}
	if code, _, _ := cli("data", "nonsense"); code != 2 {
		t.Errorf("unknown data command: exit %d", code)
	}
	if code, _, _ := cli("data"); code != 2 {
		t.Errorf("data without a command: exit %d", code)
	}
	if code, _, errs := cli("data", "canvases", "-h"); code != 0 || !strings.Contains(errs, "SegmentationClass") {
		t.Errorf("data canvases -h: exit %d, %q", code, errs)
	}
}
