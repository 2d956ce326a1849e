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
	bounds := make([]float64, 0, len(h.Buckets))
	for le := range h.Buckets {
		bounds = append(bounds, le)
	}
	sort.Float64s(bounds)
	rank := q * h.Count
	lower, below := 0.0, 0.0
	for _, le := range bounds {
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
