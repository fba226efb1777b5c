package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/mobileone-go/mobileone/data"
	"github.com/mobileone-go/mobileone/dense/canvas"
)

const dataUsage = `usage: mobileone data <command> [flags]

Commands:
  canvases   compose a segmentation and detection dataset from Fashion-MNIST items

Run "mobileone data <command> -h" for a command's flags.
`

func cmdData(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, dataUsage)
		return errUsage
	}
	switch args[0] {
	case "canvases":
		return cmdCanvases(args[1:], stdout, stderr)
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, dataUsage)
		return nil
	}
	fmt.Fprintf(stderr, "mobileone data: unknown command %q\n\n%s", args[0], dataUsage)
	return errUsage
}

const canvasesUsage = `usage: mobileone data canvases -o DIR [--train 2000] [--val 500] [--size 256] [--seed 1]

Composes real Fashion-MNIST items (Debian's dataset-fashion-mnist) onto
textured or noisy coloured backgrounds: 2 to 5 items per canvas, grey or
tinted, 1.5x to 4x their 28 px, at random positions, later items occluding
earlier ones (every item keeps at least 30% of itself visible). Train canvases
take items from Fashion-MNIST's train split, val canvases from its test split.
The same flags give byte-identical files.

Written in Pascal VOC layout, with COCO detection JSON for the same images:
  DIR/JPEGImages/{train,val}_NNNNNN.png    images (PNG by default: lossless; --format jpg for quality-95 JPEG)
  DIR/SegmentationClass/*.png              class per pixel, palette PNG with VOC colours;
                                           0 background, 1..10 the Fashion-MNIST classes;
                                           no 255 (ignore) border: the masks are exact
  DIR/SegmentationObject/*.png             instance per pixel (0 background, k = k-th annotation)
  DIR/ImageSets/Segmentation/{train,val,trainval}.txt
  DIR/annotations/instances_{train,val}.json   COCO: categories 1..10, bbox [x,y,w,h] and area of
                                           the visible part, iscrowd 0, uncompressed RLE masks
  DIR/labels.txt                           the 11 class names, index order
The defaults (2000 + 500 canvases of 256x256) take 1-2 minutes on 2 cores and
about 0.35 GB as PNG (0.1 GB with --format jpg). Nothing is written to DIR until the set
is complete; DIR must not exist or be empty.`

func cmdCanvases(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("data canvases", canvasesUsage, stderr)
	var cfg canvas.Config
	out := fs.String("o", "", "output folder (required; must not exist or be empty)")
	fs.IntVar(&cfg.Train, "train", 2000, "train canvases (items from Fashion-MNIST's train split)")
	fs.IntVar(&cfg.Val, "val", 500, "val canvases (items from Fashion-MNIST's test split)")
	fs.IntVar(&cfg.Size, "size", 256, "canvas width and height in pixels")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "random seed")
	fs.IntVar(&cfg.MinItems, "min-items", 2, "fewest items per canvas")
	fs.IntVar(&cfg.MaxItems, "max-items", 5, "most items per canvas (items that cannot be placed without hiding 70% of another are left out)")
	fs.Float64Var(&cfg.MinScale, "min-scale", 1.5, "smallest item scale (× 28 px)")
	fs.Float64Var(&cfg.MaxScale, "max-scale", 4, "largest item scale (× 28 px)")
	fs.StringVar(&cfg.Format, "format", "png", "image format: png or jpg")
	fs.IntVar(&cfg.Workers, "workers", 0, "goroutines composing canvases (0: one per CPU)")
	dir := fs.String("fashion-mnist-dir", data.FashionMNISTDir, "where the Fashion-MNIST IDX files are")
	rest, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("unexpected argument %q", rest[0])
	}
	if *out == "" {
		fmt.Fprintln(stderr, "mobileone data canvases: -o DIR is required")
		fs.Usage()
		return errUsage
	}
	if err := cfg.Options.Validate(); err != nil {
		return err
	}
	var train, val *data.IDXDataset
	if cfg.Train > 0 {
		if train, err = data.LoadFashionMNIST(*dir, "train"); err != nil {
			return err
		}
	}
	if cfg.Val > 0 {
		if val, err = data.LoadFashionMNIST(*dir, "test"); err != nil {
			return err
		}
	}
	var bar *progressbar.ProgressBar
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		bar = progressbar.NewOptions(cfg.Train+cfg.Val, progressbar.OptionSetWriter(stderr),
			progressbar.OptionSetPredictTime(true), progressbar.OptionShowCount(),
			progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionClearOnFinish(),
			progressbar.OptionSetWidth(24), progressbar.OptionSetDescription("canvases"))
	}
	start, last := time.Now(), time.Now()
	progress := func(done, total int) {
		if bar != nil {
			bar.Set(done)
			return
		}
		if total >= 500 && time.Since(last) > 10*time.Second { // a heartbeat in logs
			last = time.Now()
			fmt.Fprintf(stderr, "canvases: %d/%d\n", done, total)
		}
	}
	// Interfaces holding nil pointers would not be nil.
	var trainDS, valDS data.Dataset
	if train != nil {
		trainDS = train
	}
	if val != nil {
		valDS = val
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := canvas.Build(ctx, *out, trainDS, valDS, cfg, progress); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted: nothing written to %s", *out)
		}
		return err
	}
	if bar != nil {
		bar.Finish()
	}
	fmt.Fprintf(stdout, "wrote %d train and %d val canvases (%dx%d, %s) to %s in %.1fs\n", cfg.Train, cfg.Val,
		cfg.Size, cfg.Size, cfg.Format, *out, time.Since(start).Seconds())
	return nil
}
