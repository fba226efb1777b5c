package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/mobileone-go/mobileone/imageproc"
	"github.com/mobileone-go/mobileone/internal/fsutil"
	"github.com/mobileone-go/mobileone/internal/zoo"
)

const demoUsage = `usage: mobileone demo [-o DIR]

Writes ten Fashion-MNIST test images (one per class) into DIR (default
mobileone-demo) and classifies them with the built-in model, so a new user sees
real predictions with nothing to download. Then try:
  mobileone predict DIR/*.png
  mobileone predict --json your-photo-of-a-shoe.jpg`

func cmdDemo(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", demoUsage, stderr)
	out := fs.String("o", "mobileone-demo", "folder for the images")
	rest, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("unexpected argument %q", rest[0])
	}
	m, err := zoo.Default()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: MobileOne (%s), %s parameters\n\n", zoo.DefaultName, m.Config.Describe(), commas(int64(m.Params())))
	names := m.ClassNames()
	right := 0
	samples := zoo.Samples()
	for _, s := range samples {
		path := filepath.Join(*out, s.Name)
		if err := fsutil.WriteFileAtomic(path, func(w io.Writer) error { _, err := w.Write(s.PNG); return err }); err != nil {
			return err
		}
		img, _, err := imageproc.Decode(bytes.NewReader(s.PNG), 0)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		preds, err := m.Classify(img, 3)
		if err != nil {
			return err
		}
		truth := ""
		if i := int(s.Name[0] - '0'); i >= 0 && i < len(names) {
			truth = names[i]
		}
		mark := "✗"
		if preds[0].Label == truth {
			mark = "✓"
			right++
		}
		var alts []string
		for _, p := range preds[1:] {
			alts = append(alts, fmt.Sprintf("%s %.1f%%", p.Label, 100*p.Prob))
		}
		fmt.Fprintf(stdout, "%s %-40s true: %-12s predicted: %-12s %5.1f%%   (then %s)\n", mark, path, truth, preds[0].Label, 100*preds[0].Prob, strings.Join(alts, ", "))
	}
	fmt.Fprintf(stdout, "\n%d of %d correct. Classify your own images with: mobileone predict IMAGE...\n", right, len(samples))
	return nil
}
