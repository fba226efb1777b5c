package data

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mobileone-go/mobileone/imageproc"
)

// memDataset returns n images of varying sizes (grey or RGB), image i
// labelled i%classes.
func memDataset(t testing.TB, n, nc int, varySize bool) *Memory {
	t.Helper()
	imgs := make([]*imageproc.Image8, n)
	labels := make([]int, n)
	for i := range imgs {
		w, h := 12, 10
		if varySize {
			w, h = 9+i%7, 8+i%5
		}
		m := testImage(w, h, nc)
		for j := range m.Pix {
			m.Pix[j] += uint8(i * 3)
		}
		imgs[i], labels[i] = m, i%4
	}
	ds, err := NewMemory(imgs, labels, []string{"a", "b", "c", "d"})
	must(t, err)
	return ds
}

type batchRecord struct {
	x       []float32
	shape   []int
	labels  []int
	indices []int
}

func collect(t testing.TB, l *Loader, e int, release bool) []batchRecord {
	t.Helper()
	var out []batchRecord
	for b, err := range l.Epoch(e) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, batchRecord{
			x: slices.Clone(b.X.Data), shape: slices.Clone(b.X.Shape),
			labels: slices.Clone(b.Labels), indices: slices.Clone(b.Indices),
		})
		if b.Step != len(out)-1 || b.Epoch != e {
			t.Fatalf("batch step %d epoch %d, want %d %d", b.Step, b.Epoch, len(out)-1, e)
		}
		if release {
			b.Release()
		}
	}
	return out
}

func sameBatches(a, b []batchRecord) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d vs %d batches", len(a), len(b))
	}
	for i := range a {
		if !slices.Equal(a[i].shape, b[i].shape) || !slices.Equal(a[i].labels, b[i].labels) ||
			!slices.Equal(a[i].indices, b[i].indices) || !equalFloats(a[i].x, b[i].x) {
			return fmt.Errorf("batch %d differs", i)
		}
	}
	return nil
}

func augmentAll() *Transform {
	return Augment{Size: 8, RRC: true, Flip: true, RandAugmentN: 2, RandAugmentM: 9, Channels: 3,
		Mean: []float32{0.5}, Std: []float32{0.25}}.Transform()
}

func TestLoaderDeterministicAcrossWorkers(t *testing.T) {
	ds := memDataset(t, 103, 1, true)
	var ref []batchRecord
	for _, cfg := range []struct {
		workers, prefetch int
		release           bool
	}{{1, 1, false}, {1, 3, true}, {2, 0, true}, {3, 2, false}, {4, 7, true}, {8, 1, true}} {
		l, err := NewLoader(ds, Options{BatchSize: 10, Shuffle: true, Workers: cfg.workers, Prefetch: cfg.prefetch,
			Transform: augmentAll(), Seed: 77})
		must(t, err)
		got := collect(t, l, 3, cfg.release)
		if ref == nil {
			ref = got
			if len(ref) != 11 || !slices.Equal(ref[0].shape, []int{10, 3, 8, 8}) || !slices.Equal(ref[10].shape, []int{3, 3, 8, 8}) {
				t.Fatalf("%d batches, first %v, last %v", len(ref), ref[0].shape, ref[len(ref)-1].shape)
			}
			continue
		}
		if err := sameBatches(ref, got); err != nil {
			t.Fatalf("workers %d prefetch %d: %v", cfg.workers, cfg.prefetch, err)
		}
	}
	// A different epoch or seed gives different batches.
	l, _ := NewLoader(ds, Options{BatchSize: 10, Shuffle: true, Transform: augmentAll(), Seed: 77})
	if sameBatches(ref, collect(t, l, 4, true)) == nil {
		t.Fatal("epochs 3 and 4 are the same")
	}
	l, _ = NewLoader(ds, Options{BatchSize: 10, Shuffle: true, Transform: augmentAll(), Seed: 78})
	if sameBatches(ref, collect(t, l, 3, true)) == nil {
		t.Fatal("seeds 77 and 78 give the same epoch")
	}
}

func TestLoaderSampleAugmentationIndependentOfOrder(t *testing.T) {
	// A sample's tensor depends on (seed, epoch, index) only: with and
	// without shuffling, and at any batch size, sample i comes out the same.
	ds := memDataset(t, 30, 3, true)
	byIndex := func(bs int, shuffle bool) map[int][]float32 {
		l, err := NewLoader(ds, Options{BatchSize: bs, Shuffle: shuffle, Transform: augmentAll(), Seed: 5, Workers: 2})
		must(t, err)
		out := map[int][]float32{}
		for _, b := range collect(t, l, 1, false) {
			per := len(b.x) / len(b.indices)
			for k, i := range b.indices {
				out[i] = b.x[k*per : (k+1)*per]
			}
		}
		return out
	}
	a, b := byIndex(4, true), byIndex(7, false)
	for i := range 30 {
		if !equalFloats(a[i], b[i]) {
			t.Fatalf("sample %d differs between loaders", i)
		}
	}
}

func TestLoaderEpochCoverage(t *testing.T) {
	ds := memDataset(t, 53, 1, false)
	tests := []struct {
		name      string
		bs        int
		shuffle   bool
		dropLast  bool
		even      bool
		batches   int
		lastSize  int
		wantCount int
	}{
		{"ordered", 10, false, false, false, 6, 3, 53},
		{"shuffled", 10, true, false, false, 6, 3, 53},
		{"drop last", 10, true, true, false, 5, 10, 50},
		{"exact", 53, true, true, false, 1, 53, 53},
		{"one", 1, true, false, false, 53, 1, 53},
		// Even: ceil(53/40) = 2 batches of 27 and 26, not 40 and 13.
		{"even", 40, true, false, true, 2, 26, 53},
		{"even ordered", 10, false, false, true, 6, 8, 53},
		{"even, batch over the data", 128, true, false, true, 1, 53, 53},
		{"even exact", 53, true, false, true, 1, 53, 53},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := NewLoader(ds, Options{BatchSize: tc.bs, Shuffle: tc.shuffle, DropLast: tc.dropLast, Even: tc.even, Workers: 2})
			must(t, err)
			if l.Len() != tc.batches {
				t.Fatalf("Len %d, want %d", l.Len(), tc.batches)
			}
			var orders [][]int
			for e := range 3 {
				bs := collect(t, l, e, true)
				if len(bs) != tc.batches || len(bs[len(bs)-1].indices) != tc.lastSize {
					t.Fatalf("epoch %d: %d batches, last of %d", e, len(bs), len(bs[len(bs)-1].indices))
				}
				var all []int
				for _, b := range bs {
					if n := len(b.indices); n > tc.bs || tc.even && n-len(bs[len(bs)-1].indices) > 1 {
						t.Fatalf("epoch %d: a batch of %d (batch size %d, last %d)", e, n, tc.bs, len(bs[len(bs)-1].indices))
					}
					if b.shape[0] != len(b.indices) || len(b.labels) != len(b.indices) {
						t.Fatalf("batch shape %v with %d indices", b.shape, len(b.indices))
					}
					for k, i := range b.indices {
						if b.labels[k] != i%4 || b.x[k*120] != float32(ds.Images[i].Pix[0])/255 {
							t.Fatalf("sample %d: wrong label or pixels", i)
						}
					}
					all = append(all, b.indices...)
				}
				if !slices.Equal(all, l.Order(e)[:tc.wantCount]) {
					t.Fatalf("epoch %d order differs from Order(%d)", e, e)
				}
				seen := slices.Clone(all)
				slices.Sort(seen)
				seen = slices.Compact(seen)
				if len(seen) != tc.wantCount || len(all) != tc.wantCount {
					t.Fatalf("epoch %d: %d samples, %d distinct, want %d", e, len(all), len(seen), tc.wantCount)
				}
				orders = append(orders, all)
			}
			if tc.shuffle && tc.bs > 1 && slices.Equal(orders[0], orders[1]) {
				t.Fatal("two epochs in the same order")
			}
			if !tc.shuffle && !slices.IsSorted(orders[0]) {
				t.Fatal("unshuffled order is not sorted")
			}
		})
	}
}

func TestLoaderEpochFrom(t *testing.T) {
	ds := memDataset(t, 47, 3, true)
	l, err := NewLoader(ds, Options{BatchSize: 8, Shuffle: true, Transform: augmentAll(), Seed: 9})
	must(t, err)
	full := collect(t, l, 2, true)
	var tail []batchRecord
	for b, err := range l.EpochFrom(2, 4) {
		must(t, err)
		tail = append(tail, batchRecord{x: slices.Clone(b.X.Data), shape: slices.Clone(b.X.Shape), labels: slices.Clone(b.Labels), indices: slices.Clone(b.Indices)})
	}
	if err := sameBatches(full[4:], tail); err != nil {
		t.Fatal(err)
	}
	// A new loader (a resumed process) sees the same epoch.
	l2, _ := NewLoader(ds, Options{BatchSize: 8, Shuffle: true, Transform: augmentAll(), Seed: 9, Workers: 1})
	if err := sameBatches(full, collect(t, l2, 2, false)); err != nil {
		t.Fatal(err)
	}
}

func TestLoaderBreakStopsWorkers(t *testing.T) {
	ds := memDataset(t, 500, 3, true)
	l, err := NewLoader(ds, Options{BatchSize: 4, Shuffle: true, Workers: 3, Transform: augmentAll()})
	must(t, err)
	before := runtime.NumGoroutine()
	for range 5 {
		n := 0
		for b, err := range l.Epoch(0) {
			must(t, err)
			b.Release()
			if n++; n == 3 {
				break
			}
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > before {
		t.Fatalf("%d goroutines after breaking, %d before", g, before)
	}
}

// failing fails Get for one index.
type failing struct {
	*Memory
	bad int
}

func (f failing) Get(i int) (*imageproc.Image8, int, error) {
	if i == f.bad {
		return nil, 0, errors.New("cannot read it")
	}
	return f.Memory.Get(i)
}

func TestLoaderErrors(t *testing.T) {
	ds := memDataset(t, 40, 1, true)
	l, err := NewLoader(failing{memDataset(t, 40, 1, false), 17}, Options{BatchSize: 6, Workers: 2})
	must(t, err)
	n := 0
	var gotErr error
	for b, err := range l.Epoch(0) {
		if err != nil {
			gotErr = err
			break
		}
		n++
		b.Release()
	}
	if gotErr == nil || !strings.Contains(gotErr.Error(), "sample 17: cannot read it") || n != 2 {
		t.Fatalf("after %d batches: %v", n, gotErr)
	}
	// Variable-size images without a size-fixing op.
	l, err = NewLoader(ds, Options{BatchSize: 6, Transform: &Transform{Ops: []Op{HorizontalFlip{P: 0.5}}}})
	must(t, err)
	for _, err := range l.Epoch(0) {
		if err == nil || !strings.Contains(err.Error(), "add a Resize/CenterCrop") {
			t.Fatalf("shape mismatch: %v", err)
		}
		break
	}
	for _, tc := range []struct {
		ds   Dataset
		opts Options
		want string
	}{
		{ds, Options{}, "batch size 0"},
		{ds, Options{BatchSize: 41, DropLast: true}, "no full batch"},
		{ds, Options{BatchSize: 8, DropLast: true, Even: true}, "exclude"},
		{ds, Options{BatchSize: 4, Workers: -1}, "workers"},
		{&Memory{}, Options{BatchSize: 4}, "empty dataset"},
		{ds, Options{BatchSize: 4, Transform: &Transform{Channels: 4}}, "Channels 4"},
	} {
		if _, err := NewLoader(tc.ds, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.opts, err, tc.want)
		}
	}
}

func TestLoaderSetTransform(t *testing.T) {
	ds := memDataset(t, 20, 3, true)
	l, err := NewLoader(ds, Options{BatchSize: 5, Transform: ImageNetTrain(8, false)})
	must(t, err)
	for _, size := range []int{8, 12, 16} {
		must(t, l.SetTransform(ImageNetTrain(size, true)))
		bs := collect(t, l, 0, true)
		if !slices.Equal(bs[0].shape, []int{5, 3, size, size}) {
			t.Fatalf("shape %v, want size %d", bs[0].shape, size)
		}
	}
}

func TestLoaderAllocs(t *testing.T) {
	// With Release, steady-state batches reuse their buffers: the float
	// data is not reallocated per batch.
	ds := memDataset(t, 64, 1, false)
	l, err := NewLoader(ds, Options{BatchSize: 16, Workers: 1, Transform: FashionMNISTEval()})
	must(t, err)
	ptrs := map[*float32]bool{}
	for e := range 4 {
		for b, err := range l.Epoch(e) {
			must(t, err)
			ptrs[&b.X.Data[0]] = true
			b.Release()
			b.Release() // a second Release is a no-op
		}
	}
	if len(ptrs) > 4 {
		t.Fatalf("%d distinct batch buffers over 16 batches", len(ptrs))
	}
}

// writePNG writes a w×h RGB PNG.
func writePNG(t testing.TB, path string, w, h int, v uint8) {
	t.Helper()
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range w * h {
		m.Set(i%w, i/w, color.NRGBA{v, uint8(i), 255 - v, 255})
	}
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	f, err := os.Create(path)
	must(t, err)
	must(t, png.Encode(f, m))
	must(t, f.Close())
}

func TestLoadFolder(t *testing.T) {
	root := t.TempDir()
	writePNG(t, filepath.Join(root, "train", "zebra", "1.png"), 20, 16, 10)
	writePNG(t, filepath.Join(root, "train", "zebra", "sub", "2.PNG"), 18, 12, 20)
	writePNG(t, filepath.Join(root, "train", "ant", "a.png"), 30, 20, 30)
	writePNG(t, filepath.Join(root, "train", "ant", ".hidden.png"), 30, 20, 30)
	must(t, os.WriteFile(filepath.Join(root, "train", "ant", "notes.txt"), []byte("x"), 0o644))
	must(t, os.MkdirAll(filepath.Join(root, "train", "empty"), 0o755))
	writePNG(t, filepath.Join(root, "val", "zebra", "v.png"), 20, 20, 40)

	train, val, err := LoadFolderSplits(root, FolderOptions{Cache: true})
	must(t, err)
	if !slices.Equal(train.Classes(), []string{"ant", "empty", "zebra"}) || train.Len() != 3 || val.Len() != 1 {
		t.Fatalf("classes %v, %d train, %d val", train.Classes(), train.Len(), val.Len())
	}
	if !slices.Equal(train.Labels, []int{0, 2, 2}) || val.Labels[0] != 2 || !slices.Equal(val.Classes(), train.Classes()) {
		t.Fatalf("labels %v, val %v", train.Labels, val.Labels)
	}
	for i := range 2 { // second round from the cache
		m, label, err := train.Get(0)
		if err != nil || m.Width != 30 || m.Height != 20 || m.Channels != 3 || label != 0 || m.Pix[0] != 30 {
			t.Fatalf("round %d: Get(0) = %dx%dx%d label %d, %v", i, m.Width, m.Height, m.Channels, label, err)
		}
	}
	g, err := LoadFolder(filepath.Join(root, "train"), FolderOptions{Gray: true})
	must(t, err)
	if m, _, _ := g.Get(1); m.Channels != 1 {
		t.Fatal("Gray option ignored")
	}
	l, err := NewLoader(train, Options{BatchSize: 2, Transform: ImageNetTrain(16, true), Seed: 1})
	must(t, err)
	bs := collect(t, l, 0, true)
	if len(bs) != 2 || !slices.Equal(bs[0].shape, []int{2, 3, 16, 16}) {
		t.Fatalf("%d batches, shape %v", len(bs), bs[0].shape)
	}

	// A broken file is reported by name when reached.
	bad := filepath.Join(root, "train", "zebra", "broken.jpg")
	must(t, os.WriteFile(bad, []byte("\xff\xd8\xff\xe0 not really a jpeg"), 0o644))
	broken, err := LoadFolder(filepath.Join(root, "train"), FolderOptions{})
	must(t, err)
	l, err = NewLoader(broken, Options{BatchSize: 4, Transform: ImageNetEval(16, 16)})
	must(t, err)
	for _, err := range l.Epoch(0) {
		if err == nil || !strings.Contains(err.Error(), bad) || strings.Count(err.Error(), "data:") != 1 {
			t.Fatalf("broken file: %v", err)
		}
	}
	// The pixel limit applies.
	tiny, err := LoadFolder(filepath.Join(root, "train"), FolderOptions{MaxPixels: 100})
	must(t, err)
	if _, _, err := tiny.Get(0); !errors.Is(err, imageproc.ErrTooLarge) || !strings.Contains(err.Error(), "a.png") {
		t.Fatalf("pixel limit: %v", err)
	}

	// Layout errors.
	writePNG(t, filepath.Join(root, "val", "yak", "y.png"), 4, 4, 1)
	if _, _, err := LoadFolderSplits(root, FolderOptions{}); err == nil || !strings.Contains(err.Error(), `"yak"`) {
		t.Fatalf("unknown val class: %v", err)
	}
	if _, err := LoadFolder(filepath.Join(root, "train", "empty"), FolderOptions{}); err == nil || !strings.Contains(err.Error(), "no class sub-folders") {
		t.Fatalf("flat folder: %v", err)
	}
	if _, err := LoadFolder(filepath.Join(root, "nope"), FolderOptions{}); err == nil {
		t.Fatal("missing folder accepted")
	}
}

func TestLoaderEpochOrder(t *testing.T) {
	// A subset of an epoch's order gives those samples, in that order, each
	// augmented exactly as in the full epoch; resuming mid-subset gives the
	// same tail; an index outside the dataset is an error, not a panic.
	ds := memDataset(t, 47, 3, true)
	l, err := NewLoader(ds, Options{BatchSize: 8, Shuffle: true, DropLast: true, Transform: augmentAll(), Seed: 9, Workers: 2})
	must(t, err)
	full := map[int][]float32{}
	for b, err := range l.EpochOrder(3, 0, l.Order(3)[:40]) {
		must(t, err)
		per := len(b.X.Data) / len(b.Indices)
		for k, i := range b.Indices {
			full[i] = slices.Clone(b.X.Data[k*per : (k+1)*per])
		}
	}
	var sub []int
	for k, i := range l.Order(3) {
		if k%3 != 1 {
			sub = append(sub, i)
		}
	}
	if got, want := l.Batches(len(sub)), len(sub)/8; got != want {
		t.Fatalf("Batches(%d) = %d, want %d", len(sub), got, want)
	}
	var recs []batchRecord
	for b, err := range l.EpochOrder(3, 0, sub) {
		must(t, err)
		if b.Step != len(recs) {
			t.Fatalf("step %d, want %d", b.Step, len(recs))
		}
		recs = append(recs, batchRecord{x: slices.Clone(b.X.Data), shape: slices.Clone(b.X.Shape), labels: slices.Clone(b.Labels), indices: slices.Clone(b.Indices)})
		b.Release()
	}
	if len(recs) != len(sub)/8 {
		t.Fatalf("%d batches, want %d", len(recs), len(sub)/8)
	}
	for s, r := range recs {
		if !slices.Equal(r.indices, sub[s*8:(s+1)*8]) {
			t.Fatalf("batch %d indices %v, want %v", s, r.indices, sub[s*8:(s+1)*8])
		}
		per := len(r.x) / len(r.indices)
		for k, i := range r.indices {
			if want, ok := full[i]; ok && !equalFloats(want, r.x[k*per:(k+1)*per]) {
				t.Fatalf("sample %d augmented differently in the subset", i)
			}
		}
	}
	var tail []batchRecord
	for b, err := range l.EpochOrder(3, 2, sub) {
		must(t, err)
		tail = append(tail, batchRecord{x: slices.Clone(b.X.Data), shape: slices.Clone(b.X.Shape), labels: slices.Clone(b.Labels), indices: slices.Clone(b.Indices)})
	}
	if err := sameBatches(recs[2:], tail); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, err := range l.EpochOrder(3, 0, []int{0, 1, 2, 3, 4, 5, 6, 47}) {
		n++
		if err == nil || !strings.Contains(err.Error(), "index 47") {
			t.Fatalf("out-of-range index: err %v", err)
		}
	}
	if n != 1 {
		t.Fatalf("%d yields for a bad order, want 1", n)
	}
}
