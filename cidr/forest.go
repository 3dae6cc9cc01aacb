package cidr

import (
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/yl2chen/cidranger"
)

// Shard key lengths (the stride of the root node), at most 16. IPv4 is
// split on its first 12 bits. IPv6 is split on its first 16 bits: nearly
// all IPv6 space in use sits under 2000::/3, and a shorter key would spread
// it over few shards.
const (
	v4ShardBits = 12
	v6ShardBits = 16
)

// forest stores the entries of one address family: a root node that
// splits the address space on its first shardBits bits, with one cidranger
// trie under each shard that holds a stored prefix at least shardBits long.
//
// cidranger's trie is path-compressed but not level-compressed (its own
// TODO), and its insert compares networks by formatting them as strings at
// every level it passes. The root node is that missing level compression,
// done once: each trie is shallow, so inserts and lookups visit fewer
// nodes, and the tries are built in parallel.
//
// Prefixes shorter than shardBits ("short" ones) each cover whole shards,
// and are handled by controlled prefix expansion:
//
//   - In a shard that has a trie, every short entry covering the shard is
//     inserted into that trie too, so the trie alone answers for any
//     address in the shard.
//   - In a shard without a trie, only short entries can contain an
//     address, and they contain the whole shard, so the answer is the same
//     for every address in it: the most specific covering short entry. It
//     is found in the short map, without a trie and without allocating.
type forest struct {
	shardBits int
	shards    map[uint16]cidranger.Ranger
	// short maps shortKey(length, top bits) to the short entry with that
	// prefix; shortLens lists the lengths present, longest first.
	short     map[uint32]*entry
	shortLens []int
}

// top16 returns the first 16 bits of a.
func top16(a netip.Addr) uint16 {
	if a.Is4() {
		b := a.As4()
		return uint16(b[0])<<8 | uint16(b[1])
	}
	b := a.As16()
	return uint16(b[0])<<8 | uint16(b[1])
}

// shardKey returns the first shardBits bits of a.
func shardKey(a netip.Addr, shardBits int) uint16 {
	return top16(a) >> (16 - shardBits)
}

// shortKey returns the key in forest.short of the prefix of length bits
// (less than 16) whose first 16 address bits are top.
func shortKey(bits int, top uint16) uint32 {
	return uint32(bits)<<16 | uint32(top&^(0xffff>>bits))
}

// route returns the trie to ask about a, or, when a's shard has no trie,
// the entry that answers for the whole shard (nil when nothing contains a).
func (f *forest) route(a netip.Addr) (cidranger.Ranger, *entry) {
	top := top16(a)
	if t, ok := f.shards[top>>(16-f.shardBits)]; ok {
		return t, nil
	}
	for _, bits := range f.shortLens {
		if e, ok := f.short[shortKey(bits, top)]; ok {
			return nil, e
		}
	}
	return nil, nil
}

// buildTask is one trie to fill.
type buildTask struct {
	trie    cidranger.Ranger
	entries []*entry
}

// plan sorts entries (all of one family) into shards and returns the
// forest, with empty tries, and the work to fill them.
func plan(entries []*entry, shardBits int) (*forest, []buildTask) {
	f := &forest{
		shardBits: shardBits,
		shards:    make(map[uint16]cidranger.Ranger),
		short:     make(map[uint32]*entry),
	}
	byShard := make(map[uint16][]*entry)
	for _, e := range entries {
		bits := e.prefix.Bits()
		if bits < shardBits {
			f.short[shortKey(bits, top16(e.prefix.Addr()))] = e
			if !slices.Contains(f.shortLens, bits) {
				f.shortLens = append(f.shortLens, bits)
			}
			continue
		}
		k := shardKey(e.prefix.Addr(), shardBits)
		byShard[k] = append(byShard[k], e)
	}
	slices.Sort(f.shortLens)
	slices.Reverse(f.shortLens)

	keys := make([]uint16, 0, len(byShard))
	for k := range byShard {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	tasks := make([]buildTask, 0, len(keys))
	for _, k := range keys {
		// At most one short entry of each length covers shard k.
		var covering []*entry
		top := k << (16 - shardBits)
		for _, bits := range f.shortLens {
			if e, ok := f.short[shortKey(bits, top)]; ok {
				covering = append(covering, e)
			}
		}
		t := cidranger.NewPCTrieRanger()
		f.shards[k] = t
		tasks = append(tasks, buildTask{trie: t, entries: append(covering, byShard[k]...)})
	}
	return f, tasks
}

// parallelMin is the number of inserts below which fill does not bother
// with goroutines.
const parallelMin = 4096

// fill inserts the entries of every task into its trie, on up to
// GOMAXPROCS goroutines when there is enough work, and waits for them all.
// It returns the first insert error, if any.
func fill(tasks []buildTask) error {
	inserts := 0
	for _, t := range tasks {
		inserts += len(t.entries)
	}
	var (
		next     atomic.Int64
		errOnce  sync.Once
		firstErr error
	)
	work := func() {
		for {
			i := int(next.Add(1)) - 1
			if i >= len(tasks) {
				return
			}
			for _, e := range tasks[i].entries {
				if err := tasks[i].trie.Insert(e); err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("insert %s into trie: %w", e.prefix, err) })
					return
				}
			}
		}
	}
	// Biggest first, so that no worker is left with a big trie at the end.
	slices.SortFunc(tasks, func(a, b buildTask) int { return len(b.entries) - len(a.entries) })
	workers := min(runtime.GOMAXPROCS(0), len(tasks), 1+inserts/parallelMin)
	if workers <= 1 {
		work()
		return firstErr
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(work)
	}
	wg.Wait()
	return firstErr
}
