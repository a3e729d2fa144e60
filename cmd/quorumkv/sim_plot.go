package main

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/quorumkv/quorumkv/internal/sim"
)

// plotColors: blue for reads and the curve, orange for writes.
var plotColors = []color.Color{color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}}

// cdfPoints is the most points a latency CDF is drawn with.
const cdfPoints = 2000

// writeSimPlot draws rep's t-visibility curve and its read and write latency distributions
// (CDFs, log x) side by side into path, a .png or .svg file.
func writeSimPlot(path string, rep *sim.Report) error {
	vis, err := tVisibilityPlot(rep)
	if err != nil {
		return err
	}
	lat, err := latencyPlot(rep)
	if err != nil {
		return err
	}
	const w, h = 12 * vg.Inch, 4.5 * vg.Inch
	var canvas vg.CanvasWriterTo
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".png":
		c := vgimg.New(w, h)
		canvas = vgimg.PngCanvas{Canvas: c}
	case ".svg":
		canvas = vgsvg.New(w, h)
	default:
		return fmt.Errorf("%s: want a .png or .svg file", path)
	}
	dc := draw.New(canvas)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Centimeter, PadTop: vg.Millimeter * 3,
		PadBottom: vg.Millimeter * 3, PadLeft: vg.Millimeter * 3, PadRight: vg.Millimeter * 5}
	plots := [][]*plot.Plot{{vis, lat}}
	cs := plot.Align(plots, tiles, dc)
	vis.Draw(cs[0][0])
	lat.Draw(cs[0][1])
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := canvas.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func tVisibilityPlot(rep *sim.Report) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "t-visibility"
	p.X.Label.Text = "t after the write's ack (ms)"
	p.Y.Label.Text = "P(read sees the write)"
	p.Y.Min, p.Y.Max = 0, 1
	p.Add(plotter.NewGrid())
	if len(rep.TVisibility) == 0 {
		p.X.Min, p.X.Max = 0, 1
		return p, nil
	}
	xys := make(plotter.XYs, len(rep.TVisibility))
	lo := 1.0
	for i, v := range rep.TVisibility {
		xys[i].X, xys[i].Y = v.TMs, v.PConsistent
		lo = min(lo, v.PConsistent)
	}
	line, points, err := plotter.NewLinePoints(xys)
	if err != nil {
		return nil, err
	}
	line.Color = plotColors[0]
	points.Color = plotColors[0]
	points.Shape = draw.CircleGlyph{}
	p.Add(line, points)
	p.Y.Min = max(0, lo-0.05)
	if p.Y.Min < 0.1 {
		p.Y.Min = 0
	}
	return p, nil
}

func latencyPlot(rep *sim.Report) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "operation latency"
	p.X.Label.Text = "latency (ms, log scale)"
	p.Y.Label.Text = "CDF"
	p.Y.Min, p.Y.Max = 0, 1
	p.Add(plotter.NewGrid())
	p.Legend.Top = false
	p.Legend.Left = false
	drawn := false
	for i, s := range []struct {
		name string
		lat  []float64
	}{{"reads", rep.ReadLatencies}, {"writes", rep.WriteLatencies}} {
		xys := cdf(s.lat)
		if len(xys) == 0 {
			continue
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, err
		}
		l.Color = plotColors[i]
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(s.name, l)
		drawn = true
	}
	if drawn {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	} else {
		p.X.Min, p.X.Max = 0, 1
	}
	return p, nil
}

// cdf is the empirical CDF of the positive values of v (log x has no room for the
// others), thinned to at most cdfPoints points.
func cdf(v []float64) plotter.XYs {
	s := make([]float64, 0, len(v))
	for _, x := range v {
		if x > 0 {
			s = append(s, x)
		}
	}
	if len(s) == 0 {
		return nil
	}
	slices.Sort(s)
	n := len(s)
	step := max(1, n/cdfPoints)
	var xys plotter.XYs
	for i := 0; i < n; i += step {
		xys = append(xys, plotter.XY{X: s[i], Y: float64(i+1) / float64(n)})
	}
	if last := xys[len(xys)-1]; last.Y < 1 {
		xys = append(xys, plotter.XY{X: s[n-1], Y: 1})
	}
	return xys
}
