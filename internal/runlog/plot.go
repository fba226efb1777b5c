package runlog

import (
	"bytes"
	"io"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/mobileone-go/mobileone/internal/fsutil"
)

// Plot writes a PNG with two panels against training time in minutes:
// losses (train, validation) and accuracies (train, validation, EMA).
func Plot(path string, rows []Row) error {
	series := func(y func(Row) float64) plotter.XYs {
		pts := make(plotter.XYs, 0, len(rows))
		for _, r := range rows {
			if v := y(r); v != 0 {
				pts = append(pts, plotter.XY{X: r.Seconds / 60, Y: v})
			}
		}
		return pts
	}
	loss := plot.New()
	loss.Title.Text = "loss"
	loss.X.Label.Text = "training time (min)"
	acc := plot.New()
	acc.Title.Text = "accuracy (%)"
	acc.X.Label.Text = "training time (min)"
	add := func(p *plot.Plot, name string, pts plotter.XYs, i int) error {
		if len(pts) == 0 {
			return nil
		}
		l, s, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		l.Color = palette[i%len(palette)]
		s.Color = palette[i%len(palette)]
		s.Radius = vg.Points(1.5)
		p.Add(l, s)
		p.Legend.Add(name, l)
		return nil
	}
	for _, s := range []struct {
		p     *plot.Plot
		name  string
		color int
		y     func(Row) float64
	}{
		{loss, "train", 0, func(r Row) float64 { return r.TrainLoss }},
		{loss, "validation", 1, func(r Row) float64 { return r.ValLoss }},
		{acc, "train", 0, func(r Row) float64 { return r.TrainAcc }},
		{acc, "validation", 1, func(r Row) float64 { return r.ValAcc }},
		{acc, "validation (EMA)", 2, func(r Row) float64 { return r.ValAccEMA }},
		{acc, "validation mIoU", 3, func(r Row) float64 { return r.ValMIoU }},
		{acc, "validation pixel accuracy", 4, func(r Row) float64 { return r.ValPixelAcc }},
		{acc, "validation AP", 3, func(r Row) float64 { return r.ValAP }},
		{acc, "validation AP50", 4, func(r Row) float64 { return r.ValAP50 }},
	} {
		if err := add(s.p, s.name, series(s.y), s.color); err != nil {
			return err
		}
	}
	loss.Legend.Top = true
	acc.Legend.Top = false
	acc.Legend.Left = false

	img := vgimg.New(vg.Points(900), vg.Points(360))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Points(12), PadY: vg.Points(8), PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(8)}
	plots := [][]*plot.Plot{{loss, acc}}
	canvases := plot.Align(plots, tiles, dc)
	loss.Draw(canvases[0][0])
	acc.Draw(canvases[0][1])
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(path, func(w io.Writer) error {
		_, err := w.Write(buf.Bytes())
		return err
	})
}
