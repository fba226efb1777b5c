package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/mobileone-go/mobileone"
)

const fuseUsage = `usage: mobileone fuse -w unfused.pth.tar -o fused.safetensors [--half] [--naming authors|timm]

Re-parameterises a train-time (unfused) checkpoint: every block's conv+BN
branches, 1x1 scale branch and BatchNorm skip branch are folded into one conv
with bias. Writes a safetensors file whose metadata records the variant, the
architecture, the key naming and the preprocessing; "mobileone predict" loads
it. A plain PyTorch state dict stores no stem stride or preprocessing: for an
ImageNet-shaped model (1000 classes, RGB) the authors' setting is assumed, said
and stored; any other needs --stem-stride and --preprocess. A checkpoint that
is already fused is converted to safetensors unchanged.`

func cmdFuse(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("fuse", fuseUsage, stderr)
	var ck ckptFlags
	var out, naming string
	ck.register(fs, true)
	fs.StringVar(&out, "o", "", "output `file` (.safetensors)")
	fs.StringVar(&out, "out", "", "same as -o")
	half := fs.Bool("half", false, "store weights as float16 (half the size)")
	fs.StringVar(&naming, "naming", "authors", "key names to write: authors or timm")
	rest, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("unexpected argument %q", rest[0])
	}
	weights := ck.weights
	if weights == "" || out == "" {
		fs.Usage()
		return errors.New("need -w CHECKPOINT and -o OUTPUT")
	}
	if naming != "authors" && naming != "timm" {
		return fmt.Errorf("--naming must be authors or timm, got %q", naming)
	}
	if err := ck.check(); err != nil {
		return err
	}
	m, err := ck.load(mobileone.LoadOptions{KeepUnfused: true}, true, stderr)
	if err != nil {
		return err
	}
	if m.Preprocess == nil && m.ImageNetShaped() {
		// Said by load: the fused file stores the authors' setting it assumed.
		p := m.Preprocessing()
		m.Preprocess = &p
	}
	wasFused := m.IsFused()
	f := m.Fuse()
	if err := f.Save(out, mobileone.SaveOptions{Half: *half, Naming: naming}); err != nil {
		return err
	}
	st, err := os.Stat(out)
	if err != nil {
		return err
	}
	what := "fused"
	if wasFused {
		what = "already fused; converted"
	}
	name := f.Config.Name
	if name == "" {
		name = "custom"
	}
	fmt.Fprintf(stdout, "%s: %s (%s), %d → %d parameters, wrote %s (%.1f MB)\n",
		weights, name, what, m.Params(), f.Params(), out, float64(st.Size())/1e6)
	return nil
}
