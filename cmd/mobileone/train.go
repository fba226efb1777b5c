package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/mobileone-go/mobileone"
	"github.com/mobileone-go/mobileone/data"
	"github.com/mobileone-go/mobileone/imageproc"
	"github.com/mobileone-go/mobileone/internal/cpu"
	"github.com/mobileone-go/mobileone/internal/kernel"
	"github.com/mobileone-go/mobileone/internal/runlog"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/train"
)

const trainUsage = `usage: mobileone train [--data fashion-mnist | --data DIR] [-m s0..s4] [--epochs 30] -o RUN/
       mobileone train --init mobileone_s1_unfused.pth.tar --classes N --data DIR -o RUN/
       mobileone train --resume RUN/
       mobileone train --task segment --data DIR -o RUN/   (DeepLabV3: see mobileone train --task segment -h)
       mobileone train --task detect --data DIR -o RUN/    (SSDLite: see mobileone train --task detect -h)

Trains a train-time (over-parameterised) MobileOne with the paper's recipe: SGD
with momentum 0.9 (--nesterov optional), linear warm-up then cosine learning
rate, weight decay annealed on the same cosine (1e-4 -> 1e-5) and not applied to
BatchNorm and biases, label smoothing 0.1, an EMA of the weights (0.9995) used
for evaluation, augmentation (pad+crop and flip for Fashion-MNIST, resized
first if --size is not 28; random-resized crop and flip for image folders;
--randaugment N,M for larger variants).

--data fashion-mnist reads Debian's dataset-fashion-mnist (grey 28x28, 10
classes; the test split is the validation set). --data DIR reads one sub-folder
of images per class (DIR/train and DIR/val if present). Small inputs use a
stride-1 stem by default so 28x28 or 32x32 images keep enough resolution.

--init fine-tunes a train-time checkpoint (the authors' mobileone_sN_unfused
.pth.tar, or a run's model_unfused.pth.tar): its widths, blocks and k are
kept (-m, --k, --channels-override and --blocks are refused), the stem stride
follows --size as above, and --classes N replaces the classifier.

Every image is trained on in every epoch: with the default --last-batch even,
an epoch is split into ceil(n/batch) batches of equal size (±1) rather than
full batches and a small remainder; --last-batch drop trains on full batches
only (the remainder, different images each epoch, is left out).

The run folder gets checkpoint.safetensors at the end of every epoch (written
atomically; Ctrl-C saves and stops; --resume continues exactly, on the same
data), log.csv, curves.png, and at the end model_unfused.pth.tar (authors' key
names, loads in PyTorch) and model.safetensors (fused), both evaluated.`

// trainArgs are the command's arguments, stored in the checkpoint so that
// --resume needs nothing else.
type trainArgs struct {
	Data, DataDir     string
	Variant           string
	K, StemStride     int
	Channels, Size    int
	Classes           int
	Init              string
	RandAugment       string
	Erase             float64
	Pad               int
	NoFlip, NoAugment bool
	Half              bool
	Hyper             train.Hyper
	Threads           int
	Resume, Out       string
	Widths            string
	Blocks            string
	Progressive       string
}

func cmdTrain(args []string, stdout, stderr io.Writer) error {
	switch task, _ := flagValue(args, "task"); task {
	case "segment":
		return cmdTrainSegment(args, stdout, stderr)
	case "detect":
		return cmdTrainDetect(args, stdout, stderr)
	case "", "classify":
		if dir, ok := flagValue(args, "resume"); ok && train.IsSSDCheckpoint(dir) {
			if task == "classify" {
				return fmt.Errorf("%s is a detection run; --task classify cannot resume it", dir)
			}
			return cmdTrainDetect(args, stdout, stderr)
		}
		if dir, ok := flagValue(args, "resume"); ok && train.IsSegCheckpoint(dir) {
			if task == "classify" {
				return fmt.Errorf("%s is a segmentation run; --task classify cannot resume it", dir)
			}
			return cmdTrainSegment(args, stdout, stderr)
		}
		args = withoutFlag(args, "task")
	default:
		return fmt.Errorf("--task %q: want classify (the default), segment or detect", task)
	}
	fs := newFlags("train", trainUsage, stderr)
	a := trainArgs{Hyper: train.DefaultHyper()}
	fs.StringVar(&a.Data, "data", "fashion-mnist", "`fashion-mnist` or a folder of class sub-folders")
	fs.StringVar(&a.DataDir, "fashion-mnist-dir", data.FashionMNISTDir, "where the Fashion-MNIST IDX files are")
	fs.StringVar(&a.Variant, "m", "s0", "variant whose widths to use: `s0..s4`")
	fs.StringVar(&a.Widths, "channels-override", "", "custom widths `stem,c1,c2,c3,c4` instead of the variant's")
	fs.StringVar(&a.Blocks, "blocks", "", "custom block pairs per stage `b1,b2,b3,b4` instead of 2,8,10,1")
	fs.IntVar(&a.K, "k", 0, "conv branches at train time (0: the variant's)")
	fs.IntVar(&a.StemStride, "stem-stride", 0, "stem stride 1 or 2 (0: 1 for inputs up to 64 pixels, else 2)")
	fs.IntVar(&a.Channels, "in-channels", 0, "input channels 1 or 3 (0: 1 for grey data, else 3)")
	fs.IntVar(&a.Size, "size", 0, "training input size (0: 28 for Fashion-MNIST, 224 for folders)")
	fs.IntVar(&a.Classes, "classes", 0, "number of classes (0: the data's); with --init replaces the head")
	fs.StringVar(&a.Init, "init", "", "start from this train-time (unfused) `checkpoint` (fine-tuning)")
	fs.StringVar(&a.Progressive, "progressive", "", "progressive resolution: training `size@epoch,...` (1-based epochs), e.g. 160@1,192@37,224@112; each epoch is validated at its size; the last size is --size")
	fs.StringVar(&a.RandAugment, "randaugment", "", "RandAugment `N,M` (e.g. 2,9); empty: off")
	fs.Float64Var(&a.Erase, "random-erase", 0, "random erasing with this `probability` (e.g. 0.5; 0: off): a random rectangle of 2-33 % of the image filled with noise")
	fs.IntVar(&a.Pad, "pad", 4, "Fashion-MNIST: zero padding, in pixels of the 28×28 images (scaled with --size), of the random crop (0: no crop)")
	fs.BoolVar(&a.NoFlip, "no-flip", false, "no horizontal flips")
	fs.BoolVar(&a.NoAugment, "no-augment", false, "no augmentation at all")
	fs.BoolVar(&a.Half, "half", false, "store the fused model as float16")
	fs.IntVar(&a.Hyper.Epochs, "epochs", a.Hyper.Epochs, "epochs")
	fs.IntVar(&a.Hyper.BatchSize, "batch", a.Hyper.BatchSize, "largest batch size (see --last-batch)")
	fs.StringVar(&a.Hyper.LastBatch, "last-batch", a.Hyper.LastBatch, "`even`: an epoch of n images is ceil(n/batch) batches of equal size (±1), every image trained on (200 images at --batch 128: two of 100); drop: full batches only, the n mod batch images left over are not trained on in that epoch")
	fs.Float64Var(&a.Hyper.LR, "lr", a.Hyper.LR, "peak learning rate")
	fs.Float64Var(&a.Hyper.MinLR, "min-lr", a.Hyper.MinLR, "learning rate at the end of the cosine")
	fs.Float64Var(&a.Hyper.WarmupEpochs, "warmup", a.Hyper.WarmupEpochs, "linear warm-up `epochs`")
	fs.BoolVar(&a.Hyper.ConstantLR, "constant-lr", false, "no cosine decay")
	fs.Float64Var(&a.Hyper.Momentum, "momentum", a.Hyper.Momentum, "SGD momentum")
	fs.BoolVar(&a.Hyper.Nesterov, "nesterov", false, "Nesterov momentum")
	fs.Float64Var(&a.Hyper.WDStart, "wd", a.Hyper.WDStart, "weight decay at the start")
	fs.Float64Var(&a.Hyper.WDEnd, "wd-end", a.Hyper.WDEnd, "weight decay at the end of the cosine")
	fs.BoolVar(&a.Hyper.ConstantWD, "constant-wd", false, "no weight-decay annealing")
	fs.Float64Var(&a.Hyper.LabelSmoothing, "label-smoothing", a.Hyper.LabelSmoothing, "label smoothing")
	fs.Float64Var(&a.Hyper.EMADecay, "ema", a.Hyper.EMADecay, "EMA decay of the weights (0: off)")
	fs.IntVar(&a.Hyper.EMARecalibrate, "ema-recalibrate", a.Hyper.EMARecalibrate, "re-estimate the EMA model's BatchNorm statistics on this many training `batches` before evaluating or shipping it (0: off)")
	fs.BoolVar(&a.Hyper.EMAWarmup, "ema-warmup", true, "EMA decay min(ema, (1+t)/(10+t)) at step t (--ema-warmup=false: constant)")
	fs.Uint64Var(&a.Hyper.Seed, "seed", a.Hyper.Seed, "seed of the initial weights, shuffling and augmentation")
	fs.IntVar(&a.Hyper.Workers, "workers", 2, "data loading goroutines")
	fs.BoolVar(&a.Hyper.BF16, "bf16", false, "matrix multiplies of the 1x1 and dense convolutions in bfloat16 with float32 sums, on the AMX unit of Intel Xeons since Sapphire Rapids (Linux) or with AVX512-BF16 (AMD Zen 4 and later): faster training, numbers that differ from float32 in the third digit; evaluation and the saved models stay float32")
	fs.Float64Var(&a.Hyper.PruneRatio, "prune", 0, "dynamic data pruning (InfoBatch): leave each image whose last training loss is below the mean out of an epoch with this `probability` (e.g. 0.5; 0: off), scaling up the gradient of those kept; epochs get shorter as the network learns")
	fs.Float64Var(&a.Hyper.PruneAnneal, "prune-anneal", 0.125, "with --prune, the `fraction` of the epochs, at the end, that train on every image")
	fs.IntVar(&a.Threads, "threads", runtime.GOMAXPROCS(0), "threads for the compute kernels")
	fs.StringVar(&a.Out, "o", "", "run `folder`")
	fs.StringVar(&a.Resume, "resume", "", "continue the run in this `folder`")
	rest, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("unexpected argument %q", rest[0])
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	var run *train.Run
	if a.Resume != "" {
		if len(set) > 1 && !(len(set) == 2 && set["threads"]) {
			return errors.New("--resume takes no other flags (but --threads): the run's own settings are used")
		}
		threads, dir := a.Threads, a.Resume
		if run, err = train.Resume(dir); err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(run.Meta["args"]), &a); err != nil {
			return fmt.Errorf("%s: the checkpoint's arguments: %v", dir, err)
		}
		a.Threads, a.Out, a.Resume = threads, dir, dir
		a.Hyper = run.Hyper
		if run.Finished() {
			fmt.Fprintf(stdout, "%s: all %d epochs are done; writing the final models\n", a.Out, run.Hyper.Epochs)
		} else {
			e, s := run.StartEpoch()
			fmt.Fprintf(stdout, "%s: resuming at epoch %d, batch %d\n", a.Out, e+1, s)
		}
	} else if err := newRunFolder(a.Out, fs.Usage); err != nil {
		return err
	}
	if a.Threads < 1 {
		return fmt.Errorf("--threads must be at least 1")
	}
	if p := a.Hyper.PruneRatio; !(p >= 0 && p < 1) {
		return fmt.Errorf("--prune %g: want a probability in [0, 1)", p)
	}
	if f := a.Hyper.PruneAnneal; !(f >= 0 && f <= 1) {
		return fmt.Errorf("--prune-anneal %g: want a fraction in [0, 1]", f)
	}
	if a.Pad < 0 || a.Pad > 14 {
		return fmt.Errorf("--pad %d: want 0..14 pixels", a.Pad)
	}
	if l := a.Hyper.LastBatch; a.Resume == "" && l != train.LastBatchEven && l != train.LastBatchDrop {
		return fmt.Errorf("--last-batch %q: want even or drop", l)
	}
	if set["pad"] && a.Data != "fashion-mnist" {
		return errors.New("--pad is Fashion-MNIST's pad + random crop; a folder of images gets random-resized crops")
	}
	if a.Hyper.BF16 && !kernel.HaveBF16() {
		return fmt.Errorf("--bf16 needs AMX-BF16 (Intel Xeon since Sapphire Rapids, on Linux 5.16+) or AVX512-BF16 (AMD Zen 4 and later, Intel Cooper Lake); this CPU has %s", cpu.Detected)
	}
	kernel.SetThreads(a.Threads)

	trainDS, valDS, labels, err := openData(a)
	if err != nil {
		return err
	}
	trTrain, trEval, prep, err := transforms(&a)
	if err != nil {
		return err
	}
	if run != nil {
		if err := sameData(run, labels, trainDS.Len()); err != nil {
			return err
		}
	}
	if run == nil {
		m, err := newTrainModel(&a, len(labels), set)
		if err != nil {
			return err
		}
		argsJSON, _ := json.Marshal(a)
		run = &train.Run{Dir: a.Out, Hyper: a.Hyper, Model: m, Labels: labels,
			Meta: map[string]string{"args": string(argsJSON), "train_images": strconv.Itoa(trainDS.Len())}}
		cfg := m.Config
		fmt.Fprintf(stdout, "training MobileOne (%s) on %s: %d images, %d classes; validation: %d images\n",
			cfg.Describe(), a.Data, trainDS.Len(), len(labels), lenOr0(valDS))
		fmt.Fprintf(stdout, "%s train-time parameters (%s fused), %d epochs of %s, %d threads\n",
			commas(int64(cfg.TrainParams())), commas(int64(cfg.Params())), a.Hyper.Epochs, epochBatches(trainDS.Len(), a.Hyper), a.Threads)
		if a.Hyper.PruneRatio > 0 {
			fmt.Fprintf(stdout, "data pruning (--prune %g): images the network has learned are left out of an epoch with probability %g, the gradients of those kept scaled by %.3g; the last %d epochs train on every image\n",
				a.Hyper.PruneRatio, a.Hyper.PruneRatio, 1/(1-a.Hyper.PruneRatio), a.Hyper.FullEpochs())
		}
		switch {
		case a.Hyper.BF16:
			fmt.Fprintf(stdout, "matrix multiplies in bfloat16 with %s (--bf16); evaluation and the saved models in float32\n", kernel.BF16Unit())
		case kernel.HaveBF16():
			fmt.Fprintf(stdout, "this CPU has %s: --bf16 trains faster (bfloat16 matrix multiplies)\n", kernel.BF16Unit())
		}
	}
	run.Train, run.Val, run.TrainTransform, run.EvalTransform = trainDS, valDS, trTrain, trEval
	if a.Progressive != "" {
		if run.TransformFor, run.EvalTransformFor, err = progressive(a); err != nil {
			return err
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bar := newProgress(stderr, func(p train.Progress) string {
		return fmt.Sprintf("loss %.4f  acc %.2f%%", p.Loss, p.Acc)
	})
	run.OnStep = bar.step
	run.OnEpoch = func(r runlog.Row) {
		bar.finish()
		ema := ""
		if r.ValAccEMA > 0 {
			ema = fmt.Sprintf("  val EMA %.2f%%", r.ValAccEMA)
		}
		pruned := ""
		if a.Hyper.PruneRatio > 0 {
			pruned = fmt.Sprintf("  %s images", commas(int64(r.Images)))
		}
		fmt.Fprintf(stdout, "epoch %3d/%d  %6.1f min  lr %.4f  loss %.4f  acc %.2f%%  val loss %.4f  val %.2f%%%s  %.0f img/s%s\n",
			r.Epoch, a.Hyper.Epochs, r.Seconds/60, r.LR, r.TrainLoss, r.TrainAcc, r.ValLoss, r.ValAcc, ema, r.ImagesPerSec, pruned)
	}
	if !run.Finished() {
		if err := run.Execute(ctx); err != nil {
			if errors.Is(err, train.ErrInterrupted) {
				fmt.Fprintf(stdout, "\ninterrupted: saved %s; continue with: mobileone train --resume %s\n", filepath.Join(a.Out, train.CheckpointName), a.Out)
				return nil
			}
			return err
		}
	}
	return finishRun(run, &a, prep, stdout)
}

// flagValue returns the value of flag name in args (-name V, --name V,
// -name=V, --name=V), scanning up to a "--"; ok is false if it is absent.
func flagValue(args []string, name string) (v string, ok bool) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		for _, p := range []string{"-" + name, "--" + name} {
			if a == p && i+1 < len(args) {
				return args[i+1], true
			}
			if rest, found := strings.CutPrefix(a, p+"="); found {
				return rest, true
			}
		}
	}
	return "", false
}

// withoutFlag removes flag name and its value from args.
func withoutFlag(args []string, name string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "-"+name || a == "--"+name {
			i++
			continue
		}
		if strings.HasPrefix(a, "-"+name+"=") || strings.HasPrefix(a, "--"+name+"=") {
			continue
		}
		out = append(out, a)
	}
	return out
}

// progress is the trainers' progress display: a bar per epoch on a
// terminal, else a heartbeat line a minute (for logs). describe gives the
// running figures (loss, accuracy) of a step.
type progress struct {
	stderr   io.Writer
	tty      bool
	bar      *progressbar.ProgressBar
	last     time.Time
	describe func(train.Progress) string
}

func newProgress(stderr io.Writer, describe func(train.Progress) string) *progress {
	p := &progress{stderr: stderr, last: time.Now(), describe: describe}
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
	}
	return p
}

func (b *progress) step(p train.Progress) {
	if b.tty {
		if b.bar == nil || p.Step == 1 {
			b.bar = progressbar.NewOptions(p.Steps, progressbar.OptionSetWriter(b.stderr),
				progressbar.OptionSetPredictTime(true), progressbar.OptionShowCount(),
				progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionClearOnFinish(),
				progressbar.OptionSetWidth(24))
		}
		b.bar.Describe(fmt.Sprintf("epoch %d/%d  %s  %.0f img/s", p.Epoch, p.Epochs, b.describe(p), p.ImagesPerSec))
		b.bar.Set(p.Step)
		return
	}
	if time.Since(b.last) > time.Minute { // a heartbeat in logs
		b.last = time.Now()
		fmt.Fprintf(b.stderr, "epoch %d/%d  batch %d/%d  %s  %.0f img/s\n", p.Epoch, p.Epochs, p.Step, p.Steps, b.describe(p), p.ImagesPerSec)
	}
}

// finish clears the bar at the end of an epoch.
func (b *progress) finish() {
	if b.bar != nil {
		b.bar.Finish()
		b.bar = nil
	}
}

// sameData checks that a resumed run sees the data it started with: the
// same classes in the same order (the head's outputs) and the same number
// of training images (the shuffled order of the epochs depends on it).
func sameData(run *train.Run, labels []string, n int) error {
	if run.Labels != nil && !slices.Equal(run.Labels, labels) {
		return fmt.Errorf("%s: the data's classes changed since the run started: it was trained on %d classes (%s), the data now has %d (%s)",
			run.Dir, len(run.Labels), shortList(run.Labels), len(labels), shortList(labels))
	}
	if s := run.Meta["train_images"]; s != "" && s != strconv.Itoa(n) {
		return fmt.Errorf("%s: the run started on %s training images, the data now has %d; --resume needs the same data to continue exactly (or start a new run in another folder)",
			run.Dir, s, n)
	}
	return nil
}

// shortList joins up to 5 names, then "...".
func shortList(names []string) string {
	if len(names) > 5 {
		return strings.Join(names[:5], ", ") + ", ..."
	}
	return strings.Join(names, ", ")
}

func lenOr0(d data.Dataset) int {
	if d == nil {
		return 0
	}
	return d.Len()
}

// openData opens the training and validation sets.
func openData(a trainArgs) (trainDS, valDS data.Dataset, labels []string, err error) {
	if a.Data == "fashion-mnist" {
		tr, err := data.LoadFashionMNIST(a.DataDir, "train")
		if err != nil {
			return nil, nil, nil, err
		}
		te, err := data.LoadFashionMNIST(a.DataDir, "test")
		if err != nil {
			return nil, nil, nil, err
		}
		return tr, te, tr.Classes(), nil
	}
	st, err := os.Stat(a.Data)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--data: %w", err)
	}
	if !st.IsDir() {
		return nil, nil, nil, fmt.Errorf("--data %s is not a folder (or fashion-mnist)", a.Data)
	}
	if _, err := os.Stat(filepath.Join(a.Data, "train")); err == nil {
		tr, val, err := data.LoadFolderSplits(a.Data, data.FolderOptions{})
		if err != nil {
			return nil, nil, nil, err
		}
		if val == nil {
			return tr, nil, tr.Classes(), nil
		}
		return tr, val, tr.Classes(), nil
	}
	tr, err := data.LoadFolder(a.Data, data.FolderOptions{})
	if err != nil {
		return nil, nil, nil, err
	}
	return tr, nil, tr.Classes(), nil
}

// transforms builds the training and evaluation transforms and the matching
// inference preprocessing, filling in the size, channels and stem defaults.
func transforms(a *trainArgs) (trainT, evalT *data.Transform, prep imageproc.Params, err error) {
	fashion := a.Data == "fashion-mnist"
	if a.Size == 0 {
		a.Size = 224
		if fashion {
			a.Size = 28
		}
	}
	if a.Size < 8 || a.Size > 1024 {
		return nil, nil, prep, fmt.Errorf("--size %d: want 8..1024", a.Size)
	}
	if a.Channels == 0 {
		a.Channels = 3
		if fashion && a.Init == "" { // grey; a fine-tuned RGB model gets it replicated
			a.Channels = 1
		}
	}
	if a.Channels != 1 && a.Channels != 3 {
		return nil, nil, prep, fmt.Errorf("--in-channels must be 1 or 3")
	}
	if a.StemStride == 0 {
		a.StemStride = 2
		if a.Size <= 64 {
			a.StemStride = 1
		}
	}
	mean := []float32{0.485, 0.456, 0.406}
	std := []float32{0.229, 0.224, 0.225}
	if fashion {
		mean, std = []float32{data.FashionMNISTMean}, []float32{data.FashionMNISTStd}
	}
	if a.Channels == 1 && !fashion {
		mean, std = []float32{0.449}, []float32{0.226}
	}
	aug := data.Augment{Size: a.Size, Channels: a.Channels, Mean: mean, Std: std, Flip: !a.NoFlip}
	resize := a.Size
	if fashion {
		// Pad (4) + random crop at Fashion-MNIST's own 28×28; at another
		// --size the images are resized first and the padding scales.
		if a.Pad > 0 {
			aug.PadCrop = max(1, int(math.Round(float64(a.Pad)*float64(a.Size)/28)))
		}
		if a.Size != 28 {
			aug.Resize = a.Size
		}
	} else {
		aug.RRC = true
		resize = int(math.Round(float64(a.Size) * 256 / 224))
	}
	if a.RandAugment != "" {
		n, m, ok := strings.Cut(a.RandAugment, ",")
		ni, err1 := strconv.Atoi(n)
		mi, err2 := strconv.Atoi(m)
		if !ok || err1 != nil || err2 != nil || ni < 1 || ni > 10 || mi < 0 || mi > 30 {
			return nil, nil, prep, fmt.Errorf("--randaugment %q: want N,M with N in 1..10 and M in 0..30", a.RandAugment)
		}
		aug.RandAugmentN, aug.RandAugmentM = ni, mi
	}
	if a.Erase < 0 || a.Erase > 1 || math.IsNaN(a.Erase) {
		return nil, nil, prep, fmt.Errorf("--random-erase %g: want a probability in [0, 1]", a.Erase)
	}
	aug.Erase = a.Erase
	if a.NoAugment {
		aug = data.Augment{Size: a.Size, Channels: a.Channels, Mean: mean, Std: std}
	}
	trainT = aug.Transform()
	if a.NoAugment && fashion && a.Size != 28 {
		trainT = data.EvalTransform(a.Size, a.Size, a.Channels, mean, std) // resized, nothing random
	}
	switch {
	case fashion && a.Size == 28:
		evalT = data.EvalTransform(0, 28, a.Channels, mean, std)
	case fashion:
		evalT = data.EvalTransform(a.Size, a.Size, a.Channels, mean, std)
	default:
		evalT = data.EvalTransform(resize, a.Size, a.Channels, mean, std)
	}
	prep = imageproc.Params{ResizeShort: resize, Crop: a.Size, Gray: a.Channels == 1}
	for c := 0; c < 3; c++ {
		prep.Mean[c], prep.Std[c] = mean[min(c, len(mean)-1)], std[min(c, len(std)-1)]
	}
	return trainT, evalT, prep, nil
}

// progressive parses --progressive into per-epoch training and validation
// transforms: the same augmentation and evaluation as --size, at the size
// in force for each epoch (validating a net at a size it has not trained at
// says little about it).
func progressive(a trainArgs) (trainFor, evalFor func(int) *data.Transform, err error) {
	type step struct{ size, epoch int }
	var steps []step
	for _, part := range strings.Split(a.Progressive, ",") {
		ss, es, ok := strings.Cut(strings.TrimSpace(part), "@")
		size, err1 := strconv.Atoi(ss)
		epoch, err2 := strconv.Atoi(es)
		if !ok || err1 != nil || err2 != nil || size < 8 || size > 1024 || epoch < 1 {
			return nil, nil, fmt.Errorf("--progressive %q: want size@epoch,... (sizes 8..1024, epochs from 1)", a.Progressive)
		}
		if len(steps) > 0 && epoch <= steps[len(steps)-1].epoch {
			return nil, nil, fmt.Errorf("--progressive %q: epochs must increase", a.Progressive)
		}
		steps = append(steps, step{size, epoch})
	}
	if steps[0].epoch != 1 {
		return nil, nil, fmt.Errorf("--progressive %q: the first size must start at epoch 1", a.Progressive)
	}
	if last := steps[len(steps)-1].size; last != a.Size {
		return nil, nil, fmt.Errorf("--progressive %q ends at %d but --size (the evaluation size) is %d", a.Progressive, last, a.Size)
	}
	sizeAt := func(e int) int {
		size := steps[0].size
		for _, s := range steps {
			if e+1 >= s.epoch {
				size = s.size
			}
		}
		return size
	}
	type pair struct{ train, eval *data.Transform }
	cache := map[int]pair{}
	get := func(e int) pair {
		size := sizeAt(e)
		if p, ok := cache[size]; ok {
			return p
		}
		b := a
		b.Size = size
		t, ev, _, _ := transforms(&b)
		cache[size] = pair{t, ev}
		return cache[size]
	}
	return func(e int) *data.Transform { return get(e).train },
		func(e int) *data.Transform { return get(e).eval }, nil
}

// newTrainModel builds the model to train: the variant's widths (or custom
// ones) with random weights, or the --init checkpoint with a new head. set
// holds the flags given on the command line: with --init, the checkpoint
// fixes the architecture, so flags that would change it are refused rather
// than ignored.
func newTrainModel(a *trainArgs, classes int, set map[string]bool) (*model.Model, error) {
	if a.Classes == 0 {
		a.Classes = classes
	}
	if a.Classes < classes {
		return nil, fmt.Errorf("--classes %d is fewer than the %d classes in the data", a.Classes, classes)
	}
	if a.Init != "" {
		for _, f := range []string{"k", "channels-override", "blocks"} {
			if set[f] {
				return nil, fmt.Errorf("--%s cannot be combined with --init: the checkpoint fixes the architecture", f)
			}
		}
		// The stem stride holds no weights: a checkpoint trained at 224×224
		// (stride 2) fine-tunes on small images with the stride-1 stem those
		// get by default, like a model trained from scratch.
		m, err := mobileone.Load(a.Init, mobileone.LoadOptions{KeepUnfused: true, StemStride: a.StemStride})
		if err != nil {
			return nil, err
		}
		if m.IsFused() {
			return nil, fmt.Errorf("%s is fused: fine-tuning needs a train-time (unfused) checkpoint such as mobileone_sN_unfused.pth.tar", a.Init)
		}
		mm := m.Model
		if set["m"] {
			v, err := model.Variant(a.Variant)
			if err != nil {
				return nil, err
			}
			if v.Channels != mm.Config.Channels || v.Blocks != mm.Config.Blocks {
				return nil, fmt.Errorf("%s has widths %v and blocks %v, not those of -m %s (%v, %v); -m is not needed with --init",
					a.Init, mm.Config.Channels, mm.Config.Blocks, a.Variant, v.Channels, v.Blocks)
			}
		}
		if mm.Config.InChannels != a.Channels {
			return nil, fmt.Errorf("%s takes %d input channels, but --in-channels is %d", a.Init, mm.Config.InChannels, a.Channels)
		}
		if mm.Config.NumClasses != a.Classes {
			mm.ReplaceHead(a.Classes, a.Hyper.Seed)
		}
		mm.Config.Name = ""
		return mm, nil
	}
	cfg, err := model.Variant(a.Variant)
	if err != nil {
		return nil, err
	}
	if a.Widths != "" {
		parts := strings.Split(a.Widths, ",")
		if len(parts) != 5 {
			return nil, fmt.Errorf("--channels-override wants 5 numbers (stem and 4 stages), got %q", a.Widths)
		}
		for i, p := range parts {
			if cfg.Channels[i], err = strconv.Atoi(strings.TrimSpace(p)); err != nil {
				return nil, fmt.Errorf("--channels-override: %v", err)
			}
		}
	}
	if a.Blocks != "" {
		parts := strings.Split(a.Blocks, ",")
		if len(parts) != 4 {
			return nil, fmt.Errorf("--blocks wants 4 numbers, got %q", a.Blocks)
		}
		for i, p := range parts {
			if cfg.Blocks[i], err = strconv.Atoi(strings.TrimSpace(p)); err != nil {
				return nil, fmt.Errorf("--blocks: %v", err)
			}
			cfg.SEPairs[i] = min(cfg.SEPairs[i], cfg.Blocks[i])
		}
	}
	if a.K > 0 {
		cfg.K = a.K
	}
	cfg.NumClasses, cfg.InChannels, cfg.StemStride = a.Classes, a.Channels, a.StemStride
	cfg.Name, cfg.ResizeShort = "", 0
	m, err := model.New(cfg, false)
	if err != nil {
		return nil, err
	}
	m.InitRandom(a.Hyper.Seed)
	return m, nil
}

// finishRun writes the unfused (authors' names, .pth.tar) and fused
// (safetensors) models and evaluates both: their accuracies must agree.
func finishRun(run *train.Run, a *trainArgs, prep imageproc.Params, stdout io.Writer) error {
	final, isEMA, err := run.Final()
	if err != nil {
		return err
	}
	which := "trained weights"
	if isEMA {
		which = "EMA weights"
	}
	// The train-time model in the authors' naming, for PyTorch; its
	// configuration, labels and preprocessing ride along in an entry
	// PyTorch ignores, so that every command reads it as the fused file.
	unfusedPath := filepath.Join(a.Out, "model_unfused.pth.tar")
	unfused := mobileone.FromModel(final, run.Labels)
	unfused.Preprocess = &prep
	if err := unfused.SavePyTorch(unfusedPath); err != nil {
		return err
	}
	fused := mobileone.FromModel(final.Fuse(), run.Labels)
	fused.Preprocess = &prep
	fusedPath := filepath.Join(a.Out, "model.safetensors")
	if err := fused.Save(fusedPath, mobileone.SaveOptions{Half: a.Half}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (train-time, %s parameters) and %s (fused, %s parameters), from the %s\n",
		unfusedPath, commas(int64(final.Params())), fusedPath, commas(int64(fused.Params())), which)
	if run.Val == nil {
		return nil
	}
	bs := a.Hyper.BatchSize
	ru, err := train.EvaluateUnfused(final, run.Val, run.EvalTransform, bs, a.Hyper.Workers)
	if err != nil {
		return err
	}
	// The re-parameterisation is exact: the fused network in float32 must
	// score what the train-time one does. The float16 file (--half) is
	// scored too, since rounding the weights may flip a few images.
	rf, err := train.Evaluate(fused.Model, run.Val, run.EvalTransform, bs, a.Hyper.Workers)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "validation top-1: unfused %.2f%%, fused %.2f%% (%d images; top-5 %.2f%% / %.2f%%)\n", ru.Top1, rf.Top1, rf.N, ru.Top5, rf.Top5)
	if ru.Top1 != rf.Top1 {
		fmt.Fprintf(stdout, "warning: fused and unfused accuracies differ (%d vs %d correct)\n", int(math.Round(ru.Top1*float64(ru.N)/100)), int(math.Round(rf.Top1*float64(rf.N)/100)))
	}
	if a.Half {
		loaded, err := mobileone.Load(fusedPath, mobileone.LoadOptions{})
		if err != nil {
			return err
		}
		rh, err := train.Evaluate(loaded.Model, run.Val, run.EvalTransform, bs, a.Hyper.Workers)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "stored as float16 (%s): top-1 %.2f%%, top-5 %.2f%%\n", fusedPath, rh.Top1, rh.Top5)
	}
	return nil
}

// epochBatches describes how an epoch of n images is batched.
func epochBatches(n int, h train.Hyper) string {
	bs := h.BatchSize
	if h.LastBatch == train.LastBatchDrop {
		s := fmt.Sprintf("%d batches of %d", n/bs, bs)
		if n%bs != 0 {
			s += fmt.Sprintf(" (--last-batch drop: %d images left out of each epoch)", n%bs)
		}
		return s
	}
	nb := (n + bs - 1) / bs
	if n%nb == 0 {
		return fmt.Sprintf("%d batches of %d", nb, n/nb)
	}
	return fmt.Sprintf("%d batches of %d–%d", nb, n/nb, n/nb+1)
}
