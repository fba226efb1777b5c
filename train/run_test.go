package train

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mobileone-go/mobileone/data"
	"github.com/mobileone-go/mobileone/imageproc"
	"github.com/mobileone-go/mobileone/internal/runlog"
	"github.com/mobileone-go/mobileone/model"
)

// toyData is a learnable two-class problem: bright squares on the left or
// on the right of a 16×16 grey image.
func toyData(t *testing.T, n int, seed uint64) data.Dataset {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 3))
	var imgs []*imageproc.Image8
	var labels []int
	for i := 0; i < n; i++ {
		m := imageproc.NewImage8(16, 16, 1)
		for j := range m.Pix {
			m.Pix[j] = uint8(r.IntN(60))
		}
		c := i % 2
		x0 := 1 + 8*c + r.IntN(3)
		y0 := 2 + r.IntN(8)
		for y := y0; y < y0+5; y++ {
			for x := x0; x < x0+4; x++ {
				m.Pix[y*16+x] = 220
			}
		}
		imgs = append(imgs, m)
		labels = append(labels, c)
	}
	ds, err := data.NewMemory(imgs, labels, []string{"left", "right"})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func toyRun(t *testing.T, dir string, trainDS, valDS data.Dataset) *Run {
	cfg := model.Config{Channels: [5]int{8, 8, 16, 16, 16}, Blocks: [4]int{1, 1, 1, 1}, K: 2, SEPairs: [4]int{0, 0, 0, 1},
		NumClasses: 2, InChannels: 1, StemStride: 1}
	m, err := model.New(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	m.InitRandom(5)
	h := DefaultHyper()
	h.Epochs, h.BatchSize, h.LR, h.WarmupEpochs, h.EMADecay, h.Workers = 8, 16, 0.1, 1, 0.9, 2
	tr := data.Augment{Size: 16, PadCrop: 2, Flip: false, Mean: []float32{0.2}, Std: []float32{0.3}}.Transform()
	ev := data.EvalTransform(0, 0, 1, []float32{0.2}, []float32{0.3})
	return &Run{Dir: dir, Hyper: h, Model: m, Train: trainDS, Val: valDS, TrainTransform: tr, EvalTransform: ev,
		Labels: []string{"left", "right"}, Meta: map[string]string{"args": "{}"}}
}

// A run learns the toy problem; a run interrupted mid-epoch and resumed
// from its checkpoint ends with exactly the same weights, EMA and log; with
// data pruning too, interrupted in a pruned epoch.
func TestRunResumeExact(t *testing.T) {
	for _, tc := range []struct {
		name        string
		prune       float64
		stop        func(Progress) bool
		epoch, step int // where the interrupted run resumes
	}{
		{"full", 0, func(p Progress) bool { return p.Epoch == 2 && p.Step == 3 }, 1, 3},
		{"pruned", 0.5, func(p Progress) bool { return p.Epoch == 4 && p.Step == 2 }, 3, 2},
	} {
		t.Run(tc.name, func(t *testing.T) { testRunResumeExact(t, tc.prune, tc.stop, tc.epoch, tc.step) })
	}
}

func testRunResumeExact(t *testing.T, prune float64, stop func(Progress) bool, wantE, wantS int) {
	trainDS, valDS := toyData(t, 96, 1), toyData(t, 40, 2)
	run := func(dir string) *Run {
		r := toyRun(t, dir, trainDS, valDS)
		r.Hyper.PruneRatio, r.Hyper.PruneAnneal = prune, 0.25
		return r
	}

	full := run(t.TempDir())
	var rows []runlog.Row
	full.OnEpoch = func(r runlog.Row) { rows = append(rows, r) }
	if err := full.Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	last := rows[len(rows)-1]
	if last.ValAcc < 90 {
		t.Errorf("toy problem not learnt: validation accuracy %.1f%% after %d epochs (%+v)", last.ValAcc, len(rows), rows)
	}
	// 96 images make 6 batches of 16; a pruned run trains on all of them in
	// its first epoch (no scores yet) and its last two (annealing), on
	// fewer in the others.
	pruned := 0
	for i, r := range rows {
		switch {
		case prune == 0 || i == 0 || i >= 6:
			if r.Images != 96 {
				t.Errorf("epoch %d trained %d images, want 96", r.Epoch, r.Images)
			}
		case r.Images < 96:
			pruned++
		}
	}
	if prune > 0 && pruned < 3 {
		t.Errorf("only %d of epochs 2-6 pruned (%+v)", pruned, rows)
	}

	dir := t.TempDir()
	part := run(dir)
	ctx, cancel := context.WithCancel(context.Background())
	part.OnStep = func(p Progress) {
		if stop(p) {
			cancel()
		}
	}
	if err := part.Execute(ctx); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("interrupted run returned %v", err)
	}
	res, err := Resume(dir)
	if err != nil {
		t.Fatal(err)
	}
	if e, s := res.StartEpoch(); e != wantE || s != wantS {
		t.Fatalf("resumes at epoch %d step %d, want %d, %d", e, s, wantE, wantS)
	}
	res.Train, res.Val, res.TrainTransform, res.EvalTransform = trainDS, valDS, part.TrainTransform, part.EvalTransform
	if err := res.Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !res.Finished() {
		t.Error("resumed run not finished")
	}
	_, want := full.Model.StateDict()
	keys, got := res.Model.StateDict()
	for _, k := range keys {
		for i := range got[k].Data {
			if got[k].Data[i] != want[k].Data[i] {
				t.Fatalf("%s[%d]: resumed %v, uninterrupted %v", k, i, got[k].Data[i], want[k].Data[i])
			}
		}
	}
	fe, _, _ := full.Final()
	re, _, _ := res.Final()
	_, fsd := fe.StateDict()
	_, rsd := re.StateDict()
	for _, k := range keys {
		if fsd[k].Data[0] != rsd[k].Data[0] {
			t.Fatalf("final (EMA) %s differs after resume", k)
		}
	}
	for _, name := range []string{CheckpointName, runlog.CSVName, runlog.PlotName} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Error(err)
		}
	}
	l, err := runlog.Open(dir, 99)
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Rows(); len(got) != 8 || got[7].ValAcc != last.ValAcc || got[7].TrainLoss != last.TrainLoss || got[wantE].Images != rows[wantE].Images {
		t.Errorf("resumed log %+v, want 8 rows ending like %+v", got, last)
	}
}

// Progressive resolution: the run asks for each epoch's training and
// validation transforms and trains through the size changes (the network is
// fully convolutional).
func TestRunProgressive(t *testing.T) {
	trainDS, valDS := toyData(t, 64, 1), toyData(t, 16, 2)
	r := toyRun(t, t.TempDir(), trainDS, valDS)
	r.Hyper.Epochs = 3
	var asked []int
	sizes := []int{8, 12, 16}
	r.TransformFor = func(e int) *data.Transform {
		asked = append(asked, e)
		return data.Augment{Size: sizes[e], RRC: true, Scale: [2]float64{0.5, 1}, Mean: []float32{0.2}, Std: []float32{0.3}}.Transform()
	}
	var evalAsked []int
	r.EvalTransformFor = func(e int) *data.Transform {
		evalAsked = append(evalAsked, e)
		return data.EvalTransform(sizes[e], sizes[e], 1, []float32{0.2}, []float32{0.3})
	}
	seen := map[int]bool{}
	r.OnStep = func(p Progress) { seen[p.Epoch] = true }
	if err := r.Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(asked) != 3 || asked[0] != 0 || asked[2] != 2 || len(seen) != 3 {
		t.Errorf("transform asked for epochs %v, trained epochs %v", asked, seen)
	}
	if !slices.Equal(evalAsked, []int{0, 1, 2}) {
		t.Errorf("validation transform asked for epochs %v, want 0 1 2", evalAsked)
	}
}
