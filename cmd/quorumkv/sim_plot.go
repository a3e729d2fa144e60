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

// faultShade is the colour of the fault windows on the timeline panels.
var faultShade = color.NRGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0x40}

// writeSimPlot draws into path, a .png or .svg file, rep's t-visibility curve and its read
// and write latency distributions (CDFs, log x) side by side, and under them the run's
// timeline: per second of virtual time, the stale-read share and the write success rate,
// and the write latency (p50, p99), with the fault windows shaded.
func writeSimPlot(path string, rep *sim.Report) error {
	vis, err := tVisibilityPlot(rep)
	if err != nil {
		return err
	}
	lat, err := latencyPlot(rep)
	if err != nil {
		return err
	}
	rates, err := timelineRatesPlot(rep)
	if err != nil {
		return err
	}
	tlat, err := timelineLatencyPlot(rep)
	if err != nil {
		return err
	}
	const w, h = 12 * vg.Inch, 9 * vg.Inch
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
	tiles := draw.Tiles{Rows: 2, Cols: 2, PadY: vg.Centimeter, PadX: vg.Centimeter, PadTop: vg.Millimeter * 3,
		PadBottom: vg.Millimeter * 3, PadLeft: vg.Millimeter * 3, PadRight: vg.Millimeter * 5}
	plots := [][]*plot.Plot{{vis, lat}, {rates, tlat}}
	cs := plot.Align(plots, tiles, dc)
	for i, row := range plots {
		for j, p := range row {
			p.Draw(cs[i][j])
		}
	}
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

// timelineRatesPlot: per second of the workload, the share of reads that were stale and
// the share of writes that succeeded.
func timelineRatesPlot(rep *sim.Report) (*plot.Plot, error) {
	p := timelinePlot(rep, "timeline: stale reads and write success", "share of the second's operations")
	p.Y.Min, p.Y.Max = 0, 1
	shadeFaults(p, rep, 0, 1)
	var stale, ok plotter.XYs
	for _, t := range rep.Timeline {
		x := float64(t.Second) + 0.5
		if t.Reads > 0 {
			stale = append(stale, plotter.XY{X: x, Y: float64(t.Stale) / float64(t.Reads)})
		}
		if t.Writes > 0 {
			ok = append(ok, plotter.XY{X: x, Y: float64(t.OK) / float64(t.Writes)})
		}
	}
	err := addLines(p, []series{{"stale-read share", stale}, {"write success", ok}}, func(i int, l *plotter.Line) {
		l.Color = plotColors[i]
	})
	return p, err
}

// series is one named line of a panel.
type series struct {
	name string
	xys  plotter.XYs
}

// addLines adds each non-empty series as a 1.5 pt line with a legend entry, styled by style.
func addLines(p *plot.Plot, ss []series, style func(i int, l *plotter.Line)) error {
	for i, s := range ss {
		if len(s.xys) == 0 {
			continue
		}
		l, err := plotter.NewLine(s.xys)
		if err != nil {
			return err
		}
		l.Width = vg.Points(1.5)
		style(i, l)
		p.Add(l)
		p.Legend.Add(s.name, l)
	}
	return nil
}

// timelineLatencyPlot: per second of the workload, the p50 and p99 write latency.
func timelineLatencyPlot(rep *sim.Report) (*plot.Plot, error) {
	p := timelinePlot(rep, "timeline: write latency", "write latency (ms)")
	var p50, p99 plotter.XYs
	top := 0.0
	for _, t := range rep.Timeline {
		if t.Writes == 0 {
			continue
		}
		x := float64(t.Second) + 0.5
		p50 = append(p50, plotter.XY{X: x, Y: t.WriteP50Ms})
		p99 = append(p99, plotter.XY{X: x, Y: t.WriteP99Ms})
		top = max(top, t.WriteP99Ms)
	}
	if top <= 0 {
		top = 1
	}
	p.Y.Min, p.Y.Max = 0, top*1.1
	shadeFaults(p, rep, 0, p.Y.Max)
	err := addLines(p, []series{{"write p50", p50}, {"write p99", p99}}, func(i int, l *plotter.Line) {
		l.Color = plotColors[1]
		if i == 0 {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
	})
	return p, err
}

// timelinePlot is an empty timeline panel: x is the workload's seconds; the legend says
// what the shading is when there are faults.
func timelinePlot(rep *sim.Report, title, ylabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "virtual time (s)"
	p.Y.Label.Text = ylabel
	p.Add(plotter.NewGrid())
	p.Legend.Top = false
	p.Legend.Left = true
	p.X.Min, p.X.Max = 0, max(1, float64(len(rep.Timeline)))
	return p
}

// shadeFaults shades each fault window of rep from y lo to hi, with one legend entry.
func shadeFaults(p *plot.Plot, rep *sim.Report, lo, hi float64) {
	for i, f := range rep.FaultWindows {
		poly, err := plotter.NewPolygon(plotter.XYs{{X: f.FromS, Y: lo}, {X: f.UntilS, Y: lo}, {X: f.UntilS, Y: hi}, {X: f.FromS, Y: hi}})
		if err != nil {
			continue
		}
		poly.Color = faultShade
		poly.LineStyle.Width = 0
		p.Add(poly)
		if i == 0 {
			p.Legend.Add("faults", poly)
		}
	}
}
