package main

import (
	"fmt"
	"html"
	"math"
	"sort"
	"strconv"
	"strings"
)

// series is one line of a chart: a value per x position.
type series struct {
	name   string
	values []float64
}

// chart is a line chart over categorical x values (the concurrency levels).
type chart struct {
	title, yLabel string
	x             []string
	lines         []series
}

var palette = []string{"#4e79a7", "#e15759", "#59a14f", "#f28e2b"}

// Panel size and margins, in SVG user units.
const (
	panelW, panelH              = 420.0, 280.0
	marginL, marginR            = 64.0, 16.0
	marginT, marginB            = 36.0, 64.0
	plotW, plotH                = panelW - marginL - marginR, panelH - marginT - marginB
	legendRowH, legendSwatchLen = 14.0, 18.0
)

// niceMax rounds v up to 1, 2 or 5 times a power of ten, so the axis gets round ticks.
func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func fmtTick(v float64) string {
	switch {
	case v >= 1000:
		return strconv.FormatFloat(v/1000, 'f', -1, 64) + "k"
	default:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
}

// panel draws one chart at horizontal offset ox.
func (c chart) panel(b *strings.Builder, ox float64) {
	top := 0.0
	for _, l := range c.lines {
		for _, v := range l.values {
			top = math.Max(top, v)
		}
	}
	top = niceMax(top)
	px := func(i int) float64 {
		if len(c.x) == 1 {
			return ox + marginL + plotW/2
		}
		return ox + marginL + plotW*float64(i)/float64(len(c.x)-1)
	}
	py := func(v float64) float64 { return marginT + plotH*(1-v/top) }
	fmt.Fprintf(b, `<text x="%.1f" y="20" font-weight="bold">%s</text>`+"\n", ox+marginL, html.EscapeString(c.title))
	for i := 0; i <= 4; i++ {
		v := top * float64(i) / 4
		y := py(v)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", ox+marginL, y, ox+marginL+plotW, y)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", ox+marginL-6, y+4, fmtTick(v))
	}
	for i, x := range c.x {
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", px(i), marginT+plotH+16, html.EscapeString(x))
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">concurrency</text>`+"\n", ox+marginL+plotW/2, marginT+plotH+32)
	fmt.Fprintf(b, `<text transform="translate(%.1f %.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n",
		ox+14, marginT+plotH/2, html.EscapeString(c.yLabel))
	for k, l := range c.lines {
		color := palette[k%len(palette)]
		var pts []string
		for i, v := range l.values {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(i), py(v)))
			fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", px(i), py(v), color)
		}
		fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(pts, " "), color)
		lx := ox + marginL + float64(k%2)*plotW/2
		ly := marginT + plotH + 44 + float64(k/2)*legendRowH
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>`+"\n", lx, ly-4, lx+legendSwatchLen, ly-4, color)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", lx+legendSwatchLen+4, ly, html.EscapeString(l.name))
	}
}

// svgPanels puts charts side by side in one SVG document.
func svgPanels(charts ...chart) string {
	var b strings.Builder
	w := panelW * float64(len(charts))
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="11">`+"\n",
		w, panelH, w, panelH)
	fmt.Fprintf(&b, `<rect width="%.0f" height="%.0f" fill="white"/>`+"\n", w, panelH)
	for i, c := range charts {
		c.panel(&b, float64(i)*panelW)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// plots are the SVG documents of a full run, by file name.
func (r *Report) plots() map[string]string {
	out := map[string]string{}
	for _, path := range []string{pathBearer, pathCookie} {
		cs := r.conns(path)
		var x []string
		for _, c := range cs {
			x = append(x, strconv.Itoa(c))
		}
		rps, p99 := map[string][]float64{}, map[string][]float64{}
		var names []string
		for _, c := range cs {
			for _, a := range r.Paths[path][c] {
				if _, seen := rps[a.Name]; !seen {
					names = append(names, a.Name)
				}
				rps[a.Name] = append(rps[a.Name], a.Median.RPS())
				p99[a.Name] = append(p99[a.Name], ms(a.Median.P99))
			}
		}
		tp := chart{title: path + " path: throughput", yLabel: "requests/s", x: x}
		lat := chart{title: path + " path: p99 latency", yLabel: "ms", x: x}
		for _, n := range names {
			tp.lines = append(tp.lines, series{n, rps[n]})
			lat.lines = append(lat.lines, series{n, p99[n]})
		}
		out[path] = svgPanels(tp, lat)
	}
	var pods []int
	for n := range r.Webhook {
		pods = append(pods, n)
	}
	sort.Ints(pods)
	tp := chart{title: "webhook over TLS: throughput", yLabel: "reviews/s"}
	lat := chart{title: "webhook over TLS: p99 latency", yLabel: "ms"}
	for _, n := range pods {
		var cs []int
		for c := range r.Webhook[n] {
			cs = append(cs, c)
		}
		sort.Ints(cs)
		var rps, p99 []float64
		tp.x = tp.x[:0]
		for _, c := range cs {
			tp.x = append(tp.x, strconv.Itoa(c))
			rps = append(rps, r.Webhook[n][c].Median.RPS())
			p99 = append(p99, ms(r.Webhook[n][c].Median.P99))
		}
		lat.x = tp.x
		tp.lines = append(tp.lines, series{podName(n), rps})
		lat.lines = append(lat.lines, series{podName(n), p99})
	}
	out["webhook"] = svgPanels(tp, lat)
	return out
}
