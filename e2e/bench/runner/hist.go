package runner

import (
	"math/bits"
	"time"
)

// histogram records latencies in log-linear buckets: exact below 128 ns,
// then 64 buckets per power of two (a relative error under 1.6%), from
// 1 ns to the full range of int64. Recording is a few instructions and
// never allocates, so every call of the load generator is recorded.
// A histogram is not safe for concurrent use: each worker has its own and
// they are merged afterwards.
type histogram struct {
	counts [histBuckets]uint64
	n      uint64
	max    int64
}

const (
	subBits     = 6
	subCount    = 1 << subBits // buckets per power of two
	linearLimit = 2 << subBits // values below are exact
	histBuckets = linearLimit + 57*subCount
)

func bucketOf(v int64) int {
	if v < linearLimit {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	e := bits.Len64(uint64(v)) - 1 - subBits // >= 1
	m := int(uint64(v) >> uint(e))           // in [subCount, 2*subCount)
	return linearLimit + (e-1)*subCount + (m - subCount)
}

// bucketValue returns the middle of a bucket's range.
func bucketValue(i int) int64 {
	if i < linearLimit {
		return int64(i)
	}
	e := (i-linearLimit)/subCount + 1
	m := int64((i-linearLimit)%subCount + subCount)
	lo := m << uint(e)
	hi := (m+1)<<uint(e) - 1
	return lo + (hi-lo)/2
}

func (h *histogram) record(d time.Duration) {
	v := int64(d)
	h.counts[bucketOf(v)]++
	h.n++
	if v > h.max {
		h.max = v
	}
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	if o.max > h.max {
		h.max = o.max
	}
}

// quantile returns the q-quantile (0 < q <= 1); 0 for an empty histogram.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	if rank > h.n {
		rank = h.n
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := bucketValue(i)
			if v > h.max {
				v = h.max
			}
			return time.Duration(v)
		}
	}
	return time.Duration(h.max)
}
