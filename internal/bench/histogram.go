package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Histogram is a latency distribution. It keeps every sample, so its
// quantiles are exact (a load run is at most a few million requests: a few
// megabytes).
type Histogram struct {
	samples []time.Duration // sorted once finished
	sorted  bool
}

// Add records one sample.
func (h *Histogram) Add(d time.Duration) {
	h.samples = append(h.samples, d)
	h.sorted = false
}

// Merge adds every sample of o.
func (h *Histogram) Merge(o *Histogram) {
	h.samples = append(h.samples, o.samples...)
	h.sorted = false
}

// Count is the number of samples.
func (h *Histogram) Count() int { return len(h.samples) }

func (h *Histogram) sort() {
	if !h.sorted {
		slices.Sort(h.samples)
		h.sorted = true
	}
}

// Quantile returns the q-quantile (0 <= q <= 1) by the nearest-rank method:
// the smallest sample that at least q of the samples are less than or equal
// to. It is 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) time.Duration {
	if len(h.samples) == 0 {
		return 0
	}
	h.sort()
	rank := int(q*float64(len(h.samples))+0.999999999) - 1
	rank = max(0, min(rank, len(h.samples)-1))
	return h.samples[rank]
}

// Min and Max are the extreme samples (0 when empty).
func (h *Histogram) Min() time.Duration { return h.Quantile(0) }

// Max is the largest sample.
func (h *Histogram) Max() time.Duration { return h.Quantile(1) }

// Mean is the arithmetic mean (0 when empty).
func (h *Histogram) Mean() time.Duration {
	if len(h.samples) == 0 {
		return 0
	}
	var sum time.Duration
	for _, s := range h.samples {
		sum += s
	}
	return sum / time.Duration(len(h.samples))
}

// Bucket is one bar of the printed histogram: samples in (Low, High].
type Bucket struct {
	Low, High time.Duration
	Count     int
}

// bucketBounds are the upper bounds of the printed buckets, a 1-2-5 series
// from 100 µs to 10 s; slower samples fall into a last open bucket.
var bucketBounds = func() []time.Duration {
	var b []time.Duration
	for d := 100 * time.Microsecond; d <= 10*time.Second; d *= 10 {
		b = append(b, d, 2*d, 5*d)
	}
	return b
}()

// Buckets returns the non-empty buckets from the first to the last that
// holds a sample, empty ones in between included so the shape shows.
func (h *Histogram) Buckets() []Bucket {
	if len(h.samples) == 0 {
		return nil
	}
	h.sort()
	all := make([]Bucket, 0, len(bucketBounds)+1)
	low := time.Duration(0)
	for _, hi := range bucketBounds {
		all = append(all, Bucket{Low: low, High: hi})
		low = hi
	}
	all = append(all, Bucket{Low: low, High: time.Duration(1<<63 - 1)})
	i := 0
	for _, s := range h.samples {
		for s > all[i].High {
			i++
		}
		all[i].Count++
	}
	first, last := -1, -1
	for i, b := range all {
		if b.Count > 0 {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	return all[first : last+1]
}

// Print writes the buckets as a bar chart, 40 characters for the fullest.
func (h *Histogram) Print(w io.Writer) error {
	bs := h.Buckets()
	most := 0
	for _, b := range bs {
		most = max(most, b.Count)
	}
	for _, b := range bs {
		hi := "+inf"
		if b.High != time.Duration(1<<63-1) {
			hi = b.High.String()
		}
		bar := strings.Repeat("#", (b.Count*40+most-1)/most)
		pct := 100 * float64(b.Count) / float64(len(h.samples))
		if _, err := fmt.Fprintf(w, "  <= %-7s %8d %6.2f%% %s\n", hi, b.Count, pct, bar); err != nil {
			return err
		}
	}
	return nil
}
