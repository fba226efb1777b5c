package study

import (
	"fmt"
	"image/color"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

var (
	colOurs = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	colORT  = color.RGBA{R: 214, G: 39, B: 40, A: 255}
)

// scatter plots latency against x (log axes), one labelled point per
// model, our engine and (when present) ONNX Runtime, saved as PNG and SVG.
func scatter(path, title, xlabel string, rows []Row, threads int, xOf func(Row) float64, peer bool) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.Y.Label.Text = "median latency (ms)"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
	p.Add(plotter.NewGrid())
	series := []struct {
		name string
		col  color.Color
		get  func(Row) Timing
	}{{"ours", colOurs, func(r Row) Timing { return r.Ours[threads] }}}
	if peer {
		series = append(series, struct {
			name string
			col  color.Color
			get  func(Row) Timing
		}{"ONNX Runtime", colORT, func(r Row) Timing { return r.Peer[threads] }})
	}
	for si, s := range series {
		xys := make(plotter.XYs, len(rows))
		labels := make([]string, len(rows))
		for i, r := range rows {
			xys[i].X, xys[i].Y = xOf(r), s.get(r).MedianMS
			labels[i] = r.Model
		}
		sc, err := plotter.NewScatter(xys)
		if err != nil {
			return err
		}
		sc.Color = s.col
		sc.Shape = draw.CircleGlyph{}
		sc.Radius = vg.Points(3)
		p.Add(sc)
		p.Legend.Add(s.name, sc)
		if si == 0 { // label our points only, to keep the plot readable
			lb, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
			if err != nil {
				return err
			}
			for i := range lb.TextStyle {
				lb.TextStyle[i].Font.Size = vg.Points(7)
				lb.TextStyle[i].XAlign = draw.XLeft
			}
			lb.Offset = vg.Point{X: vg.Points(4), Y: vg.Points(-2)}
			p.Add(lb)
		}
	}
	p.Legend.Top, p.Legend.Left = true, true
	for _, ext := range []string{".png", ".svg"} {
		if err := p.Save(7*vg.Inch, 5*vg.Inch, path+ext); err != nil {
			return fmt.Errorf("plot %s: %w", path+ext, err)
		}
	}
	return nil
}

func (rep *CorrelationReport) plots(dir string) error {
	for _, t := range rep.Options.Threads {
		if err := scatter(filepath.Join(dir, fmt.Sprintf("latency_vs_macs_t%d", t)),
			fmt.Sprintf("Latency vs MACs (%d thread(s), %d×%d)", t, rep.Options.Size[0], rep.Options.Size[1]), "MACs",
			rep.Rows, t, func(r Row) float64 { return float64(r.MACs) }, rep.Options.Peer); err != nil {
			return err
		}
		if err := scatter(filepath.Join(dir, fmt.Sprintf("latency_vs_params_t%d", t)),
			fmt.Sprintf("Latency vs parameters (%d thread(s), %d×%d)", t, rep.Options.Size[0], rep.Options.Size[1]), "parameters",
			rep.Rows, t, func(r Row) float64 { return float64(r.Params) }, rep.Options.Peer); err != nil {
			return err
		}
	}
	return nil
}

// bars plots each variant's median latency (grouped by engine), PNG and SVG.
func bars(path, title string, rows []Row, threads int, peer bool) error {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = "median latency (ms)"
	p.Add(plotter.NewGrid())
	w := vg.Points(14)
	var names []string
	ours := make(plotter.Values, len(rows))
	ort := make(plotter.Values, len(rows))
	for i, r := range rows {
		names = append(names, r.Model)
		ours[i] = r.Ours[threads].MedianMS
		if peer {
			ort[i] = r.Peer[threads].MedianMS
		}
	}
	b1, err := plotter.NewBarChart(ours, w)
	if err != nil {
		return err
	}
	b1.Color = colOurs
	b1.LineStyle.Width = 0
	p.Add(b1)
	p.Legend.Add("ours", b1)
	if peer {
		b1.Offset = -w / 2
		b2, err := plotter.NewBarChart(ort, w)
		if err != nil {
			return err
		}
		b2.Color = colORT
		b2.LineStyle.Width = 0
		b2.Offset = w / 2
		p.Add(b2)
		p.Legend.Add("ONNX Runtime", b2)
	}
	p.NominalX(names...)
	p.Legend.Top = true
	for _, ext := range []string{".png", ".svg"} {
		if err := p.Save(7*vg.Inch, 4*vg.Inch, path+ext); err != nil {
			return fmt.Errorf("plot %s: %w", path+ext, err)
		}
	}
	return nil
}
