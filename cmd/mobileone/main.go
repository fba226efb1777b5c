// Command mobileone classifies images with MobileOne, re-parameterises
// train-time checkpoints and describes the model zoo.
//
//	mobileone predict -w mobileone_s1.pth.tar cat.jpg dog.png
//	mobileone predict -w CKPT --npy in.npy --out logits.npy
//	mobileone fuse -w mobileone_s0_unfused.pth.tar -o s0.safetensors
//	mobileone info -m s0 [--size 224] [--json]
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

const usage = `mobileone: the MobileOne image backbone (Vasu et al., CVPR 2023) in pure Go

Usage:
  mobileone <command> [flags] [args]

Commands:
  demo      write ten Fashion-MNIST test images and classify them with the built-in model
  predict   classify images (top-K classes), or run a raw .npy tensor
  segment   per-pixel classes of images (DeepLabV3-MobileOne): VOC-palette masks, overlays
  detect    objects in images (SSDLite-MobileOne): boxes, classes, scores; drawn PNGs
  fuse      re-parameterise a train-time checkpoint into a fused safetensors file
  info      parameter count, MACs and a per-layer table of a variant, checkpoint or zoo model (--list)
  bench     latency of the fused network (the paper's ModelBench method)
  export    write the fused network as ONNX
  quantize  post-training int8 quantisation (calibration, per-layer SQNR report)
  train     train or fine-tune (the paper's recipe), resumable
  eval      top-1/top-5 and a confusion matrix on a labelled data set
  study     the paper's latency studies on this machine: correlation, activations, blocks
  serve     an HTTP inference server: micro-batching, limits, metrics, graceful drain
  data      make data sets: "data canvases" composes a segmentation/detection set
  version   print the version

Run "mobileone <command> -h" for a command's flags.
`

// version is set at link time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage marks an error already reported with the command's usage.
var errUsage = errors.New("usage")

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "predict":
		err = cmdPredict(args[1:], stdout, stderr)
	case "segment":
		err = cmdSegment(args[1:], stdout, stderr)
	case "detect":
		err = cmdDetect(args[1:], stdout, stderr)
	case "fuse":
		err = cmdFuse(args[1:], stdout, stderr)
	case "info":
		err = cmdInfo(args[1:], stdout, stderr)
	case "bench":
		err = cmdBench(args[1:], stdout, stderr)
	case "export":
		err = cmdExport(args[1:], stdout, stderr)
	case "train":
		err = cmdTrain(args[1:], stdout, stderr)
	case "eval":
		err = cmdEval(args[1:], stdout, stderr)
	case "quantize":
		err = cmdQuantize(args[1:], stdout, stderr)
	case "demo":
		err = cmdDemo(args[1:], stdout, stderr)
	case "study":
		err = cmdStudy(args[1:], stdout, stderr)
	case "serve":
		err = cmdServe(args[1:], stdout, stderr)
	case "data":
		err = cmdData(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "mobileone", version)
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "mobileone: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		name := args[0]
		if name == "data" && len(args) > 1 { // a command group: name the sub-command
			name += " " + args[1]
		}
		fmt.Fprintf(stderr, "mobileone %s: %s\n", name, oneLine(err.Error()))
		return 1
	}
}

func oneLine(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ") }

// parse parses flags that may appear before, between or after positional
// arguments, and returns the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errUsage
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// newFlags returns a flag set whose usage prints a synopsis and the flags.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "%s\n\nFlags:\n", strings.TrimSpace(synopsis))
		fs.PrintDefaults()
	}
	return fs
}
