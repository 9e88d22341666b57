package rl

import (
	"bytes"
	"fmt"
	"html"
	"math"
)

// Point is one (x, y) sample of a curve.
type Point struct{ X, Y float64 }

// Series is one named curve.
type Series struct {
	Name   string
	Points []Point
}

// Chart is one plot of several curves sharing axes.
type Chart struct {
	Title  string
	XLabel string
	Series []Series
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"}

// RenderPlots returns a self-contained HTML page (inline SVG, no scripts or
// external resources) with one line chart per Chart.
func RenderPlots(title string, charts []Chart) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>%s</title>\n", html.EscapeString(title))
	b.WriteString("<style>body{font-family:sans-serif;margin:20px;color:#222}div.c{display:inline-block;margin:8px;vertical-align:top}" +
		"h1{font-size:20px}text{font-size:11px;fill:#333}</style></head><body>\n")
	fmt.Fprintf(&b, "<h1>%s</h1>\n", html.EscapeString(title))
	for _, c := range charts {
		b.WriteString("<div class=\"c\">")
		b.Write(RenderSVG(c, 460, 260))
		b.WriteString("</div>\n")
	}
	b.WriteString("</body></html>\n")
	return b.Bytes()
}

// RenderSVG draws one chart as an SVG element.
func RenderSVG(c Chart, w, h int) []byte {
	const left, right, top, bottom = 52, 12, 28, 44
	pw, ph := float64(w-left-right), float64(h-top-bottom)
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range c.Series {
		for _, p := range s.Points {
			xmin, xmax = math.Min(xmin, p.X), math.Max(xmax, p.X)
			ymin, ymax = math.Min(ymin, p.Y), math.Max(ymax, p.Y)
		}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">`, w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#fff" stroke="#ccc"/>`, w, h)
	fmt.Fprintf(&b, `<text x="%d" y="16" style="font-size:13px;font-weight:bold">%s</text>`, left, html.EscapeString(c.Title))
	if math.IsInf(xmin, 1) {
		b.WriteString(`<text x="60" y="120">no data yet</text></svg>`)
		return b.Bytes()
	}
	if xmax == xmin {
		xmin, xmax = xmin-1, xmax+1
	}
	if ymax == ymin {
		ymin, ymax = ymin-1, ymax+1
	}
	pad := (ymax - ymin) * 0.05
	ymin, ymax = ymin-pad, ymax+pad
	sx := func(x float64) float64 { return float64(left) + (x-xmin)/(xmax-xmin)*pw }
	sy := func(y float64) float64 { return float64(top) + (1-(y-ymin)/(ymax-ymin))*ph }
	// Axes, ticks and grid.
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#888"/>`, left, top, left, h-bottom)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#888"/>`, left, h-bottom, w-right, h-bottom)
	for i := 0; i <= 4; i++ {
		y := ymin + (ymax-ymin)*float64(i)/4
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/>`, left, sy(y), w-right, sy(y))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`, left-4, sy(y)+4, fmtFloat(y))
		x := xmin + (xmax-xmin)*float64(i)/4
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`, sx(x), h-bottom+14, fmtFloat(x))
	}
	xl := c.XLabel
	if xl == "" {
		xl = "step"
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`, float64(left)+pw/2, h-bottom+28, html.EscapeString(xl))
	for i, s := range c.Series {
		col := palette[i%len(palette)]
		if len(s.Points) == 1 {
			p := s.Points[0]
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`, sx(p.X), sy(p.Y), col)
		} else if len(s.Points) > 1 {
			b.WriteString(`<polyline fill="none" stroke-width="1.6" stroke="` + col + `" points="`)
			for _, p := range s.Points {
				fmt.Fprintf(&b, "%.1f,%.1f ", sx(p.X), sy(p.Y))
			}
			b.WriteString(`"/>`)
		}
		lx := left + 8 + i*110
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="3" fill="%s"/>`, lx, h-10, col)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`, lx+14, h-6, html.EscapeString(s.Name))
	}
	b.WriteString("</svg>")
	return b.Bytes()
}
