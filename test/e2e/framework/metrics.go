package framework

import (
	"bufio"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Histogram is one Prometheus histogram series, summed over the label sets a filter selected.
type Histogram struct {
	Count   float64
	Sum     float64
	Buckets map[float64]float64 // upper bound -> cumulative count
}

// ParseHistogram reads a Prometheus text exposition and sums the series of histogram name whose
// labels include every pair in match. The API server's admission webhook latency is reported this
// way (apiserver_admission_webhook_admission_duration_seconds).
func ParseHistogram(text, name string, match map[string]string) (Histogram, error) {
	h := Histogram{Buckets: map[float64]float64{}}
	found := false
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"_") {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		metric, labels, _ := strings.Cut(series, "{")
		labels = strings.TrimSuffix(labels, "}")
		lbl := parseLabels(labels)
		if !matches(lbl, match) {
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err != nil {
			return h, fmt.Errorf("%s: value %q: %w", metric, value, err)
		}
		found = true
		switch strings.TrimPrefix(metric, name) {
		case "_count":
			h.Count += v
		case "_sum":
			h.Sum += v
		case "_bucket":
			le, err := strconv.ParseFloat(lbl["le"], 64)
			if err != nil {
				return h, fmt.Errorf("%s: le %q: %w", metric, lbl["le"], err)
			}
			h.Buckets[le] += v
		}
	}
	if err := sc.Err(); err != nil {
		return h, err
	}
	if !found {
		return h, fmt.Errorf("no %s series with labels %v", name, match)
	}
	return h, nil
}

func parseLabels(s string) map[string]string {
	m := map[string]string{}
	for s != "" {
		k, rest, ok := strings.Cut(s, `="`)
		if !ok {
			break
		}
		end := strings.Index(rest, `"`)
		if end < 0 {
			break
		}
		m[strings.TrimPrefix(k, ",")] = rest[:end]
		s = strings.TrimPrefix(rest[end+1:], ",")
	}
	return m
}

func matches(labels, want map[string]string) bool {
	for k, v := range want {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// Minus returns the observations made between an earlier snapshot and h.
func (h Histogram) Minus(earlier Histogram) Histogram {
	d := Histogram{Count: h.Count - earlier.Count, Sum: h.Sum - earlier.Sum, Buckets: map[float64]float64{}}
	for le, c := range h.Buckets {
		d.Buckets[le] = c - earlier.Buckets[le]
	}
	return d
}

// Since is what the replicas observed between two snapshots of their histograms (by pod name),
// summed, and how many replicas it covers: those in both snapshots whose counters did not go back
// (a restarted process starts its histogram again, and its delta would be negative).
func Since(before, after map[string]Histogram) (Histogram, int) {
	sum := Histogram{Buckets: map[float64]float64{}}
	n := 0
	for name, a := range after {
		b, ok := before[name]
		if !ok || a.Count < b.Count {
			continue
		}
		d := a.Minus(b)
		sum.Count += d.Count
		sum.Sum += d.Sum
		for le, c := range d.Buckets {
			sum.Buckets[le] += c
		}
		n++
	}
	return sum, n
}

// Bound is the upper bound of the bucket that holds the q-quantile: what a histogram can say for
// certain, where Quantile interpolates a value inside the bucket (the injector's buckets are
// 0.1, 0.5, 1 and 5 ms, wide next to a review that takes a fraction of a millisecond). NaN without
// observations, +Inf when the quantile lies past the last finite bound.
func (h Histogram) Bound(q float64) float64 {
	if h.Count == 0 {
		return math.NaN()
	}
	for _, le := range h.bounds() {
		if h.Buckets[le] >= q*h.Count {
			return le
		}
	}
	return math.Inf(1)
}

// bounds are the buckets' upper bounds in ascending order.
func (h Histogram) bounds() []float64 {
	bounds := make([]float64, 0, len(h.Buckets))
	for le := range h.Buckets {
		bounds = append(bounds, le)
	}
	sort.Float64s(bounds)
	return bounds
}

// Mean is the average observation, NaN without any.
func (h Histogram) Mean() float64 {
	if h.Count == 0 {
		return math.NaN()
	}
	return h.Sum / h.Count
}

// Quantile estimates the q-quantile by linear interpolation inside the bucket that holds it, as
// Prometheus's histogram_quantile does.
func (h Histogram) Quantile(q float64) float64 {
	if h.Count == 0 {
		return math.NaN()
	}
	rank := q * h.Count
	lower, below := 0.0, 0.0
	for _, le := range h.bounds() {
		c := h.Buckets[le]
		if c >= rank {
			if math.IsInf(le, 1) {
				return lower
			}
			if c == below {
				return le
			}
			return lower + (le-lower)*(rank-below)/(c-below)
		}
		lower, below = le, c
	}
	return lower
}

// ParseCounter reads a Prometheus text exposition and sums the series of counter name whose
// labels include every pair in match (0 when there is none: a counter not incremented yet).
func ParseCounter(text, name string, match map[string]string) (float64, error) {
	var total float64
	for line := range strings.SplitSeq(text, "\n") {
		series, value, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		metric, labels, _ := strings.Cut(series, "{")
		if metric != name || !matches(parseLabels(strings.TrimSuffix(labels, "}")), match) {
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err != nil {
			return 0, fmt.Errorf("%s: value %q: %w", name, value, err)
		}
		total += v
	}
	return total, nil
}
